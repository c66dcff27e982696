"""The service with the rules taken out: every call answers the typical body's real answer, computed once at start.

Everything else a hook call costs is still there (gunicorn, Flask, the request checks, the metrics, the log line and
the audit row of the answer), so `make bench` can show what the targets leave for the rules: the best the service
could do if the rules cost nothing. Benchmark tooling only; the product never serves this.
"""

from __future__ import annotations

import orjson

from bench.bench import SERVICE, typical
from cds import engine
from cds.wsgi import app

_ANSWER = engine.invoke(
    SERVICE.rsplit("/", 1)[-1],
    orjson.loads(orjson.dumps(typical())),
    app.extensions["cds.settings"],
    policy_set=app.extensions["cds.policies"],
)


def _canned(*_args, **_kwargs) -> dict:
    return _ANSWER


engine.invoke = _canned  # cds.api calls engine.invoke through the module: every call gets the canned answer
