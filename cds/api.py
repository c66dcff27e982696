"""The CDS Hooks HTTP surface: discovery, service calls and feedback. Maps HTTP to the domain and back only.

Around every call: the JWT check (when trusted clients are configured), CORS for browser clients, and for hook
calls the audit row and one structured log line.

The functions every hook call runs read Flask's context objects (``request``, ``g``, ``current_app``) through their
proxies once and keep the object: each read through a proxy costs about forty plain attribute reads.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time

import orjson
from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from cds import engine, feedback, logs, metrics, openapi, schemas
from cds.errors import MalformedJSON, PayloadTooLarge, UnknownCard, UnsupportedMediaType
from cds.services import SERVICES, discovery_document
from cds.trust import InvalidToken

try:  # what gunicorn raises from wsgi.input on a broken chunked body; the dev server refuses those itself
    from gunicorn.http.errors import ParseException as _BrokenBody
except ImportError:  # pragma: no cover - gunicorn does not install on every platform

    class _BrokenBody(Exception):  # type: ignore[no-redef]
        pass


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


def read_json(max_depth: int | None = schemas.MAX_DEPTH) -> object:
    """The request body as JSON; 415 unless it is declared JSON, 413 past the size limit, 400 if unparsable or
    nested deeper than ``max_depth`` (None: the caller checks what it echoes; hook bodies run to megabytes)."""
    req, config = request._get_current_object(), current_app.config
    mimetype = req.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaType(
            "send the body as JSON with 'Content-Type: application/json'", expression=("Content-Type",)
        )
    encoding = (req.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"send the body uncompressed: Content-Encoding {encoding[:32]!r} is not accepted",
            expression=("Content-Encoding",),
        )
    charset = req.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            "JSON is sent as UTF-8 (RFC 8259); declare charset=utf-8 or none", expression=("Content-Type",)
        )
    try:
        data = req.get_data(cache=False)
    except (_BrokenBody, OSError) as exc:  # a bad chunk size or trailer, or the client gone mid-body
        raise MalformedJSON(f"the body could not be read ({type(exc).__name__}): resend it") from None
    limit = config["MAX_CONTENT_LENGTH"]
    if req.content_length is None and limit is not None and len(data) >= limit:
        # a chunked body: the server's reader stops at the limit without saying so, and the rest is not ours to
        # guess (cut JSON that still parses would be answered as if it were the request)
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", expression=("body",))
    items, objects = data.count(b","), data.count(b"{")
    if items > config["MAX_JSON_ITEMS"] or objects > config["MAX_JSON_OBJECTS"]:
        raise PayloadTooLarge(
            f"the body holds more than {config['MAX_JSON_ITEMS']} items or {config['MAX_JSON_OBJECTS']} objects",
            expression=("body",),
        )
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc.args[0]}") from None
    if max_depth is not None and schemas.deeper_than(body, max_depth):
        raise MalformedJSON(f"the body nests deeper than this service reads ({max_depth} levels)")
    return body


def audience() -> str:
    """The exact URL called, as the client saw it (CDS_PUBLIC_BASE_URL behind a proxy)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    return base.rstrip("/") + request.path


@bp.before_request
def authenticate() -> None:
    state = g._get_current_object()
    state.started = time.perf_counter()
    state.client = None
    verifier = current_app.extensions.get("cds.verifier")
    if verifier is None or request.method == "OPTIONS":
        return
    try:
        state.client = verifier.verify(request.headers.get("Authorization"), audience())
    except InvalidToken as exc:
        # the route, not the path: a service name or questionnaire id the caller typed is never logged
        route = request.url_rule.rule if request.url_rule is not None else "(no route)"
        logs.event(log, "invalid token", logging.WARNING, event="auth-failed", reason=exc.reason, path=route)
        raise


def cors(response: Response, config=None, req=None) -> Response:
    """CORS for the browser clients of ``CDS_CORS_ORIGINS``: the CDS Hooks sandbox, and a DTR app calling the
    /fhir operations (it runs in the browser too; cds.dtr registers this alone). ``config`` and ``req``: the app's
    config and the request, when the caller holds them."""
    origins = (config or current_app.config)["CORS_ORIGINS"]
    origin = (req or request).headers.get("Origin")
    if origin and ("*" in origins or origin in origins):
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        response.headers.update(_CORS_HEADERS)
        if "*" not in origins:
            response.headers.add("Vary", "Origin")
    return response


@bp.after_request
def around(response: Response) -> Response:
    app, req = current_app._get_current_object(), request._get_current_object()
    config = app.config
    cors(response, config, req)
    endpoint = req.endpoint
    if req.method == "POST" and endpoint == "cds.call_service":
        _audit(response, app, req)
    if config.get("INSTANCE_NAME"):
        response.headers["X-CDS-Instance"] = str(config["INSTANCE_NAME"])
    metrics.child(metrics.REQUESTS, endpoint or "unknown", str(response.status_code)).inc()
    return response


