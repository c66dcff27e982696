"""What FHIR values mean when read from JSON or from a typed view (:mod:`cds.fhirview`): dates, instants, references,
ids, arrays and CodeableConcepts. Every reader here tolerates what real EHRs send: a value of the wrong type is no
value, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta


def as_date(value: object) -> date | None:
    """A FHIR date/dateTime as a date; partial dates ("2025", "2025-03") become the first day they cover."""
    if not isinstance(value, str):  # the record's text is checked first: nearly every value is one
        if isinstance(value, datetime):
            return value.date()
        return value if isinstance(value, date) else None
    if value[4:5] == "-" and value[7:8] == "-":
        try:  # the usual full date, parsed in C
            return date.fromisoformat(value[:10])
        except ValueError:
            pass  # a looser form ("2025-3-1") or no date at all: read below
    if value[:4].isdigit():
        parts = value[:10].split("-")
        try:
            return date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1)
        except (ValueError, IndexError, OverflowError):  # "9999999999" overflows a C int
            return None
    return None


_PARTIAL_DATE = re.compile(r"[0-9]{4}(-[0-9]{2})?")


def is_partial_date(value: object) -> bool:
    """A FHIR date of a year or a month ("2026", "2026-07"): some day in it, not its first."""
    return isinstance(value, str) and _PARTIAL_DATE.fullmatch(value) is not None


def as_end_date(value: object) -> date | None:
    """A FHIR date/dateTime that ends a period as a date: a partial date ("2026", "2026-06") is the last day it
    covers, so a Coverage whose ``period.end`` is "2026" is in force through 31 December, not ended on 1 January."""
    day = as_date(value)
    if day is None or not is_partial_date(value):
        return day  # a full date, or a loosely written one ("2026-6-1"): the day it names
    if len(value) == 4 or day.month == 12:
        return date(day.year, 12, 31)
    return date(day.year, day.month + 1, 1) - timedelta(days=1)


EARLIEST = datetime.min.replace(tzinfo=UTC)


_LATEST = datetime.max.replace(tzinfo=UTC)


def instant(value: object) -> datetime | None:
    """A FHIR instant/dateTime as an aware UTC datetime, to order stamps written with different offsets; a date
    alone (or a time without an offset) is read as UTC, a partial date as the first moment it covers."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        if value[16:19] == ":60":  # a leap second ("23:59:60Z"): Python has none; its second before, not midnight
            return instant(value[:17] + "59" + value[19:])
        day = as_date(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # at the calendar's ends ("0001-01-01T00:00:00+01:00"): held there
        return EARLIEST if (moment.utcoffset() or timedelta()) > timedelta() else _LATEST


def unnamed_id(n: int) -> str:
    """The label of the ``n``-th resource of a kind sent without an id. Every such entry was cited as
    "Procedure/None", and medications were told apart by that reference, so two id-less prescriptions read as
    one drug. Parentheses and spaces are never in a FHIR id: the label cannot name a real resource."""
    return f"(no id #{n})"


_UNNAMED = re.compile(r"\(no id #[0-9]+\)")


def unnamed_labels(taken: set[str]) -> Iterator[str]:
    """Labels for entries without an id, skipping any a sender used as an id in the same call."""
    n = 0
    while True:
        n += 1
        if unnamed_id(n) not in taken:
            yield unnamed_id(n)


def unnamed(ident: str) -> bool:
    """Whether ``ident`` is a label this service gave an entry sent without an id."""
    return bool(_UNNAMED.fullmatch(ident))


def json_copy(value):
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value  # str, int, float, bool, None: immutable


def array(value: object) -> list:
    """A FHIR array as sent, or nothing when the sender put something else there."""
    return value if isinstance(value, list) else []


def codings_of(concept) -> list[tuple[str | None, str | None]]:
    """(system, code) of each coding of a typed CodeableConcept: a list made at once, not a generator resumed per
    coding (every Condition, Procedure and Observation of a call is read through here)."""
    return [(c.system, c.code) for c in concept.coding] if concept is not None else []


def text_of(concept) -> str:
    if concept is None:
        return ""
    return " ".join([p for p in (concept.text, *[c.display for c in concept.coding]) if p])


def sites_of(concepts) -> frozenset[tuple[str, str]]:
    if not concepts:  # most events have no bodySite
        return frozenset()
    return frozenset([(s, c) for concept in concepts for s, c in codings_of(concept) if s and c])


def split_reference(reference: str) -> tuple[str, str]:
    """(type, id) of a reference, relative or absolute; a versioned one (``Patient/x/_history/2``) names ``x``."""
    if "/_history/" in reference:  # rare: every reference of every call passes here
        reference = reference.split("/_history/")[0]
    parts = reference.rstrip("/").split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 2 else ("", reference)


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value: object) -> bool:
    """A FHIR id (R4 ``id`` datatype); "." and ".." match its pattern but are path steps, never ids."""
    return isinstance(value, str) and bool(_FHIR_ID.fullmatch(value)) and value not in (".", "..")


def as_reference(reference: str) -> dict:
    """A FHIR Reference to evidence the rules cite: an entry the record sent without an id is named, since a
    reference to it would resolve to nothing (or, worse, to another resource)."""
    kind, _, ident = reference.partition("/")
    return {"type": kind, "display": f"{kind} {ident}"} if unnamed(ident) else {"reference": reference}


def referenced_id(value: dict) -> str:
    """The id :func:`as_reference` made ``value`` from: the reference's last step, or the label it names."""
    reference, display = value.get("reference"), value.get("display")
    if isinstance(reference, str):
        return reference.split("/")[-1]
    return display.partition(" ")[2] if isinstance(display, str) else ""


def ref_id(reference: str | None) -> str:
    return split_reference(reference)[1] if reference else ""
