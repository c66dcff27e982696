"""FHIR-server faults, each against a real HTTP server on loopback: the service answers in time, never crashes."""

from __future__ import annotations

import socket
import threading
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


@pytest.fixture
def drip_server():
    """A raw-socket FHIR server that sends one byte every 0.2 s, in the headers or in the body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()
    mode = {"phase": "body"}

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n"
                if mode["phase"] == "body":
                    conn.sendall(head)
                drip = head if mode["phase"] == "headers" else b" " * 10_000
                for byte in drip:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:
                return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield mode, f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    stop.set()
    listener.close()


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_slow_drip_server_cannot_hold_a_call_past_the_deadline(client, drip_server, phase):
    mode, url = drip_server
    mode["phase"] = phase
    data = full_prefetch()
    data["coverage"] = medicare()
    del data["procedures"]
    body = hook_request(prefetch=data, fhir_server=url)
    started = time.monotonic()
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=orjson.dumps(body), content_type="application/json")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < DEADLINE + 1.0, (phase, elapsed)
    extension = response.get_json()["systemActions"][0]["resource"]["extension"][0]["extension"]
    values = {e["url"]: e for e in extension}
    assert values["reason"]["valueCodeableConcept"]["coding"][0]["code"] == "technical"
