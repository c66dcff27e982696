"""FHIR-server faults, each against a real HTTP server on loopback: the service answers in time, never crashes."""

from __future__ import annotations

import time

import orjson
import pytest
from werkzeug import Response

from .support import ORDER_SIGN, PATIENT_ID, full_prefetch, hook_request, searchset

DEADLINE = 0.8


def medicare() -> dict:
    return searchset(
        {
            "resourceType": "Coverage",
            "id": "c1",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{PATIENT_ID}"},
            "payor": [{"display": "Medicare"}],
        }
    )


@pytest.fixture
def client(make_app):
    return make_app(HOOK_DEADLINE=DEADLINE, FHIR_MAX_RESPONSE_BYTES=200_000).test_client()


def call(client, ehr) -> tuple[int, dict, float]:
    data = full_prefetch()
    data["coverage"] = medicare()
    del data["procedures"]  # the service must fetch Procedures: that is where the fault is
    body = hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir"))
    started = time.monotonic()
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=orjson.dumps(body), content_type="application/json")
    return response.status_code, response.get_json(), time.monotonic() - started


def slow(_request):
    time.sleep(2.5)
    return Response(orjson.dumps(searchset()), mimetype="application/fhir+json")


def stalled_body(_request):
    def chunks():
        yield b'{"resourceType": "Bundle", "type": "searchset", "entry": ['
        time.sleep(2.5)
        yield b"]}"

    return Response(chunks(), mimetype="application/fhir+json")


def huge(_request):
    entry = {
        "resource": {
            "resourceType": "Procedure",
            "id": "p",
            "status": "completed",
            "subject": {"reference": "Patient/x"},
            "note": [{"text": "x" * 1000}],
        }
    }
    return Response(orjson.dumps(searchset() | {"entry": [entry] * 1000}), mimetype="application/fhir+json")


def loop(request):
    link = f"http://{request.host}/fhir/Procedure?page=2"
    return Response(orjson.dumps(searchset(next_url=link)), mimetype="application/fhir+json")


FAULTS = {
    "timeout": (lambda e: e.expect_request("/fhir/Procedure").respond_with_handler(slow), 200),
    "stalled-body": (lambda e: e.expect_request("/fhir/Procedure").respond_with_handler(stalled_body), 200),
    "server-error": (lambda e: e.expect_request("/fhir/Procedure").respond_with_data("boom", status=500), 412),
    "too-many-requests-long-wait": (
        lambda e: e.expect_request("/fhir/Procedure").respond_with_data("", status=429, headers={"Retry-After": "120"}),
        412,
    ),
    "malformed-json": (
        lambda e: e.expect_request("/fhir/Procedure").respond_with_data("{nope", content_type="application/fhir+json"),
        412,
    ),
    "next-links-loop": (lambda e: e.expect_request("/fhir/Procedure").respond_with_handler(loop), 412),
    "huge-page": (lambda e: e.expect_request("/fhir/Procedure").respond_with_handler(huge), 412),
    "unauthorized": (lambda e: e.expect_request("/fhir/Procedure").respond_with_data("", status=401), 412),
    "not-a-resource": (lambda e: e.expect_request("/fhir/Procedure").respond_with_json([1, 2, 3]), 412),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fhir_fault_is_answered_in_time_without_a_crash(client, slow_ehr, fault):
    ehr = slow_ehr
    install, expected = FAULTS[fault]
    install(ehr)
    status, body, elapsed = call(client, ehr)
    assert status == expected, body
    assert elapsed < DEADLINE + 1.0, f"{fault} took {elapsed:.2f}s"
    if status == 412:
        assert body["resourceType"] == "OperationOutcome" and "procedures" in body["issue"][0]["diagnostics"]
    else:
        values = {e["url"]: e for e in body["systemActions"][0]["resource"]["extension"][0]["extension"]}
        assert values["covered"]["valueCode"] == "indeterminate"
        assert values["reason"]["valueCodeableConcept"]["coding"][0]["code"] == "technical"


def test_connection_refused_is_412_at_once(client):
    data = full_prefetch()
    del data["procedures"]
    body = hook_request(prefetch=data, fhir_server="http://127.0.0.1:9/fhir")
    started = time.monotonic()
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 412 and time.monotonic() - started < DEADLINE


def test_a_short_retry_after_is_honoured_once(client, slow_ehr):
    ehr = slow_ehr
    ehr.expect_oneshot_request("/fhir/Procedure").respond_with_data("", status=429, headers={"Retry-After": "0"})
    ehr.expect_request("/fhir/Procedure").respond_with_json(searchset())
    status, _body, _elapsed = call(client, ehr)
    assert status == 200
    assert [r.path for r, _ in ehr.log] == ["/fhir/Procedure", "/fhir/Procedure"]
