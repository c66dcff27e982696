"""Who operates, and how each surgeon bills: co-surgery (62), team surgery (66), assistants, global periods.

Medicare decides these per code with the fee-schedule indicators (CMS PFS relative value file): for 64580,
co-surgeons and team surgery are not permitted and an assistant at surgery may be paid. A payer whose policy data
says, with a source, that it applies the CMS indicators (criterion parameter ``fee_schedule: "cms"``: Medicare and
Medicare Advantage) is advised from them; for any other payer the card says the payer's own co-surgery policy
decides and shows the CMS indicator only as reference. No indicator for the date: the rule says it could not be
checked, never guesses.
"""

from __future__ import annotations

import re

from cds import codes
from cds.mpfs import Indicators
from cds.records import Surgeon
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import shifted, with_leeway
from cds.rules.findings import BillingOption, Evidence, Finding, Status

CO_SURGERY, TEAM_SURGERY = "62", "66"
SURGERY_MODIFIERS = frozenset({CO_SURGERY, TEAM_SURGERY})
ASSISTANT_MODIFIERS = frozenset({"80", "81", "82", "AS"})  # assistant at surgery: on the assistant's own claim
GLOBAL_MODIFIERS = ("58", "78", "79")
CMS = "cms"  # the criterion parameter value: this payer applies the CMS fee-schedule indicators

_MEANING = {
    "co_surg": {
        "0": "co-surgeons are not permitted",
        "1": "co-surgeons are paid only with documentation of why two surgeons were needed",
        "2": "co-surgeons are permitted, without documentation when their specialties differ",
        "9": "the co-surgery concept does not apply",
    },
    "team_surg": {
        "0": "team surgery is not permitted",
        "1": "team surgery is paid only with documentation, by report",
        "2": "team surgery is permitted, by report",
        "9": "the team-surgery concept does not apply",
    },
    "bilat_surg": {
        "0": "the 150% bilateral payment adjustment does not apply",
        "1": "the 150% bilateral payment adjustment applies",
        "2": "the code is already bilateral",
        "3": "each side is paid as its own procedure",
        "9": "the bilateral concept does not apply",
    },
    "asst_surg": {
        "0": "an assistant at surgery is paid only with documentation that one was needed",
        "1": "an assistant at surgery is not paid",
        "2": "an assistant at surgery may be paid",
        "9": "the assistant-at-surgery concept does not apply",
    },
}
_RULE = {
    "co_surg": "co-surgery",
    "team_surg": "team-surgery",
    "asst_surg": "assistant-at-surgery",
    "bilat_surg": "bilateral-surgery",
}
DIFFERENT_PROCEDURES = (
    "Surgeons who each did a different procedure (for example one places the array, 64580, the other the "
    "generator, 64590) bill their own codes: co-surgery rules do not apply between them."
)


def _split(surgeons: list[Surgeon]) -> tuple[list[Surgeon], list[Surgeon], list[Surgeon]]:
    primary = [s for s in surgeons if s.role == "primary"]
    assistants = [s for s in surgeons if s.role == "assistant"]
    unknown = [s for s in surgeons if s.role == "unknown"]
    return primary, assistants, unknown


def _evidence(surgeons: list[Surgeon], order_ref: str) -> tuple[Evidence, ...]:
    return (Evidence(order_ref), *(Evidence(s.reference, note=s.role) for s in surgeons))


def _follows_cms(c: Criterion) -> bool:
    return c.param("fee_schedule") == CMS


def _indicator(ev: Evaluation, field: str) -> tuple[Indicators | None, str | None]:
    found = ev.ruleset.fee_schedule.indicators("64580", ev.service_date)
    return found, getattr(found, field) if found else None


def _not_checked(field: str) -> str:
    return f"Medicare's {_RULE[field]} rule for 64580 could not be checked for this date"


def _cms_note(found: Indicators, field: str) -> str:
    value = getattr(found, field)
    meaning = _MEANING[field].get(value, "an indicator this service does not know")
    return f"Medicare fee schedule {found.release}: {_RULE[field]} indicator {value} for 64580 ({meaning})."


def _reference_note(found: Indicators | None, field: str) -> tuple[str, ...]:
    """For payers with their own rules: the CMS indicator, shown as reference only."""
    if found is None or getattr(found, field) is None:
        return ()
    return ("For reference only, " + _cms_note(found, field),)


