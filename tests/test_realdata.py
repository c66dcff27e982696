"""Real hook requests nobody on this team wrote (HL7 CRD IG, Inferno, the CRD reference server).

Each gets a 200 whose body validates against our response schema, or a well-formed 412: never a 500.
None of them orders CPT 64580, so the second half changes only the order's code (a labelled modification)
to drive the whole data-resolution path with real request shapes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest

from cds import schemas
from cds.services import SERVICES

from .support import CPT, searchset


def hook_requests(realdata: Path) -> list[Path]:
    found = []
    for path in sorted(realdata.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict) and "hook" in data and "context" in data:
            found.append(path)
    return found


def service_for(hook: str) -> str:
    return next(s.id for s in SERVICES.values() if s.hook == hook)


def post(client, service_id: str, body: dict):
    return client.post(f"/cds-services/{service_id}", data=orjson.dumps(body), content_type="application/json")


def check(response) -> None:
    assert response.status_code in (200, 412), response.get_data(as_text=True)
    body = response.get_json()
    if response.status_code == 200:
        schemas.validator("hook-response").validate(body)
    else:
        schemas.validator("operation-outcome").validate(body)


def test_realdata_has_hook_requests(realdata):
    names = {p.name for p in hook_requests(realdata)}
    assert {"CRDServiceRequest.json", "order_sign_hook_request.json", "deviceRequestNoPrefetch.json"} <= names


def test_every_real_order_sign_request_is_answered(client, realdata):
    requests_ = [
        p for p in hook_requests(realdata) if json.loads(p.read_text())["hook"] in ("order-sign", "order-select")
    ]
    assert requests_
    for path in requests_:
        body = json.loads(path.read_text())
        check(post(client, service_for(body["hook"]), body))


def test_every_real_request_to_the_other_service_gets_no_cards_and_no_error(client, realdata):
    """The CDS Hooks sandbox calls every discovered service with its hook: the EHR must show no error."""
    for path in hook_requests(realdata):
        body = json.loads(path.read_text())
        other = "order-select" if body["hook"] == "order-sign" else "order-sign"
        response = post(client, service_for(other), body)
        expected = {"cards": [], "systemActions": []} if body["hook"] == "order-sign" else {"cards": []}
        assert (response.status_code, response.get_json()) == (200, expected), path.name


def as_64580(body: dict) -> dict:
    """MODIFIED real request: the first ServiceRequest's code becomes CPT 64580; nothing else changes."""
    body = copy.deepcopy(body)
    for entry in body["context"]["draftOrders"]["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["code"] = {"coding": [{"system": CPT, "code": "64580"}]}
            return body
    raise AssertionError("no ServiceRequest to modify")


@pytest.fixture
def crd_request(realdata) -> dict:
    return as_64580(json.loads((realdata / "davinci-crd-ig" / "CRDServiceRequest.json").read_text()))


def _serve_what_the_crd_example_does_not_prefetch(ehr) -> None:
    """The IG's request prefetches patient, coverage and roles: an empty record for the rest, and its payer."""
    for resource_type in (
        "Condition",
        "Procedure",
        "MedicationRequest",
        "MedicationStatement",
        "QuestionnaireResponse",
    ):
        ehr.expect_request(f"/fhir/{resource_type}").respond_with_json(searchset())
    ehr.expect_request("/fhir/Organization/acme-payer").respond_with_json(
        {"resourceType": "Organization", "id": "acme-payer", "name": "Acme Health Plan"}
    )


def test_modified_crd_example_fetches_what_prefetch_lacks(client, ehr, crd_request):
    _serve_what_the_crd_example_does_not_prefetch(ehr)
    crd_request["fhirServer"] = ehr.url_for("/fhir")
    response = post(client, service_for("order-sign"), crd_request)
    check(response)
    assert response.status_code == 200
    fetched = sorted(r.path for r, _ in ehr.log)
    # patient, coverage and practitionerRoles came in the IG's prefetch; the rest was fetched, then the payer.
    assert fetched == [
        "/fhir/Condition",
        "/fhir/MedicationRequest",
        "/fhir/MedicationStatement",
        "/fhir/Organization/acme-payer",
        "/fhir/Procedure",
        "/fhir/QuestionnaireResponse",
    ]
    payer_card = next(c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "insurance")
    assert "Acme Health Plan" in payer_card["summary"] and "not recognised" in payer_card["summary"]
    token = crd_request["fhirAuthorization"]["access_token"]
    assert all(r.headers["Authorization"] == f"Bearer {token}" for r, _ in ehr.log)
    searches = [r for r, _ in ehr.log if "Organization" not in r.path]
    assert all(r.args["patient"] == crd_request["context"]["patientId"] for r in searches)


def test_modified_crd_example_with_unreachable_server_is_412(make_app, crd_request):
    client = make_app(FHIR_ALLOWED_SERVERS=["http://127.0.0.1:9"]).test_client()
    response = post(client, service_for("order-sign"), crd_request)
    check(response)
    assert response.status_code == 412
    named = {e for issue in response.get_json()["issue"] for e in issue["expression"]}
    assert named == {
        "prefetch.conditions",
        "prefetch.procedures",
        "prefetch.medicationRequests",
        "prefetch.medicationStatements",
    }


def test_cpt_64580_given_as_a_crd_billing_option_makes_the_order_ours(client, ehr, realdata):
    """CRD billopt-3: a server SHALL consider the codes a client gives in ext-billing-options. The IG's own request
    codes its order in SNOMED and lists the CPT codes there. MODIFIED: one billing option becomes 64580; the SNOMED
    code and the other options stay."""
    body = json.loads((realdata / "davinci-crd-ig" / "CRDServiceRequest.json").read_text())
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert order["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    order["code"]["extension"][1]["valueCodeableConcept"]["coding"][0]["code"] = "64580"
    _serve_what_the_crd_example_does_not_prefetch(ehr)
    body["fhirServer"] = ehr.url_for("/fhir")
    response = post(client, service_for("order-sign"), body)
    check(response)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["cards"]
    assert [action["resource"]["id"] for action in answer["systemActions"]] == [order["id"]]
