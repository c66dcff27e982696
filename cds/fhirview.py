"""The typed view of the FHIR R4 elements the 64580 rules read, built straight from the JSON.

Validating a whole resource into a ``fhir.resources`` model costs ~0.5 ms; the rules read a dozen elements of it.
These named tuples (immutable like the frozen dataclasses they replace, which set each field through
``object.__setattr__``: 3% of a typical call's instructions) hold exactly those elements, with the names the FHIR
R4 specification (and the models) use, and every element is shape-checked as it is read: a value of the wrong JSON type is treated as absent, as
the model-based reader did after repairing it, so messy data is read the same way and never crashes a call.
What the view cannot tell (a code outside its value set, an impossible date) is left to the rules, which
already treat it as "not documented". ``fhir.resources`` stays where it adds safety: on what we emit and in
``strict`` mode (:func:`build` with ``strict=True``), which validates the same elements with the models too.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

# ---- data types -------------------------------------------------------------------------------------------

# Views are made as ``_new(View, (field, ...))``, every field given in order: calling ``View(...)`` runs the named
# tuple's ``__new__``, a Python function the interpreter enters from C (about twice the cost of the tuple itself),
# and a typical call makes some seventy views. tests/test_fhirview.py reads every field back by name.
_new = tuple.__new__


class Coding(NamedTuple):
    system: str | None
    code: str | None
    display: str | None


class CodeableConcept(NamedTuple):
    text: str | None
    coding: tuple[Coding, ...]


class Reference(NamedTuple):
    reference: str | None
    display: str | None


class Period(NamedTuple):
    start: str | None
    end: str | None


class Timing(NamedTuple):  # what the rules read of a Timing: when it occurs, not how often
    event: tuple[str, ...]  # the dateTimes it occurs on
    boundsPeriod: Period | None  # repeat.boundsPeriod: the span its repeats fall in


class Quantity(NamedTuple):
    value: float | None


class Identifier(NamedTuple):
    system: str | None
    value: str | None


class Performer(NamedTuple):  # Procedure.performer
    actor: Reference | None


class DispenseRequest(NamedTuple):  # MedicationRequest.dispenseRequest
    validityPeriod: Period | None


class CoverageClass(NamedTuple):  # Coverage.class
    name: str | None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


# The element readers below run for every coding and reference of every call: each checks a string inline, as
# :func:`_str` does, rather than calling it per element.


def coding(value: Any) -> Coding | None:
    if not isinstance(value, dict):
        return None
    system, code, display = value.get("system"), value.get("code"), value.get("display")
    return _new(
        Coding,
        (
            system if isinstance(system, str) else None,
            code if isinstance(code, str) else None,
            display if isinstance(display, str) else None,
        ),
    )


def concept(value: Any) -> CodeableConcept | None:
    if not isinstance(value, dict):
        return None
    found = value.get("coding")
    codings = tuple([coding(c) for c in found if isinstance(c, dict)]) if isinstance(found, list) else ()
    text = value.get("text")
    return _new(CodeableConcept, (text if isinstance(text, str) else None, codings))


def concepts(value: Any) -> tuple[CodeableConcept, ...]:
    return tuple([concept(c) for c in value if isinstance(c, dict)]) if isinstance(value, list) else ()


def reference(value: Any) -> Reference | None:
    if not isinstance(value, dict):
        return None
    ref, display = value.get("reference"), value.get("display")
    return _new(Reference, (ref if isinstance(ref, str) else None, display if isinstance(display, str) else None))


def period(value: Any) -> Period | None:
    if not isinstance(value, dict):
        return None
    start, end = value.get("start"), value.get("end")
    return _new(Period, (start if isinstance(start, str) else None, end if isinstance(end, str) else None))


def timing(value: Any) -> Timing | None:
    if not isinstance(value, dict):
        return None
    events = value.get("event")
    repeat = value.get("repeat")
    return _new(
        Timing,
        (
            tuple([e for e in events if isinstance(e, str)]) if isinstance(events, list) else (),
            period(repeat.get("boundsPeriod")) if isinstance(repeat, dict) else None,
        ),
    )


def _number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (a 400-digit integer overflows a float)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


_INT32 = range(-(2**31), 2**31)  # FHIR's integer is a signed 32-bit one


def _integer(value: Any) -> int | None:
    """A JSON integer in FHIR's range; None for anything else (a 400-digit integer is no FHIR integer)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in _INT32 else None


# ---- resources ----------------------------------------------------------------------------------------------


class Condition(NamedTuple):
    id: str | None
    subject: Reference | None
    code: CodeableConcept | None
    clinicalStatus: CodeableConcept | None
    verificationStatus: CodeableConcept | None
    onsetDateTime: str | None
    onsetPeriod: Period | None
    recordedDate: str | None
    abatementDateTime: str | None


