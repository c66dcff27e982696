"""Diagnosis criteria: a qualifying indication, no active substance use, pain for long enough."""

from __future__ import annotations

from datetime import date

from cds import codes
from cds.records import Event, PatientRecord
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import months_before
from cds.rules.findings import Evidence, Finding, Status


def _sets(ids) -> list[codes.ValueSet]:
    return [codes.VALUE_SETS[i] for i in ids]


def _evidence(events: list[Event]) -> tuple[Evidence, ...]:
    return tuple(Evidence(e.reference, e.start, f"ICD-10-CM {e.code}") for e in events)


def _in_remission(event: Event) -> bool:
    """ICD-10-CM F1x.11 / F1x.21 are the 'in remission' codes of abuse and dependence."""
    return event.code[:1] == "F" and event.code[3:] in ("11", "21")


def indication(ev: Evaluation, c: Criterion) -> Finding:
    before = [
        e
        for vs in _sets(c.param("include", ()))
        for e in ev.record.condition_events(vs)
        if e.active and (e.start is None or e.start <= ev.order_date)
    ]
    excluded_sets = _sets(c.param("exclude", ()))
    excluded = [e for e in before if any(vs.matches(codes.ICD10CM, e.code) for vs in excluded_sets)]
    qualifying = [e for e in before if e not in excluded]
    if qualifying:
        codes_ = ", ".join(sorted({e.code for e in qualifying}))
        return Finding(c.id, Status.MET, f"qualifying diagnosis documented ({codes_})", _evidence(qualifying))
    if excluded:
        names = ", ".join(sorted({e.code for e in excluded}))
        return Finding(
            c.id,
            Status.NOT_MET,
            f"only diagnoses this policy does not cover are documented ({names})",
            _evidence(excluded),
        )
    return Finding(
        c.id,
        Status.NOT_MET,
        "no qualifying diagnosis (chronic pain, neuralgia, mononeuropathy, CRPS, spasm or atrophy) documented",
    )


def substance_use(ev: Evaluation, c: Criterion) -> Finding:
    active = [
        e
        for vs in _sets(c.param("value_sets", ("substance-use",)))
        for e in ev.record.condition_events(vs)
        if e.active and not _in_remission(e) and (e.start is None or e.start <= ev.order_date)
    ]
    if active:
        found = ", ".join(sorted({e.code for e in active}))
        return Finding(c.id, Status.NOT_MET, f"active substance-use disorder documented ({found})", _evidence(active))
    return Finding(c.id, Status.MET, "no active substance-use disorder documented")


def chronicity(ev: Evaluation, c: Criterion) -> Finding:
    months = int(c.param("months", 3))
    pain = [e for e in ev.record.condition_events(codes.INDICATION_PAIN) if e.start is None or e.start <= ev.order_date]
    if not pain:
        if any(e.active for e in ev.record.condition_events(codes.INDICATION_NEUROMUSCULAR)):
            return Finding(c.id, Status.NOT_APPLICABLE, "the indication is spasm or atrophy, not pain")
        return Finding(c.id, Status.NOT_MET, "no pain diagnosis documented, so its duration cannot be shown")
    dated = [e for e in pain if e.start is not None]
    if not dated:
        return Finding(c.id, Status.UNKNOWN, "pain diagnoses have no onset or recorded date", _evidence(pain))
    first = min(dated, key=lambda e: e.start)
    cutoff = months_before(ev.order_date, months)
    if first.start <= cutoff:
        return Finding(
            c.id,
            Status.MET,
            f"pain documented since {first.start.isoformat()} (>= {months} months)",
            _evidence([first]),
        )
    return Finding(
        c.id,
        Status.NOT_MET,
        f"pain first documented {first.start.isoformat()}, less than {months} months before the order",
        _evidence([first]),
    )


def indication_group(record: PatientRecord, order_date: date) -> str:
    """Which coverage stance applies: "neuromuscular" when spasm or atrophy is the only indication, else "pain"."""

    def active(vs: codes.ValueSet) -> bool:
        return any(e.active and (e.start is None or e.start <= order_date) for e in record.condition_events(vs))

    return "neuromuscular" if active(codes.INDICATION_NEUROMUSCULAR) and not active(codes.INDICATION_PAIN) else "pain"
