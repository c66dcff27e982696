"""Prefetch present / null / OperationOutcome / absent-then-fetched / absent-and-unfetchable, over real HTTP."""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc

import orjson
import pytest

from cds import hooks, prefetch
from cds.config import Settings
from cds.errors import DataUnobtainable
from cds.services import SERVICES

from .support import (
    ORDER_SIGN,
    PATIENT_ID,
    TOKEN,
    condition,
    full_prefetch,
    hook_request,
    patient,
    searchset,
)

URL = f"/cds-services/{ORDER_SIGN}"
SEARCHES = {
    "coverage": "Coverage",
    "conditions": "Condition",
    "procedures": "Procedure",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
    "practitionerRoles": "PractitionerRole",
    "questionnaireResponses": "QuestionnaireResponse",
}


def serve_record(ehr, **overrides) -> None:
    """Answer every template of ours with an empty record; ``overrides`` maps a resource type to a Bundle."""
    ehr.expect_request(f"/fhir/Patient/{PATIENT_ID}").respond_with_json(patient())
    for resource_type in SEARCHES.values():
        body = overrides.get(resource_type, searchset())
        ehr.expect_request(f"/fhir/{resource_type}").respond_with_json(body)


def requested_paths(ehr) -> list[str]:
    return [request.path for request, _ in ehr.log]


def call(client, body):
    return client.post(URL, data=orjson.dumps(body), content_type="application/json")