def _audit(response: Response, app, req) -> None:
    state = g._get_current_object()
    latency = round((time.perf_counter() - state.started) * 1000, 2)
    body = response.get_data()  # what the client received: the row stores these bytes, not a second dump
    result = state.get("result")
    if result is None:
        try:
            result = orjson.loads(body)
        except orjson.JSONDecodeError:
            result = None
    service_id = (req.view_args or {}).get("service_id", "")
    if service_id not in SERVICES:  # a name the caller typed is never written to the log, audit or metrics
        service_id = "(unknown service)"
    client = state.client.iss if state.get("client") else None
    hook_instance = state.get("hook_instance")
    cards = (result or {}).get("cards", []) if response.status_code == 200 else []
    if response.status_code == 401:  # refused: a compact row, and only so many per source and minute
        result = None
        if not app.extensions["cds.refusals"].allow(req.remote_addr or "unknown"):
            metrics.AUDIT_REFUSALS_DROPPED.labels("rate").inc()
            return
    try:
        app.extensions["cds.audit"].record(
            hook_instance=hook_instance,
            service_id=service_id[:128],
            client=client,
            status=response.status_code,
            latency_ms=latency,
            response=result,
            body=body,
        )
    except SQLAlchemyError:
        log.error("audit write failed for a hook call; the answer was still sent")
    if response.status_code == 200:
        metrics.observe_hook(service_id[:128], latency / 1000, cards)
    if log.isEnabledFor(logging.INFO):  # the line's fields are made only when it is written (CDS_LOG_LEVEL)
        logs.event(
            log,
            "hook call",
            event="hook",
            hookInstance=hook_instance,
            service=service_id[:128],
            status=response.status_code,
            latency_ms=latency,
            client=client,
            policies=_policies(cards) or None,  # policy ids, never the payer's display (a self-pay display is a name)
            topics=[c["source"]["topic"]["code"] for c in cards] or None,
        )


def _policies(cards: list[dict]) -> list[str]:
    # the cards of one order share one criteria list: each list is read once
    lists = {id(x): x for card in cards if (x := (card.get("extension") or {}).get("cds64580.criteria"))}
    found = {str(c.get("policy", "")).split("@")[0] for x in lists.values() for c in x if isinstance(c, dict)}
    return sorted(p for p in found if p)


@bp.get("/cds-services")
def discovery() -> Response:
    return json_response(_DISCOVERY)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(openapi.document())


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    service = engine.service(service_id)  # 404 before reading the body
    body = read_json(max_depth=None)  # the draft orders, which the answer echoes, are checked in hooks.parse
    instance = body.get("hookInstance") if isinstance(body, dict) else None
    state = g._get_current_object()
    if isinstance(instance, str) and _UUID.fullmatch(instance):  # logged and audited: only the schema's shape
        state.hook_instance = instance
    if isinstance(body, dict) and isinstance(body.get("hook"), str) and body["hook"] != service.hook:
        # some clients (the CDS Hooks sandbox) call every discovered service with their hook: a well-formed call
        # of another hook gets no cards, never an error for the EHR to show
        schemas.validate("hook-request", body)
        _note_other_hook(service, body["hook"])
        state.result = {"cards": [], **({"systemActions": []} if body["hook"] == "order-sign" else {})}
        return json_response(state.result, **{"Cache-Control": "no-store"})
    extensions = current_app.extensions
    settings = extensions["cds.settings"]
    if state.client is not None:  # the token's client decides where its EHR token may go
        settings = dataclasses.replace(settings, fhir_allowed_servers=state.client.fhir_servers)
    state.result = engine.invoke(service_id, body, settings, policy_set=extensions["cds.policies"])
    return json_response(state.result, **{"Cache-Control": "no-store"})


_OTHER_HOOK_NOTICES = 1024  # distinct (client, service, hook) notes kept per process; beyond, no more lines


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The hooks of the CDS Hooks registry: a caller's other string is never written to a log as it came.
_REGISTERED_HOOKS = frozenset(
    {"patient-view", "order-select", "order-sign", "order-dispatch", "appointment-book", "encounter-start",
     "encounter-discharge", "medication-prescribe", "medication-refill", "problem-list-item-create"}
)  # fmt: skip


def _note_other_hook(service, hook: str) -> None:
    """Log once per client, service and hook that a client calls this service with another hook."""
    seen: set = current_app.extensions.setdefault("cds.other-hooks", set())
    client = g.client.iss if g.get("client") else (request.remote_addr or "unknown")
    hook = hook if hook in _REGISTERED_HOOKS else "an unregistered hook"
    key = (client, service.id, hook)
    if key in seen or len(seen) >= _OTHER_HOOK_NOTICES:
        return
    seen.add(key)
    logs.event(
        log,
        f"client called {service.id} with hook '{hook}'; answered with no cards (it answers {service.hook})",
        event="other-hook",
        service=service.id,
        client=client,
        hook=hook,
    )


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> Response:
    engine.service(service_id)
    client = g.client.iss if g.get("client") else None
    items = feedback.parse(service_id, read_json(), client)
    unknown = current_app.extensions["cds.audit"].unknown_cards([item.card_uuid for item in items], service_id, client)
    if unknown:
        raise UnknownCard(
            f"card {unknown[0][:64]} was never issued by this service; no feedback was stored",
            expression=(f"feedback[{[i.card_uuid for i in items].index(unknown[0])}].card",),
        )
    stored = current_app.extensions["cds.feedback"].save(items)
    return json_response({"received": len(items), "stored": stored})
