"""What an attacker's afternoon found on the hook, feedback and FHIR endpoints (November 2026), each kept fixed
through HTTP: a clear 4xx with an OperationOutcome (or a normal answer), never a 500, and never a query built from
a caller's odd id."""

from __future__ import annotations

import io
import json
import logging

import orjson
import pytest

from .clinical import medication, procedure
from .support import ORDER_SIGN, full_prefetch, hook_request, outcome, searchset, service_request

HOOK = f"/cds-services/{ORDER_SIGN}"
POPULATE = "/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate"


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def post(client, path: str, body, content_type: str = "application/json", **kwargs):
    data = body if isinstance(body, bytes) else json.dumps(body)  # orjson refuses to write 255+ levels
    return client.post(path, data=data, content_type=content_type, **kwargs)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (HOOK, b"[" * 1000 + b"]" * 1000),  # the schema's error message used to recurse past Python's limit
        (f"{HOOK}/feedback", b'{"feedback":' + b"[" * 1020 + b"]" * 1020 + b"}"),
    ],
)
def test_a_deeply_nested_body_is_a_400(client, path, body):
    assert "nests deeper" in outcome(post(client, path, body), 400)


def test_a_draft_order_nested_too_deeply_to_write_back_is_a_400_naming_it(client):
    order = service_request() | {"note": nested(300)}  # the answer's order update could not be written (255)
    said = outcome(post(client, HOOK, hook_request(orders=[order], prefetch=full_prefetch())), 400)
    assert said.startswith("context.draftOrders.entry[0].resource nests deeper than")


def test_deep_data_the_answer_never_echoes_is_read_as_usual(client):
    data = full_prefetch()
    data["patient"]["extension"] = [{"url": "http://example.org/x", "valueString": "a", "extension": nested(300)}]
    assert post(client, HOOK, hook_request(prefetch=data)).status_code == 200


def test_a_medication_whose_coding_is_not_a_list_is_read_as_uncoded(client):
    odd = medication("1049621") | {"medicationCodeableConcept": {"coding": True, "text": "gabapentin"}}
    data = full_prefetch()
    data["medicationRequests"] = searchset(odd)
    assert post(client, HOOK, hook_request(prefetch=data)).status_code == 200
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueReference": {"reference": "Patient/p1"}},
            {"name": "content", "resource": odd | {"subject": {"reference": "Patient/p1"}}},
        ],
    }
    assert post(client, POPULATE, parameters, "application/fhir+json").status_code == 200


def test_a_search_page_whose_entry_ids_are_not_strings_is_read_not_a_crash(client, ehr):
    base = ehr.url_for("/fhir")
    odd = {"resourceType": "Condition", "id": ["a"], "subject": {"reference": "Patient/pat-1"}}
    ehr.expect_request("/fhir/Condition", query_string={"page": "2"}).respond_with_json(searchset(odd))
    data = full_prefetch()
    data["conditions"] = searchset({"resourceType": "Condition", "id": {"x": 1}}, next_url=f"{base}/Condition?page=2")
    response = post(client, HOOK, hook_request(prefetch=data, fhir_server=base))
    assert response.status_code == 200, response.get_data()[:300]


def test_populate_takes_no_more_resources_than_a_hook_call(make_app):
    client = make_app(MAX_PREFETCH_ENTRIES=50).test_client()
    content = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": procedure("97110")}] * 51}
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueReference": {"reference": "Patient/p1"}},
            {"name": "content", "resource": content},
        ],
    }
    assert "more than 50 resources" in outcome(post(client, POPULATE, parameters, "application/fhir+json"), 413)
    content["entry"] = content["entry"][:50]
    assert post(client, POPULATE, parameters, "application/fhir+json").status_code == 200


def test_populate_cites_the_latest_entries_not_every_one(client):
    sessions = [procedure("97110", f"2026-01-{day:02d}") | {"id": f"pt-{day}"} for day in range(1, 31)]
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueReference": {"reference": "Patient/p1"}},
            *({"name": "content", "resource": s | {"subject": {"reference": "Patient/p1"}}} for s in sessions),
            {"name": "order", "resource": service_request() | {"authoredOn": "2026-02-01"}},
        ],
    }
    answer = post(client, POPULATE, parameters, "application/fhir+json").get_json()
    response = answer["parameter"][0]["resource"]
    group = next(g for g in response["item"] if g["linkId"] == "physical-therapy")
    done = next(i for i in group["item"] if i["linkId"].endswith(".start"))
    cited = [e["valueReference"]["reference"] for e in done["answer"][0]["extension"]]
    assert cited == [f"Procedure/pt-{day}" for day in range(30, 20, -1)]
    assert done["answer"][0]["valueDate"] == "2026-01-01"  # the dates still span every session