def test_complete_prefetch_is_used_without_calling_the_fhir_server(client, ehr):
    serve_record(ehr)
    response = call(client, hook_request(prefetch=full_prefetch(), fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert ehr.log == []


def test_null_prefetch_means_no_data_and_is_not_fetched(client, ehr):
    serve_record(ehr)
    data = full_prefetch()
    data["procedures"] = None
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert ehr.log == []


def test_operation_outcome_in_prefetch_is_fetched_with_the_bearer_token(client, ehr):
    serve_record(ehr)
    data = full_prefetch()
    data["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert requested_paths(ehr) == ["/fhir/Condition"]
    request = ehr.log[0][0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.args["patient"] == PATIENT_ID


def test_absent_prefetch_is_fetched_from_fhir_server(client, ehr):
    serve_record(ehr)
    response = call(client, hook_request(fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert sorted(requested_paths(ehr)) == sorted(
        [f"/fhir/Patient/{PATIENT_ID}", *(f"/fhir/{t}" for t in SEARCHES.values())]
    )
    by_path = {r.path: r for r, _ in ehr.log}
    assert by_path["/fhir/Coverage"].args.to_dict() == {
        "patient": PATIENT_ID,
        "status": "active",
        "_include": "Coverage:payor",  # the payer comes with the Coverage
    }
    assert "/fhir/Observation" not in by_path  # pain scores are asked only when the record shows a trial
    assert by_path["/fhir/PractitionerRole"].args.to_dict() == {"practitioner": "dr-1"}
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r, _ in ehr.log)


def test_no_fetch_at_all_when_no_draft_order_is_ours(client, ehr):
    serve_record(ehr)
    other = {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order"}
    response = call(client, hook_request(orders=[other], fhir_server=ehr.url_for("/fhir")))
    assert response.get_json() == {"cards": [], "systemActions": []}  # order-sign: the member is always there
    assert ehr.log == []


def test_absent_prefetch_without_fhir_server_is_412_naming_the_keys(client):
    data = full_prefetch()
    del data["conditions"], data["coverage"]
    response = call(client, hook_request(prefetch=data))
    assert response.status_code == 412
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    named = {e for issue in body["issue"] for e in issue["expression"]}
    assert named == {"prefetch.conditions", "prefetch.coverage"}
    assert "no fhirServer" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("status", "word"), [(401, "refused"), (403, "refused"), (500, "failed"), (429, "failed"), (400, "answered")]
)
def test_fhir_server_errors_are_412(client, ehr, status, word):
    serve_record(ehr)
    ehr.clear_all_handlers()
    ehr.expect_request("/fhir/Condition").respond_with_json({"resourceType": "OperationOutcome"}, status=status)
    serve_record(ehr)
    data = full_prefetch()
    del data["conditions"]
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 412
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert word in diagnostics and "Condition" in diagnostics


def test_connection_refused_is_412(client):
    response = call(client, hook_request(fhir_server="http://127.0.0.1:9/fhir"))
    assert response.status_code == 412
    assert "could not be reached" in response.get_json()["issue"][0]["diagnostics"]


def test_server_outside_the_allow_list_is_never_contacted(make_app, ehr):
    serve_record(ehr)
    client = make_app(FHIR_ALLOWED_SERVERS=["https://ehr.example.org/fhir"]).test_client()
    response = call(client, hook_request(fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 412
    assert "allow-list" in response.get_json()["issue"][0]["diagnostics"]
    assert ehr.log == []


def test_slow_server_gets_a_partial_answer_at_the_deadline(make_app, slow_ehr):
    ehr = slow_ehr

    def slow(_request):
        time.sleep(2.5)
        from werkzeug import Response

        return Response(orjson.dumps(searchset()), mimetype="application/fhir+json")

    ehr.expect_request("/fhir/Procedure").respond_with_handler(slow)
    serve_record(ehr)
    client = make_app(HOOK_DEADLINE=0.4).test_client()
    data = full_prefetch()
    del data["procedures"]
    data["coverage"] = searchset(
        {
            "resourceType": "Coverage",
            "id": "c1",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{PATIENT_ID}"},
            "payor": [{"display": "Medicare"}],
        }
    )
    started = time.monotonic()
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1.6, elapsed
    body = response.get_json()
    criteria = {c["id"]: c for c in body["cards"][0]["extension"]["cds64580.criteria"]}
    assert criteria["physical-therapy"]["status"] == "unknown" and "in time" in criteria["physical-therapy"]["reason"]
    indication = criteria["indication"]  # judged on the data that arrived (Medicare's rule is a summary: verify)
    assert "in time" not in indication["reason"] and "no qualifying diagnosis" in indication["reason"]
    extension = body["systemActions"][0]["resource"]["extension"][0]["extension"]
    values = {e["url"]: e for e in extension}
    assert values["covered"]["valueCode"] == "indeterminate"
    assert values["reason"]["valueCodeableConcept"]["coding"][0]["code"] == "technical"


def test_malformed_json_from_fhir_server_is_412(client, ehr):
    ehr.expect_request("/fhir/Condition").respond_with_data("{oops", content_type="application/fhir+json")
    serve_record(ehr)
    data = full_prefetch()
    del data["conditions"]
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 412
    assert "not JSON" in response.get_json()["issue"][0]["diagnostics"]


def test_optional_key_failure_does_not_fail_the_call(client, ehr):
    ehr.expect_request("/fhir/PractitionerRole").respond_with_data("", status=500)
    serve_record(ehr)
    data = full_prefetch()
    del data["practitionerRoles"]
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200


def test_missing_patient_on_read_is_no_data_not_an_error(client, ehr):
    ehr.expect_request(f"/fhir/Patient/{PATIENT_ID}").respond_with_json({"resourceType": "OperationOutcome"}, 404)
    serve_record(ehr)
    data = full_prefetch()
    del data["patient"]
    assert call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir"))).status_code == 200


def test_token_never_reaches_the_logs(client, ehr, caplog):
    ehr.expect_request("/fhir/Condition").respond_with_data("", status=401)
    serve_record(ehr)
    with caplog.at_level(logging.DEBUG):
        call(client, hook_request(fhir_server=ehr.url_for("/fhir")))
        call(client, hook_request(fhir_server="http://127.0.0.1:9/fhir"))
    # The fake EHR's own access log (werkzeug) is not ours; everything else is.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert "unobtainable" in ours, "failures should be logged"
    assert TOKEN not in ours
    assert PATIENT_ID not in ours


# The resolver itself, on the same loopback server: paging and what ends up in the record.


def resolve(body, **settings):
    settings.setdefault("database_url", "sqlite://")
    request = hooks.parse(SERVICES[ORDER_SIGN], body)
    return prefetch.resolve(SERVICES[ORDER_SIGN], request, Settings(**settings))


def test_fetched_search_follows_next_pages(ehr):
    base = ehr.url_for("/fhir")
    ehr.expect_request("/fhir/Condition", query_string={"patient": PATIENT_ID}).respond_with_json(
        searchset(condition("c1"), condition("c2"), next_url=f"{base}/Condition?page=2")
    )
    ehr.expect_request("/fhir/Condition", query_string={"page": "2"}).respond_with_json(
        searchset(condition("c3"), next_url=f"{base}/Condition?page=3")
    )
    ehr.expect_request("/fhir/Condition", query_string={"page": "3"}).respond_with_json(
        searchset(condition("c2"), condition("c4"))
    )
    data = full_prefetch()
    del data["conditions"]
    resolved = resolve(hook_request(prefetch=data, fhir_server=base))
    assert [r["id"] for r in resolved.resources["conditions"]] == ["c1", "c2", "c3", "c4"]
    assert resolved.origin["conditions"] == prefetch.FETCHED
    assert resolved.origin["patient"] == prefetch.FROM_PREFETCH


def test_paginated_prefetch_is_completed_from_the_server(ehr):
    base = ehr.url_for("/fhir")
    ehr.expect_request("/fhir/Condition", query_string={"page": "2"}).respond_with_json(searchset(condition("c9")))
    data = full_prefetch()
    data["conditions"] = searchset(condition("c1"), next_url=f"{base}/Condition?page=2")
    resolved = resolve(hook_request(prefetch=data, fhir_server=base))
    assert [r["id"] for r in resolved.resources["conditions"]] == ["c1", "c9"]
    assert ehr.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_next_links_that_loop_are_refused(ehr):
    base = ehr.url_for("/fhir")
    ehr.expect_request("/fhir/Condition", query_string={"page": "2"}).respond_with_json(
        searchset(condition("c2"), next_url=f"{base}/Condition?page=2")
    )
    data = full_prefetch()
    data["conditions"] = searchset(condition("c1"), next_url=f"{base}/Condition?page=2")
    with pytest.raises(DataUnobtainable) as caught:
        resolve(hook_request(prefetch=data, fhir_server=base))
    assert "loop" in caught.value.missing[0][1]
    assert len(ehr.log) == 1


def test_next_link_to_another_host_is_not_followed(ehr):
    data = full_prefetch()
    data["conditions"] = searchset(condition("c1"), next_url="http://127.0.0.2:9/steal?page=2")
    with pytest.raises(DataUnobtainable) as caught:
        resolve(hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert "leaves the FHIR server" in caught.value.missing[0][1]


def test_response_over_the_size_cap_is_refused(ehr):
    big = searchset(*(condition(f"c{i}") for i in range(2000)))
    ehr.expect_request("/fhir/Condition").respond_with_json(big)
    data = full_prefetch()
    del data["conditions"]
    with pytest.raises(DataUnobtainable) as caught:
        resolve(hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")), fhir_max_response_bytes=10_000)
    assert "larger than" in caught.value.missing[0][1]


def test_a_refused_oversized_answer_is_freed_when_the_call_ends(ehr):
    """Each failed fetch must not leave its partial body for the rare full garbage collection (a hostile server
    grew a worker by ~150 MB a call that way): the memory goes back as soon as the call is answered."""
    from werkzeug import Response

    chunk = b" " * 65536
    ehr.expect_request("/fhir/Condition").respond_with_handler(
        lambda _request: Response((chunk for _ in range(128)), content_type="application/fhir+json")
    )
    data = full_prefetch()
    del data["conditions"]
    request = hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir"))
    gc.collect()
    gc.disable()
    tracemalloc.start(32)  # deep enough to see which thread's stack an allocation was made on
    try:
        with pytest.raises(DataUnobtainable) as caught:
            resolve(request, fhir_max_response_bytes=4 * 1024 * 1024)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        gc.enable()
    # the fake EHR's own thread may still be draining its socket (werkzeug reads up to 10 MB there): not ours
    ours = snapshot.filter_traces([tracemalloc.Filter(False, "*/socketserver.py", all_frames=True)])
    left = sum(stat.size for stat in ours.statistics("filename"))
    assert "larger than" in caught.value.missing[0][1]
    assert left < 1024 * 1024, f"{left} bytes still held after the call"


def test_redirects_are_not_followed(ehr):
    ehr.expect_request("/fhir/Condition").respond_with_data("", status=302, headers={"Location": "http://evil/"})
    data = full_prefetch()
    del data["conditions"]
    with pytest.raises(DataUnobtainable) as caught:
        resolve(hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert "redirect" in caught.value.missing[0][1]


@pytest.mark.parametrize(
    ("template", "tokens", "expected"),
    [
        ("Patient/{{context.patientId}}", {"context.patientId": "p-1"}, "Patient/p-1"),
        ("Encounter/{{context.encounterId}}", {"context.patientId": "p-1"}, None),
        (
            "PractitionerRole?practitioner={{userPractitionerId}}",
            {"userPractitionerId": "a b&c"},
            "PractitionerRole?practitioner=a%20b%26c",
        ),
    ],
)
def test_render_substitutes_and_encodes_tokens(template, tokens, expected):
    assert prefetch.render(template, tokens) == expected


# The payer and the pain scores: carried by prefetch, asked plainly when a server lacks _include.

AETNA = {"resourceType": "Organization", "id": "org-aetna", "name": "Aetna"}


def aetna_coverage(payor: dict | None = None) -> dict:
    return {
        "resourceType": "Coverage",
        "id": "cov-1",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{PATIENT_ID}"},
        "payor": [payor or {"reference": "Organization/org-aetna"}],
    }


def payer_card(body: dict) -> dict:
    return next(c for c in body["cards"] if c["source"]["topic"]["code"] in ("insurance", "guideline"))


def coverage_reason(body: dict) -> str:
    extension = body["systemActions"][0]["resource"]["extension"][0]["extension"]
    reason = next(e for e in extension if e["url"] == "reason")
    return reason["valueCodeableConcept"]["text"]


def test_prefetched_include_carries_the_payer_without_a_fhir_server(client):
    data = full_prefetch()
    data["coverage"] = searchset(aetna_coverage(), AETNA)
    data["coverage"]["entry"][1]["search"] = {"mode": "include"}
    response = call(client, hook_request(prefetch=data))
    assert response.status_code == 200
    card = payer_card(response.get_json())
    assert "Aetna" in card["detail"] and "unknown" not in card["summary"]


def test_a_server_that_refuses_include_is_asked_the_plain_search(client, ehr):
    ehr.expect_request(
        "/fhir/Coverage", query_string={"patient": PATIENT_ID, "status": "active", "_include": "Coverage:payor"}
    ).respond_with_json(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}, status=400
    )
    ehr.expect_request("/fhir/Coverage", query_string={"patient": PATIENT_ID, "status": "active"}).respond_with_json(
        searchset(aetna_coverage())
    )
    ehr.expect_request("/fhir/Organization/org-aetna").respond_with_json(AETNA)
    data = full_prefetch()
    del data["coverage"]
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200, response.get_json()
    asked = [(r.path, r.args.get("_include")) for r, _ in ehr.log]
    assert asked[:2] == [("/fhir/Coverage", "Coverage:payor"), ("/fhir/Coverage", None)]
    assert ("/fhir/Organization/org-aetna", None) in asked  # the payor, read on its own
    assert "Aetna" in payer_card(response.get_json())["detail"]


def test_unknown_payer_card_says_which_organization_could_not_be_read(client):
    data = full_prefetch()
    data["coverage"] = searchset(aetna_coverage({"reference": "Organization/org-x"}))
    response = call(client, hook_request(prefetch=data))
    assert response.status_code == 200
    body = response.get_json()
    card = payer_card(body)
    assert card["summary"] == "Payer unknown: coverage for CPT 64580 not determined"
    assert "the Coverage names Organization/org-x, which was neither prefetched nor readable" in card["detail"]
    assert "Organization/org-x" in coverage_reason(body)


def test_prefetched_pain_scores_are_used_and_not_asked_again(client, ehr):
    trial = {
        "resourceType": "Procedure",
        "id": "trial",
        "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64555"}]},
        "performedPeriod": {"start": "2026-03-01", "end": "2026-03-07"},
    }
    data = full_prefetch()
    data["procedures"] = searchset(trial)
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert ehr.log == []  # painScores was sent (empty): the EHR has none, nothing to ask
    del data["painScores"]
    ehr.expect_request("/fhir/Observation").respond_with_json(searchset())
    response = call(client, hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert [r.path for r, _ in ehr.log] == ["/fhir/Observation"]  # omitted: asked because there was a trial