def assistant_modifier(surgeon: Surgeon) -> str | None:
    """AS for a PA, NP or CNS; 80 for a physician (82 where no qualified resident was available); None when the
    recorded profession is neither; "80, 82 or AS" when no profession is recorded."""
    if surgeon.non_physician:
        return "AS"
    if surgeon.physician:
        return "80"
    return None if surgeon.specialties else "80, 82 or AS"


def _assistant_options(surgeon: Surgeon) -> tuple[BillingOption, ...]:
    """AS for a PA, NP or CNS; 80 or 82 for a physician; all three when the profession is not recorded."""
    ref = surgeon.reference
    non_physician = BillingOption(ref, "AS", f"Bill {ref} as assistant at surgery: 64580-AS (PA, NP or CNS)")
    physician = (
        BillingOption(ref, "80", f"Bill {ref} as assistant at surgery: 64580-80"),
        BillingOption(ref, "82", f"Bill {ref} as assistant at surgery: 64580-82 (no qualified resident available)"),
    )
    if surgeon.non_physician:
        return (non_physician,)
    if surgeon.physician:
        return physician
    return () if surgeon.specialties else (*physician, non_physician)


def co_surgeon_modifier(ev: Evaluation, c: Criterion) -> Finding:
    primary, assistants, unknown = _split(ev.record.surgeons(ev.order))
    on_order = ev.order.modifiers & SURGERY_MODIFIERS
    evidence = _evidence(primary + unknown, ev.order.reference)
    if len(primary) >= 3:
        return _team(ev, c, len(primary), on_order, evidence)
    if len(primary) == 2:
        return _co_surgery(ev, c, primary, on_order, evidence, assisted=bool(assistants))
    if len(primary) + len(unknown) >= 2:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{len(unknown)} performer(s) on the order without a documented surgical role; co-surgery cannot be told",
            evidence,
            info_needed="performer",
            headline="Surgeon roles missing on this CPT 64580 order: co-surgery cannot be checked",
        )
    if on_order:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"modifier {'/'.join(sorted(on_order))} on the order but only one primary surgeon: remove it",
            evidence,
            order_modifiers=(),
            headline=f"Remove modifier {'/'.join(sorted(on_order))}: only one primary surgeon on this CPT 64580 order",
        )
    return Finding(c.id, Status.NOT_APPLICABLE, "one surgeon: no co-surgeon modifier", evidence)


TWO_ASSISTANTS = (
    "whether Medicare pays two assistants on one operation is not stated in the sources read: verify with your "
    "contractor"
)


def _mods(on_order: frozenset[str]) -> str:
    return "/".join(sorted(on_order))


def _removal(on_order: frozenset[str]) -> str:
    return f"; modifier {'/'.join(sorted(on_order))} on the order must come off" if on_order else ""


