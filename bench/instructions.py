"""Instructions per typical call, counted by valgrind's callgrind (`make bench-instructions`).

Wall-clock timings on a shared machine drift by a third between runs; instruction counts do not (about 1%). For
each thing measured the script runs itself twice under callgrind, with N calls and with none, and prints the
difference per call:

- ``floor``: the benchmark's floor app (`bench/floor.py`) called through WSGI, as gunicorn calls it;
- ``hook call``: the service called through WSGI, everything a hook call costs in the worker: Flask, the request
  checks, ``engine.invoke``, metrics, the log line and the audit row (its writer thread included, on an SQLite
  file as `make bench` uses);
- ``engine.invoke``: the rules core alone, from parsed body to answer.

The ratio of the first two is the deterministic part of `make bench`'s throughput ratio (gunicorn, the kernel and
the load generator add the same to both). Compare runs before and after a change. Needs valgrind
(`apt-get install valgrind`); takes ~6 minutes.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CALLS = {"floor": 400, "hook call": 100, "engine.invoke": 200}
WARM = 64  # calls made in both runs before counting: imports, caches of the code (never of a body: each differs)


def invoke_calls(n: int) -> None:
    import orjson

    from bench import SERVICE, typical, variants
    from cds import create_app, engine

    app = create_app({"DATABASE_URL": "sqlite://", "LOG_LEVEL": "WARNING"})
    settings, policy_set = app.extensions["cds.settings"], app.extensions["cds.policies"]
    bodies = [orjson.loads(b) for b in variants(typical(), 32)]
    service = SERVICE.rsplit("/", 1)[-1]
    for i in range(WARM + n):
        engine.invoke(service, bodies[i % 32], settings, policy_set=policy_set)


def wsgi_calls(which: str, n: int) -> None:
    from werkzeug.test import EnvironBuilder

    from bench import SERVICE, typical, variants

    bodies = variants(typical(), 32)
    if which == "floor":
        from floor import app

        size = len(_service_answer(bodies[0]))
        path = f"{SERVICE}?size={size}"
    else:
        os.environ.setdefault("CDS_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")  # run by hand
        os.environ["CDS_LOG_LEVEL"] = "WARNING"
        from cds.wsgi import app

        path = SERVICE
    environs = [
        EnvironBuilder(path=path, method="POST", data=b, content_type="application/json").get_environ() for b in bodies
    ]

    def start_response(status: str, _headers, _exc_info=None) -> None:
        assert status.startswith("200"), status

    for i in range(WARM + n):
        environ = dict(environs[i % 32], **{"wsgi.input": io.BytesIO(bodies[i % 32])})
        answer = app(environ, start_response)
        for _chunk in answer:
            pass
        answer.close()
    if which != "floor":
        assert app.extensions["cds.audit"].flush(30), "the audit rows were committed"


def _service_answer(body: bytes) -> bytes:
    import orjson

    from bench import SERVICE
    from cds import create_app, engine

    app = create_app({"DATABASE_URL": "sqlite://", "LOG_LEVEL": "WARNING"})
    settings, policy_set = app.extensions["cds.settings"], app.extensions["cds.policies"]
    return orjson.dumps(engine.invoke(SERVICE.rsplit("/", 1)[-1], orjson.loads(body), settings, policy_set=policy_set))


def counted(what: str, n: int) -> int:
    with tempfile.TemporaryDirectory(prefix="cds-instructions-") as folder:  # a fresh audit file for each run
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if what != "floor":  # the floor's process as it always ran: its heap decides what the collector walks
            env["CDS_DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, what, str(n)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"callgrind run of {what!r} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    if len(sys.argv) > 2:  # one counted run: what, how many calls
        what, n = sys.argv[1], int(sys.argv[2])
        invoke_calls(n) if what == "engine.invoke" else wsgi_calls(what, n)
        return 0
    if shutil.which("valgrind") is None:
        print("make bench-instructions needs valgrind, which is not installed here", file=sys.stderr)
        return 2
    per_call = {what: (counted(what, n) - counted(what, 0)) / n for what, n in CALLS.items()}
    for what, count in per_call.items():
        print(f"{what:>14}: {count / 1e6:.2f} million instructions a call ({CALLS[what]} calls, callgrind)")
    print(f"floor / hook call: {per_call['floor'] / per_call['hook call']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
