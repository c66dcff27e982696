"""The CDS Hooks HTTP surface: discovery, service calls and feedback. Maps HTTP to the domain and back only."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, request

from cds import engine, feedback
from cds.errors import MalformedJSON, UnsupportedMediaType
from cds.services import discovery_document

bp = Blueprint("cds", __name__)

_DISCOVERY = orjson.dumps(discovery_document())


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


@bp.get("/cds-services")
def discovery() -> Response:
    return json_response(_DISCOVERY)


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    engine.service(service_id)  # 404 before reading the body
    body = read_json()
    result = engine.invoke(
        service_id, body, current_app.extensions["cds.settings"], policy_set=current_app.extensions["cds.policies"]
    )
    return json_response(result, **{"Cache-Control": "no-store"})


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> Response:
    engine.service(service_id)
    items = feedback.parse(service_id, read_json())
    stored = current_app.extensions["cds.feedback"].save(items)
    return json_response({"received": len(items), "stored": stored})
