"""What an attacker's afternoon found on the DTR endpoints and the viewer, each kept fixed through HTTP."""

from __future__ import annotations

import time

import pytest

from cds import fixtures, records
from cds.rules import attestation

from .support import outcome

POPULATE = "/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate"
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
SUBJECT = {"name": "subject", "valueReference": {"reference": "Patient/p1"}}


@pytest.fixture
def viewer(make_app):
    return make_app(VIEWER=True, LOG_LEVEL="WARNING").test_client()


@pytest.mark.parametrize(
    "url",
    ["http://192.0.2.2:9911\\@127.0.0.1/", "http://192.0.2.2:9911\\@localhost/", "http://evil@127.0.0.1:1/"],
)
def test_the_viewer_never_sends_a_case_off_this_machine(viewer, url):
    """The standard library reads these hosts as loopback; requests would connect elsewhere."""
    said = outcome(viewer.post("/viewer/api/run", json={"case": "medicare-all-criteria-met", "url": url}), 400)
    assert "on this machine" in said


def test_a_service_url_that_is_not_a_cds_service_is_an_answer_not_a_crash(viewer):
    import threading

    from werkzeug.serving import make_server

    def app(environ, start_response):  # a loopback server answering a JSON list, then a redirect elsewhere
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"[1, 2]"]

    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/viewer/api/cases#"
        answer = viewer.post("/viewer/api/run", json={"case": "medicare-all-criteria-met", "url": url})
        assert answer.status_code == 200 and answer.get_json()["status"] == 502
        assert "is not a CDS service" in answer.get_json()["response"]["issue"][0]["diagnostics"]
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"case": "medicare-all-criteria-met", "payer": "\\ud800"}', 400),  # a lone surrogate
        (b"[" * 100_000, 400),  # nesting deeper than any parser's recursion
    ],
)
def test_the_viewer_reads_its_body_as_strictly_as_the_hooks(viewer, body, status):
    outcome(viewer.post("/viewer/api/run", data=body, content_type="application/json"), status)


def test_viewer_form_errors_are_4xx_and_name_no_server_path(viewer):
    huge = b'{"case": "medicare-all-criteria-met", "fhir": true, "attestations": [{"resourceType": "QuestionnaireResponse", "x": 1180591620717411303424}]}'
    assert viewer.post("/viewer/api/run", data=huge, content_type="application/json").status_code == 200
    said = outcome(
        viewer.post("/viewer/api/dtr", json={"case": "medicare-no-physical-therapy", "as_of": "2026-13-45"}), 400
    )
    assert "calendar date" in said
    said = outcome(viewer.post("/viewer/api/dtr", json={"case": "nope"}), 400)
    assert said == "no fixture case named nope" and "/" not in said
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p9"}},
        {"resource": {"resourceType": "ServiceRequest", "id": "o", "status": "draft", "intent": "order",
                      "subject": {"reference": "Patient/p9"}, "authoredOn": 12345,
                      "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64580"}]}}}]}  # fmt: skip
    assert viewer.post("/viewer/api/run", json={"bundle": bundle}).status_code == 200


def test_a_full_case_server_refuses_a_request_whole(viewer, monkeypatch):
    from cds import fhirstore

    monkeypatch.setattr(fhirstore, "MAX_CREATED_BYTES", 3000)
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [{"linkId": "x" * 1000}]}
    case = {"case": "medicare-no-physical-therapy", "fhir": True}
    assert len(viewer.post("/viewer/api/run", json={**case, "attestations": [qr]}).get_json()["written"]) == 1
    said = outcome(viewer.post("/viewer/api/run", json={**case, "attestations": [qr, qr]}), 400)
    assert "MiB" in said
    assert len(viewer.post("/viewer/api/run", json={**case, "attestations": [qr]}).get_json()["written"]) == 1
    resources = viewer.post("/viewer/api/run", json=case).get_json()["resources"]
    assert sum(r.startswith("QuestionnaireResponse/") for r in resources) == 2, "nothing of the refused request kept"


def test_the_package_gives_each_questionnaire_once_and_refuses_a_flood(client):
    from tests.test_dtr import parameters

    one = {
        "name": "questionnaire",
        "valueCanonical": "http://127.0.0.1:8080/fhir/Questionnaire/medicare-ffs-2019-12-01",
    }
    answer = client.post(PACKAGE, json=parameters(*[one] * 500))
    assert answer.status_code == 200
    assert [p["name"] for p in answer.get_json()["parameter"]] == ["PackageBundle"]
    many = [{"name": "questionnaire", "valueCanonical": f"q-{i}"} for i in range(21)]
    assert "at most 20" in outcome(client.post(PACKAGE, json=parameters(*many)), 400)


