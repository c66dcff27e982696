"""One hook call from request body to response body, with no Flask in sight (the CLI replays through here).

parse the request -> pick the 64580 orders -> resolve prefetch -> build the record (+ situational data)
-> run the rules per order -> cards, filtered by the CRD configuration the EHR sent.
A call whose draft orders hold no CPT 64580 order is answered at once with no cards and fetches nothing:
we read a patient's record only to answer about this procedure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from cds import (
    cards,
    codes,
    coverage,
    fhirvalues,
    hooks,
    orders,
    payers,
    policies,
    prefetch,
    questionnaires,
    records,
    rules,
)
from cds.config import Settings
from cds.errors import PayloadTooLarge, UnknownService
from cds.fhirclient import Deadline, FHIRClient
from cds.hooks import HookRequest
from cds.orders import Order
from cds.policies import PolicySet
from cds.records import PatientRecord
from cds.services import PAIN_SCORES, SERVICES, CdsService, crd_form


def service(service_id: str) -> CdsService:
    try:
        return SERVICES[service_id]
    except KeyError:
        raise UnknownService(
            f"no CDS service '{service_id[:64]}'; GET /cds-services lists the services",
            expression=("id",),
        ) from None


def invoke(
    service_id: str,
    body: object,
    settings: Settings,
    client_factory: prefetch.ClientFactory = FHIRClient,
    as_of: date | None = None,
    policy_set: PolicySet | None = None,
) -> dict:
    svc = service(service_id)
    check_limits(body, settings)  # before the schema: validating a million entries is itself the attack
    request = hooks.parse(svc, body)
    ours = _distinct(orders.orders_from(orders.in_scope(request.context.orders_in_focus)))
    if not ours:
        return _answer(svc, [], [])
    deadline = Deadline(settings.hook_deadline)
    data = prefetch.resolve(svc, request, settings, client_factory, deadline)
    patient_id = request.context.patient_id
    record = records.build(data.all(), patient_id)
    have_scores = data.origin.get("painScores") not in (prefetch.DEFERRED, None)
    more = situational_queries(record, ours, patient_id, have_scores) if request.fhir_server else []
    if more:
        extra = prefetch.fetch_situational(request, settings, more, client_factory, deadline)
        if extra:
            record = records.build([*data.all(), *extra], patient_id)
    as_of = as_of or request.as_of or datetime.now(UTC).date()
    policy_set = policy_set or policies.load()
    built: list[tuple[str, dict]] = []
    actions: list[dict] = []
    late = data.late
    form = crd_form(request.requested_version)
    for order in ours:
        route = payers.route(record, order, policy_set, as_of, coverage_late="coverage" in late)
        pathway = rules.choose_pathway(record, order, as_of)
        ruleset = route.version.ruleset(pathway.id)
        findings = rules.evaluate(record, order, ruleset, as_of, pathway, late)
        group = pathway.id
        questionnaire = questionnaires.versioned_canonical(settings.public_base_url, route)
        context = _context(svc, request, route, order, as_of, pathway, form, settings, questionnaire)
        built += cards.build(findings, context)
        if context.coverage_info:
            assertion = coverage.assertion_id(request.fhir_server, request.context.patient_id, route, as_of)
            info = coverage.decide(route, findings, order, group, as_of, assertion, late, questionnaire)
            actions.append(coverage.system_action(order, info, route.payer_name or route.plan.payer, form))
    return _answer(svc, configured(built, request), actions)


def _distinct(found: Iterable[Order]) -> list[Order]:
    """One answer per order id, the first: an order sent twice got cards with the same uuids, which feedback cannot
    tell apart, and two updates of one ServiceRequest. Orders without an id each have their own (fhirvalues.unnamed_id)."""
    by_id: dict[str, Order] = {}
    for order in found:
        by_id.setdefault(order.id, order)
    return list(by_id.values())


def _answer(svc: CdsService, cards_: list[dict], actions: list[dict]) -> dict:
    """The response body. An order-sign answer always carries ``systemActions`` (empty when no order is ours or
    coverage information is switched off): CRD clients, and HL7's Inferno test kit, require the member there."""
    response: dict = {"cards": cards_}
    if actions or not svc.information_only:
        response["systemActions"] = actions
    return response


