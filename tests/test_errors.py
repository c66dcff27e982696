"""Every way a request can be wrong gets a 4xx with an OperationOutcome that names the field; never a 500."""

from __future__ import annotations

import logging
import time
import tracemalloc

import orjson
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from cds import engine, schemas

from .support import ORDER_SELECT, ORDER_SIGN, full_prefetch, hook_request, service_request

URL = f"/cds-services/{ORDER_SIGN}"


def outcome(response, status: int) -> dict:
    """Assert the status and that the body is a valid FHIR OperationOutcome; return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    schemas.validator("operation-outcome").validate(body)
    OperationOutcome.model_validate(body)
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def expressions(body: dict) -> list[str]:
    return [e for issue in body["issue"] for e in issue.get("expression", ())]


def post(client, body, url=URL, **kwargs):
    return client.post(url, data=orjson.dumps(body), content_type="application/json", **kwargs)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe", b'{"hook": "order-sign",}'],
    ids=["garbage", "empty", "not-utf8", "trailing-comma"],
)
def test_malformed_json_is_400(client, raw):
    body = outcome(client.post(URL, data=raw, content_type="application/json"), 400)
    assert "not valid JSON" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("value", [[], "text", 42, None])
def test_json_that_is_not_an_object_is_400(client, value):
    outcome(post(client, value), 400)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b.update(hookInstance="not-a-uuid"), "hookInstance"),
        (lambda b: b["context"].pop("patientId"), "context.patientId"),
        (lambda b: b["context"].update(patientId="has spaces/and slash"), "context.patientId"),
        (lambda b: b["context"].pop("draftOrders"), "context.draftOrders"),
        (lambda b: b["context"].update(draftOrders={"resourceType": "Patient"}), "context.draftOrders.resourceType"),
        (lambda b: b["context"].update(userId="Device/1"), "context.userId"),
        (lambda b: b["context"].pop("userId"), "context.userId"),
        (lambda b: b.update(prefetch={"patient": "Patient/1"}), "prefetch.patient"),
        (lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}), "fhirAuthorization"),
        (lambda b: b.update(extension={"davinci-crd.configuration": {"max-cards": "5"}}), "max-cards"),
    ],
    ids=[
        "no-hookInstance",
        "hookInstance-not-uuid",
        "no-patientId",
        "patientId-not-fhir-id",
        "no-draftOrders",
        "draftOrders-not-bundle",
        "userId-wrong-type",
        "no-userId",
        "prefetch-not-resource",
        "fhirAuthorization-incomplete",
        "configuration-wrong-type",
    ],
)
def test_schema_violations_are_400_and_name_the_field(client, mutate, field):
    body = hook_request()
    mutate(body)
    result = outcome(post(client, body), 400)
    assert any(field in e for e in expressions(result)), result


def test_token_without_fhir_server_is_400(client):
    body = hook_request(fhir_server="http://127.0.0.1:9/fhir")
    del body["fhirServer"]
    result = outcome(post(client, body), 400)
    assert "fhirServer" in expressions(result)


def test_order_select_selections_must_name_a_draft_order(client):
    body = hook_request(hook="order-select")
    body["context"]["selections"] = ["ServiceRequest/somewhere-else"]
    result = outcome(post(client, body, url=f"/cds-services/{ORDER_SELECT}"), 400)
    assert expressions(result) == ["context.selections[0]"]


def test_unknown_service_is_404(client):
    body = outcome(post(client, hook_request(), url="/cds-services/no-such-service"), 404)
    assert "no-such-service" in body["issue"][0]["diagnostics"]
    outcome(post(client, {"feedback": []}, url="/cds-services/no-such-service/feedback"), 404)


def test_a_service_name_the_caller_typed_is_never_logged(client, caplog):
    """The attacker's pass: "/cds-services/<a patient's name>" put that name in the log line of the call."""
    with caplog.at_level(logging.INFO, logger="cds"):
        outcome(post(client, hook_request(), url="/cds-services/Zelda-Doe-MRN-12345"), 404)
    assert "Zelda" not in caplog.text
    assert any("(unknown service)" in r.getMessage() or "(unknown service)" in str(r.__dict__) for r in caplog.records)


def test_unknown_path_is_404(client):
    outcome(client.get("/nowhere"), 404)