def _co_surgery(
    ev: Evaluation,
    c: Criterion,
    primary: list[Surgeon],
    on_order: frozenset[str],
    evidence: tuple[Evidence, ...],
    assisted: bool = False,
) -> Finding:
    """Two primary surgeons. Where Medicare pays no co-surgeons, the second is offered billing as assistant at surgery,
    unless the order already has an assistant: whether Medicare pays two is not stated, so it is not suggested."""
    found, value = _indicator(ev, "co_surg")
    if not _follows_cms(c):
        return Finding(
            c.id,
            Status.UNKNOWN,
            "two primary surgeons: the payer's own co-surgery policy decides whether 64580 is billed with modifier 62",
            evidence,
            (*_reference_note(found, "co_surg"), DIFFERENT_PROCEDURES),
            headline="Two primary surgeons on CPT 64580: the payer's own co-surgery policy decides whether 62 is paid",
        )
    if found is None or value is None:
        return Finding(c.id, Status.UNKNOWN, _not_checked("co_surg"), evidence)
    notes = [_cms_note(found, "co_surg")]
    fix = () if on_order else None
    if value == "0":
        assistant = found.asst_surg
        # The one who assists: a PA, NP or CNS listed as a primary surgeon, else the second listed.
        second = next((s for s in primary if s.non_physician), primary[1])
        options = _assistant_options(second) if assistant in ("0", "2") else ()
        if options:
            notes.append(
                f"{_cms_note(found, 'asst_surg')} The second surgeon bills 64580-80, or 64580-82 where no qualified "
                "resident was available; a physician assistant, nurse practitioner or clinical nurse specialist "
                "bills 64580-AS."
            )
        notes.append(DIFFERENT_PROCEDURES)
        reason = "two primary surgeons, but Medicare does not pay co-surgeons on 64580" + _removal(on_order)
        if options and assisted:
            reason += (
                f"; the order already has an assistant at surgery: if the second surgeon bills as assistant too, "
                f"{TWO_ASSISTANTS}"
            )
            options = ()
        elif options:
            reason += "; bill the second surgeon as assistant at surgery"
        offer = f": bill the second surgeon as assistant at surgery ({'/'.join(o.modifier for o in options)})"
        headline = "Medicare does not pay co-surgeons on CPT 64580" + (
            offer if options else (f": remove modifier {_mods(on_order)}" if on_order else "")
        )
        return Finding(
            c.id,
            Status.NOT_MET,
            reason,
            evidence,
            tuple(notes),
            order_modifiers=fix,
            options=options,
            headline=headline,
        )
    if value not in ("1", "2"):
        reason = "two primary surgeons, but " + _MEANING["co_surg"].get(value, "co-surgery is not paid") + " for 64580"
        return Finding(c.id, Status.NOT_MET, reason + _removal(on_order), evidence, tuple(notes), order_modifiers=fix)

    documents: tuple[str, ...] = ()
    problem = None
    if value == "1":
        documents = ("Both surgeons' operative notes showing why two surgeons were needed",)
    else:
        first, second = (s.specialties for s in primary)
        if first and second and first & second:
            problem = (
                f"both surgeons have specialty {', '.join(sorted(first & second))}: Medicare pays co-surgery on "
                "64580 without documentation only for surgeons of different specialties"
            )
            documents = ("Both surgeons' operative notes showing why two surgeons of one specialty were needed",)
        elif not (first and second):
            notes.append("A surgeon's specialty is not recorded: the two specialties must differ, else document why.")
    has_62 = CO_SURGERY in on_order and TEAM_SURGERY not in on_order
    if problem:
        fix62 = None if has_62 else (CO_SURGERY,)
        return Finding(
            c.id,
            Status.NOT_MET,
            problem,
            evidence,
            tuple(notes),
            order_modifiers=fix62,
            documents=documents,
            headline="Co-surgeons of one specialty on CPT 64580: send why both were needed with the claims",
        )
    if has_62:
        reason = "two primary surgeons and modifier 62 on the order: each bills 64580-62 with an own operative note"
        headline = "Co-surgery: each surgeon bills CPT 64580-62 on an own claim with an own operative note"
        return Finding(c.id, Status.MET, reason, evidence, tuple(notes), documents=documents, headline=headline)
    return Finding(
        c.id,
        Status.NOT_MET,
        "two primary surgeons: both claims need modifier 62",
        evidence,
        tuple(notes),
        order_modifiers=(CO_SURGERY,),
        documents=documents,
        headline="Modifier 62 required: two primary surgeons on this CPT 64580 order",
    )


def _team(
    ev: Evaluation, c: Criterion, count: int, on_order: frozenset[str], evidence: tuple[Evidence, ...]
) -> Finding:
    found, value = _indicator(ev, "team_surg")
    if not _follows_cms(c):
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{count} primary surgeons: the payer's own policy decides whether team surgery (modifier 66) is paid",
            evidence,
            (*_reference_note(found, "team_surg"), DIFFERENT_PROCEDURES),
            headline=f"{count} primary surgeons on CPT 64580: the payer's own policy decides whether team surgery is paid",
        )
    if found is None or value is None:
        return Finding(c.id, Status.UNKNOWN, _not_checked("team_surg"), evidence)
    notes = (_cms_note(found, "team_surg"), DIFFERENT_PROCEDURES)
    if value in ("1", "2"):
        documents = ("Each surgeon's operative note stating their role (team surgery is priced by report)",)
        if TEAM_SURGERY in on_order and CO_SURGERY not in on_order:
            reason = f"{count} primary surgeons, modifier 66 on the order: each surgeon's role must be documented"
            return Finding(c.id, Status.MET, reason, evidence, notes, documents=documents)
        return Finding(
            c.id,
            Status.NOT_MET,
            f"{count} primary surgeons: team surgery needs modifier 66 (not 62), billed by report",
            evidence,
            notes,
            order_modifiers=(TEAM_SURGERY,),
            documents=documents,
            headline="Modifier 66 required: three or more primary surgeons (team surgery) on CPT 64580",
        )
    reason = (
        f"{count} primary surgeons, but Medicare does not pay team surgery on 64580{_removal(on_order)}: one surgeon "
        "bills 64580; another may bill it as assistant at surgery, and the others the codes of the procedures they "
        f"did ({TWO_ASSISTANTS})"
    )
    headline = "Medicare does not pay team surgery on CPT 64580: one surgeon bills it"
    return Finding(
        c.id, Status.NOT_MET, reason, evidence, notes, order_modifiers=() if on_order else None, headline=headline
    )


