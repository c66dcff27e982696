"""The card viewer for testers and clinicians (``/viewer``): run a case, see the cards as an EHR shows them, why.

Enabled by ``CDS_VIEWER`` (on for ``make run``, off by default). The page is static HTML and JavaScript served from
``cds/viewer_static``; this blueprint gives it the fixture cases, runs a case the way ``cds replay`` does, and
returns the answer with the evidence resources and the timeline events the page draws.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, send_from_directory
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from cds import codes, dtr, fixtures, payers, policies, provenance, questionnaires, records, replay, schemas
from cds.api import json_response, read_json
from cds.errors import Forbidden, InvalidRequest, ServiceUnavailable
from cds.fhirstore import ServedStore, flatten
from cds.orders import order_from
from cds.rules.context import order_day

STATIC = Path(__file__).resolve().parent / "viewer_static"
bp = Blueprint("viewer", __name__, url_prefix="/viewer")
_SERVED_LOCK = threading.Lock()


@bp.get("/")
def page() -> Response:
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/dtr")
def dtr_page() -> Response:
    """The documentation questionnaire on its own page: ``?case=<fixture>`` runs the case and opens its form
    prefilled; ``?questionnaire=<id>`` (the documentation card's link) opens that questionnaire to complete."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/static/<path:name>")
def static(name: str) -> Response:
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/api/cases")
def cases() -> Response:
    found = fixtures.discover([fixtures.FIXTURE_DIR]) if fixtures.FIXTURE_DIR.is_dir() else []
    return json_response(
        [
            {
                "name": c.name,
                "description": c.spec.get("description", ""),
                "hook": c.hook,
                "payer": c.spec.get("payer"),
                "as_of": c.spec.get("as_of"),
            }
            for c in found
        ]
    )


def _case(body: dict) -> fixtures.Case:
    try:
        if body.get("case"):
            name = str(body["case"])
            if "/" in name or name.startswith(".") or not (fixtures.FIXTURE_DIR / name).is_dir():
                raise InvalidRequest(f"no fixture case named {name[:100]}", expression=("case",))
            return fixtures.load_folder(fixtures.FIXTURE_DIR / name)
        if isinstance(body.get("request"), dict):
            case = fixtures.Case("pasted request", Path("pasted"), request=body["request"])
            return case
        if isinstance(body.get("bundle"), dict):
            resources = fixtures._bundle(Path("pasted bundle"), body["bundle"])
            orders = [r for r in resources if r["resourceType"] == "ServiceRequest" and fixtures._is_64580(r)]
            case = fixtures.Case("pasted bundle", Path("pasted"), resources=resources)
            if not orders:
                orders = [fixtures._draft_order(fixtures._patient_id(resources, None))]
                case.notes.append("no draft CPT 64580 order in the Bundle: one was added")
            case.spec = {"hook": body.get("hook") or "order-sign", "orders": orders}
            return case
    except fixtures.CaseError as exc:  # named by the case, not by where this server keeps its files
        raise InvalidRequest(str(exc).replace(f"{fixtures.FIXTURE_DIR}/", "")) from None
    raise InvalidRequest("choose a case, or paste a hook request or a patient Bundle", expression=("case",))


def _loopback(url: str) -> bool:
    """A service URL on this machine, as both parsers see it: the standard library's and urllib3's, which is
    the one requests connects with (they disagree on e.g. a backslash before ``@``)."""
    if any(c in url for c in "\\@ \t\r\n"):
        return False
    parts = urlsplit(url)
    try:
        connects_to = parse_url(url).host
    except LocationParseError:
        return False
    hosts = ("127.0.0.1", "localhost", "::1", "[::1]")
    return parts.scheme in ("http", "https") and (parts.hostname or "") in hosts and connects_to in hosts


@bp.before_request
def refuse_when_trust_is_on():
    """The viewer runs cases with no token: it is off whenever JWT checks are on (never a way around them)."""
    if current_app.extensions.get("cds.verifier") is not None:
        raise Forbidden("the card viewer is off while JWT checks are on (CDS_TRUSTED_CLIENTS)")


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _body() -> dict:
    """The page's JSON request, read with the hooks' limits and parser, schema-checked (viewer-run.schema.json)
    before anything reads it."""
    body = read_json()
    if not isinstance(body, dict):
        raise InvalidRequest("send a JSON object")
    schemas.validate("viewer-run", body)
    return body


@bp.post("/api/run")
def run() -> Response:
    body = _body()
    case = _case(body)
    url = body.get("url") or None
    if url is not None and not _loopback(url):
        raise InvalidRequest("the viewer only replays against a service on this machine (127.0.0.1 or localhost)")
    if not body.get("fhir"):
        return _run(body, case, url, None)
    served = _served(case)
    try:
        return _run(body, case, url, served)
    finally:
        with _SERVED_LOCK:
            served.users -= 1


def _run(body: dict, case: fixtures.Case, url: str | None, served: ServedStore | None) -> Response:
    written = _write(served, body.get("attestations") or []) if served else []
    if body.get("attestations") and case.request is None and served is None:
        case.resources = [*case.resources, *body["attestations"]]  # the DTR form's answers join the case's record
    if body.get("hook") in ("order-sign", "order-select") and case.request is None:
        case.spec = {**case.spec, "hook": body["hook"]}
    allowed = current_app.extensions["cds.settings"].fhir_allowed_servers
    options = replay.Options(
        url=url,
        as_of=body.get("as_of") or None,
        payer=body.get("payer") or None,
        fhir_allowed=tuple(a for a in allowed if a != "*"),
        fhir_store=served,
    )
    try:
        result = replay.run(case, options)
    except fixtures.CaseError as exc:
        raise InvalidRequest(str(exc)) from None
    except OSError as exc:
        raise InvalidRequest(f"the service at {options.url} could not be reached ({exc.__class__.__name__})") from None
    if not options.url and isinstance(result.response, dict):
        # cards answered in-process are issued like any other, by the hook's service: the page's feedback on
        # them (posted to that service) is accepted
        current_app.extensions["cds.audit"].record(
            hook_instance=None,
            service_id=replay.service_for(case.hook) or "viewer",
            client="viewer",
            status=result.status,
            latency_ms=0.0,
            response=result.response,
        )
    # a pasted request may be any shape (the service answered it with a 400): read only what is well formed
    pasted = case.request if isinstance(case.request, dict) else {}
    prefetched = pasted.get("prefetch")
    context = pasted.get("context")
    resources = (list(served.store.resources) if served else case.resources) or flatten(
        prefetched.values() if isinstance(prefetched, dict) else ()
    )
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources if isinstance(r.get("id"), str)}
    patient = (context.get("patientId") if isinstance(context, dict) else None) or case.spec.get("patient")
    if not isinstance(patient, str):
        patient = None
    return json_response(
        {
            "status": result.status,
            "response": result.response,
            "outcome": result.outcome,
            "verdict": result.verdict,
            "notes": result.notes,
            "fhir_server": served.base_url if served else None,
            "written": written,
            "resources": by_ref,
            "citations": citations(result.response),
            "timeline": timeline(
                resources, patient, case.spec.get("orders", []), options.as_of or case.spec.get("as_of")
            ),
        }
    )