def test_wrong_method_is_405_with_allow(client):
    response = client.get(URL)
    outcome(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(("path", "location"), [("/fhir//metadata", "/fhir/metadata"), ("/viewer", "/viewer/")])
def test_werkzeugs_own_redirects_carry_an_operation_outcome_not_an_html_page(make_app, path, location):
    response = make_app(VIEWER=True).test_client().get(path)
    assert response.status_code == 308 and response.headers["Location"].endswith(location)
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:100]
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_body_over_the_limit_is_413(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    body = hook_request()
    body["padding"] = "x" * 4096
    outcome(post(client, body), 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_media_type_is_415(client, content_type):
    raw = orjson.dumps(hook_request())
    response = client.post(URL, data=raw, content_type=content_type) if content_type else client.post(URL, data=raw)
    result = outcome(response, 415)
    assert "application/json" in result["issue"][0]["diagnostics"]


def test_fhir_json_media_type_is_accepted(client):
    response = client.post(URL, data=orjson.dumps(hook_request(orders=[])), content_type="application/fhir+json")
    assert response.status_code == 200


def test_unexpected_failure_is_500_operation_outcome_without_details(client, monkeypatch, caplog):
    def explode(*_args, **_kwargs):
        raise ValueError("patient Jane Doe born 1970-01-01")

    monkeypatch.setattr(engine, "invoke", explode)
    with caplog.at_level(logging.ERROR):
        result = outcome(post(client, hook_request()), 500)
    assert "Jane" not in str(result)
    assert "ValueError" in caplog.text
    assert "Jane" not in caplog.text


def test_unknown_members_are_ignored(client):
    body = hook_request(orders=[service_request(code="80053")])
    body["somethingNew"] = {"x": 1}
    body["context"]["futureField"] = [1, 2]
    body["extension"] = {"com.example.unknown": True, "davinci-crd.configuration": {"new-card-type": False}}
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": [], "systemActions": []}


def test_legacy_top_level_user_and_null_members_are_accepted(client):
    body = hook_request(orders=[service_request(code="80053")])
    body["user"] = body["context"].pop("userId")
    body["fhirAuthorization"] = None
    body["context"]["encounterId"] = None
    assert post(client, body).status_code == 200


def test_several_problems_are_all_reported(client):
    body = hook_request()
    body["hookInstance"] = "nope"
    del body["context"]["patientId"]
    result = outcome(post(client, body), 400)
    assert {"hookInstance", "context.patientId"} <= set(expressions(result))


# ---- bodies built to cost memory and time (issue 15: an attacker's afternoon) ---------------------------------


def _timed(client, url, raw: bytes):
    tracemalloc.start()
    started = time.monotonic()
    response = client.post(url, data=raw, content_type="application/json")
    elapsed = time.monotonic() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return response, elapsed, peak


@pytest.mark.parametrize(
    ("url", "template"),
    [
        (URL, b'{"hook":"order-sign","context":{"draftOrders":{"resourceType":"Bundle","entry":[%s]}}}'),
        ("/cds-services/cpt64580-order-sign/feedback", b'{"feedback":[%s]}'),
    ],
    ids=["hook", "feedback"],
)
def test_a_30_mb_body_of_small_items_is_refused_fast_and_small(client, url, template):
    raw = template % b",".join([b"{}"] * 10_000_000)  # 30 MB, ten million empty objects
    assert len(raw) > 29_000_000
    response, elapsed, peak = _timed(client, url, raw)
    outcome(response, 413)
    assert elapsed < 2.0, elapsed
    assert peak - len(raw) < 300 * 1024 * 1024, peak


def test_a_million_draft_orders_under_the_byte_caps_stop_before_the_schema(client):
    raw = b'{"hook":"order-sign","context":{"draftOrders":{"resourceType":"Bundle","entry":[%s]}}}' % b",".join(
        [b"1"] * 300_000
    )
    response, elapsed, _peak = _timed(client, URL, raw)
    assert response.status_code in (400, 413) and elapsed < 2.0, elapsed


def test_prefetch_entries_are_counted_inside_nested_bundles(make_app):
    client = make_app(MAX_PREFETCH_ENTRIES=100).test_client()
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Basic"}}] * 150}
    body = hook_request()
    body["prefetch"] = {"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": inner}]}}
    result = outcome(post(client, body), 413)
    assert "nested" in result["issue"][0]["diagnostics"]