def assistant_surgeon(ev: Evaluation, c: Criterion) -> Finding:
    primary, assistants, _unknown = _split(ev.record.surgeons(ev.order))
    if not assistants:
        stray = ev.order.modifiers & ASSISTANT_MODIFIERS
        if stray:  # the order is the surgeon's: billed with it, 64580 would be claimed as an assistant's
            return Finding(
                c.id,
                Status.UNKNOWN,
                f"modifier {_mods(stray)} on the order, but no assistant at surgery among its performers: an "
                "assistant-at-surgery modifier goes on the assistant's own claim, not on the surgeon's 64580: "
                "check the order",
                _evidence(primary, ev.order.reference),
                headline=f"Modifier {_mods(stray)} on this CPT 64580 order, but no assistant at surgery: check it",
            )
        return Finding(c.id, Status.NOT_APPLICABLE, "no assistant surgeon on the order")
    evidence = _evidence(assistants, ev.order.reference)
    unfit = [s for s in assistants if assistant_modifier(s) is None]
    if unfit:
        jobs = ", ".join(sorted(t for s in unfit for t in s.specialties))
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"assistant {unfit[0].reference} (taxonomy {jobs}) is not a physician, PA, NP or clinical nurse "
            "specialist: no assistant-at-surgery modifier fits",
            evidence,
        )
    billing = "; ".join(f"{s.reference} bills 64580-{assistant_modifier(s)}" for s in assistants)
    notes: tuple[str, ...] = (f"Each assistant bills on their own claim: {billing}.",)
    if any(s.physician for s in assistants):
        notes += ("A physician assisting at surgery uses 80, or 82 where no qualified resident was available.",)
    follows_cms = _follows_cms(c)
    found, value = _indicator(ev, "asst_surg")
    if len(primary) >= 2:
        team = len(primary) >= 3
        field = "team_surg" if team else "co_surg"
        if not follows_cms:  # Medicare's rule, not the payer's: it informs, it never warns
            return Finding(
                c.id,
                Status.UNKNOWN,
                "the payer's own policy decides whether an assistant at surgery is paid alongside "
                f"{'a surgical team' if team else 'co-surgeons'} on 64580 ({billing})",
                evidence,
                (*notes, *_reference_note(found, field)),
            )
        if found is None:
            return Finding(c.id, Status.UNKNOWN, _not_checked(field), evidence, notes)
        if getattr(found, field) != "0":
            return Finding(
                c.id,
                Status.NOT_MET,
                "an assistant at surgery is not paid alongside co-surgeons or a surgical team",
                evidence,
                notes,
            )
        notes += (
            f"The order also lists {len(primary)} primary surgeons, and Medicare pays neither co-surgeons nor a team "
            f"on 64580: if another of them bills as assistant too, {TWO_ASSISTANTS}.",
        )
    if not follows_cms:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"the payer's own policy decides whether an assistant at surgery is paid for 64580 ({billing})",
            evidence,
            (*notes, *_reference_note(found, "asst_surg")),
        )
    if found is None or value is None:
        return Finding(c.id, Status.UNKNOWN, _not_checked("asst_surg"), evidence, notes)
    notes += (_cms_note(found, "asst_surg"),)
    if value == "2":
        reason = f"assistant at surgery payable for 64580 under Medicare: {billing}"
        modifiers = "/".join(sorted({assistant_modifier(s) or "" for s in assistants}))
        headline = f"Assistant at surgery on CPT 64580: payable under Medicare, billed 64580-{modifiers}"
        return Finding(c.id, Status.MET, reason, evidence, notes, headline=headline)
    if value == "9":
        reason = "the assistant-at-surgery concept does not apply to 64580 under Medicare"
        return Finding(c.id, Status.NOT_APPLICABLE, reason, evidence, notes)
    if value == "0":
        return Finding(
            c.id,
            Status.NOT_MET,
            "Medicare pays an assistant at surgery on 64580 only with documentation that one was needed",
            evidence,
            notes,
            documents=("Documentation of why an assistant at surgery was needed",),
        )
    return Finding(c.id, Status.NOT_MET, "Medicare does not pay an assistant at surgery on 64580", evidence, notes)


