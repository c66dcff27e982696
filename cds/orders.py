"""The draft orders: which are ours (ServiceRequests for CPT 64580; every other draft order is left alone), and the
typed view of each that the rules read (its id, dates, surgeons' references, CPT modifiers, coverage)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from cds import codes, fhirview
from cds.codes import THIS_PROCEDURE, codings
from cds.fhirvalues import (
    array,
    as_date,
    as_end_date,
    codings_of,
    is_partial_date,
    json_copy,
    sites_of,
    text_of,
    unnamed_id,
    unnamed_labels,
)
from cds.fhirview import PractitionerRole

# CRD ext-billing-options on ServiceRequest.code: the billing codes of an order coded clinically (SNOMED, local).
# "CRD servers SHALL consider any codes provided" (billopt-3), so a CPT 64580 there makes the order ours.
BILLING_OPTIONS = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"


def in_scope(draft_orders: Iterable[dict]) -> list[dict]:
    """The draft ServiceRequests whose code, or a CRD billing option of it, carries CPT 64580, in the order the EHR
    sent them."""
    return [
        r
        for r in draft_orders
        if r.get("resourceType") == "ServiceRequest" and THIS_PROCEDURE.match_codings(order_codings(r.get("code")))
    ]


def order_codings(code: object) -> list[tuple[str | None, str | None]]:
    """The (system, code) pairs of ServiceRequest.code and of its ext-billing-options values."""
    found = codings(code)
    extensions = code.get("extension") if isinstance(code, dict) else None
    for extension in extensions if isinstance(extensions, list) else ():
        if isinstance(extension, dict) and extension.get("url") == BILLING_OPTIONS:
            found += codings(extension.get("valueCodeableConcept"))
    return found


@dataclass(frozen=True)
class Order:
    """A draft CPT 64580 ServiceRequest: its id, date, surgeons' references and CPT modifiers."""

    id: str
    resource: dict
    authored: date | None
    performers: tuple[str, ...]
    modifiers: frozenset[str]
    insurance: tuple[str, ...]
    occurrence: date | None = None  # the planned day of surgery, when the order says
    occurrence_partial: str | None = None  # "2027-01" or "2027": the order names the surgery's month or year only
    occurrence_unread: bool = False  # the order has an occurrence[x] that names no day this service can read
    # the last day of the window (occurrencePeriod) the order plans the surgery in; ``occurrence`` is its first,
    # None when the window gives only its end
    occurrence_until: date | None = None
    sites: frozenset[tuple[str, str]] = frozenset()  # bodySite codings (system, code)
    site_text: str = ""  # bodySite text and displays, for laterality written in words
    reasons: frozenset[tuple[str, str]] = frozenset()  # reasonCode codings (system, code), canonical
    # PractitionerRoles contained in the order, by their local reference ("#r1"): a performer "#r1" is one of them
    contained_roles: tuple[tuple[str, PractitionerRole], ...] = ()

    @property
    def reference(self) -> str:
        return f"ServiceRequest/{self.id}"

    @property
    def window(self) -> str:
        """The window for the surgery in words ("between 2025-12-20 and 2026-01-10", "by 2026-01-10"), or ""."""
        if self.occurrence_until is None:
            return ""
        first = f"between {self.occurrence.isoformat()} and " if self.occurrence else "by "
        return first + self.occurrence_until.isoformat()

    @cached_property
    def contained_index(self) -> tuple[dict[str, PractitionerRole], dict[str, PractitionerRole]]:
        """The contained roles by their local reference, and the first by its practitioner's: made once, since an
        order may name thousands of performers against thousands of contained roles (a scan each was quadratic)."""
        by_reference = dict(self.contained_roles)
        by_practitioner: dict[str, PractitionerRole] = {}
        for role in by_reference.values():
            if role.practitioner and role.practitioner.reference:
                by_practitioner.setdefault(role.practitioner.reference, role)
        return by_reference, by_practitioner

    def editable(self) -> dict:
        """A copy of the draft resource for an update action to change (parsed JSON: dicts, lists and scalars,
        so a copy of the containers is a deep copy, without ``copy.deepcopy``'s memo and dispatch)."""
        return json_copy(self.resource)

    @property
    def service_date(self) -> date | None:
        """The day the procedure is expected: the planned occurrence, else the day it was ordered."""
        return self.occurrence or self.authored


def orders_from(drafts: Iterable[dict]) -> list[Order]:
    """The typed views of draft orders. Orders sent without an id are told apart by :func:`unnamed_id` (two were
    one order "unknown", and the second was never answered); one sent twice, equal in every element, keeps one."""
    drafts = list(drafts)
    labels: Iterator[str] | None = None  # made for the first order without an id (rare)
    found: list[Order] = []
    unnamed: list[tuple[dict, str]] = []
    for draft in drafts:
        if draft.get("id") not in (None, ""):
            found.append(order_from(draft))
            continue
        label = next((label for seen, label in unnamed if seen == draft), None)
        if label is None:
            labels = labels or unnamed_labels({str(d["id"]) for d in drafts if d.get("id") not in (None, "")})
            label = next(labels)
            unnamed.append((draft, label))
        found.append(order_from(draft, label))
    return found


