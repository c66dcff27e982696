"""The pure 64580 rules core: a record, an order, a policy and a date in; findings out.

No Flask, no I/O, no clock: the same inputs always give the same findings, so cases replay exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from cds import provenance
from cds.memo import IdentityMemo
from cds.orders import Order
from cds.records import PatientRecord
from cds.rules import attestation, diagnosis, pathways, surgeons, therapy, trial, windows
from cds.rules.context import Criterion, Evaluation, order_day
from cds.rules.findings import Evidence, Finding, Status
from cds.rules.params import RuleSet
from cds.rules.pathways import Pathway

CRITERIA: dict[str, Callable[[Evaluation, Criterion], Finding]] = {
    "indication": diagnosis.indication,
    "substance-use": diagnosis.substance_use,
    "chronicity": diagnosis.chronicity,
    "physical-therapy": therapy.physical_therapy,
    "medication-trial": therapy.medication_trial,
    "stimulation-trial": trial.stimulation_trial,
    "psych-evaluation": trial.psych_evaluation,
    "objective-pathology": trial.objective_pathology,
    "diagnostic-block": trial.diagnostic_block,
    "co-surgeon-modifier": surgeons.co_surgeon_modifier,
    "assistant-surgeon": surgeons.assistant_surgeon,
    "global-period": surgeons.global_period,
    "not-surgical-candidate": trial.not_surgical_candidate,
    "multifidus-dysfunction": trial.multifidus_dysfunction,
    "phrenic-nerve": trial.phrenic_nerve,
    "laterality": surgeons.laterality,
}


# Criteria no coded data can satisfy: the record holds them in notes, so they stay unknown until attested.
ATTESTED_ONLY = frozenset({"not-surgical-candidate"})

# The prefetch keys each criterion reads: when one arrived late, the criterion cannot be judged.
READS: dict[str, frozenset[str]] = {
    "indication": frozenset({"conditions"}),
    "substance-use": frozenset({"conditions"}),
    "chronicity": frozenset({"conditions"}),
    "physical-therapy": frozenset({"procedures"}),
    "medication-trial": frozenset({"medicationRequests", "medicationStatements"}),
    "stimulation-trial": frozenset({"procedures"}),
    "psych-evaluation": frozenset({"procedures"}),
    "objective-pathology": frozenset({"procedures"}),
    "diagnostic-block": frozenset({"procedures"}),
    "co-surgeon-modifier": frozenset({"practitionerRoles"}),
    "assistant-surgeon": frozenset({"practitionerRoles"}),
    "global-period": frozenset({"procedures", "practitionerRoles"}),
    "not-surgical-candidate": frozenset(),
    "multifidus-dysfunction": frozenset({"procedures"}),
    "phrenic-nerve": frozenset({"procedures"}),
    "laterality": frozenset(),
}


def without_late_data(findings: list[Finding], late: frozenset[str]) -> list[Finding]:
    """Findings that read data the FHIR server did not deliver in time become ``unknown``: never a false not-met."""
    if not late:  # the usual call: everything arrived (the caller's list, not a copy)
        return findings
    out = []
    for f in findings:
        missing = sorted(READS.get(f.criterion, frozenset()) & late)
        if missing:
            f = f._replace(
                status=Status.UNKNOWN,
                evidence=(),
                order_modifiers=None,
                reason=f"the EHR's FHIR server did not answer in time ({', '.join(missing)})",
                explained=False,
            )
        out.append(f)
    return out


def informs_only(finding: Finding, criterion: Criterion) -> Finding:
    """A criterion that may inform but never warns on its own: not-met becomes unknown, saying why. Its sources are
    all secondary (the payer's own text was not found), or the policy wrote it for another indication."""
    if finding.status != Status.NOT_MET:
        return finding
    if criterion.confidence == "secondary" and any(s.primary for s in criterion.sources):
        why = "no source read states it for this payer (the primary documents cited are background): verify"
    elif criterion.confidence == "secondary" and (seen := provenance.seen_only(criterion.source)) is not None:
        # no source at all: the policy file says where it was seen instead (an AI answer page is never a source)
        why = f"not confirmed as this payer's requirement ({seen}): verify"
    elif criterion.confidence == "secondary":
        why = "only a secondary summary states it; the payer's own text was not found: verify"
    elif criterion.borrowed_from is not None:
        why = f"the policy states this for {criterion.borrowed_from}, not for this indication"
    else:
        return finding
    # what the record shows first: a card's summary quoting the reason names what is missing, then the caveat
    return finding.without_actions(status=Status.UNKNOWN, reason=f"{finding.reason}; {why}", explained=True)


_KINDS = {
    "procedures": "Procedure",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
}


def settled(finding: Finding, certain: Finding, unsettled: tuple[str, ...], reads: frozenset[str]) -> Finding:
    """What the record says for certain (``certain``: the finding without its entries of status unknown) when they
    do not change the answer, else ``unknown``: FHIR's "unknown" status does not say a procedure was done or a
    drug taken (nor that it was not), so a card may neither count it nor warn because of it."""
    if finding.status == Status.UNKNOWN:
        return finding
    if certain.status == finding.status:
        return certain
    deciding = {e.reference for e in finding.evidence} - {e.reference for e in certain.evidence}
    kinds = {_KINDS[k] for k in reads if k in _KINDS}
    cited = (
        [r for r in unsettled if r in deciding]
        or [r for r in unsettled if r.split("/", 1)[0] in kinds]
        or list(unsettled)
    )
    named = ", ".join(cited[:3]) + (f" and {len(cited) - 3} more" if len(cited) > 3 else "")
    return finding.without_actions(
        status=Status.UNKNOWN,
        reason=f"only if {named} happened (status unknown in the record; verify): {finding.reason}",
        evidence=finding.evidence or tuple(Evidence(r) for r in cited),
        headline="",
    )


def any_of(findings: list[Finding], criteria: tuple[Criterion, ...]) -> list[Finding]:
    """Criteria a policy wrote as one requirement that any of them meets (``any_of``): one met, the others are not
    needed; none met, each says that any one would do. Never one requirement turned into several."""
    groups = _any_of_groups(criteria)
    if not groups:  # most policies: every criterion a requirement of its own
        return findings
    out = list(findings)
    for members in groups:
        titles = " or ".join(criteria[i].title.lower() for i in members)
        met = next((i for i in members if findings[i].status == Status.MET), None)
        for i in members:
            f = findings[i]
            if met is not None and f.status in (Status.NOT_MET, Status.UNKNOWN):
                out[i] = f.without_actions(
                    status=Status.NOT_APPLICABLE,
                    reason=f"not needed, the policy asks for any one of {titles} and {criteria[met].title.lower()} is "
                    f"met ({f.reason})",
                    headline="",
                )
            elif met is None and f.status == Status.NOT_MET and len(members) > 1:
                undecided = next(
                    (criteria[j].title.lower() for j in members if findings[j].status == Status.UNKNOWN), None
                )
                if undecided is None:
                    out[i] = f._replace(reason=f"{f.reason} (any one of {titles} is enough for this policy)")
                else:  # the requirement may be met by the one the record cannot tell: no warning on this one
                    out[i] = f.without_actions(
                        status=Status.UNKNOWN,
                        reason=f"{f.reason}, but any one of {titles} is enough for this policy and {undecided} is unknown",
                        headline="",
                    )
    return out


# The any_of groups of each policy's criteria: policy data, the same for every call, so found once per criteria tuple.
_GROUPS = IdentityMemo()


def _any_of_groups(criteria: tuple[Criterion, ...]) -> tuple[tuple[int, ...], ...]:
    return _GROUPS.get(criteria, None, _find_any_of_groups, criteria)


def _find_any_of_groups(criteria: tuple[Criterion, ...]) -> tuple[tuple[int, ...], ...]:
    """The places of the criteria in each ``any_of`` group, in the policy's order (a criterion's ``any_of`` names
    its group)."""
    groups: dict[str, list[int]] = {}
    for i, criterion in enumerate(criteria):
        if name := criterion.param("any_of"):
            groups.setdefault(name, []).append(i)
    return tuple(tuple(members) for members in groups.values())


def choose_pathway(record: PatientRecord, order: Order, as_of: date) -> Pathway:
    """The indication pathway of ``order`` (its reasonCode, else the record), on the day it is ordered."""
    return pathways.choose(record, order, order_day(order, as_of))


def _judged(ev: Evaluation, criterion: Criterion) -> Finding:
    judge = CRITERIA[criterion.id]
    finding = judge(ev, criterion)
    if criterion.borrowed_from is not None and ev.pathway.phrenic and finding.status != Status.NOT_APPLICABLE:
        # conservative care for pain says nothing of a ventilated patient's diaphragm: not even "already documented"
        return Finding(
            criterion.id,
            Status.NOT_APPLICABLE,
            f"the policy states this for {criterion.borrowed_from}, not for diaphragm pacing",
        )
    if finding.status != Status.NOT_MET:  # windows.unstated changes only a not-met finding: skip the call
        return finding
    return windows.unstated(finding, ev, criterion, judge)


def evaluate(
    record: PatientRecord,
    order: Order,
    ruleset: RuleSet,
    as_of: date,
    pathway: Pathway | None = None,
    late: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every criterion of ``ruleset`` for ``order``, in the policy's order, each tagged with its source; those
    reading ``late`` prefetch keys are unknown (:func:`without_late_data`) before criteria that are one
    requirement are weighed together (:func:`any_of`)."""
    ev = Evaluation.of(record, order, ruleset, as_of, pathway or choose_pathway(record, order, as_of))
    unsettled = record.unsettled()
    certain = ev._replace(record=record.without_unsettled()) if unsettled else None
    attested, foreign = attestation.for_policy(record, ruleset.policy)
    findings = []
    for criterion in ruleset.criteria:
        finding = _judged(ev, criterion)
        if certain is not None:  # rare: judged twice, with and without what the record leaves unsettled
            finding = settled(finding, _judged(certain, criterion), unsettled, READS.get(criterion.id, frozenset()))
        if criterion.id in attested:
            finding = attestation.judge(finding, criterion, attested[criterion.id], ev.order_date, ev.as_of)
        elif criterion.id in foreign and finding.status != Status.MET:
            finding = attestation.foreign_note(finding, foreign[criterion.id])
        if finding.status == Status.NOT_MET:  # informs_only changes only a not-met finding: skip the call
            finding = informs_only(finding, criterion)
        findings.append(
            finding.tagged(
                policy=ruleset.policy, source=criterion.source, confidence=criterion.confidence, title=criterion.title
            )
        )
    return any_of(without_late_data(findings, late), ruleset.criteria)


__all__ = [
    "ATTESTED_ONLY",
    "CRITERIA",
    "READS",
    "Evidence",
    "Finding",
    "Pathway",
    "RuleSet",
    "Status",
    "choose_pathway",
    "evaluate",
    "without_late_data",
]
