"""Builders for hook requests and FHIR data, so each test states only what it is about."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator

CPT = "http://www.ama-assn.org/go/cpt"
PATIENT_ID = "pat-1"
TOKEN = "secret-access-token-7f3a"  # a value that must never show up in a log
ORDER_SIGN = "cpt64580-order-sign"
ORDER_SELECT = "cpt64580-order-select"


def service_request(id: str = "sr-64580", code: str = "64580", system: str = CPT) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }


def bundle(*resources: dict, type: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": type, "entry": [{"resource": r} for r in resources]}


def searchset(*resources: dict, next_url: str | None = None) -> dict:
    b = bundle(*resources, type="searchset")
    b["total"] = len(resources)
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def patient() -> dict:
    return {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1970-01-01"}


def condition(id: str) -> dict:
    return {"resourceType": "Condition", "id": id, "subject": {"reference": f"Patient/{PATIENT_ID}"}}


def full_prefetch() -> dict:
    """Every prefetch key of our services satisfied, with an empty record."""
    return {
        "patient": patient(),
        "coverage": searchset(),
        "conditions": searchset(),
        "procedures": searchset(),
        "medicationRequests": searchset(),
        "medicationStatements": searchset(),
        "practitionerRoles": searchset(),
        "painScores": searchset(),
        "questionnaireResponses": searchset(),
    }


def hook_request(
    *,
    hook: str = "order-sign",
    orders: list[dict] | None = None,
    prefetch: dict | None = None,
    fhir_server: str | None = None,
    token: str | None = TOKEN,
    crd_version: str | None = "2.2",
) -> dict:
    """A hook request; it speaks CRD ``crd_version`` (None: says nothing, as CRD 2.0/2.1 clients do)."""
    orders = [service_request()] if orders is None else orders
    body: dict = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": PATIENT_ID,
            "draftOrders": bundle(*orders),
        },
    }
    if crd_version is not None:
        body["extension"] = {"davinci-crd.requestedVersion": crd_version}
    if hook == "order-select":
        body["context"]["selections"] = [f"{o['resourceType']}/{o['id']}" for o in orders]
    if fhir_server:
        body["fhirServer"] = fhir_server
        if token:
            body["fhirAuthorization"] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "user/*.read",
                "subject": "cds-64580",
            }
    if prefetch is not None:
        body["prefetch"] = copy.deepcopy(prefetch)
    return body


def outcome(response, status: int) -> str:
    """The first issue's diagnostics of an OperationOutcome answer, after checking the status and the body's type."""
    assert response.status_code == status, response.get_data()[:300]
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


def sources_in(node) -> Iterator[dict]:
    """Every source object in a policy file's JSON, wherever it is cited."""
    if isinstance(node, dict):
        yield from node.get("sources", ())
        for value in node.values():
            yield from sources_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from sources_in(value)
