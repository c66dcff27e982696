"""The Da Vinci CRD coverage-information extension: decide it, write it, and check its invariants.

``decide`` turns a payer route and the findings into a :class:`CoverageInformation`; ``system_action`` puts it on
a copy of the draft order (changing nothing else); ``validate`` checks an extension against the CRD cardinalities
and invariants crd-ci-q1..q5 (HL7/davinci-crd ``CoverageInformation.fsh``), plus the 2.2 rules that ``OTH`` and
``indeterminate`` need a reason and a non-standard reason needs text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from cds import payers, provenance
from cds.cards import BILLING, name_uuid
from cds.codes import CPT
from cds.orders import Order
from cds.rules.findings import Finding, Status

EXTENSION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
STANDARD_REASONS = {
    "gold-card",
    "no-member-found",
    "no-active-coverage",
    "coverage-not-found",
    "auth-out-network",
    "technical",
}
_NAMESPACE = uuid.UUID("6a0f8e5e-64a5-5800-b3c1-64580c0ffee0")
_NAMESPACE_BYTES = _NAMESPACE.bytes

COVERED = {"covered", "not-covered", "conditional", "indeterminate"}
PA_NEEDED = {"no-auth", "auth-needed", "satisfied", "performpa", "conditional", "indeterminate"}
DOC_NEEDED = {"no-doc", "clinical", "admin", "patient", "both", "conditional", "indeterminate"}
DOC_PURPOSE = {"withpa", "withclaim", "withorder", "retain-doc", "OTH"}
INFO_NEEDED = {"performer", "location", "timeframe", "contract-window", "detail-code", "OTH"}
_ORDER = [
    "coverage",
    "covered",
    "pa-needed",
    "doc-needed",
    "doc-purpose",
    "info-needed",
    "billingCode",
    "reason",
    "detail",
    "dependency",
    "questionnaire",
    "response",
    "date",
    "coverage-assertion-id",
    "satisfied-pa-id",
    "contact",
]


@dataclass
class CoverageInformation:
    coverage: dict
    covered: str
    date: date
    assertion_id: str
    pa_needed: str | None = None
    doc_needed: str | None = None
    doc_purpose: list[str] = field(default_factory=list)
    info_needed: list[str] = field(default_factory=list)
    billing_codes: list[dict] = field(default_factory=list)
    reasons: list[dict] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    questionnaire: str | None = None  # the DTR questionnaire that documents what is missing (canonical|version)

    def to_extension(self, form: str = "2.2") -> dict:
        """The extension as CRD ``form`` ("2.0" or "2.2", see :func:`cds.services.crd_form`) defines it.

        CRD 2.0/2.1 have no 'indeterminate': their 'conditional' is defined as "decision cannot be made without
        more information", the closest they allow, so an undetermined answer is 'conditional' there, its reasons
        kept as text (2.0's reason value set has only gold-card and detail-code)."""
        covered, pa_needed, doc_needed, reasons = self.covered, self.pa_needed, self.doc_needed, self.reasons
        info_needed = self.info_needed
        if form == "2.0":
            undetermined = "indeterminate" in (covered, pa_needed, doc_needed)
            covered, pa_needed, doc_needed = (_LEGACY.get(v, v) if v else v for v in (covered, pa_needed, doc_needed))
            reasons = [_legacy_reason(r) for r in reasons]
            if undetermined and not info_needed:
                info_needed = ["OTH"]  # what is missing is in the reasons' text
        parts = [("coverage", {"valueReference": self.coverage}), ("covered", {"valueCode": covered})]
        if pa_needed:
            parts.append(("pa-needed", {"valueCode": pa_needed}))
        if doc_needed:
            parts.append(("doc-needed", {"valueCode": doc_needed}))
        parts += [("doc-purpose", {"valueCode": p}) for p in self.doc_purpose]
        parts += [("info-needed", {"valueCode": i}) for i in info_needed]
        parts += [("billingCode", {"valueCoding": c}) for c in self.billing_codes]
        parts += [("reason", {"valueCodeableConcept": r}) for r in reasons]
        parts += [("detail", {"extension": d}) for d in self.details]
        if self.questionnaire and doc_needed:  # crd-ci-q1: a questionnaire only with doc-needed
            parts.append(("questionnaire", {"valueCanonical": self.questionnaire}))
        parts += [
            ("date", {"valueDate": self.date.isoformat()}),
            ("coverage-assertion-id", {"valueString": self.assertion_id}),
        ]
        return {"url": EXTENSION, "extension": [{"url": url, **value} for url, value in parts]}


_LEGACY = {"indeterminate": "conditional"}
_LEGACY_REASONS = {"gold-card", "detail-code"}  # CRD 2.0.1 CRDCoverageAssertionReasons


def _legacy_reason(reason: dict) -> dict:
    codings = [c for c in reason.get("coding", ()) if c.get("code") in _LEGACY_REASONS]
    return {"text": reason["text"], **({"coding": codings} if codings else {})}


def _reason(text: str, code: str | None = None) -> dict:
    reason: dict = {"text": text}
    if code:
        reason["coding"] = [{"system": CRD_TEMP, "code": code}]
    return reason


def assertion_id(fhir_server: str | None, patient_id: str, route: payers.Route, as_of: date) -> str:
    """Stable per coverage: the same Coverage, payer policy and date give the same id across orders and retries."""
    key = "|".join(
        (fhir_server or "", patient_id, route.coverage_ref or route.outcome, route.plan.id, as_of.isoformat())
    )
    return name_uuid(_NAMESPACE_BYTES, key)


def decide(
    route: payers.Route,
    findings: list[Finding],
    order: Order,
    group: str,
    as_of: date,
    assertion: str,
    late: frozenset[str] = frozenset(),
    questionnaire: str | None = None,
) -> CoverageInformation:
    """The coverage information for one order; ``group`` is its indication pathway (cds.rules.pathways) and
    ``questionnaire`` the DTR questionnaire (canonical|version) that documents what is missing."""
    coverage_ref = (
        {"reference": route.coverage_ref} if route.coverage_ref else {"display": "No applicable Coverage found"}
    )
    info = CoverageInformation(coverage=coverage_ref, covered="indeterminate", date=as_of, assertion_id=assertion)
    info.billing_codes = _billing_codes(order, findings)
    if route.outcome == payers.NO_COVERAGE:
        info.covered = "not-covered"
        info.reasons = [_reason("No Coverage was found for this patient", "coverage-not-found")]
        return info
    if route.outcome == payers.NO_ACTIVE_COVERAGE:
        info.covered = "not-covered"
        why = f": {route.inactive}" if route.inactive else ""
        info.reasons = [_reason(f"The patient has no active Coverage{why}", "no-active-coverage")]
        return info
    if route.outcome == payers.TECHNICAL:
        info.pa_needed = "indeterminate"
        info.reasons = [_reason("The EHR's FHIR server did not return the patient's coverage in time", "technical")]
        return info
    if route.outcome == payers.AMBIGUOUS:
        info.pa_needed = "indeterminate"
        info.reasons = [
            _reason(
                "Several active coverages and the order names none (set ServiceRequest.insurance)", "coverage-not-found"
            )
        ]
        return info
    if route.outcome in (payers.UNRECOGNISED, payers.NOT_IN_FORCE):
        info.pa_needed = "indeterminate"
        why = (
            "has a policy whose version in force on this date is not on file with this service"
            if route.outcome == payers.NOT_IN_FORCE
            else "is not one this service has a policy for"
        )
        text = (
            f"The payer is unknown: {route.unknown_because}"
            if route.unknown_because
            else f"Payer {route.payer_name or '(unnamed)'} {why}"
        )
        info.reasons = [_reason(f"{text}; coverage cannot be determined")]
        return info

    if late:
        info.pa_needed = "indeterminate"
        info.reasons = [
            _reason(f"The EHR's FHIR server did not answer in time ({', '.join(sorted(late))})", "technical")
        ]
        info.details = [_policy_detail(route, route.version.stance(group))]
        return info
    version = route.version
    stance = version.stance(group)
    open_items = [f for f in findings if f.needs_action and f.criterion not in BILLING]
    performer_unknown = any(f.info_needed == "performer" for f in findings)
    if (
        stance.value in ("not-medically-necessary", "investigational", "not-covered")
        and stance.confidence == "secondary"
    ):
        # Read only in a summary: never "not covered" on that alone.
        info.covered = "indeterminate"
        info.reasons = [_reason(f"{stance.text} ({_unstated(stance)})")]
    elif stance.value in ("not-medically-necessary", "investigational", "not-covered"):
        info.covered = "not-covered"
        info.reasons = [_reason(stance.text)]
    elif stance.value == "covered-with-criteria":
        if open_items or performer_unknown:
            info.covered = "conditional"
            if open_items:
                info.info_needed.append("OTH")
                info.doc_needed = "clinical"
                info.questionnaire = questionnaire
                missing = "; ".join(f.title or f.criterion for f in open_items)
                info.reasons.append(_reason(f"Coverage depends on documentation not found in the record: {missing}"))
            if performer_unknown:
                info.info_needed.append("performer")
                info.reasons.append(
                    _reason("The surgeons' roles on the order are needed to tell whether co-surgery applies")
                )
        else:
            info.covered = "covered"
        if stance.confidence == "secondary":  # read only in a summary: never "covered" (nor conditional) on that
            info.covered, info.info_needed = "indeterminate", []
            info.reasons.insert(0, _reason(f"{stance.text} ({_unstated(stance)})"))
    else:  # unknown or plan-specific
        info.reasons = [_reason(stance.text)]

    if info.covered != "not-covered":
        pa = version.prior_authorization
        info.pa_needed = {"required": "auth-needed", "not-required": "no-auth"}.get(pa.value, "indeterminate")
        if info.pa_needed == "indeterminate":
            info.reasons.append(_reason(pa.text))
        purposes = [d.purpose for d in version.documentation if d.purpose and d.holds_on(group)]
        if any(f.documents for f in findings if f.status != Status.NOT_APPLICABLE):
            purposes.append("withclaim")  # e.g. both operative notes for co-surgery with documentation
        if purposes and info.covered in ("covered", "conditional"):
            info.doc_needed = "clinical"
            info.doc_purpose = list(dict.fromkeys(purposes))
    info.details = [_policy_detail(route, stance)]
    if info.covered in ("covered", "conditional") and (unstated := _unstated_criteria(findings)):
        info.details.append(unstated)
    if (later := payers.later_in_window(route, order, as_of)) is not None:
        info.details.append(_later_version_detail(order, later))
    return info


def _later_version_detail(order: Order, later) -> list[dict]:
    """The version in force late in the order's window for the surgery: the assertion holds before it takes effect."""
    return _detail(
        "Later policy version within the surgery's window",
        f"{later.title} (effective {later.effective_text})",
        f"The order plans the surgery {order.window}: this assertion follows the version in force before this one "
        "takes effect; check the day of surgery.",
    )


def _unstated_criteria(findings: list[Finding]) -> list[dict] | None:
    """A detail naming the met criteria that no primary source read states for this payer, when the assertion rests
    on them: a 'covered' built on summaries says so to the EHR, as the cards say it to the surgeon."""
    titles = [
        f.title or f.criterion
        for f in findings
        if f.criterion not in BILLING and f.status == Status.MET and f.confidence == "secondary"
    ]
    if not titles:
        return None
    return _detail("Criteria not stated by a primary source", "; ".join(titles), _UNSTATED_CRITERIA)


_UNSTATED_CRITERIA = (
    "These met criteria were read only in secondary summaries or background documents, not in this payer's own text: "
    "the assertion rests on them; verify against the current policy text."
)


def _billing_codes(order: Order, findings: list[Finding]) -> list[dict]:
    codes = [{"system": CPT, "code": "64580"}]
    co = next((f for f in findings if f.criterion == "co-surgeon-modifier"), None)
    if co is not None and co.status in (Status.MET, Status.NOT_MET):
        modifiers = (
            co.order_modifiers if co.order_modifiers is not None else tuple(sorted(order.modifiers & {"62", "66"}))
        )
        codes += [{"system": CPT, "code": m} for m in modifiers]
    return codes


_UNSTATED = {
    provenance.UNVERIFIED: "a secondary summary; the payer's own text was not found: verify",
    provenance.BACKGROUND: "the documents cited are background, not this payer's own statement: verify",
    provenance.UNSOURCED: "no source read: verify with the payer",
}
_QUALIFICATION = {
    provenance.UNVERIFIED: "Based on a secondary summary of the policy: verify against the current policy text.",
    provenance.BACKGROUND: "Based on documents that are background for this payer, not its own statement: verify.",
    provenance.UNSOURCED: "No source was read for this statement: verify with the payer.",
}


def _unstated(stance) -> str:
    return _UNSTATED[stance.unstated_because]


def _policy_detail(route: payers.Route, stance) -> list[dict]:
    version = route.version
    qualification = _QUALIFICATION[stance.unstated_because] if stance.confidence == "secondary" else None
    return _detail("Payer policy applied", f"{version.title} (effective {version.effective_text})", qualification)


def _detail(code: str, value: str, qualification: str | None = None) -> list[dict]:
    """One CRD coverage-information ``detail``: what it is (as text), its value and how far to trust it."""
    parts = [{"url": "code", "valueCodeableConcept": {"text": code}}, {"url": "value", "valueString": value}]
    return parts + ([{"url": "qualification", "valueString": qualification}] if qualification else [])


def system_action(order: Order, info: CoverageInformation, payer: str, form: str = "2.2") -> dict:
    """An ``update`` of the draft order carrying the extension (in CRD ``form``); the rest of the order as sent.

    A shallow copy of the order: only its extension list is replaced, the rest is the sent order's own members,
    which nothing changes (the deep copy of each order was 15% of this module's instructions a call)."""
    resource = dict(order.resource)
    sent = resource.get("extension")
    # the update must be valid FHIR: extensions that are not objects are dropped, ours replaced
    kept = [e for e in (sent if isinstance(sent, list) else ()) if isinstance(e, dict) and e.get("url") != EXTENSION]
    resource["extension"] = [*kept, info.to_extension(form)]
    return {"type": "update", "description": f"Coverage information for CPT 64580 ({payer})", "resource": resource}


def validate(extension: dict, strict: bool = False) -> list[str]:
    """Problems with one coverage-information extension (empty when valid).

    ``strict`` also applies crd-ci-q2 as its FHIRPath is written (pa-needed present whenever covered is not
    'not-covered'); the published examples do not all meet that, so it is checked on our own output only.
    """
    if extension.get("url") != EXTENSION:
        return [f"url is not {EXTENSION}"]
    parts: dict[str, list] = {}
    problems = []
    for sub in extension.get("extension") or ():
        url = sub.get("url")
        if url not in _ORDER:
            problems.append(f"unknown sub-extension {url!r}")
            continue
        values = [v for k, v in sub.items() if k.startswith("value")]
        if url != "detail" and len(values) != 1:
            problems.append(f"{url} must have exactly one value")
            continue
        parts.setdefault(url, []).append(values[0] if values else sub.get("extension"))

    def one(url: str) -> object:
        return parts.get(url, [None])[0]

    for url in ("coverage", "covered", "date", "coverage-assertion-id"):
        if len(parts.get(url, ())) != 1:
            problems.append(f"{url} is required exactly once")
    for url in ("pa-needed", "doc-needed", "satisfied-pa-id"):
        if len(parts.get(url, ())) > 1:
            problems.append(f"{url} may appear at most once")
    for url, allowed in (("covered", COVERED), ("pa-needed", PA_NEEDED), ("doc-needed", DOC_NEEDED)):
        if one(url) is not None and one(url) not in allowed:
            problems.append(f"{url} has an unknown code {one(url)!r}")
    for url, allowed in (("doc-purpose", DOC_PURPOSE), ("info-needed", INFO_NEEDED)):
        problems += [f"{url} has an unknown code {v!r}" for v in parts.get(url, ()) if v not in allowed]

    covered, pa, doc = one("covered"), one("pa-needed"), one("doc-needed")
    if ("questionnaire" in parts or "response" in parts) and (doc is None or doc == "no-doc"):
        problems.append("crd-ci-q1: questionnaire/response need doc-needed other than no-doc")
    if covered == "not-covered" and pa is not None:
        problems.append("crd-ci-q2: pa-needed must not be present when covered is not-covered")
    if strict and covered not in (None, "not-covered") and pa is None:
        problems.append("crd-ci-q2: pa-needed must be present when covered is not not-covered")
    if "info-needed" in parts and "conditional" not in (covered, pa, doc):
        problems.append("crd-ci-q3: info-needed needs covered, pa-needed or doc-needed to be conditional")
    if pa == "satisfied" and any(p in ("withpa", "PA") for p in parts.get("doc-purpose", ())):
        problems.append("crd-ci-q4: pa-needed satisfied excludes a prior-authorization doc-purpose")
    if (pa == "satisfied") != ("satisfied-pa-id" in parts):
        problems.append("crd-ci-q5: satisfied-pa-id exists if and only if pa-needed is satisfied")
    if covered == "conditional" and "info-needed" not in parts:
        problems.append("covered conditional needs info-needed to say what is missing")
    reasons = parts.get("reason", [])
    needs_reason = "OTH" in parts.get("info-needed", ()) or "indeterminate" in (covered, pa, doc)
    if needs_reason and not reasons:
        problems.append("OTH or indeterminate needs a reason")
    for reason in reasons:
        codes = {c.get("code") for c in (reason or {}).get("coding") or () if c.get("system") == CRD_TEMP}
        if not (codes & STANDARD_REASONS) and not (reason or {}).get("text"):
            problems.append("a reason without a standard code needs text")
    return problems
