"""Calendar arithmetic the criteria share (months, not 30-day blocks: "3 months before" is a calendar idea)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier, clamped to the month's end (31 May - 3 = 28/29 Feb)."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    if year < date.min.year:  # before year 1: every event is after it
        return date.min
    if day.day <= 28:  # a day every month has (most days): nothing to clamp
        return date(year, month, day.day)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def shifted(day: date, days: int) -> date:
    """``day`` moved by ``days``, held at the calendar's ends: a record or request dated 9999-12-31 (or year 1) is
    read, not a crash."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def with_leeway(day: date) -> date:
    """The last day a record entry may carry as of ``day``: one more, for time zones (an EHR's local date may run
    ahead of UTC's)."""
    return shifted(day, 1)


def weeks(days: int) -> str:
    whole, rest = divmod(days, 7)
    return f"{whole} week{'s' if whole != 1 else ''}" + (f" {rest} day{'s' if rest != 1 else ''}" if rest else "")
