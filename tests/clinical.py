"""Builders for the FHIR resources the 64580 rules read (Conditions, Procedures, medications, scores, roles)."""

from __future__ import annotations

import itertools

from cds import codes

from .support import PATIENT_ID

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _subject() -> dict:
    return {"reference": f"Patient/{PATIENT_ID}"}


def condition(
    code: str,
    onset: str | None = "2025-01-01",
    *,
    clinical: str = "active",
    verification: str | None = None,
    system=codes.ICD10CM,
    **extra,
):
    c = {
        "resourceType": "Condition",
        "id": _id("cond"),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        },
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": _subject(),
    }
    if onset:
        c["onsetDateTime"] = onset
    if verification:
        c["verificationStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]
        }
    c.update(extra)
    return c


def procedure(
    code: str,
    when: str | None = "2026-01-10",
    end: str | None = None,
    *,
    system=codes.CPT,
    status="completed",
    performer: str | None = None,
    text: str | None = None,
    site: str | None = None,
):
    p = {
        "resourceType": "Procedure",
        "id": _id("proc"),
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": _subject(),
    }
    if when and end:
        p["performedPeriod"] = {"start": when, "end": end}
    elif when:
        p["performedDateTime"] = when
    if performer:
        p["performer"] = [{"actor": {"reference": performer}}]
    if text:
        p["code"]["text"] = text
    if site:
        p["bodySite"] = [{"coding": [{"system": codes.SNOMED, "code": site}]}]
    return p


def medication(
    code: str | None = None,
    system=codes.RXNORM,
    text: str | None = None,
    *,
    when="2025-11-01",
    until: str | None = None,
    status="completed",
    kind="MedicationRequest",
):
    concept: dict = {}
    if code:
        concept["coding"] = [{"system": system, "code": code}]
    if text:
        concept["text"] = text
    m = {
        "resourceType": kind,
        "id": _id("med"),
        "status": status,
        "subject": _subject(),
        "medicationCodeableConcept": concept,
    }
    if kind == "MedicationRequest":
        m.update(intent="order", authoredOn=when)
        if until:
            m["dispenseRequest"] = {"validityPeriod": {"start": when, "end": until}}
    elif until:
        m["effectivePeriod"] = {"start": when, "end": until}
    else:
        m["effectiveDateTime"] = when
    return m


def pain_score(value: float, when: str, code: str = "72514-3") -> dict:
    return {
        "resourceType": "Observation",
        "id": _id("obs"),
        "status": "final",
        "code": {"coding": [{"system": codes.LOINC, "code": code}]},
        "subject": _subject(),
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "{score}"},
    }


def role(
    practitioner: str,
    code: str | None = "primary-surgeon",
    *,
    system=codes.SURGICAL_ROLE,
    text=None,
    specialty: str | None = "207T00000X",
    id: str | None = None,
) -> dict:
    r = {
        "resourceType": "PractitionerRole",
        "id": id or _id("role"),
        "practitioner": {"reference": f"Practitioner/{practitioner}"},
    }
    concept: dict = {}
    if code:
        concept["coding"] = [{"system": system, "code": code}]
    if text:
        concept["text"] = text
    if concept:
        r["code"] = [concept]
    if specialty:
        r["specialty"] = [{"coding": [{"system": codes.NUCC, "code": specialty}]}]
    return r


def coverage(payer_name: str = "Acme Health", status: str = "active") -> list[dict]:
    org = {"resourceType": "Organization", "id": _id("org"), "name": payer_name}
    cov = {
        "resourceType": "Coverage",
        "id": _id("cov"),
        "status": status,
        "beneficiary": _subject(),
        "payor": [{"reference": f"Organization/{org['id']}"}],
    }
    return [org, cov]
