"""Who operates: co-surgeon modifier 62, team-surgery modifier 66, and the assistant at surgery.

Two primary surgeons bill 64580 each with modifier 62 (62.5% each under Medicare); three or more is team
surgery (66); one surgeon never carries 62. Whether Medicare pays co- or assistant surgeons for 64580 depends on
the fee-schedule indicators, which are reported as unknown until the CMS file is imported.
"""

from __future__ import annotations

from cds.records import Surgeon
from cds.rules.context import Criterion, Evaluation
from cds.rules.findings import Evidence, Finding, Status

CO_SURGERY, TEAM_SURGERY = "62", "66"
ASSISTANT_MODIFIERS = frozenset({"80", "81", "82", "AS"})

_CO_SURG_MEANING = {
    "0": "co-surgeons are not permitted for 64580 under Medicare",
    "1": "co-surgery is payable only with documentation (the operative report) sent with the claim",
    "2": "co-surgery is permitted; no documentation is needed when the surgeons' specialties differ",
    "9": "the co-surgeon concept does not apply to 64580",
}
_ASST_MEANING = {
    "0": "an assistant is payable only with documentation that one was needed",
    "1": "an assistant at surgery cannot be paid for 64580 under Medicare",
    "2": "an assistant at surgery can be paid",
    "9": "the assistant concept does not apply to 64580",
}


def _split(surgeons: list[Surgeon]) -> tuple[list[Surgeon], list[Surgeon], list[Surgeon]]:
    primary = [s for s in surgeons if s.role == "primary"]
    assistants = [s for s in surgeons if s.role == "assistant"]
    unknown = [s for s in surgeons if s.role == "unknown"]
    return primary, assistants, unknown


def _evidence(surgeons: list[Surgeon], order_ref: str) -> tuple[Evidence, ...]:
    return (Evidence(order_ref), *(Evidence(s.reference, note=s.role) for s in surgeons))


def co_surgeon_modifier(ev: Evaluation, c: Criterion) -> Finding:
    surgeons = ev.record.surgeons(ev.order)
    primary, _assistants, unknown = _split(surgeons)
    modifiers = ev.order.modifiers
    evidence = _evidence(primary + unknown, ev.order.reference)
    indicator = ev.ruleset.mpfs.co_surg
    notes = []
    if indicator is None:
        notes.append("The CMS co-surgeon indicator for 64580 is not loaded (`cds mpfs import`); verify it.")
    elif indicator in _CO_SURG_MEANING:
        notes.append(f"CMS co-surgeon indicator {indicator}: {_CO_SURG_MEANING[indicator]}.")

    if len(primary) >= 3:
        if TEAM_SURGERY in modifiers and CO_SURGERY not in modifiers:
            return Finding(c.id, Status.MET, f"{len(primary)} primary surgeons, modifier 66 on the order", evidence)
        return Finding(
            c.id,
            Status.NOT_MET,
            f"{len(primary)} primary surgeons: team surgery needs modifier 66 (not 62), billed by report",
            evidence,
            tuple(notes),
            order_modifiers=(TEAM_SURGERY,),
        )
    if len(primary) == 2:
        if indicator == "0":
            return Finding(c.id, Status.NOT_MET, "two primary surgeons, but " + _CO_SURG_MEANING["0"], evidence)
        specialties = [s.specialties for s in primary]
        if indicator in ("1", "2") and (indicator == "1" or (specialties[0] & specialties[1])):
            notes.append("Send the operative report showing why two surgeons were needed with each claim.")
        if CO_SURGERY in modifiers and TEAM_SURGERY not in modifiers:
            return Finding(
                c.id,
                Status.MET,
                "two primary surgeons and modifier 62 on the order: each bills 64580-62 with an own operative note",
                evidence,
                tuple(notes),
            )
        return Finding(
            c.id,
            Status.NOT_MET,
            "two primary surgeons: both claims need modifier 62 (each paid 62.5% under Medicare)",
            evidence,
            tuple(notes),
            order_modifiers=(CO_SURGERY,),
        )
    if len(primary) + len(unknown) >= 2:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{len(unknown)} performer(s) on the order without a documented surgical role; co-surgery cannot be told",
            evidence,
        )
    wrong = sorted(modifiers & {CO_SURGERY, TEAM_SURGERY})
    if wrong:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"modifier {'/'.join(wrong)} on the order but only one primary surgeon: remove it",
            evidence,
            order_modifiers=(),
        )
    return Finding(c.id, Status.NOT_APPLICABLE, "one surgeon: no co-surgeon modifier", evidence)


def assistant_surgeon(ev: Evaluation, c: Criterion) -> Finding:
    surgeons = ev.record.surgeons(ev.order)
    primary, assistants, _unknown = _split(surgeons)
    if not assistants:
        return Finding(c.id, Status.NOT_APPLICABLE, "no assistant surgeon on the order")
    evidence = _evidence(assistants, ev.order.reference)
    modifier = ", ".join(
        sorted({"AS (non-physician)" if s.non_physician else "80/81/82 (physician)" for s in assistants})
    )
    notes = (f"The assistant bills 64580 with modifier {modifier} on an own claim.",)
    if len(primary) >= 2:
        return Finding(
            c.id,
            Status.NOT_MET,
            "assistant listed alongside co-surgeons: generally not paid when 62/66 is paid",
            evidence,
            notes,
        )
    indicator = ev.ruleset.mpfs.asst_surg
    if indicator is None:
        return Finding(
            c.id,
            Status.UNKNOWN,
            "the CMS assistant-at-surgery indicator for 64580 is not loaded; payment cannot be told",
            evidence,
            notes,
        )
    meaning = _ASST_MEANING.get(indicator, f"indicator {indicator}")
    status = Status.MET if indicator == "2" else Status.NOT_MET
    return Finding(c.id, status, f"CMS assistant indicator {indicator}: {meaning}", evidence, notes)