def test_a_chunked_body_past_the_limit_is_a_413_not_cut_and_answered(make_app):
    client = make_app(MAX_CONTENT_LENGTH=64 * 1024).test_client()
    body = orjson.dumps(hook_request(prefetch=full_prefetch())) + b" " * (128 * 1024)
    response = client.post(
        HOOK,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert "larger than 65536 bytes" in outcome(response, 413)


@pytest.mark.parametrize(
    ("headers", "content_type", "said"),
    [
        ({"Content-Encoding": "gzip"}, "application/json", "uncompressed"),
        ({}, "application/json; charset=latin-1", "UTF-8"),
    ],
)
def test_a_body_we_cannot_read_as_utf8_json_is_a_415_saying_why(client, headers, content_type, said):
    response = post(client, HOOK, hook_request(prefetch=full_prefetch()), content_type, headers=headers)
    assert said in outcome(response, 415)


def test_feedback_names_only_cards_this_service_issued(client):
    card = post(client, HOOK, hook_request(prefetch=full_prefetch())).get_json()["cards"][0]["uuid"]
    item = {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "s-1"}],
        "outcomeTimestamp": "2026-11-27T10:15:00Z",
    }
    response = post(client, "/cds-services/cpt64580-order-select/feedback", {"feedback": [item]})
    assert card in outcome(response, 404)
    assert post(client, f"{HOOK}/feedback", {"feedback": [item]}).status_code == 200


def test_odd_reference_ids_never_become_part_of_a_query(client, ehr):
    order = service_request() | {
        "performer": [{"reference": "Practitioner/a&b=c"}, {"reference": "PractitionerRole/.."}],
        "insurance": [{"reference": "Coverage/?x=1"}],
    }
    data = full_prefetch()
    data.pop("practitionerRoles", None)
    response = post(client, HOOK, hook_request(orders=[order], prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    asked = [request.full_path for request, _ in ehr.log]
    assert not [a for a in asked if "b=c" in a or "x=1" in a or a.rstrip("?") in ("/fhir/", "/fhir")], asked


@pytest.mark.parametrize(
    ("field", "value"),
    [("hookInstance", "Zyxwqname-pat-SECRET-123"), ("hook", "zyxwqname-pat-secret-123")],
)
def test_a_callers_own_string_in_hook_or_hook_instance_never_reaches_the_log(client, caplog, field, value):
    body = hook_request(prefetch=full_prefetch()) | {field: value}
    with caplog.at_level(logging.DEBUG):
        assert post(client, HOOK, body).status_code in (200, 400)
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "zyxwqname" not in logged.lower()


@pytest.mark.parametrize(
    "body",
    [
        {
            "bundle": {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "ServiceRequest", "id": "x", "code": "abc"}}],
            }
        },
        {
            "bundle": {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "ServiceRequest", "id": "x", "code": {"coding": ["a"]}}}],
            }
        },
        {"request": {"hook": "order-sign", "extension": "x"}, "as_of": "2026-01-01"},
        {"request": {"hook": "order-sign", "extension": [1]}, "as_of": "2026-01-01"},
    ],
)
def test_a_pasted_case_of_any_shape_is_answered_not_a_500(make_app, body):
    viewer = make_app(VIEWER=True, LOG_LEVEL="WARNING").test_client()
    response = viewer.post("/viewer/api/run", json=body)
    assert response.status_code in (200, 400), response.get_data()[:300]


@pytest.mark.parametrize("payer", [None, "Medicare"])
@pytest.mark.parametrize("edge", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "2026-06-15"])
def test_dates_at_the_calendars_ends_are_read_not_a_500(client, edge, as_of, payer):
    """Every date a record or request can carry at year 1 or 9999-12-31: the day's leeway, a trial's baseline
    window and a global period moved past the calendar's end (OverflowError, a 500)."""
    from .clinical import condition, coverage, pain_score, role

    prefetch = full_prefetch()
    if payer:
        _org, cov = coverage(payer)
        cov["payor"][0]["display"] = payer
        prefetch["coverage"] = searchset(cov)
    prefetch["conditions"] = searchset(condition("G89.29", onset=edge))
    prefetch["procedures"] = searchset(
        procedure("64555", edge, edge),
        procedure("64580", edge, performer="PractitionerRole/ra"),
        procedure("97110", edge),
    )
    prefetch["painScores"] = searchset(pain_score(8, edge), pain_score(2, edge))
    prefetch["medicationRequests"] = searchset(medication("25480", when=edge, until=edge))
    prefetch["practitionerRoles"] = searchset(role("a", id="ra"))
    order = service_request() | {"authoredOn": edge, "performer": [{"reference": "PractitionerRole/ra"}]}
    body = hook_request(prefetch=prefetch, orders=[order])
    body["extension"]["cds64580.as-of"] = as_of
    response = post(client, HOOK, body)
    assert response.status_code == 200, response.get_json()
