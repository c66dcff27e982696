"""What every criterion is evaluated against: the record, one 64580 order, the policy and the "as of" date."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from cds.orders import Order
from cds.records import Event, PatientRecord
from cds.rules.dates import months_before, shifted, with_leeway
from cds.rules.params import Criterion, RuleSet
from cds.rules.pathways import Pathway


class Window(NamedTuple):
    """Events sorted by when they happened relative to the order: every criterion with a lookback needs this (a
    named tuple: made several times a call, without a frozen dataclass's setattr per field)."""

    dated: list[Event]  # dated on or before the order
    recent: list[Event]  # of those, within the lookback (all of them when there is none)
    undated: list[Event]

    def last(self, events: list[Event]) -> Event:
        return max(events, key=lambda e: e.start)


def order_day(order: Order, as_of: date) -> date:
    """The day the order is placed: its authoredOn when it has one, else the evaluation date. Never after the
    evaluation date (a day's leeway for time zones): a replay as of a past date must not count the record's later
    entries because the order says it was written after them."""
    if order.authored is None:
        return as_of
    return min(order.authored, with_leeway(as_of))


def surgery_day(order: Order, as_of: date) -> date | None:
    """The day the order schedules the surgery, unless it is already past (a stale date: the evaluation day stands
    in for it). Past by more than a day: the day is the EHR's calendar date, the evaluation day UTC's, and west of
    Greenwich an evening's surgery is still today in the EHR when UTC's date has moved on."""
    return order.occurrence if order.occurrence is not None and order.occurrence >= shifted(as_of, -1) else None


def service_day(order: Order, as_of: date) -> date:
    """The day whose payer rules apply, a policy's version as the fee schedule's release: the scheduled day of
    surgery, else the evaluation date (payers and CMS judge a service by what is in force on its date)."""
    return surgery_day(order, as_of) or as_of


class Evaluation(NamedTuple):
    """What a criterion is judged against, made once a call (twice when the record leaves events unsettled) with its
    two dates worked out then, since every criterion reads them. Make one with :meth:`of`: the dates follow
    ``order`` and ``as_of`` only there (``_replace`` of either would keep the old dates; of ``record``, it is safe)."""

    record: PatientRecord
    order: Order
    ruleset: RuleSet
    as_of: date
    pathway: Pathway
    order_date: date  # order_day(order, as_of)
    service_date: date  # service_day(order, as_of)

    @classmethod
    def of(cls, record: PatientRecord, order: Order, ruleset: RuleSet, as_of: date, pathway: Pathway) -> Evaluation:
        return cls(record, order, ruleset, as_of, pathway, order_day(order, as_of), service_day(order, as_of))

    def window(self, events: list[Event], lookback_months: int | None) -> Window:
        dated = [e for e in events if e.start is not None and e.start <= self.order_date]
        since = months_before(self.order_date, int(lookback_months)) if lookback_months is not None else None
        recent = [e for e in dated if since is None or e.start >= since]
        return Window(dated, recent, [e for e in events if e.start is None])


__all__ = ["Criterion", "Evaluation", "Window", "order_day", "service_day", "surgery_day"]
