"""The benchmark's floor: an endpoint that does only what every hook call must (read and parse the body with the
same JSON library, answer with pre-serialised bytes of the size asked for), registered only with CDS_BENCH_FLOOR.
"""

from __future__ import annotations

import functools

import orjson
from flask import Blueprint, Response, request

bp = Blueprint("floor", __name__)


@functools.cache
def _padding(size: int) -> bytes:
    base = b'{"cards":[],"pad":""}'
    return base[:-2] + b"x" * max(0, size - len(base)) + b'"}'


@bp.post("/bench/floor")
def floor() -> Response:
    orjson.loads(request.get_data(cache=False))
    return Response(_padding(int(request.args.get("size", "16"))), 200, mimetype="application/json")