class Procedure(NamedTuple):
    id: str | None
    subject: Reference | None
    status: str | None
    code: CodeableConcept | None
    performedDateTime: str | None
    performedPeriod: Period | None
    performer: tuple[Performer, ...]
    bodySite: tuple[CodeableConcept, ...]


class MedicationRequest(NamedTuple):
    id: str | None
    subject: Reference | None
    status: str | None
    intent: str | None
    authoredOn: str | None
    dispenseRequest: DispenseRequest | None


class MedicationStatement(NamedTuple):
    id: str | None
    subject: Reference | None
    status: str | None
    effectiveDateTime: str | None
    effectivePeriod: Period | None
    dateAsserted: str | None


class Observation(NamedTuple):
    id: str | None
    subject: Reference | None
    status: str | None
    code: CodeableConcept | None
    effectiveDateTime: str | None
    effectivePeriod: Period | None
    issued: str | None
    valueQuantity: Quantity | None
    valueInteger: int | None


class Organization(NamedTuple):
    id: str | None
    name: str | None
    identifier: tuple[Identifier, ...]


class Coverage(NamedTuple):
    id: str | None
    beneficiary: Reference | None
    status: str | None
    payor: tuple[Reference, ...]
    type: CodeableConcept | None
    class_fhir: tuple[CoverageClass, ...]  # Coverage.class (the models' name: "class" is a Python keyword)
    order: int | None
    contained: tuple[Organization, ...]  # the contained payor Organizations
    period: Period | None = None  # when the coverage is in force


class Practitioner(NamedTuple):
    id: str | None


class PractitionerRole(NamedTuple):
    id: str | None
    practitioner: Reference | None
    code: tuple[CodeableConcept, ...]
    specialty: tuple[CodeableConcept, ...]


class Patient(NamedTuple):
    id: str | None
    birthDate: str | None
    gender: str | None


class ServiceRequest(NamedTuple):
    id: str | None
    authoredOn: str | None
    occurrenceDateTime: str | None
    occurrencePeriod: Period | None
    occurrenceTiming: Timing | None
    bodySite: tuple[CodeableConcept, ...]
    reasonCode: tuple[CodeableConcept, ...]


class QuestionnaireResponse(NamedTuple):
    id: str | None
    subject: Reference | None
    status: str | None
    questionnaire: str | None  # the canonical it answers, "url|version" when the version is named
    authored: str | None
    author: Reference | None
    answers: tuple[tuple[str, object], ...]  # (linkId, first answer value) for every answered item, nested too


def _answers(items: object) -> tuple[tuple[str, object], ...]:
    """Every answered item's first value, nested groups opened (iteratively: no depth exhausts the stack)."""
    found: list[tuple[str, object]] = []
    pending = deque(_items(items))  # popped from the left in O(1): a million items stay linear
    while pending:
        item = pending.popleft()
        if not isinstance(item, dict):
            continue
        link = _str(item.get("linkId"))
        answers = [a for a in _items(item.get("answer")) if isinstance(a, dict)]
        if link and answers:
            value = next((v for k, v in answers[0].items() if k.startswith("value")), None)
            if isinstance(value, (str, bool, int, float)):
                found.append((link, value))
        pending.extend(_items(item.get("item")))
        for answer in answers:
            pending.extend(_items(answer.get("item")))
    return tuple(found)


def _subject(r: dict, patient_id: str | None, element: str = "subject") -> Reference | None:
    """The patient a resource is about; one found by a patient-scoped search without it is about that patient."""
    found = reference(r.get(element))
    if (found is None or found.reference is None) and patient_id:
        return _new(Reference, (f"Patient/{patient_id}", None))
    return found


def _status(r: dict) -> str:
    """A missing status on a record that was returned to us reads as "unknown" (it happened, details unknown)."""
    return _str(r.get("status")) or "unknown"


def _organization(r: dict, _patient: str | None = None) -> Organization:
    identifiers = tuple(
        _new(Identifier, (_str(i.get("system")), _str(i.get("value"))))
        for i in _items(r.get("identifier"))
        if isinstance(i, dict)
    )
    return _new(Organization, (_str(r.get("id")), _str(r.get("name")), identifiers))


def _condition(r: dict, patient: str | None) -> Condition:
    return _new(
        Condition,
        (
            _str(r.get("id")),
            _subject(r, patient),
            concept(r.get("code")),
            concept(r.get("clinicalStatus")),
            concept(r.get("verificationStatus")),
            _str(r.get("onsetDateTime")),
            period(r.get("onsetPeriod")),
            _str(r.get("recordedDate")),
            _str(r.get("abatementDateTime")),
        ),
    )


