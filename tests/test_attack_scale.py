"""The third attacker's pass (November 2026): requests whose cost grew with the square of their size, a FHIR
server sending more than any prefetch may carry, and answers that listed every piece of evidence. Each is kept
fixed through HTTP; the sizes are ones the old code took minutes on."""

from __future__ import annotations

import logging
import time

from .clinical import procedure
from .support import ORDER_SIGN, full_prefetch, hook_request, outcome, searchset, service_request

HOOK = f"/cds-services/{ORDER_SIGN}"


def _criteria_within_seconds(client, body: dict) -> dict[str, dict]:
    """The criteria of an answer that came within 10 s (the old code took minutes on these sizes)."""
    started = time.monotonic()
    response = client.post(HOOK, json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 10, f"{elapsed:.1f} s"
    return {c["id"]: c for c in response.get_json()["cards"][0]["extension"]["cds64580.criteria"]}


def test_thousands_of_performers_insurances_and_unknown_status_entries_are_answered_in_seconds(make_app):
    """Performers x roles, insurances x coverages and evidence x unknown-status entries were each scanned in full
    (1,500 of each and 3 orders: ~25 s, 3,000: 92 s); the lookups are indexed now."""
    client = make_app(MAX_CONTENT_LENGTH=64 * 2**20).test_client()
    n = 1500
    order = service_request()
    order["performer"] = [{"reference": f"Practitioner/dr-{i}"} for i in range(n)]
    order["insurance"] = [{"reference": f"Coverage/c-{i}"} for i in range(n)]
    data = full_prefetch()
    data["practitionerRoles"] = searchset(
        *({"resourceType": "PractitionerRole", "id": f"r{i}", "practitioner": {"reference": f"Practitioner/o{i}"}}
          for i in range(n))
    )  # fmt: skip
    data["coverage"] = searchset(
        *({"resourceType": "Coverage", "id": f"k{i}", "status": "cancelled", "payor": [{"display": "X"}]}
          for i in range(n))
    )  # fmt: skip
    data["procedures"] = searchset(*(procedure("97110", "2026-01-10", status="unknown") for _ in range(n)))
    body = hook_request(prefetch=data, orders=[order | {"id": f"sr-{k}"} for k in range(3)])
    criteria = _criteria_within_seconds(client, body)
    pt = criteria["physical-therapy"]
    assert pt["status"] == "unknown" and " and 1497 more happened" in pt["reason"]
    assert len(pt["evidence"]) == 10 and pt["evidenceTotal"] == n, "the latest ten, and how many there are"


def test_thousands_of_performers_against_roles_the_order_contains_are_answered_in_seconds(make_app):
    """Performers read from roles contained in the order ("#p1"): each look-up scanned every contained role (8,000 of
    each and 3 orders: ~25 s); the order indexes them once."""
    client = make_app(MAX_CONTENT_LENGTH=64 * 2**20).test_client()
    n = 8000
    order = service_request()
    order["contained"] = [{"resourceType": "Practitioner", "id": f"p{i}"} for i in range(n)] + [
        {"resourceType": "PractitionerRole", "id": f"r{i}", "practitioner": {"reference": f"#q{i}"}} for i in range(n)
    ]
    order["performer"] = [{"reference": f"#p{i}"} for i in range(n)]
    body = hook_request(prefetch=full_prefetch(), orders=[order | {"id": f"sr-{k}"} for k in range(3)])
    criteria = _criteria_within_seconds(client, body)
    assert criteria["co-surgeon-modifier"]["status"] == "unknown", "performers without a role: co-surgery not told"


def test_a_criterion_lists_its_latest_ten_pieces_of_evidence_and_says_how_many(client):
    sessions = [procedure("97110", f"2026-01-{day:02d}") | {"id": f"pt-{day}"} for day in range(1, 31)]
    data = full_prefetch()
    data["procedures"] = searchset(*sessions)
    answer = client.post(HOOK, json=hook_request(prefetch=data)).get_json()
    pt = next(c for c in answer["cards"][0]["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert pt["status"] == "met" and pt["evidence"] == [f"Procedure/pt-{day}" for day in range(30, 20, -1)]
    assert pt["evidenceTotal"] == 30 and "30 physical-therapy record(s)" in pt["reason"]
    few = full_prefetch()
    few["procedures"] = searchset(*sessions[:3])
    answer = client.post(HOOK, json=hook_request(prefetch=few)).get_json()
    pt = next(c for c in answer["cards"][0]["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert len(pt["evidence"]) == 3 and "evidenceTotal" not in pt


def test_a_fhir_server_is_read_no_further_than_a_prefetch_may_carry(make_app, ehr):
    """Pages that arrive in time used to be read whatever their number: 160,000 resources kept a worker for
    minutes. Past ``max_prefetch_entries`` read from the server in one call, the search fails as a whole (412)."""
    client = make_app(MAX_PREFETCH_ENTRIES=50).test_client()
    base = ehr.url_for("/fhir")
    page = [procedure("97110", "2026-01-10") for _ in range(30)]
    ehr.expect_request("/fhir/Procedure", query_string={"page": "2"}).respond_with_json(searchset(*page))
    ehr.expect_request("/fhir/Procedure").respond_with_json(searchset(*page, next_url=f"{base}/Procedure?page=2"))
    data = full_prefetch()
    del data["procedures"]  # fetched from the server instead
    said = outcome(client.post(HOOK, json=hook_request(prefetch=data, fhir_server=base)), 412)
    assert "more than this service reads (50 resources)" in said
    ehr.clear()
    ehr.expect_request("/fhir/Procedure").respond_with_json(searchset(*page))  # 30: within the limit
    assert client.post(HOOK, json=hook_request(prefetch=data, fhir_server=base)).status_code == 200
    # an optional key that runs into the limit is no different: read as empty, it could turn a criterion not-met
    ehr.clear()
    answers = [{"resourceType": "QuestionnaireResponse", "id": f"qr-{i}", "status": "completed"} for i in range(60)]
    ehr.expect_request("/fhir/QuestionnaireResponse").respond_with_json(searchset(*answers))
    optional = full_prefetch()
    del optional["questionnaireResponses"]
    said = outcome(client.post(HOOK, json=hook_request(prefetch=optional, fhir_server=base)), 412)
    assert "questionnaireResponses" in said or "QuestionnaireResponse" in said


def test_gunicorn_s_refusal_log_names_no_request_text_whatever_the_client_address():
    """An IPv6 address has colons of its own: the redaction matched IPv4 only and logged the request line whole."""
    from cds.gunicorn_conf import _RefusalRedaction

    for ip in ("127.0.0.1", "::1", "::ffff:10.1.2.3", "2001:db8::7"):
        message = f"Invalid request from ip={ip}: Invalid HTTP request line: 'GET /x?patient=pat-SECRET HTTP/1.1'"
        record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, message, (), None)
        assert _RefusalRedaction().filter(record)
        assert record.getMessage() == f"Invalid request from ip={ip}: Invalid HTTP request line"


def test_replay_names_a_case_file_nested_too_deeply_instead_of_a_traceback(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    case = tmp_path / "deep"
    case.mkdir()
    (case / "case.json").write_text("[" * 100_000 + "]" * 100_000)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cds")), "replay", str(case)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "nested too deeply to read" in done.stdout + done.stderr


def test_a_name_lookup_that_hangs_does_not_hold_the_call_past_its_deadline(make_app, monkeypatch):
    """getaddrinfo runs before any socket exists, out of reach of the timeouts and the watchdog: an 8 s resolver
    held a 3 s hook call for 8 s. The call stops waiting at its deadline and answers with what it has."""
    import socket

    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host == "slow-dns.example":
            time.sleep(4)
            raise socket.gaierror("no answer")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    client = make_app(HOOK_DEADLINE=1.0).test_client()
    data = full_prefetch()
    for key in ("procedures", "conditions", "medicationRequests", "medicationStatements", "practitionerRoles"):
        del data[key]  # five stuck fetches: the call stops waiting once, at deadline + grace, not once per fetch
    started = time.monotonic()
    response = client.post(HOOK, json=hook_request(prefetch=data, fhir_server="http://slow-dns.example/fhir"))
    elapsed = time.monotonic() - started
    assert elapsed < 1.8, f"{elapsed:.2f} s"
    assert response.status_code == 200  # procedures late: the criteria reading them are unknown, never a 5xx
    criteria = {c["id"]: c for c in response.get_json()["cards"][0]["extension"]["cds64580.criteria"]}
    assert criteria["physical-therapy"]["status"] == "unknown" and "in time" in criteria["physical-therapy"]["reason"]


def test_an_order_sent_twice_is_answered_once_so_every_card_uuid_is_distinct(client):
    """Card uuids derive from hookInstance, order id and card kind: a draft order sent twice (with its id, or
    without one and equal in every element) gave cards sharing uuids, which feedback cannot tell apart, and two
    updates of one ServiceRequest."""
    data = full_prefetch()
    no_id = service_request()
    del no_id["id"]
    for orders in ([service_request(), service_request()], [no_id, dict(no_id)]):
        answer = client.post(HOOK, json=hook_request(prefetch=data, orders=orders)).get_json()
        uuids = [c["uuid"] for c in answer["cards"]]
        assert uuids and len(uuids) == len(set(uuids))
        assert len(answer["systemActions"]) == 1
    two = client.post(HOOK, json=hook_request(prefetch=data, orders=[service_request(), service_request("sr-2")]))
    assert len(two.get_json()["systemActions"]) == 2, "distinct orders are each answered"
    # two different orders without ids (each side, say) were one order "unknown": the second was never checked
    right = no_id | {"bodySite": [{"text": "right forearm"}]}
    answer = client.post(HOOK, json=hook_request(prefetch=data, orders=[no_id, right])).get_json()
    assert len(answer["systemActions"]) == 2 and len({c["uuid"] for c in answer["cards"]}) == len(answer["cards"])
    associated = [c["extension"]["davinci-crd.associated-resource"] for c in answer["cards"]]
    assert {a[0]["display"] for a in associated} == {"ServiceRequest (no id #1)", "ServiceRequest (no id #2)"}
    assert all("reference" not in a[0] for a in associated), "an order without an id is named, not referenced"
    from cds import audit, replay

    outcome = replay.outcome(200, answer)["orders"]
    assert set(outcome) == {"(no id #1)", "(no id #2)"}, "each order's cards and coverage"
    assert all("coverage" in o and "criteria" in o for o in outcome.values())
    assert set(audit.outcome_summary(answer)) == {"(no id #1)", "(no id #2)"}
    # a sender's id that is not a strict FHIR id is still its reference; one shaped like our label is not reused
    odd = service_request("sr_64580")
    named = service_request("(no id #1)")
    answer = client.post(HOOK, json=hook_request(prefetch=data, orders=[odd, named, no_id])).get_json()
    assert len(answer["systemActions"]) == 3
    associated = [c["extension"]["davinci-crd.associated-resource"][0] for c in answer["cards"]]
    assert {"reference": "ServiceRequest/sr_64580"} in associated
    assert {"type": "ServiceRequest", "display": "ServiceRequest (no id #2)"} in associated


def test_fifty_orders_over_thousands_of_prescriptions_read_the_prescriptions_once(client, monkeypatch):
    """The fourth attacker's pass: 50 orders (the limit) over 19,990 prescriptions took 19 s of CPU, every order
    re-classifying every prescription and citing each one as evidence. They are read once per call now, and a
    criterion cites the newest few courses of each class."""
    from cds import records

    from .clinical import medication

    built = []
    read = records.PatientRecord._medication_events
    monkeypatch.setattr(records.PatientRecord, "_medication_events", lambda self: built.append(1) or read(self))
    data = full_prefetch()
    data["medicationRequests"] = searchset(
        *(medication("25480", when=f"2025-{1 + i % 12:02d}-01") | {"id": f"mr-{i}"} for i in range(2000))
    )
    body = hook_request(prefetch=data, orders=[service_request(f"sr-{k}") for k in range(50)])
    response = client.post(HOOK, json=body)
    assert response.status_code == 200
    assert built == [1]
    for card in response.get_json()["cards"]:
        for c in card.get("extension", {}).get("cds64580.criteria", []):
            if c["id"] == "medication-trial":
                assert c["status"] == "met" and len(c.get("evidence", [])) <= 3, c