_SERVED_MAX = 16


def _served(case: fixtures.Case) -> ServedStore:
    """The fixture case's own FHIR server on loopback, started on first use and kept (the 16 used last; the
    least recently used is stopped first), so a QuestionnaireResponse written there is read by the next run, as
    in an EHR. Kept per process: ``make run`` serves the viewer from one."""
    if case.request is not None or case.path == Path("pasted"):
        raise InvalidRequest("a FHIR server is kept for fixture cases only", expression=("fhir",))
    servers: dict[str, ServedStore] = current_app.extensions.setdefault("cds.viewer.servers", {})
    with _SERVED_LOCK:
        served = servers.pop(case.name, None)
        if served is None:
            if len(servers) >= _SERVED_MAX:  # stop the least recently used that no run is reading from
                idle = next((name for name, s in servers.items() if s.users == 0), None)
                if idle is None:
                    raise ServiceUnavailable(f"all {_SERVED_MAX} case FHIR servers are in use; run again shortly")
                servers.pop(idle).__exit__(None, None, None)
            served = ServedStore(case.resources).__enter__()
        servers[case.name] = served  # most recently used last
        served.users += 1  # released by the run (see run): a server in use is never stopped
        return served


def _write(served: ServedStore, attestations: list[dict]) -> list[str]:
    """FHIR create of the completed QuestionnaireResponses on the case's server, all or none (its create
    interaction, called in process: the answers never leave this machine, whatever proxy the environment names)."""
    status, created = served.store.create_all(
        "QuestionnaireResponse", [{k: v for k, v in a.items() if k != "id"} for a in attestations]
    )
    if status != 201:
        said = (created.get("issue") or [{}])[0].get("diagnostics", "")
        raise InvalidRequest(f"the case's FHIR server refused the QuestionnaireResponses ({status}: {said})")
    return [f"{served.base_url}/QuestionnaireResponse/{c['id']}" for c in created]


