"""Conservative-therapy criteria: physical therapy in the lookback window, medication classes tried."""

from __future__ import annotations

from cds import codes
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import weeks
from cds.rules.findings import Evidence, Finding, Status


def physical_therapy(ev: Evaluation, c: Criterion) -> Finding:
    lookback = int(c.param("lookback_months", 12))
    min_weeks = c.param("min_weeks")
    found = ev.window(ev.record.procedure_events(codes.PHYSICAL_THERAPY), lookback)
    window = found.recent
    if not window:
        if found.dated:
            last = found.last(found.dated)
            return Finding(
                c.id,
                Status.NOT_MET,
                f"no physical therapy in the last {lookback} months (last on {last.start.isoformat()})",
                (Evidence(last.reference, last.start),),
            )
        if found.undated:
            return Finding(
                c.id,
                Status.UNKNOWN,
                "physical therapy is documented without dates",
                tuple(Evidence(e.reference) for e in found.undated),
            )
        return Finding(c.id, Status.NOT_MET, f"no physical therapy in the last {lookback} months")
    first = min(e.start for e in window)
    last = max(e.end or e.start for e in window)
    span = (last - first).days
    evidence = tuple(Evidence(e.reference, e.start, f"CPT/SNOMED {e.code}") for e in window)
    described = f"{len(window)} physical-therapy record(s) from {first.isoformat()} to {last.isoformat()}"
    if min_weeks is not None and span < int(min_weeks) * 7:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"physical therapy spans {weeks(span)}; the policy asks for at least {min_weeks} weeks",
            evidence,
        )
    return Finding(c.id, Status.MET, described, evidence)


def medication_trial(ev: Evaluation, c: Criterion) -> Finding:
    classes = tuple(c.param("classes", ()))
    needed = int(c.param("min_classes", 1))
    tried = [
        e for e in ev.record.medication_events() if e.kind in classes and (e.start is None or e.start <= ev.order_date)
    ]
    distinct = sorted({e.kind for e in tried})
    evidence = tuple(Evidence(e.reference, e.start, f"{e.kind} by {e.code}") for e in tried)
    names = ", ".join(codes.MEDICATION_CLASSES[k].title.lower() for k in distinct)
    if len(distinct) >= needed:
        return Finding(c.id, Status.MET, f"tried: {names}", evidence)
    wanted = ", ".join(codes.MEDICATION_CLASSES[k].title.lower() for k in classes)
    if distinct:
        return Finding(
            c.id, Status.NOT_MET, f"{len(distinct)} medication class(es) tried ({names}); {needed} needed", evidence
        )
    return Finding(c.id, Status.NOT_MET, f"no trial of a qualifying medication documented ({wanted})")
