"""Payer routing: which Coverage applies to the order, whose payer it is, and which policy plan serves it.

Coverage: the order's ``insurance`` when set, else the single active Coverage in the record (several active ones
are told apart only by ``Coverage.order``). Payer: the payor Organization (contained, prefetched or fetched) or
the payor's display. Plan: the highest-priority matching rule across all plans, by identifier, name and
Coverage.type. Nothing here falls back silently: every way routing can fail has its own outcome, and the caller
shows it on a card and in the coverage information.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from cds.fhirvalues import as_date, as_end_date, ref_id
from cds.orders import Order
from cds.policies import MatchRule, Plan, PolicySet, Version
from cds.records import PatientRecord
from cds.rules.context import service_day, surgery_day
from cds.rules.dates import shifted, with_leeway

MATCHED = "matched"
UNRECOGNISED = "unrecognised"  # a payer we have no policy for
NO_COVERAGE = "no-coverage"  # no Coverage at all
NO_ACTIVE_COVERAGE = "no-active-coverage"  # Coverage exists, none active
AMBIGUOUS = "ambiguous"  # several active coverages and the order names none
NOT_IN_FORCE = "not-in-force"  # the payer's policy has no version in force on the date
TECHNICAL = "technical"  # the Coverage could not be read in time

SOPT_ALIASES = {
    "urn:oid:2.16.840.1.113883.3.221.5": "https://nahdo.org/sopt",
    "http://nahdo.org/sopt": "https://nahdo.org/sopt",
}


class Route(NamedTuple):
    """Which Coverage, payer and policy version apply to an order (made once an order)."""

    outcome: str
    plan: Plan  # the plan whose criteria are evaluated (the default plan unless matched)
    version: Version
    coverage_ref: str | None = None
    payer_name: str | None = None
    why: str | None = None  # why this plan, when a name rule with a reason decided it
    unread_payor: str | None = None  # "Organization/x": named by the Coverage, but in neither prefetch nor fetch
    inactive: str | None = None  # why the order's Coverage is not in force ("Coverage/c1 ended on 2001-12-31")
    not_on_surgery_day: bool = False  # in force today, but not on the day the order schedules the surgery
    # the day whose policy version applies (rules.context.service_day; LCD L34328: "for services performed on or
    # after"): the day of surgery when the order schedules one, else the day of the evaluation
    policy_day: date | None = None

    @property
    def unknown_because(self) -> str | None:
        """Why the payer could not be known, when the record lacks what would have told us."""
        if self.outcome != UNRECOGNISED or self.payer_name or not self.unread_payor:
            return None
        return f"the Coverage names {self.unread_payor}, which was neither prefetched nor readable"

    @property
    def matched(self) -> bool:
        return self.outcome == MATCHED


def route(record: PatientRecord, order: Order, policies: PolicySet, as_of: date, coverage_late: bool = False) -> Route:
    day = service_day(order, as_of)
    default = policies.default
    fallback = default.version_at(day) or default.current()
    if coverage_late:
        return Route(TECHNICAL, default, fallback, policy_day=day)

    coverage, outcome, inactive, later = _coverage(record, order, as_of)
    if coverage is None:
        return Route(outcome, default, fallback, inactive=inactive, not_on_surgery_day=later, policy_day=day)
    coverage_ref = f"Coverage/{coverage.id}" if coverage.id else None
    organization = record.payor_organization(coverage)
    name = (organization.name if organization else None) or _payor_display(coverage)
    identifiers = (
        {(i.system, i.value) for i in (organization.identifier or ()) if i.system and i.value}
        if organization
        else set()
    )
    types = [(SOPT_ALIASES.get(s or "", s), c) for s, c in _codings(coverage.type)]
    plan_names = [c.name for c in coverage.class_fhir or () if c.name]
    names = [n for n in (name, *plan_names) if n]

    # the highest priority that matches decides; two plans matching at it are a tie (never a guess)
    best: tuple[int, Plan, MatchRule] | None = None
    tied = False
    for priority, plan, rule in policies.by_priority:
        if best is not None and priority < best[0]:
            break
        if not _matches(rule, names, identifiers, types):
            continue
        if best is None:
            best = (priority, plan, rule)
        elif best[1].id != plan.id:
            tied = True
    if best is None or tied:
        unread = None if organization else _payor_reference(coverage)
        return Route(UNRECOGNISED, default, fallback, coverage_ref, name, unread_payor=unread, policy_day=day)
    _priority, plan, rule = best
    version = plan.version_at(day)
    if version is None:
        return Route(NOT_IN_FORCE, default, fallback, coverage_ref, name or plan.payer, policy_day=day)
    return Route(MATCHED, plan, version, coverage_ref, name or plan.payer, _why(rule, names, types), policy_day=day)


def later_in_window(route: Route, order: Order, as_of: date) -> Version | None:
    """The version of the route's policy in force on the last day of the window the order plans the surgery in
    (occurrencePeriod), when that is another than the one applied: a surgery late in the window falls under it."""
    until = order.occurrence_until
    if until is None or until < as_of or not route.matched:
        return None
    later = route.plan.version_at(until)
    return later if later is not None and later is not route.version else None


def _why(rule, names: list[str], types: list) -> str | None:
    """ "the plan name “Aetna Medicare Premier (PPO)” is a Medicare Advantage plan name (no Coverage.type says otherwise)"."""
    if not rule.because or rule.name is None:
        return None
    matched = next(n for n in names if rule.name.search(n))
    typed = "" if types else "; the Coverage has no type"
    return f"the name \u201c{matched}\u201d is {rule.because}{typed}"


def _coverage(record: PatientRecord, order: Order, as_of: date):
    """(the Coverage, the outcome, why the order's own Coverage is not in force, whether it is in force today but
    not on the day of surgery). A Coverage must be in force on the day of surgery when the order schedules one
    (a plan that ends before it pays nothing; one that begins by then is the one that pays), else on the day of
    the evaluation. A scheduled day already past (by more than a day: rules.context.surgery_day) is stale: the
    evaluation day is used."""
    surgery = surgery_day(order, as_of)

    def inactive(c) -> str | None:
        return _inactive(c, as_of, surgery)

    def later(c) -> bool:
        return surgery is not None and _inactive(c, as_of) is None

    for ref in order.insurance:
        found = record.coverage(ref_id(ref))
        if found is not None:
            why = inactive(found)
            return (found, MATCHED, None, False) if why is None else (None, NO_ACTIVE_COVERAGE, why, later(found))
    active = [c for c in record.coverages if inactive(c) is None]
    if len(active) == 1:
        return active[0], MATCHED, None, False
    if len(active) > 1:
        ranked = sorted(c.order for c in active if c.order is not None)
        if ranked and ranked.count(ranked[0]) == 1:
            return next(c for c in active if c.order == ranked[0]), MATCHED, None, False
        return None, AMBIGUOUS, None, False
    if len(record.coverages) == 1:
        only = record.coverages[0]
        return None, NO_ACTIVE_COVERAGE, inactive(only), later(only)
    return None, NO_ACTIVE_COVERAGE if record.coverages else NO_COVERAGE, None, False


def _inactive(coverage, today: date, surgery: date | None = None) -> str | None:
    """Why ``coverage`` is not in force (its status, or a period that ended or has not begun), or None: on the day
    of ``surgery`` when there is one (both calendar dates of the EHR's: compared exactly), else ``today`` with a
    day's leeway either side for time zones. A period date that is not a date is not read as one; a partial end
    ("2026-06") runs to the last day it names."""
    name = f"Coverage/{coverage.id}" if coverage.id else "the Coverage"
    if coverage.status != "active":
        return f"{name} has status {coverage.status}" if coverage.status else f"{name} has no status"
    period = coverage.period
    start, end = (as_date(period.start), as_end_date(period.end)) if period else (None, None)
    if end is not None and end < shifted(today, -1):
        return f"{name} ended on {end.isoformat()}"
    if surgery is not None:
        planned = f"the surgery planned on {surgery.isoformat()}"
        if end is not None and end < surgery:
            return f"{name} ends on {end.isoformat()}, before {planned}"
        if start is not None and start > surgery:
            return f"{name} begins on {start.isoformat()}, after {planned}"
        return None
    if start is not None and start > with_leeway(today):
        return f"{name} begins on {start.isoformat()}"
    return None


def _payor_reference(coverage) -> str | None:
    for payor in coverage.payor or ():
        kind, _, ident = (payor.reference or "").rpartition("/")
        if kind.rsplit("/", 1)[-1] == "Organization" and ident:
            return f"Organization/{ident}"
    return None


def _payor_display(coverage) -> str | None:
    return next((p.display for p in coverage.payor or () if p.display), None)


def _codings(concept):
    if concept is not None:
        for coding in concept.coding or ():
            yield coding.system, coding.code


def _matches(rule, names: list[str], identifiers: set, types: list) -> bool:
    if rule.identifier is not None and rule.identifier not in identifiers:
        return False
    if rule.coverage_type is not None and not _typed(rule.coverage_type, types):
        return False
    if rule.name is not None and not any(rule.name.search(n) for n in names):
        return False
    if rule.coverage_type_if_any:
        # Only a type in the rule's own system can say otherwise (another system's code is no answer).
        systems = {system for system, _code, _prefix in rule.coverage_type_if_any}
        relevant = [(s, c) for s, c in types if s in systems]
        return not relevant or any(_typed(wanted, relevant) for wanted in rule.coverage_type_if_any)
    return True


def _typed(wanted: tuple[str, str, bool], types: list) -> bool:
    system, code, prefix = wanted
    return any(s == system and c and (c.startswith(code) if prefix else c == code) for s, c in types)
