"""Diagnosis criteria: a qualifying indication, no active substance use, pain for long enough."""

from __future__ import annotations

from cds import codes
from cds.records import Event
from cds.rules import pathways
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import months_before
from cds.rules.findings import Evidence, Finding, Status


def _sets(ids) -> list[codes.ValueSet]:
    return [codes.VALUE_SETS[i] for i in ids]


def _evidence(events: list[Event]) -> tuple[Evidence, ...]:
    return tuple(Evidence(e.reference, e.start, f"ICD-10-CM {e.shown}") for e in events)


def _in_remission(event: Event) -> bool:
    """ICD-10-CM F1x.11, F1x.21, F1x.91 and F17.2x1 are the 'in remission' forms (codes.SUBSTANCE_REMISSION)."""
    return codes.SUBSTANCE_REMISSION.matches(codes.ICD10CM, event.code)


def current(ev: Evaluation, events: list[Event]) -> list[Event]:
    """Diagnoses that are active (clinical status active, recurrence, relapse, or none) and not after the order.

    Refuted and entered-in-error diagnoses never reach here (the record drops them); resolved, inactive and
    remission are not active. Unconfirmed ones are kept: the caller decides what "not confirmed" means for it.
    """
    return [e for e in events if e.active and (e.start is None or e.start <= ev.order_date)]


def _codes(events: list[Event]) -> str:
    return ", ".join(sorted({e.shown for e in events}))


def indication(ev: Evaluation, c: Criterion) -> Finding:
    before = current(ev, [e for vs in _sets(c.param("include", ())) for e in ev.record.condition_events(vs)])
    excluded_sets = _sets(c.param("exclude", ()))
    excluded = [e for e in before if any(vs.matches(codes.ICD10CM, e.code) for vs in excluded_sets)]
    candidates = [e for e in before if e not in excluded]
    qualifying = [e for e in candidates if e.confirmed]
    day = ev.order_date
    if (
        qualifying
        and ev.pathway.id == pathways.PAIN
        and all(codes.NAMED_NERVE_PAIN.matches(codes.ICD10CM, e.code) for e in qualifying)
        and not pathways.has_neuromuscular_target(ev.record, ev.order, day)
    ):
        return Finding(
            c.id,
            Status.NOT_MET,
            f"the documented indication ({_codes(qualifying)}) is pain from a named peripheral nerve with no "
            "neuromuscular target: that points to CPT 64575 (open implantation, peripheral nerve), not 64580",
            _evidence(qualifying),
            alternative=("64575", "open implantation of a peripheral nerve array"),
        )
    if qualifying:
        return Finding(
            c.id, Status.MET, f"qualifying diagnosis documented ({_codes(qualifying)})", _evidence(qualifying)
        )
    # a sibling's indication points elsewhere only when nothing else is documented, not even an excluded diagnosis
    other = excluded or any(current(ev, ev.record.condition_events(vs)) for vs in excluded_sets)
    sibling = pathways.sibling(ev.record, ev.order, day) if not candidates and not other else None
    if sibling is not None:
        code, what, found = sibling
        return Finding(
            c.id,
            Status.NOT_MET,
            f"the only documented indication ({', '.join(found)}) is treated by {what}: that is CPT {code}, not 64580",
            alternative=(code, what),
        )
    if candidates:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"diagnosis not confirmed ({_codes(candidates)} is unconfirmed, provisional or differential)",
            _evidence(candidates),
        )
    if excluded:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"only diagnoses this policy does not cover are documented ({_codes(excluded)})",
            _evidence(excluded),
        )
    return Finding(
        c.id,
        Status.NOT_MET,
        "no qualifying diagnosis (chronic pain, neuralgia, mononeuropathy, CRPS, spasm or atrophy) documented",
    )


def substance_use(ev: Evaluation, c: Criterion) -> Finding:
    found = current(
        ev, [e for vs in _sets(c.param("value_sets", ("substance-use",))) for e in ev.record.condition_events(vs)]
    )
    active = [e for e in found if not _in_remission(e)]
    confirmed = [e for e in active if e.confirmed]
    if confirmed:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"active substance-use disorder documented ({_codes(confirmed)})",
            _evidence(confirmed),
        )
    if active:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"substance-use diagnosis not confirmed ({_codes(active)} is unconfirmed, provisional or differential)",
            _evidence(active),
        )
    return Finding(c.id, Status.MET, "no active substance-use disorder documented")


def chronicity(ev: Evaluation, c: Criterion) -> Finding:
    """How long the active pain diagnosis has been there: its onset, else the date it was recorded.

    An earlier episode that resolved is context, never evidence: carpal tunnel ten years ago does not make a new
    pain diagnosis chronic.
    """
    months = int(c.param("months", 3))
    pain = [e for e in ev.record.condition_events(codes.INDICATION_PAIN) if e.start is None or e.start <= ev.order_date]
    active = [e for e in current(ev, pain) if e.confirmed]
    past = [e for e in pain if not e.active and e.start is not None]
    context = tuple(
        f"Earlier episode, not active ({e.status}): {e.shown} from {e.start.isoformat()}"
        + (f" to {e.end.isoformat()}" if e.end else "")
        for e in sorted(past, key=lambda e: e.start)
    )
    if not active:
        if ev.pathway.id == pathways.NEUROMUSCULAR:
            reason = "the indication is spasm, atrophy or diaphragm pacing, not pain"
            return Finding(c.id, Status.NOT_APPLICABLE, reason, notes=context)
        if any(not e.confirmed for e in current(ev, pain)):
            return Finding(c.id, Status.UNKNOWN, "the pain diagnosis is not confirmed", notes=context)
        return Finding(
            c.id, Status.NOT_MET, "no active pain diagnosis documented, so its duration cannot be shown", notes=context
        )
    dated = [e for e in active if e.start is not None]
    if not dated:
        return Finding(
            c.id, Status.UNKNOWN, "the pain diagnosis has no onset or recorded date", _evidence(active), context
        )
    first = min(dated, key=lambda e: e.start)
    cutoff = months_before(ev.order_date, months)
    if first.start <= cutoff:
        return Finding(
            c.id,
            Status.MET,
            f"active pain diagnosis {first.shown} since {first.start.isoformat()} (>= {months} months)",
            _evidence([first]),
            context,
        )
    return Finding(
        c.id,
        Status.NOT_MET,
        f"active pain diagnosis {first.shown} since {first.start.isoformat()}, less than {months} months before the order",
        _evidence([first]),
        context,
    )
