"""The CDS Hooks HTTP surface: discovery, service calls and feedback. Maps HTTP to the domain and back only.

Around every call: the JWT check (when trusted clients are configured), CORS for browser clients, and for hook
calls the audit row and one structured log line.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import orjson
from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from cds import engine, feedback, logs, metrics, openapi
from cds.errors import MalformedJSON, UnsupportedMediaType
from cds.services import discovery_document
from cds.trust import InvalidToken

bp = Blueprint("cds", __name__)
log = logging.getLogger("cds.api")

_DISCOVERY = orjson.dumps(discovery_document())
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def json_response(body: object, status: int = 200, **headers: str) -> Response:
    response = Response(body if isinstance(body, bytes) else orjson.dumps(body), status, mimetype="application/json")
    response.headers.update(headers)
    return response


def read_json() -> object:
    """The request body as JSON; 415 unless it is declared JSON, 413 past the size limit, 400 if unparsable."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaType(
            "send the body as JSON with 'Content-Type: application/json'", expression=("Content-Type",)
        )
    data = request.get_data(cache=False)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc.args[0]}") from None


def audience() -> str:
    """The exact URL called, as the client saw it (CDS_PUBLIC_BASE_URL behind a proxy)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    return base.rstrip("/") + request.path


@bp.before_request
def authenticate() -> None:
    g.started = time.perf_counter()
    g.client = None
    verifier = current_app.extensions.get("cds.verifier")
    if verifier is None or request.method == "OPTIONS":
        return
    try:
        g.client = verifier.verify(request.headers.get("Authorization"), audience())
    except InvalidToken as exc:
        logs.event(log, "invalid token", logging.WARNING, event="auth-failed", reason=exc.reason, path=request.path)
        raise


@bp.after_request
def around(response: Response) -> Response:
    origins = current_app.config["CORS_ORIGINS"]
    origin = request.headers.get("Origin")
    if origin and ("*" in origins or origin in origins):
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        response.headers.update(_CORS_HEADERS)
        if "*" not in origins:
            response.headers.add("Vary", "Origin")
    if request.method == "POST" and request.endpoint == "cds.call_service":
        _audit(response)
    if current_app.config.get("INSTANCE_NAME"):
        response.headers["X-CDS-Instance"] = str(current_app.config["INSTANCE_NAME"])
    metrics.REQUESTS.labels(request.endpoint or "unknown", str(response.status_code)).inc()
    return response


def _audit(response: Response) -> None:
    latency = round((time.perf_counter() - g.started) * 1000, 2)
    result = g.get("result")
    if result is None:
        try:
            result = orjson.loads(response.get_data())
        except orjson.JSONDecodeError:
            result = None
    service_id = (request.view_args or {}).get("service_id", "")
    client = g.client.iss if g.get("client") else None
    cards = (result or {}).get("cards", []) if response.status_code == 200 else []
    try:
        current_app.extensions["cds.audit"].record(
            hook_instance=g.get("hook_instance"),
            service_id=service_id[:128],
            client=client,
            status=response.status_code,
            latency_ms=latency,
            response=result,
        )
    except SQLAlchemyError:
        log.error("audit write failed for a hook call; the answer was still sent")
    if response.status_code == 200:
        metrics.observe_hook(service_id[:128], latency / 1000, cards)
    logs.event(
        log,
        "hook call",
        event="hook",
        hookInstance=g.get("hook_instance"),
        service=service_id[:128],
        status=response.status_code,
        latency_ms=latency,
        client=client,
        payers=sorted({c["source"]["label"] for c in cards}) or None,
        topics=[c["source"]["topic"]["code"] for c in cards] or None,
    )


@bp.get("/cds-services")
def discovery() -> Response:
    return json_response(_DISCOVERY)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(openapi.document())


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    engine.service(service_id)  # 404 before reading the body
    body = read_json()
    if isinstance(body, dict) and isinstance(body.get("hookInstance"), str):
        g.hook_instance = body["hookInstance"][:64]
    settings = current_app.extensions["cds.settings"]
    if g.client is not None:  # the token's client decides where its EHR token may go
        settings = dataclasses.replace(settings, fhir_allowed_servers=g.client.fhir_servers)
    g.result = engine.invoke(service_id, body, settings, policy_set=current_app.extensions["cds.policies"])
    return json_response(g.result, **{"Cache-Control": "no-store"})


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> Response:
    engine.service(service_id)
    items = feedback.parse(service_id, read_json())
    stored = current_app.extensions["cds.feedback"].save(items)
    return json_response({"received": len(items), "stored": stored})