def test_populate_ignores_a_malformed_context_and_reads_past_an_empty_entry(client):
    answer = client.post(
        POPULATE, json={"resourceType": "Parameters", "parameter": [SUBJECT, {"name": "context", "part": 5}]}
    )
    assert answer.status_code == 200
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-no-physical-therapy")
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:1"}, {"resource": None}, *({"resource": r} for r in case.resources)]}  # fmt: skip
    patient = next(r["id"] for r in case.resources if r["resourceType"] == "Patient")
    with_gap = records.build([bundle], patient)
    whole = records.build(case.resources, patient)
    assert (
        (len(with_gap.procedures), len(with_gap.conditions)) == (len(whole.procedures), len(whole.conditions)) > (0, 0)
    )


def test_populate_never_confirms_what_the_record_only_lacks(client):
    """No data: nothing is prefilled, not even "no substance use disorder is confirmed"."""
    answer = client.post(POPULATE, json={"resourceType": "Parameters", "parameter": [SUBJECT]}).get_json()
    [qr] = [p["resource"] for p in answer["parameter"] if p["name"] == "response"]
    assert [i for g in qr["item"] for i in g["item"] if "answer" in i] == []


def test_a_million_answer_items_are_read_in_linear_time():
    from cds import fhirview

    items = [{"linkId": f"q{i}", "answer": [{"valueBoolean": True}]} for i in range(400_000)]
    started = time.perf_counter()
    view = fhirview.build("QuestionnaireResponse", {"resourceType": "QuestionnaireResponse", "item": items})
    assert len(view.answers) == 400_000
    assert time.perf_counter() - started < 5, "popping from the front of a list made this quadratic (~15 s)"


def test_an_authors_name_is_quoted_short():
    assert attestation._short("Dr A") == "Dr A"
    assert len(attestation._short("x" * 10_000)) == 80


def test_an_attested_date_that_is_not_a_calendar_date_does_not_count(client):
    """ "2026-02-30" is not read as if no end had been given: the criterion stays not met and says why."""
    import json

    from cds import replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    body = replay.standalone_request(case, replay.Options())
    text = json.dumps(body)
    assert '"2026-02-20"' in text
    body = json.loads(text.replace('"2026-02-20"', '"2026-02-30"'))
    answer = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    pt = next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    # not met (shown as unknown here: Medicare's therapy criterion rests on a summary, never on its own a warning)
    assert pt["status"] in ("not-met", "unknown") and pt["attested"] is True
    assert "end date '2026-02-30' is not a calendar date" in pt["reason"]


def test_a_case_fhir_server_in_use_is_never_stopped_for_another_case(make_app, monkeypatch):
    """Concurrent viewer runs: the least recently used case server is stopped only once no run reads from it."""
    import requests

    from cds import viewer
    from cds.errors import ServiceUnavailable

    monkeypatch.setattr(viewer, "_SERVED_MAX", 1)
    app = make_app(VIEWER=True, LOG_LEVEL="WARNING")
    first, second = (fixtures.load_folder(fixtures.FIXTURE_DIR / n) for n in ("aetna-co-surgeons", "no-coverage"))
    with app.app_context():
        busy = viewer._served(first)  # a run is reading from it
        with pytest.raises(ServiceUnavailable):
            viewer._served(second)
        assert requests.get(f"{busy.base_url}/Patient?_count=1", timeout=5).status_code == 200
        busy.users -= 1  # that run ended
        other = viewer._served(second)
        assert other is not busy and other.users == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{busy.base_url}/Patient", timeout=5)
    other.__exit__(None, None, None)


def test_an_attestation_dated_after_today_is_not_counted(client):
    """A QuestionnaireResponse authored in 2030 met physical therapy (the attacker's pass): a record entry dated in
    the future is not counted, and neither is an attestation; the criterion says which response it set aside."""
    import json

    from cds import replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    body = replay.standalone_request(case, replay.Options())
    text = json.dumps(body)
    assert text.count('"authored": "2026-06-10') == 1
    body = json.loads(text.replace('"authored": "2026-06-10', '"authored": "2030-06-10'))
    answer = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    pt = next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert pt["status"] != "met" and "attested" not in pt, pt
    said = "QuestionnaireResponse/qr-pt is dated 2030-06-10, after today: not counted"
    assert any(said in c["detail"] for c in answer["cards"] if c["summary"].startswith("Documentation"))