def order_from(resource: dict, label: str | None = None) -> Order:
    """The typed view of a draft order; tolerant of the same messiness as the record. Without an id it goes by
    ``label`` (see :func:`orders_from`)."""
    model = _read("ServiceRequest", resource, None)
    contained = {
        f"#{c['id']}": c
        for c in array(resource.get("contained"))
        if isinstance(c, dict) and isinstance(c.get("id"), str)
    }
    # lists, not generators, throughout: a generator is resumed from C for every item, a list made in one frame
    performers = [
        _typed_local(r.get("reference"), contained) for r in array(resource.get("performer")) if isinstance(r, dict)
    ]
    roles = [(ref, c) for ref, c in contained.items() if c.get("resourceType") == "PractitionerRole"]
    contained_roles = tuple([(ref, view) for ref, c in roles if (view := _read("PractitionerRole", c, None))])
    modifiers = set()
    for detail in array(resource.get("orderDetail")):
        for system, code in codes.codings(detail):
            system, code = codes.canonical(system, code)
            if system in (codes.CPT, codes.HCPCS) and code:
                modifiers.add(code.upper())
    insurance = [r.get("reference") for r in array(resource.get("insurance")) if isinstance(r, dict)]
    occurrence, partial, until = None, None, None
    if model is not None:
        when = [model.occurrenceDateTime, model.occurrencePeriod.start if model.occurrencePeriod else None]
        occurrence = _day(when[0]) or _day(when[1]) or _timing_start(model.occurrenceTiming)
        partial = None if occurrence else next((w for w in when if is_partial_date(w)), None)
        if _day(when[0]) is None:
            until = _window_end(model.occurrencePeriod, model.occurrenceTiming)
            until = until if until is not None and (occurrence is None or until > occurrence) else None  # FHIR per-1
    given = any([resource.get(element) is not None for element in _OCCURRENCE])
    return Order(
        id=(label or unnamed_id(1)) if resource.get("id") in (None, "") else str(resource["id"]),
        resource=resource,
        authored=as_date(model.authoredOn) if model else None,
        occurrence=occurrence,
        occurrence_partial=partial,
        occurrence_unread=given and occurrence is None and partial is None,
        occurrence_until=until,
        sites=sites_of(model.bodySite) if model else frozenset(),
        site_text=" ".join([text_of(c) for c in (model.bodySite or ())]) if model else "",
        reasons=frozenset(
            [codes.canonical(sy, co) for c in (model.reasonCode or () if model else ()) for sy, co in codings_of(c)]
        ),
        performers=tuple([p for p in performers if isinstance(p, str)]),
        modifiers=frozenset(modifiers),
        insurance=tuple([i for i in insurance if isinstance(i, str)]),
        contained_roles=contained_roles,
    )


_OCCURRENCE = ("occurrenceDateTime", "occurrencePeriod", "occurrenceTiming")  # ServiceRequest.occurrence[x]


def _window_end(period: fhirview.Period | None, timing: fhirview.Timing | None) -> date | None:
    """The last day of the window an order plans the surgery in: its occurrencePeriod's end, or the end of a
    Timing's bounds when the Timing names no event; a month or a year ("2026-01") ends on its last day."""
    if period is None and timing is not None and not [e for e in timing.event if _day(e)]:
        period = timing.boundsPeriod
    end = period.end if period is not None else None
    return _day(end) or (as_end_date(end) if is_partial_date(end) else None)


def _typed_local(reference: object, contained: dict[str, dict]) -> object:
    """``#r1`` as ``PractitionerRole/#r1`` when the order contains r1 as one: its type decides whether it is a
    surgeon, and the ``#`` keeps it apart from any PractitionerRole/r1 of the record (ids never hold one)."""
    if isinstance(reference, str) and reference in contained:
        kind = contained[reference].get("resourceType")
        return f"{kind}/{reference}" if isinstance(kind, str) else reference
    return reference


def _timing_start(timing: fhirview.Timing | None) -> date | None:
    """The first day a Timing names: its earliest readable event, else the start of its repeats' bounds."""
    if timing is None:
        return None
    days = [day for day in map(_day, timing.event) if day is not None]
    if days:
        return min(days)
    return _day(timing.boundsPeriod.start) if timing.boundsPeriod else None


def _day(value: str | None) -> date | None:
    """A planned day of surgery: a date or dateTime that names a day. "2027-01" means some day in January (FHIR's
    partial dates), so it names none: read as the 1st, it dated coverage and policy checks by a day never given."""
    return as_date(value) if isinstance(value, str) and value[7:8] == "-" else None


def _read(rtype: str, resource: dict, patient_id: str | None):
    """The view of one resource; None (counted as unreadable) only if reading it fails outright."""
    try:
        return fhirview.build(rtype, resource, patient_id)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def updated_order_ids(actions: Iterable[dict]) -> Iterator[str]:
    """The order id of each update action of an answer, as the answer's cards name it: an order sent without an id
    (its update carries none) by its label, in the order answered."""
    unnamed = 0
    for action in actions:
        resource = action.get("resource") if isinstance(action, dict) else None
        ident = resource.get("id") if isinstance(resource, dict) else None
        if ident in (None, ""):
            unnamed += 1
            ident = unnamed_id(unnamed)
        yield str(ident)