@bp.post("/api/dtr")
def dtr_form() -> Response:
    """The documentation questionnaire of a fixture case's payer policy, prefilled from the case's record."""
    body = _body()
    case = _case({"case": body.get("case")} if body.get("case") else {})
    if case.request is not None or not case.resources:
        raise InvalidRequest("the form is for fixture cases", expression=("case",))
    orders = case.spec.get("orders") or []
    order_resource = orders[0] if orders else {}
    patient = fixtures._patient_id(case.resources, case.spec.get("patient"))
    try:
        as_of = date.fromisoformat(body.get("as_of") or case.spec.get("as_of") or datetime.now(UTC).date().isoformat())
    except ValueError:
        raise InvalidRequest("as_of is not a calendar date (YYYY-MM-DD)", expression=("as_of",)) from None
    record = records.build(case.resources, patient)
    route = payers.route(record, order_from(order_resource), current_app.extensions["cds.policies"], as_of)
    base = dtr.base()
    questionnaire = questionnaires.build(route.plan, route.version, base)
    response = dtr.prefill(route.plan, route.version, base, f"Patient/{patient}", case.resources, order_resource, as_of)
    return json_response({"questionnaire": questionnaire, "response": response, "payer": route.payer_name})


def citations(response: object) -> dict[str, list[dict]]:
    """Each criterion's source text, read back into links (primary first) the page can label briefly."""
    found: dict[str, list[dict]] = {}
    for card in response.get("cards", []) if isinstance(response, dict) else ():
        extension = card.get("extension") if isinstance(card, dict) else None
        for criterion in (extension or {}).get("cds64580.criteria", ()) if isinstance(extension, dict) else ():
            text = criterion.get("source") if isinstance(criterion, dict) else None
            if isinstance(text, str) and text not in found:
                found[text] = provenance.cited(text)
    return found


def timeline(resources: list[dict], patient: str | None, orders: list[dict], as_of: str | None) -> dict:
    """The dated evidence a reviewer would otherwise line up by hand."""
    record = records.build(resources, patient)
    events = []

    def add(kind: str, label: str, event, value=None):
        if event.start:
            end = event.end if event.end and event.end != event.start else None
            events.append(
                {
                    "kind": kind,
                    "label": label,
                    "start": event.start.isoformat(),
                    "end": end.isoformat() if end else None,
                    "value": value,
                    "reference": event.reference,
                }
            )

    for e in record.condition_events(codes.INDICATION_PAIN) + record.condition_events(codes.INDICATION_NEUROMUSCULAR):
        add("diagnosis", f"Diagnosis {e.shown}", e)
    for e in record.procedure_events(codes.PHYSICAL_THERAPY):
        add("physical-therapy", f"Physical therapy {e.code}", e)
    for e in record.medication_events():
        add("medication", codes.MEDICATION_CLASSES[e.kind].title, e)
    for e in record.procedure_events(codes.STIMULATION_TRIAL):
        add("trial", f"Stimulation trial {e.code}", e)
    for e in record.pain_scores():
        add("pain-score", f"Pain {e.value:g}/10", e, e.value)
    for e in record.procedure_events(codes.PSYCH_EVALUATION):
        add("psych", f"Psychological evaluation {e.code}", e)
    order_date = None
    if orders or as_of:  # where the lookbacks count from, as the rules read it (never after the as-of date)
        try:
            day = date.fromisoformat(as_of) if as_of else None
        except ValueError:
            day = None
        order = order_from(orders[0] if orders else {})
        order_date = order_day(order, day).isoformat() if day else (order.authored and order.authored.isoformat())
    return {"events": sorted(events, key=lambda e: e["start"]), "order_date": order_date}


@bp.get("/api/policies")
def policy_table() -> Response:
    today = datetime.now(UTC).date()
    rows = []
    for plan in policies.load().plans:
        version = plan.current()
        rows.append(
            {
                "plan": plan.id,
                "payer": plan.payer,
                "family": plan.family,
                "file": plan.file,
                "title": version.title,
                "effective": version.effective_text,
                "effective_note": version.effective_note,
                "reviewed": version.last_reviewed,
                "coverage": {
                    g: {"stance": s.value, "summary": s.text, "confidence": s.confidence, "urls": s.urls}
                    for g, s in version.coverage.items()
                },
                "prior_authorization": {
                    "stance": version.prior_authorization.value,
                    "summary": version.prior_authorization.text,
                },
                "criteria": [
                    {
                        "id": c.id,
                        "title": c.title,
                        "params": dict(c.params),
                        "confidence": c.confidence,
                        "source": c.source,
                    }
                    for c in version.criteria
                ],
                "versions": [v.effective_text for v in plan.versions],
                "sources": _sources(version, today),
            }
        )
    return json_response(rows)


def _sources(version: policies.Version, today: date) -> list[dict]:
    """Each source once, primary first, with the facts it supports and whether it is due for review."""
    by_url: dict[str, dict] = {}
    for fact in version.facts():
        for s in fact.sources:
            item = by_url.setdefault(
                s.url,
                s.to_json() | {"primary": s.primary, "due_for_review": s.due_for_review(today), "fields": []},
            )
            item["fields"].append(fact.field)
    return sorted(by_url.values(), key=lambda s: not s["primary"])