def check_limits(body: object, settings: Settings) -> None:
    """Entry counts, before any schema work: draft orders, and prefetch entries including nested Bundles'."""
    if not isinstance(body, dict):
        return
    context = body.get("context")
    drafts = context.get("draftOrders") if isinstance(context, dict) else None
    entries = drafts.get("entry") if isinstance(drafts, dict) else None
    if isinstance(entries, list) and len(entries) > settings.max_draft_orders:
        raise PayloadTooLarge(
            f"context.draftOrders has more than {settings.max_draft_orders} orders", expression=("context.draftOrders",)
        )
    prefetch = body.get("prefetch")
    if isinstance(prefetch, dict) and entries_over(prefetch.values(), settings.max_prefetch_entries):
        raise PayloadTooLarge(
            f"prefetch has more than {settings.max_prefetch_entries} entries (nested Bundles counted)",
            expression=("prefetch",),
        )


def entries_over(values, limit: int) -> bool:
    """True when the Bundles in ``values`` (and the Bundles inside their entries) hold more than ``limit``."""
    count, stack = 0, [v for v in values if isinstance(v, dict)]
    while stack:
        bundle = stack.pop()
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            continue
        count += len(entries)
        if count > limit:
            return True
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                stack.append(resource)
    return False


def situational_queries(
    record: PatientRecord, ours: list[Order], patient_id: str, have_scores: bool = False
) -> list[str]:
    """FHIR queries for what this record needs beyond prefetch: the surgeons' roles, a Coverage or payor the
    prefetch lacked, and a trial's pain scores when no ``painScores`` prefetch answered for them."""
    queries: list[str] = []
    for order in ours:
        for ref in order.performers:
            kind, _, ident = ref.rpartition("/")
            kind = kind.rsplit("/", 1)[-1]
            if not fhirvalues.is_fhir_id(ident):
                continue  # "a&b=c" or "..": never part of a query sent with the EHR's token
            if kind == "PractitionerRole" and ident not in record.roles:
                queries.append(f"PractitionerRole/{ident}")
            elif kind == "Practitioner" and record.role_of_practitioner(ident) is None:
                queries.append(f"PractitionerRole?practitioner={ident}")
        known = {c.id for c in record.coverages}
        wanted = (fhirvalues.ref_id(ref) for ref in order.insurance)
        queries += [f"Coverage/{ident}" for ident in wanted if fhirvalues.is_fhir_id(ident) and ident not in known]
    for cov in record.coverages:
        if cov.status == "active" and record.payor_organization(cov) is None:
            queries += [
                f"Organization/{fhirvalues.ref_id(p.reference)}"
                for p in cov.payor or ()
                if p.reference
                and p.reference.split("/")[-2:-1] == ["Organization"]
                and fhirvalues.is_fhir_id(fhirvalues.ref_id(p.reference))
            ]
    if not have_scores and record.procedure_events(codes.STIMULATION_TRIAL) and not record.observations:
        queries.append(prefetch.render(PAIN_SCORES, {"context.patientId": patient_id}) or "")
    return list(dict.fromkeys(q for q in queries if _safe_id(q)))


def _safe_id(query: str) -> bool:
    return all(ch.isalnum() or ch in "-.?=&/|:," for ch in query)


def _context(
    svc: CdsService,
    request: HookRequest,
    route: payers.Route,
    order: Order,
    as_of: date,
    pathway,
    form: str,
    settings: Settings,
    questionnaire: str | None,
):
    legacy = form == "2.0"
    return cards.CardContext(
        hook_instance=request.hook_instance,
        order=order,
        patient_id=request.context.patient_id,
        user_id=request.context.user_id,
        route=route,
        as_of=as_of,
        topic_system=cards.CARD_TYPES_CRD_2_1 if legacy else cards.CARD_TYPES,
        information_only=svc.information_only,
        pathway=pathway,
        coverage_info=not svc.information_only and request.configuration.get("coverage-info", True),
        dtr_app=settings.dtr_app_url,
        dtr_form=settings.dtr_form_url,
        questionnaire=questionnaire,
    )


def configured(built: list[tuple[str, dict]], request: HookRequest) -> list[dict]:
    """Drop card kinds the EHR switched off (CRD dev-14), then keep the first ``max-cards``, warnings first."""
    kept = [(kind, card) for kind, card in built if request.configuration.get(cards.OPTION_FOR_KIND[kind], True)]
    severity = {"critical": 0, "warning": 1, "info": 2}
    kept.sort(key=lambda kc: severity[kc[1]["indicator"]])
    return [card for _, card in kept[: request.configuration.get("max-cards", 10)]]
