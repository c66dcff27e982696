"""Conservative-therapy criteria: physical therapy in the lookback window, medication classes tried."""

from __future__ import annotations

from datetime import date

from cds import codes
from cds.records import Event
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import months_before, weeks
from cds.rules.findings import Evidence, Finding, Status


def lookback(c: Criterion, default: int | None) -> int | None:
    """The criterion's window in months; None where the policy states none (``no_window``: any dated record before
    the order counts, rather than a window the payer never wrote) or the criterion has none by default."""
    months = None if c.param("no_window") else c.param("lookback_months", default)
    return None if months is None else int(months)


def _in_last(months: int | None) -> str:
    return f" in the last {months} months" if months is not None else " documented"


def _within(months: int | None) -> str:
    return f" within {months} months" if months is not None else ""


def physical_therapy(ev: Evaluation, c: Criterion) -> Finding:
    months = lookback(c, 12)
    min_weeks = c.param("min_weeks")
    found = ev.window(ev.record.procedure_events(codes.PHYSICAL_THERAPY), months)
    window = found.recent
    if not window:
        if found.dated and months is not None:
            last = found.last(found.dated)
            return Finding(
                c.id,
                Status.NOT_MET,
                f"no physical therapy in the last {months} months (last on {last.start.isoformat()})",
                (Evidence(last.reference, last.start),),
            )
        if found.undated:
            return Finding(
                c.id,
                Status.UNKNOWN,
                "physical therapy is documented without dates",
                tuple(Evidence(e.reference) for e in found.undated),
            )
        return Finding(c.id, Status.NOT_MET, f"no physical therapy{_in_last(months)}")
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


def _course(e: Event) -> str:
    """'gabapentin 300 mg (gabapentinoids) from 2025-11-01, ongoing' in words."""
    what = f"{e.display or e.code} ({codes.MEDICATION_CLASSES[e.kind].title.lower()})"
    if e.start is None:
        return what + (", ongoing" if e.ongoing else ", undated")
    if e.end and e.end != e.start:
        return f"{what} {e.start.isoformat()} to {e.end.isoformat()}"
    if e.ongoing:
        return f"{what} from {e.start.isoformat()}, ongoing"
    return f"{what} on {e.start.isoformat()}"


def medication_trial(ev: Evaluation, c: Criterion) -> Finding:
    """Qualifying drug classes tried within the lookback (default 24 months, none with ``no_window``); an
    ongoing prescription counts.

    Where a course has a recorded end (or is ongoing) and the policy sets ``min_weeks``, shorter courses do not
    count. The reason names the drugs, their classes and dates.
    """
    classes = tuple(c.param("classes", ()))
    needed = int(c.param("min_classes", 1))
    months = lookback(c, 24)
    min_weeks = c.param("min_weeks")
    since = months_before(ev.order_date, months) if months is not None else None
    counted: list[Event] = []
    old: list[Event] = []
    short: list[Event] = []
    undated: list[Event] = []
    for e in ev.record.medication_events():
        if e.kind not in classes or (e.start is not None and e.start > ev.order_date):
            continue
        ongoing = e.ongoing and (e.end is None or e.end >= ev.order_date)  # "active" with a past end is over
        last = ev.order_date if ongoing else (e.end or e.start)
        if last is None:
            undated.append(e)
        elif since is not None and last < since:
            old.append(e)
        elif (
            min_weeks is not None
            and e.start is not None
            and (ongoing or e.end)
            and ((last - e.start).days < int(min_weeks) * 7)
        ):
            short.append(e)
        else:
            counted.append(e)
    distinct = sorted({e.kind for e in counted})
    evidence = _cited(counted)
    courses = "; ".join(_course(e) for e in sorted(counted, key=lambda e: (e.start is None, e.start))[:4])
    if len(distinct) >= needed:
        return Finding(c.id, Status.MET, f"tried{_within(months)}: {courses}", evidence)
    notes = tuple(f"Older than {months} months, not counted: {_course(e)}" for e in old[:3])
    notes += tuple(f"Shorter than {min_weeks} weeks, not counted: {_course(e)}" for e in short[:3])
    if distinct:
        return Finding(
            c.id,
            Status.NOT_MET,
            f"{len(distinct)} medication class(es) tried{_within(months)} ({courses}); {needed} needed",
            evidence,
            notes,
        )
    if undated:
        return Finding(
            c.id,
            Status.UNKNOWN,
            "qualifying medication documented without dates: " + "; ".join(_course(e) for e in undated[:3]),
            tuple(Evidence(e.reference) for e in undated[: _CITED_PER_CLASS * len(classes)]),
            notes,
        )
    wanted = ", ".join(codes.MEDICATION_CLASSES[k].title.lower() for k in classes)
    return Finding(
        c.id,
        Status.NOT_MET,
        f"no trial of a qualifying medication{_in_last(months)} ({wanted})",
        _cited(old + short),
        notes,
    )


_CITED_PER_CLASS = 3


def _cited(events: list[Event]) -> tuple[Evidence, ...]:
    """The newest few courses of each class as evidence, in the record's order: a record of 20,000 prescriptions
    cited each one on every order (a megabyte answer, seconds of CPU), and the card names four at most."""
    newest: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: (e.start is not None, e.start or date.min), reverse=True):
        kept = newest.setdefault(e.kind, [])
        if len(kept) < _CITED_PER_CLASS:
            kept.append(e)
    chosen = {id(e) for kept in newest.values() for e in kept}
    return tuple(Evidence(e.reference, e.start, _course(e)) for e in events if id(e) in chosen)