def _procedure(r: dict, patient: str | None) -> Procedure:
    performers = tuple(
        [_new(Performer, (reference(p.get("actor")),)) for p in _items(r.get("performer")) if isinstance(p, dict)]
    )
    return _new(
        Procedure,
        (
            _str(r.get("id")),
            _subject(r, patient),
            _status(r),
            concept(r.get("code")),
            _str(r.get("performedDateTime")),
            period(r.get("performedPeriod")),
            performers,
            concepts(r.get("bodySite")),
        ),
    )


def _medication_request(r: dict, patient: str | None) -> MedicationRequest:
    dispense = r.get("dispenseRequest")
    return _new(
        MedicationRequest,
        (
            _str(r.get("id")),
            _subject(r, patient),
            _status(r),
            _str(r.get("intent")),
            _str(r.get("authoredOn")),
            _new(DispenseRequest, (period(dispense.get("validityPeriod")),)) if isinstance(dispense, dict) else None,
        ),
    )


def _medication_statement(r: dict, patient: str | None) -> MedicationStatement:
    return _new(
        MedicationStatement,
        (
            _str(r.get("id")),
            _subject(r, patient),
            _status(r),
            _str(r.get("effectiveDateTime")),
            period(r.get("effectivePeriod")),
            _str(r.get("dateAsserted")),
        ),
    )


def _observation(r: dict, patient: str | None) -> Observation:
    quantity = r.get("valueQuantity")
    return _new(
        Observation,
        (
            _str(r.get("id")),
            _subject(r, patient),
            _status(r),
            concept(r.get("code")),
            _str(r.get("effectiveDateTime")),
            period(r.get("effectivePeriod")),
            _str(r.get("issued")),
            _new(Quantity, (_number(quantity.get("value")),)) if isinstance(quantity, dict) else None,
            _integer(r.get("valueInteger")),
        ),
    )


def _coverage(r: dict, patient: str | None) -> Coverage:
    contained = tuple(
        _organization(c)
        for c in _items(r.get("contained"))
        if isinstance(c, dict) and c.get("resourceType") == "Organization"
    )
    classes = tuple(_new(CoverageClass, (_str(c.get("name")),)) for c in _items(r.get("class")) if isinstance(c, dict))
    return _new(
        Coverage,
        (
            _str(r.get("id")),
            _subject(r, patient, "beneficiary"),
            _str(r.get("status")),
            tuple(p for p in map(reference, _items(r.get("payor"))) if p is not None),
            concept(r.get("type")),
            classes,
            _integer(r.get("order")),
            contained,
            period(r.get("period")),
        ),
    )


def _practitioner(r: dict, _patient: str | None) -> Practitioner:
    return _new(Practitioner, (_str(r.get("id")),))


def _role(r: dict, _patient: str | None) -> PractitionerRole:
    return _new(
        PractitionerRole,
        (_str(r.get("id")), reference(r.get("practitioner")), concepts(r.get("code")), concepts(r.get("specialty"))),
    )


def _patient(r: dict, _patient: str | None) -> Patient:
    return _new(Patient, (_str(r.get("id")), _str(r.get("birthDate")), _str(r.get("gender"))))


def _questionnaire_response(r: dict, patient: str | None) -> QuestionnaireResponse:
    return _new(
        QuestionnaireResponse,
        (
            _str(r.get("id")),
            _subject(r, patient),
            _str(r.get("status")),
            _str(r.get("questionnaire")),
            _str(r.get("authored")),
            reference(r.get("author")),
            _answers(r.get("item")),
        ),
    )


def _service_request(r: dict, _patient: str | None) -> ServiceRequest:
    return _new(
        ServiceRequest,
        (
            _str(r.get("id")),
            _str(r.get("authoredOn")),
            _str(r.get("occurrenceDateTime")),
            period(r.get("occurrencePeriod")),
            timing(r.get("occurrenceTiming")),
            concepts(r.get("bodySite")),
            concepts(r.get("reasonCode")),
        ),
    )


BUILDERS: dict[str, Callable[[dict, str | None], object]] = {
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationRequest": _medication_request,
    "MedicationStatement": _medication_statement,
    "Observation": _observation,
    "Coverage": _coverage,
    "Organization": _organization,
    "Patient": _patient,
    "Practitioner": _practitioner,
    "PractitionerRole": _role,
    "ServiceRequest": _service_request,
    "QuestionnaireResponse": _questionnaire_response,
}


def build(resource_type: str, resource: dict, patient_id: str | None = None, strict: bool = False):
    """The view of one resource (``resource_type`` must be a key of :data:`BUILDERS`).

    ``strict`` also validates the elements read with the ``fhir.resources`` R4B model and raises its
    ``ValidationError``: for testers who want to know their data is valid FHIR, never on the hot path."""
    if strict:
        _strict(resource_type, resource)
    return BUILDERS[resource_type](resource, patient_id)


def _strict(resource_type: str, resource: dict) -> None:
    import importlib

    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    getattr(module, resource_type).model_validate(resource)