def global_period(ev: Evaluation, c: Criterion) -> Finding:
    """An earlier procedure of the family by a surgeon on this order, whose global period covers this one."""
    day = ev.order.occurrence or ev.order_date  # the surgery's date when scheduled
    known = with_leeway(ev.as_of)  # the record as of the evaluation date
    ours = {ev.record.person(ref, ev.order) for ref in ev.order.performers}
    schedule = ev.ruleset.fee_schedule
    inside = []
    for e in ev.record.procedure_events(codes.NEUROSTIMULATOR_FAMILY):
        if e.start is None or e.start >= day or e.start > known:
            continue
        if not ({ev.record.person(p) for p in e.performers} & ours):
            continue
        found = schedule.indicators(e.code, e.start) or schedule.indicators(e.code, ev.as_of)
        if found is None or found.global_days is None:
            continue
        ends = shifted(e.start, found.global_days)
        if day <= ends:
            inside.append((e, found, ends))
    if not inside:
        return Finding(c.id, Status.NOT_APPLICABLE, "no earlier procedure by the same surgeon inside its global period")
    e, found, ends = max(inside, key=lambda hit: hit[0].start)
    what = (
        f"{e.code} by the same surgeon on {e.start.isoformat()}: its {found.global_days}-day global period runs to "
        f"{ends.isoformat()}"
    )
    evidence = tuple(Evidence(hit.reference, hit.start, f"global period to {to.isoformat()}") for hit, _f, to in inside)
    if not _follows_cms(c):
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{what} (Medicare's global period; the payer's own rules decide)",
            (Evidence(ev.order.reference), *evidence),
        )
    notes = (
        "58: staged or planned (for example the permanent implant planned after the trial); 78: unplanned return "
        "to the operating room for a related problem; 79: an unrelated procedure.",
        f"Global period from Medicare fee schedule {found.release} (GLOB DAYS {found.glob_days} for {e.code}).",
    )
    present = sorted(ev.order.modifiers & set(GLOBAL_MODIFIERS))
    if present:
        reason = f"modifier {'/'.join(present)} on the order; {what}"
        return Finding(c.id, Status.MET, reason, (Evidence(ev.order.reference), *evidence), notes)
    reason = f"check modifier 58, 78 or 79: {what}"
    headline = (
        f"Check modifier 58, 78 or 79: {e.code} by the same surgeon on {e.start.isoformat()} is inside its "
        f"{found.global_days}-day global period"
    )
    return Finding(c.id, Status.NOT_MET, reason, (Evidence(ev.order.reference), *evidence), notes, headline=headline)


LEFT, RIGHT, BOTH = "7771000", "24028007", "51440002"  # SNOMED CT laterality qualifiers
_SIDE_WORDS = {BOTH: re.compile(r"\b(bilateral|both sides|both)\b", re.I), LEFT: re.compile(r"\bleft\b", re.I)}
_SIDE_WORDS[RIGHT] = re.compile(r"\bright\b", re.I)


def _side(ev: Evaluation) -> str | None:
    """The side the order names: a SNOMED laterality qualifier on bodySite, else words in its text."""
    coded = {code for system, code in ev.order.sites if system == codes.SNOMED}
    for side in (BOTH, LEFT, RIGHT):
        if side in coded:
            return side
    words = [side for side in (BOTH, LEFT, RIGHT) if _SIDE_WORDS[side].search(ev.order.site_text)]
    if BOTH in words or (LEFT in words and RIGHT in words):
        return BOTH
    return words[0] if words else None


_NO_SIDE_MODIFIERS = (
    'Medicare contractors on bilateral indicator 0: First Coast, "Procedure code should not be reported with a 50, '
    'RT or LT modifier" and "If reported bilaterally only one unit will be considered for payment"; Noridian '
    "JE lists modifier 50 as inappropriate when BILAT SURG is 0. Check your own contractor's rule."
)


