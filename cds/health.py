"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from cds import metrics
from cds.api import json_response
from cds.db import ping
from cds.errors import ServiceUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def live() -> Response:
    """The process answers: restart it if this fails."""
    return json_response({"status": "pass"})


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus exposition; no JWT (scrapers do not carry one): keep it on the internal network."""
    body, content_type = metrics.exposition()
    return Response(body, 200, content_type=content_type)


@bp.get("/readyz")
def ready() -> Response:
    """The process can serve: the database answers and metrics can be written. Take it out of rotation if not."""
    try:
        ping(current_app.extensions["cds.engine"])
    except SQLAlchemyError:
        raise ServiceUnavailable("the database is not reachable") from None
    if problem := metrics.problem():
        raise ServiceUnavailable(problem)
    return json_response({"status": "pass", "checks": {"database": "pass", "metrics": "pass"}})
