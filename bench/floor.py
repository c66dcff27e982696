"""The benchmark's floor: a Flask app that does only what every hook call must do (read the body, parse it with the
same JSON library) and answers with pre-serialised bytes of the size asked for. It lives outside the product
package: `make bench` serves it with the same gunicorn settings as the service and measures both in one run.
"""

from __future__ import annotations

import functools

import orjson
from flask import Flask, Response, request

app = Flask(__name__)


@functools.cache
def _padding(size: int) -> bytes:
    base = b'{"cards":[],"pad":""}'
    return base[:-2] + b"x" * max(0, size - len(base)) + b'"}'


@app.post("/cds-services/<service_id>")
def floor(service_id: str) -> Response:
    orjson.loads(request.get_data(cache=False))
    return Response(_padding(int(request.args.get("size", "16"))), 200, mimetype="application/json")