def test_schema_validation_stops_at_the_first_problems(client):
    body = {"feedback": [{"card": 1}] * 20_000}
    started = time.monotonic()
    result = outcome(post(client, body, url="/cds-services/cpt64580-order-sign/feedback"), 400)
    assert time.monotonic() - started < 2.0 and len(result["issue"]) <= schemas.MAX_PROBLEMS


def test_a_self_pay_patients_name_never_reaches_the_log_and_lines_stay_short(client):
    from .conftest import CAPTURED

    body = hook_request()
    name = "Jane Q. Selfpayer " + "x" * 200_000
    body["prefetch"] = {
        "coverage": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Coverage",
                        "id": "self",
                        "status": "active",
                        "beneficiary": {"reference": "Patient/pat-1"},
                        "payor": [{"reference": "Patient/pat-1", "display": name}],
                    }
                }
            ],
        }
    }
    before = len(CAPTURED)
    response = post(client, body)
    assert response.status_code in (200, 412)
    written = CAPTURED[before:]
    assert written and not any("Selfpayer" in line for line in written)
    assert max(len(line) for line in written) < 5_000


@pytest.mark.parametrize("member", ["performer", "orderDetail", "insurance"])
def test_an_order_element_that_is_not_a_list_is_no_500(client, member):
    order = service_request()
    order[member] = 5
    response = post(client, hook_request(orders=[order]))
    assert response.status_code < 500


@pytest.mark.parametrize("where", ["patientId", "hookInstance", "userId"])
def test_ids_with_a_trailing_newline_are_refused(client, where):
    body = hook_request()
    if where == "hookInstance":
        body["hookInstance"] += "\n"
    elif where == "userId":
        body["context"]["userId"] = "Practitioner/dr-a\n"
    else:
        body["context"]["patientId"] += "\n"
    outcome(post(client, body), 400)


# ---- shapes that once answered 500 (issue 15.6): every one is read or skipped, never a crash -------------------

_CONDITION = {"resourceType": "Condition", "id": "d", "code": {"coding": [{"system": "x", "code": "G89.29"}]}}


def _shape(path: str, value):
    body = hook_request(prefetch=full_prefetch())
    where, _, key = path.rpartition(".")
    target = {
        "order": body["context"]["draftOrders"]["entry"][0]["resource"],
        "conditions": body["prefetch"]["conditions"],
    }[where]
    target[key] = value
    return body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("conditions.entry", 5),
        ("conditions.link", 5),
        ("conditions.link", [5]),
        ("conditions.entry", [{"resource": {**_CONDITION, "contained": 5}}]),
        ("conditions.entry", [{"resource": {**_CONDITION, "code": {"coding": 5}}}]),
        ("conditions.entry", [{"resource": {**_CONDITION, "meta": {"lastUpdated": 5}}}, {"resource": _CONDITION}]),
        ("order.extension", 5),
        ("order.extension", [5]),
        ("order.performer", "x"),
        ("order.reasonCode", 5),
        ("order.bodySite", [5]),
        ("order.authoredOn", "0001-01-01"),
        ("order.authoredOn", "0001-01-01T00:00:00+14:00"),
        ("order.occurrenceDateTime", "9999-12-31T23:59:59-14:00"),
        ("order.authoredOn", "2026-01-01T00:00:00-23:59"),
    ],
)
def test_odd_shapes_and_edge_dates_are_never_a_500(client, path, value):
    response = post(client, _shape(path, value))
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00-23:59"])
def test_feedback_timestamps_at_the_edges_are_4xx(client, when):
    body = {"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": when}]}
    assert 400 <= post(client, body, url=f"/cds-services/{ORDER_SIGN}/feedback").status_code < 500


def test_an_as_of_at_the_edge_of_time_is_no_500(client):
    body = hook_request(prefetch=full_prefetch())
    body["extension"] = {"cds64580.as-of": "0001-01-01"}
    assert post(client, body).status_code < 500