def _contradicting(side: str, on_order: frozenset[str]) -> list[str]:
    """The side modifiers (of 50, RT, LT) on the order that its own body site contradicts."""
    if side == BOTH:
        one_side = on_order & {"LT", "RT"}
        return sorted(one_side) if len(one_side) == 1 and "50" not in on_order else []
    return sorted(on_order - {"LT" if side == LEFT else "RT"})


def laterality(ev: Evaluation, c: Criterion) -> Finding:
    """The side the order's body site names against its 50/RT/LT modifiers and Medicare's BILAT SURG indicator.

    For 64580 (BILAT SURG 0) Medicare contractors say the code carries no 50, RT or LT; a side named in the order
    never becomes advice to add one. An order whose modifiers contradict its own body site is flagged for every
    payer: that needs no payer rule."""
    side = _side(ev)
    if side is None:
        return Finding(c.id, Status.NOT_APPLICABLE, "the order's body site names no side")
    evidence = (Evidence(ev.order.reference, note="bodySite"),)
    on_order = ev.order.modifiers & {"LT", "RT", "50"}
    word = {LEFT: "left side", RIGHT: "right side", BOTH: "both sides"}[side]
    named = word if side == BOTH else f"the {word}"
    contradicting = _contradicting(side, on_order)
    found = ev.ruleset.fee_schedule.indicators("64580", ev.service_date)
    no_side = _follows_cms(c) and found is not None and found.bilat_surg == "0"
    if contradicting:
        carried = "/".join(contradicting)
        reason = f"the order's body site names {named} but the order carries {'only ' if side == BOTH else ''}{carried}"
        headline = f"Side mismatch on CPT 64580: the body site names {named}, the order carries {carried}"
        if not no_side:
            return Finding(c.id, Status.NOT_MET, reason, evidence, headline=headline)
        # Medicare's indicator 0: the fix is to remove the side modifiers (all of them: LT beside RT on a left
        # site too), not to change one to the other side
        removed = "/".join(sorted(on_order))
        reason += f"; for 64580 (BILAT SURG 0) a Medicare contractor says no 50, RT or LT: remove {removed}"
        notes = (_cms_note(found, "bilat_surg"), _NO_SIDE_MODIFIERS)
        headline = (
            f"Remove {removed} from CPT 64580: the body site names {named}, and Medicare's bilateral indicator is 0"
        )
        return Finding(c.id, Status.NOT_MET, reason, evidence, notes, headline=headline)
    if not _follows_cms(c):
        reason = f"{word}: the payer's own rules decide whether 64580 carries a side modifier (50, RT, LT)"
        return Finding(c.id, Status.UNKNOWN, reason, evidence, _reference_note(found, "bilat_surg"))
    if found is None or found.bilat_surg is None:
        return Finding(c.id, Status.UNKNOWN, "Medicare's bilateral rule for 64580 could not be checked for this date")
    note = _cms_note(found, "bilat_surg")
    if found.bilat_surg != "0":
        reason = f"{word}: report it as Medicare's bilateral indicator {found.bilat_surg} for 64580 says"
        return Finding(c.id, Status.MET, reason, evidence, (note,))
    carried = sorted(on_order)
    if "50" in carried:
        reason = "the order carries modifier 50, but 64580's bilateral indicator is 0: no 150% adjustment, one unit"
        sides = [m for m in carried if m != "50"]
        if sides:
            reason += f"; it carries {'/'.join(sides)} too, and a Medicare contractor says no RT or LT either"
        removed = "modifier 50" if not sides else "/".join(carried)
        headline = f"Remove {removed} from CPT 64580: Medicare's bilateral indicator for it is 0"
        return Finding(c.id, Status.NOT_MET, reason, evidence, (note, _NO_SIDE_MODIFIERS), headline=headline)
    if carried:
        reason = (
            f"the order carries {'/'.join(carried)}; for 64580 (BILAT SURG 0) a Medicare contractor says no RT or LT"
        )
        return Finding(c.id, Status.UNKNOWN, reason, evidence, (note, _NO_SIDE_MODIFIERS))
    reason = f"{word}: 64580 has bilateral indicator 0, reported without 50, RT or LT" + (
        "; both sides are paid as one unit" if side == BOTH else ""
    )
    headline = f"{word.capitalize()}: no 50, RT or LT on CPT 64580 for Medicare (bilateral indicator 0)"
    return Finding(c.id, Status.MET, reason, evidence, (note, _NO_SIDE_MODIFIERS), headline=headline)
