"""Replay cases through the service (in-process or at a URL) and compare the outcome with expected.json.

The outcome is what a tester judges: per order, the cards by topic and indicator, the criterion statuses and the
coverage-information values. It never includes free text or uuids, so a reworded card does not fail a case.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.etree import ElementTree

import requests

from cds import coverage, engine, fhirvalues, hooks, logs, orders, policies, records
from cds.config import Settings
from cds.errors import INTERNAL_ERROR, CDSError, operation_outcome
from cds.fhirclient import FHIRClient, bundle_resources
from cds.fhirstore import FHIRStore, ServedStore
from cds.fixtures import Case, CaseError, build_request, with_payer
from cds.orders import updated_order_ids
from cds.services import SERVICES

log = logging.getLogger("cds.replay")

PASSED, FAILED, RAN = "passed", "failed", "ran"


@dataclass
class Result:
    case: Case
    status: int
    response: dict
    outcome: dict
    verdict: str = RAN
    diff: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    url: str | None = None
    fhir: bool = False
    as_of: str | None = None
    payer: str | None = None
    timeout: float = 30.0
    # FHIR servers a complete request.json may send its token to (CDS_FHIR_ALLOWED_SERVERS); none by default
    fhir_allowed: tuple[str, ...] = ()
    # with a --payer override the patient is no longer the case's: compare with expected.json only when asked
    expect: bool = False
    # payer policy folder for in-process runs (a policy edit tried before it is deployed); the package's by default
    policy_dir: str | None = None
    # an already running FHIR server holding the case (the viewer keeps one per case, so what its DTR form writes
    # there is read by the next run); the service fetches everything from it, as with ``fhir``
    fhir_store: ServedStore | None = None


def run(case: Case, options: Options) -> Result:
    resources = with_payer(case.resources, options.payer) if options.payer else case.resources
    notes = list(case.notes)
    if options.payer and case.request is not None:
        notes.append("--payer applies to Bundle cases only; this case is a complete request")
    fetch = options.fhir or (options.fhir_store is not None and case.request is None)
    serve = case.request is None and (options.url is not None or fetch)
    if options.payer and options.fhir_store is not None:
        notes.append("--payer does not change a case already served as a FHIR server")
    with _store(resources, serve, options.fhir_store) as store:
        body = build_request(case, store, as_of=options.as_of, prefetch=not (case.fetch or fetch))
        if options.url:
            status, response = _post(options.url, body, options.timeout)
        else:
            factory = FHIRClient if (serve or case.request is not None) else store.client
            # our own served Bundle is allowed; a request from elsewhere only reaches the configured servers
            allowed = (body["fhirServer"],) if serve and isinstance(body.get("fhirServer"), str) else ()
            status, response = _invoke(body, factory, (*allowed, *options.fhir_allowed), options.policy_dir)
    result = Result(case, status, response, outcome(status, response), notes=notes)
    if options.payer and not options.expect:
        result.notes.append("--payer changes the case: outcome shown, not compared (add --expect to compare)")
    elif case.expected is not None:
        result.verdict = PASSED if result.outcome == case.expected else FAILED
        if result.verdict == FAILED:
            result.diff = diff(case.expected, result.outcome)
    return result


def standalone_request(case: Case, options: Options) -> dict:
    """The hook request a case builds, complete on its own, for curl or any other client.

    A Bundle case becomes a request with every prefetch key answered in one page and no ``fhirServer``; what the
    service would otherwise query situationally (the roles of other surgeons on the order, a payor the Coverage
    names) joins the prefetch key of its type, so the request gets the same cards with no FHIR server behind it.
    A case that is a complete request is given as it is (with the --as-of date, if one is given).
    """
    if case.request is not None:
        return build_request(case, FHIRStore(()), as_of=options.as_of, prefetch=True)
    resources = with_payer(case.resources, options.payer) if options.payer else case.resources
    store = FHIRStore(resources, page=len(resources) + 1)
    body = build_request(case, store, as_of=options.as_of, prefetch=True)
    del body["fhirServer"], body["fhirAuthorization"]
    service = SERVICES[service_for(body["hook"])]
    try:
        request = hooks.parse(service, body)
    except CDSError as exc:
        raise CaseError(f"{case.name}: the request it builds is not valid: {exc}") from None
    ours = orders.orders_from(orders.in_scope(request.context.orders_in_focus))
    patient = request.context.patient_id
    prefetched = body["prefetch"]
    record = records.build([v for v in prefetched.values() if v is not None], patient)
    client = store.client()
    for query in engine.situational_queries(record, ours, patient, have_scores="painScores" in prefetched):
        for resource in client.get(query):
            _carry(prefetched, service, resource)
    return body


def _carry(prefetched: dict, service, resource: dict) -> None:
    """Add a situational resource to the prefetch Bundle of its type (a payor goes with the Coverage search)."""
    kind = resource["resourceType"]
    key = "coverage" if kind == "Organization" else None
    key = key or next(
        (t.key for t in service.prefetch if t.key in prefetched and t.query.split("?")[0].split("/")[0] == kind), None
    )
    if key is None:
        return
    value = prefetched.get(key)
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        value = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": value}] if value else []}
        prefetched[key] = value
    if all((r.get("resourceType"), r.get("id")) != (kind, resource.get("id")) for r in bundle_resources(value)):
        mode = "include" if kind == "Organization" else "match"
        value.setdefault("entry", []).append({"resource": resource, "search": {"mode": mode}})


@contextlib.contextmanager
def _store(resources: list[dict], serve: bool, running: ServedStore | None = None) -> Iterator[FHIRStore]:
    if running is not None and serve:
        yield running.store
    elif serve:
        with ServedStore(resources) as served:
            yield served.store
    else:
        yield FHIRStore(resources)


def service_for(hook: object) -> str | None:
    """The id of the service that answers ``hook`` (None: no service of ours does)."""
    return next((s.id for s in SERVICES.values() if s.hook == hook), None)


def _invoke(body: dict, factory, allowed: tuple[str, ...], policy_dir: str | None = None) -> tuple[int, dict]:
    settings = Settings(database_url="sqlite://", hook_deadline=10.0, fhir_allowed_servers=allowed)
    service = service_for(body.get("hook"))
    if service is None:
        return 404, _outcome("not-found", "no service for this hook")
    try:
        return 200, engine.invoke(service, body, settings, factory, policy_set=policies.load(policy_dir))
    except CDSError as exc:
        return exc.status, exc.to_operation_outcome()
    except Exception as exc:  # noqa: BLE001  (a replay reports what the HTTP layer would: a 500, logged)
        logs.unexpected(log, exc)
        return 500, INTERNAL_ERROR


def _outcome(code: str, text: str) -> dict:
    return operation_outcome([{"severity": "error", "code": code, "diagnostics": text}])


def service_base(url: str) -> str:
    """The service's base URL, also when given the discovery URL the start-up banner prints (or a service's URL)."""
    base = url.rstrip("/")
    head, marker, _ = base.partition("/cds-services")
    return head if marker else base


def _post(url: str, body: dict, timeout: float) -> tuple[int, dict]:
    base = service_base(url)
    try:  # never followed elsewhere: the answer must come from the URL given
        discovery = requests.get(f"{base}/cds-services", timeout=timeout, allow_redirects=False).json()
    except ValueError:
        discovery = None
    services = discovery.get("services") if isinstance(discovery, dict) else None
    if not isinstance(services, list):
        return 502, _outcome("exception", f"{base} is not a CDS service")
    service = next((s["id"] for s in services if isinstance(s, dict) and s.get("hook") == body.get("hook")), None)
    if service is None:
        return 404, _outcome("not-found", "no service for this hook")
    response = requests.post(f"{base}/cds-services/{service}", json=body, timeout=timeout, allow_redirects=False)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return response.status_code, answer if isinstance(answer, dict) else {"text": response.text[:500]}


def outcome(status: int, response: dict) -> dict:
    """What a tester compares: per order, card topics and indicators, criterion statuses, coverage values."""
    if status != 200:
        return {"status": status}
    orders: dict[str, dict] = {}
    for card in response.get("cards", []):
        extension = card.get("extension") or {}
        associated = (extension.get("davinci-crd.associated-resource") or [{}])[0]
        order = orders.setdefault(fhirvalues.referenced_id(associated) or "*", {"cards": []})
        entry = {"topic": card.get("source", {}).get("topic", {}).get("code", ""), "indicator": card.get("indicator")}
        if card.get("suggestions"):
            entry["suggestions"] = len(card["suggestions"])
        order["cards"].append(entry)
        order.setdefault("payer", card.get("source", {}).get("label", ""))
        criteria = extension.get("cds64580.criteria")
        if criteria and "criteria" not in order:
            order["criteria"] = {c["id"]: c["status"] for c in criteria}
    actions = response.get("systemActions", [])
    for action, order_id in zip(actions, updated_order_ids(actions), strict=True):
        resource = action.get("resource") or {}
        for ext in resource.get("extension") or ():
            if ext.get("url") == coverage.EXTENSION:
                orders.setdefault(order_id, {"cards": []})["coverage"] = _coverage_values(ext)
    return {"status": 200, "orders": orders}


def _coverage_values(extension: dict) -> dict:
    values: dict = {}
    for sub in extension.get("extension", ()):
        url = sub.get("url")
        if url in ("covered", "pa-needed", "doc-needed"):
            values[url] = sub.get("valueCode")
        elif url in ("doc-purpose", "info-needed"):
            values.setdefault(url, []).append(sub.get("valueCode"))
        elif url == "billingCode":
            values.setdefault(url, []).append(sub.get("valueCoding", {}).get("code"))
        elif url == "reason":
            codes = [c.get("code") for c in sub.get("valueCodeableConcept", {}).get("coding", ())]
            values.setdefault("reason", []).extend(codes)
    if values.get("reason") == []:
        del values["reason"]
    return values


def diff(expected: dict, actual: dict) -> str:
    a = json.dumps(expected, indent=2, sort_keys=True).splitlines()
    b = json.dumps(actual, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "expected.json", "actual", lineterm=""))


def render(result: Result) -> str:
    """The response as a clinician would read it."""
    lines = [f"== {result.case.name}  ({result.case.path})"]
    lines += [f"   note: {n}" for n in result.notes]
    response = result.response
    if result.status != 200:
        lines.append(f"   HTTP {result.status}")
        lines += [f"   - {i.get('diagnostics', '')}" for i in response.get("issue", ())]
        return "\n".join(lines)
    cards = response.get("cards", [])
    if not cards:
        lines.append("   no cards")
    for card in cards:
        topic = card.get("source", {}).get("topic", {}).get("code", "")
        lines.append(f"   [{card.get('indicator', '').upper()}] {card.get('summary', '')}")
        lines.append(f"      {card.get('source', {}).get('label', '')} · {topic}")
        criteria = (card.get("extension") or {}).get("cds64580.criteria") or []
        detail = card.get("detail", "")
        if "| Criterion |" not in detail:  # the summary card's table is printed as the criteria table below
            lines += [f"      {line}" for line in detail.splitlines() if line.strip()]
        for suggestion in card.get("suggestions", ()):
            actions = ", ".join(
                f"{a.get('type')} {a.get('resource', {}).get('resourceType', '')}"
                for a in suggestion.get("actions", ())
            )
            lines.append(f"      -> suggestion: {suggestion.get('label')} ({actions})")
        if "| Criterion |" in detail:
            width = max((len(c["id"]) for c in criteria), default=10)
            lines.append("      criteria:")
            lines += [f"        {c['id']:<{width}}  {c['status']:<14}  {c.get('reason', '')}" for c in criteria]
        for link in card.get("links", ()):
            lines.append(f"      link: {link.get('label')} <{link.get('url')}>")
    for order_id, values in result.outcome.get("orders", {}).items():
        if "coverage" in values:
            shown = ", ".join(f"{k} {'/'.join(v) if isinstance(v, list) else v}" for k, v in values["coverage"].items())
            lines.append(f"   coverage information for ServiceRequest/{order_id}: {shown}")
    return "\n".join(lines)


def junit(results: list[Result]) -> bytes:
    """A JUnit XML report (one testcase per case) for CI systems that draw test results."""
    suite = ElementTree.Element(
        "testsuite",
        name="cds replay",
        tests=str(len(results)),
        failures=str(sum(r.verdict == FAILED for r in results)),
        skipped=str(sum(r.verdict == RAN for r in results)),
        errors="0",
    )
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", classname="fhir_fixtures", name=result.case.name)
        if result.verdict == FAILED:
            failure = ElementTree.SubElement(case, "failure", message="the outcome differs from expected.json")
            failure.text = result.diff
        elif result.verdict == RAN:
            ElementTree.SubElement(case, "skipped", message="no expected.json to compare with")
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)