@pytest.mark.parametrize("as_of", ["2026W011xx", "2026-W01-1", "20260101T0", "2026-06-1\u0661"])
def test_an_as_of_that_is_not_a_calendar_date_is_refused(client, as_of):
    """Python reads ISO week dates and basic forms ("2026W011xx" is 2025-12-29): the call was evaluated as of a day
    the sender never wrote, and its payer version and fee-schedule release chosen by it."""
    body = hook_request(prefetch=full_prefetch())
    body["extension"]["cds64580.as-of"] = as_of
    response = post(client, body)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "cds64580.as-of must be a date" in response.get_json()["issue"][0]["diagnostics"]


def test_a_service_called_with_another_hook_answers_no_cards_and_logs_once(client, caplog):
    """The CDS Hooks sandbox calls every discovered service with its own hook: no error for the EHR to show."""
    body = hook_request()  # an order-sign request, sent to the order-select service
    with caplog.at_level(logging.INFO, logger="cds"):
        answers = [post(client, body, url=f"/cds-services/{ORDER_SELECT}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.get_json() == {"cards": [], "systemActions": []} for a in answers)  # an order-sign answer
    notes = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "other-hook"]
    assert len(notes) == 1 and "order-sign" in notes[0].getMessage() and ORDER_SELECT in notes[0].getMessage()
    malformed = post(client, {"hook": "patient-view"}, url=f"/cds-services/{ORDER_SELECT}")
    assert malformed.status_code == 400, "a malformed call of another hook is still a 400"


def test_codes_of_any_length_are_never_kept_between_calls(client):
    """The code-system memos are bounded in entries; codes of 50,000 characters kept 65,536 entries deep held 20 MB
    more per 10 MB hook call, to gigabytes. Long codes (no real one is) are worked out and dropped."""
    import gc

    from .clinical import condition

    def call(n: int) -> None:
        data = full_prefetch()
        conditions = [condition("G89.29", onset="2025-06-01") | {"id": f"c{i}"} for i in range(100)]
        for i, c in enumerate(conditions):
            c["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": f"{n}.{i}" + "x" * 50_000}]}
        data["conditions"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": c} for c in conditions],
        }
        assert post(client, hook_request(prefetch=data)).status_code == 200

    call(0)  # imports and start-up caches, before counting
    gc.collect()
    tracemalloc.start()
    for n in range(1, 4):
        call(n)
    gc.collect()
    kept, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept < 4 * 1024 * 1024, f"{kept / 2**20:.1f} MiB kept after three calls of 5 MB of codes"


def test_the_refusal_limiter_is_bounded_and_constant_time_per_call():
    """Refused calls from many sources in one minute (an IPv6 /64 is 2**64 addresses): the window held them all,
    and once it held 10,000 it was rebuilt on every call (2.4 ms a call at 20,000, under the lock)."""
    from cds.audit import RefusalLimiter

    limiter = RefusalLimiter(per_minute=2, max_sources=1000)
    allowed = [limiter.allow(f"2001:db8::{i:x}") for i in range(5000)]
    assert sum(allowed) == 1000 and len(limiter._window) == 1000
    assert limiter.allow("2001:db8::1") and not limiter.allow("2001:db8::1")  # the per-source limit still holds
    started = time.perf_counter()
    for i in range(5000, 25_000):
        limiter.allow(f"2001:db8::{i:x}")
    assert time.perf_counter() - started < 1.0


def test_the_audit_writer_keeps_no_written_rows(make_app):
    """The writer thread held its last batch (up to 256 rows of answers, their bytes already out of the queue's
    budget) while it waited up to 30 s for the next row."""
    import gc
    import sys
    import threading

    app = make_app()
    client = app.test_client()
    data = full_prefetch()
    data["patient"]["name"] = [{"text": "p" * 200_000}]  # a large answer: the record is echoed in no card, so
    order = service_request()
    order["note"] = [{"text": "n" * 200_000}]  # the draft order's own text makes it
    for _ in range(3):
        assert post(client, hook_request(orders=[order], prefetch=data)).status_code == 200
    assert app.extensions["cds.audit"].flush()
    deadline = time.monotonic() + 5
    while True:
        frames = sys._current_frames()
        held = [
            f.f_locals.get("batch")
            for thread in threading.enumerate()
            if thread.name == "audit-writer"
            for f in _stack(frames.get(thread.ident))
            if f.f_code.co_name == "_run"
        ]
        if not any(held) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    gc.collect()
    assert not any(held), "the writer still holds rows it has written"


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back
