"""Da Vinci DTR: the CPT 64580 documentation questionnaire of the order's payer policy, served to DTR clients."""

from __future__ import annotations

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.questionnaire import Questionnaire

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
ORDER = {
    "resourceType": "ServiceRequest",
    "id": "sr-64580",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64580"}]},
}


def coverage(payer: str) -> dict:
    return {
        "resourceType": "Coverage",
        "id": "cov-1",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"display": payer}],
    }


def parameters(*extra: dict, payer: str = "Medicare") -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "coverage", "resource": coverage(payer)}, {"name": "order", "resource": ORDER}, *extra],
    }


def package(client, body: dict) -> tuple[list[dict], list[dict]]:
    response = client.post(PACKAGE, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    out = response.get_json()
    Parameters.model_validate(out)
    bundles = [p["resource"] for p in out["parameter"] if p["name"] == "PackageBundle"]
    outcomes = [p["resource"] for p in out["parameter"] if p["name"] == "outcome"]
    return [e["resource"] for b in bundles for e in b["entry"]], outcomes


def test_the_payers_questionnaire_has_a_group_per_documentation_criterion(client):
    [questionnaire], outcomes = package(client, parameters())
    assert outcomes == []
    Questionnaire.model_validate(questionnaire)
    groups = {g["linkId"]: g for g in questionnaire["item"]}
    assert {"physical-therapy", "medication-trial", "stimulation-trial", "psych-evaluation", "chronicity"} <= set(
        groups
    )
    assert not {"co-surgeon-modifier", "assistant-surgeon", "global-period", "laterality"} & set(groups), "billing"
    pt = groups["physical-therapy"]
    assert [i["linkId"] for i in pt["item"]] == [
        "physical-therapy.done", "physical-therapy.start", "physical-therapy.end",
        "physical-therapy.detail", "physical-therapy.note",
    ]  # fmt: skip
    assert [i["type"] for i in pt["item"]] == ["boolean", "date", "date", "string", "text"]
    assert pt["code"][0]["code"] == "physical-therapy" and "http" in pt["text"], "the group names its source"
    assert "unverified summary" in pt["text"], "a source that is not the payer's own text says so"
    assert questionnaire["url"].endswith(f"/fhir/Questionnaire/{questionnaire['id']}")
    assert questionnaire["version"] == questionnaire["id"].removeprefix("medicare-ffs-")


def test_the_canonical_is_stable_and_readable(client):
    [first], _ = package(client, parameters())
    [again], _ = package(client, parameters())
    assert (first["url"], first["version"]) == (again["url"], again["version"])
    read = client.get(f"/fhir/Questionnaire/{first['id']}")
    assert read.status_code == 200 and read.get_json() == first
    [chosen], _ = package(
        client, parameters({"name": "referenced", "valueCanonical": f"{first['url']}|{first['version']}"})
    )
    assert chosen == first


def test_each_payer_gets_its_own_policys_questionnaire(client):
    [aetna], _ = package(client, parameters(payer="Aetna"))
    [medicare], _ = package(client, parameters(payer="Medicare"))
    assert aetna["id"].startswith("aetna-") and medicare["id"].startswith("medicare-")
    assert aetna["url"] != medicare["url"]


def test_an_unknown_payer_gets_the_default_criteria_and_says_so(client):
    [questionnaire], [outcome] = package(client, parameters(payer="Acme Health"))
    assert questionnaire["id"].startswith("default-")
    assert (
        outcome["issue"][0]["severity"] == "warning"
        and "default clinical criteria" in outcome["issue"][0]["diagnostics"]
    )


def test_a_coverage_not_in_force_on_the_day_of_surgery_is_named(client):
    ended = parameters()
    ended["parameter"][0]["resource"]["period"] = {"end": "2099-06"}  # $questionnaire-package is as of today
    ended["parameter"][1]["resource"] = ORDER | {"occurrenceDateTime": "2099-08-03"}
    [questionnaire], [outcome] = package(client, ended)
    assert questionnaire["id"].startswith("default-")
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert "Coverage/cov-1 ends on 2099-06-30, before the surgery planned on 2099-08-03" in diagnostics


def test_what_cannot_be_produced_is_a_clear_4xx(client):
    unknown = parameters({"name": "referenced", "valueCanonical": "http://example.org/Questionnaire/other"})
    assert client.post(PACKAGE, json=unknown).status_code == 404
    assert client.post(PACKAGE, json={"resourceType": "Patient"}).get_json()["resourceType"] == "OperationOutcome"
    no_coverage = {"resourceType": "Parameters", "parameter": [{"name": "order", "resource": ORDER}]}
    response = client.post(PACKAGE, json=no_coverage)
    assert response.status_code == 400 and "coverage" in response.get_json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/Questionnaire/nope").status_code == 404


def test_metadata_names_what_is_supported(client):
    response = client.get("/fhir/metadata")
    statement = response.get_json()
    CapabilityStatement.model_validate(statement)
    [resource] = statement["rest"][0]["resource"]
    assert resource["type"] == "Questionnaire" and resource["interaction"] == [{"code": "read"}]
    assert [o["name"] for o in resource["operation"]] == ["questionnaire-package", "populate"]


def test_hostile_parameters_never_cause_a_500(client):
    odd_coverage = coverage("x") | {"payor": "nope", "contained": [1, {"resourceType": 5}], "class": {"a": 1}}
    bodies = [
        {"resourceType": "Parameters", "parameter": "nope"},
        {"resourceType": "Parameters", "parameter": [1, None, {"name": 5}]},
        {"resourceType": "Parameters", "parameter": [{"name": "coverage", "resource": odd_coverage},
                                                     {"name": "order", "resource": {"resourceType": "X"}}]},
        parameters({"name": "referenced", "valueCanonical": 12}),
        parameters({"name": "referenced", "valueCanonical": "x" * 5000}),
        [],
        "text",
    ]  # fmt: skip
    for body in bodies:
        response = client.post(PACKAGE, json=body)
        assert response.status_code < 500, (body, response.get_json())
        if response.status_code >= 400:
            assert response.get_json()["resourceType"] == "OperationOutcome"


def test_an_attestation_in_the_policys_questionnaire_meets_the_criterion_and_is_marked(client):
    """The loop closed: the fixture's record lacks physical therapy; the surgeon's completed QuestionnaireResponse
    (physical-therapy.done true, dates inside the lookback) makes the criterion met, citing the response."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    body = replay.standalone_request(case, replay.Options())
    answer = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    pt = next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert pt["status"] == "met" and pt["attested"] is True
    assert pt["evidence"] == ["QuestionnaireResponse/qr-pt"]
    assert pt["reason"].startswith("attested by Dr. Ana Alvarez on 2026-06-10: 2026-01-05 to 2026-02-20")
    assert "| met (attested) |" in summary["detail"], "the summary tells attested from recorded"
    without = replay.standalone_request(fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-no-physical-therapy"),
                                        replay.Options())  # fmt: skip
    answer = client.post("/cds-services/cpt64580-order-sign", json=without).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    assert (
        next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")["status"] != "met"
    )


def _case_answer(client, name: str) -> dict:
    from cds import fixtures, replay

    body = replay.standalone_request(fixtures.load_folder(fixtures.FIXTURE_DIR / name), replay.Options())
    return client.post("/cds-services/cpt64580-order-sign", json=body).get_json()


def test_missing_documentation_points_to_the_questionnaire_that_documents_it(make_app):
    app = make_app(PUBLIC_BASE_URL="https://cds.example.org", DTR_APP_URL="https://ehr.example.org/dtr/launch")
    client = app.test_client()
    answer = _case_answer(client, "medicare-no-physical-therapy")
    [ext] = answer["systemActions"][0]["resource"]["extension"]
    values = {e["url"]: e for e in ext["extension"]}
    canonical = values["questionnaire"]["valueCanonical"]
    assert canonical == "https://cds.example.org/fhir/Questionnaire/medicare-ffs-2019-12-01|2019-12-01"
    assert values["doc-needed"]["valueCode"] == "clinical"
    documentation = next(c for c in answer["cards"] if c["summary"].startswith("Documentation"))
    smart = documentation["links"][0]
    assert smart["type"] == "smart" and smart["url"] == "https://ehr.example.org/dtr/launch"
    context = __import__("json").loads(smart["appContext"])
    assert context == {"order": "ServiceRequest/sr-64580", "coverage": context["coverage"], "questionnaire": canonical}
    # the canonical resolves to the questionnaire $questionnaire-package gives for this payer
    [questionnaire], _ = package(client, parameters({"name": "referenced", "valueCanonical": canonical}))
    assert f"{questionnaire['url']}|{questionnaire['version']}" == canonical
    assert "physical-therapy" in {g["linkId"] for g in questionnaire["item"]}


def test_no_questionnaire_when_everything_is_documented(client):
    answer = _case_answer(client, "medicare-all-criteria-met")
    [ext] = answer["systemActions"][0]["resource"]["extension"]
    assert "questionnaire" not in {e["url"] for e in ext["extension"]}
    assert all(link["type"] != "smart" for c in answer["cards"] for link in c.get("links", []))


def test_populate_prefills_what_the_record_shows_with_its_evidence(client):
    """$populate answers from the same evidence the rules read; what the record lacks is left for the clinician."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    from cds import fixtures

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-no-physical-therapy")
    body = _populate(case)
    response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate", json=body)
    assert response.status_code == 200, response.get_json()
    [qr] = [p["resource"] for p in response.get_json()["parameter"] if p["name"] == "response"]
    QuestionnaireResponse.model_validate(qr)
    assert qr["status"] == "in-progress"
    assert qr["questionnaire"].endswith("/fhir/Questionnaire/medicare-ffs-2019-12-01|2019-12-01")
    groups = {g["linkId"]: {i["linkId"]: i for i in g["item"]} for g in qr["item"]}
    psych = groups["psych-evaluation"]
    [done] = psych["psych-evaluation.done"]["answer"]
    assert done["valueBoolean"] is True
    assert done["extension"][0]["valueReference"]["reference"].startswith("Procedure/"), "the evidence travels"
    assert "answer" in psych["psych-evaluation.start"]
    assert all("answer" not in i for i in groups["physical-therapy"].values()), "what the record lacks stays empty"
    # evidence the record sent without an id is named, not referenced: a reference to it resolves to nothing
    for r in case.resources:
        if r["resourceType"] == "Procedure":
            del r["id"]
    response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate", json=body)
    [qr] = [p["resource"] for p in response.get_json()["parameter"] if p["name"] == "response"]
    QuestionnaireResponse.model_validate(qr)
    [done] = next(g for g in qr["item"] if g["linkId"] == "psych-evaluation")["item"][0]["answer"]
    assert done["extension"][0]["valueReference"] == {"type": "Procedure", "display": "Procedure (no id #1)"}


def test_populate_needs_a_patient(client):
    response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate",
                           json={"resourceType": "Parameters", "parameter": []})  # fmt: skip
    assert response.status_code == 400 and "subject" in response.get_json()["issue"][0]["diagnostics"]
    assert client.post("/fhir/Questionnaire/nope/$populate", json={}).status_code == 404


def test_hostile_populate_input_never_causes_a_500(client):
    subject = {"name": "subject", "valueReference": {"reference": "Patient/p1"}}
    bodies = [
        {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueReference": "Patient/p1"}]},
        {"resourceType": "Parameters", "parameter": [subject, {"name": "content", "resource": {"entry": "x"}}]},
        {"resourceType": "Parameters", "parameter": [subject, {"name": "context", "part": "nope"}]},
        {"resourceType": "Parameters", "parameter": [subject, {"name": "order", "resource": {"authoredOn": 5}}]},
        {"resourceType": "Parameters", "parameter": [subject, {"name": "content", "resource": {
            "resourceType": "Procedure", "code": {"coding": [{"system": 1, "code": ["x"]}]}, "status": 3}}]},
    ]  # fmt: skip
    for body in bodies:
        response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate", json=body)
        assert response.status_code < 500, (body, response.get_json())


def test_without_a_dtr_app_the_card_links_the_built_in_form(make_app):
    """An EHR with no DTR app: the documentation card links our own form (the viewer's /viewer/dtr) by
    questionnaire id; with JWT checks on the viewer is off, and so is the link."""
    app = make_app(PUBLIC_BASE_URL="https://cds.example.org", VIEWER=True)
    client = app.test_client()
    answer = _case_answer(client, "medicare-no-physical-therapy")
    documentation = next(c for c in answer["cards"] if c["summary"].startswith("Documentation"))
    form = documentation["links"][0]
    assert form["type"] == "absolute" and "appContext" not in form
    assert form["url"] == "https://cds.example.org/viewer/dtr?questionnaire=medicare-ffs-2019-12-01"
    assert client.get("/viewer/dtr?questionnaire=medicare-ffs-2019-12-01").status_code == 200
    questionnaire = client.get("/fhir/Questionnaire/medicare-ffs-2019-12-01").get_json()
    assert "physical-therapy" in {g["linkId"] for g in questionnaire["item"]}
    # viewer off: no form to link to, whatever a stray setting says
    plain = _case_answer(
        make_app(DTR_FORM_URL="https://elsewhere.example/x").test_client(), "medicare-no-physical-therapy"
    )
    documentation = next(c for c in plain["cards"] if c["summary"].startswith("Documentation"))
    assert all("/viewer/dtr" not in link["url"] and "elsewhere" not in link["url"] for link in documentation["links"])


def _criterion(answer: dict, criterion: str) -> dict:
    summary = answer["response"]["cards"][-1]
    return next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == criterion)


def test_the_viewer_writes_the_answers_to_the_cases_fhir_server_and_the_next_call_reads_them(make_app):
    """With the case served as a FHIR server, the form's QuestionnaireResponse is created there (201) and the
    service, fetching from that server, finds it on this run and the next; a pasted case has no server to keep."""
    client = make_app(VIEWER=True, LOG_LEVEL="WARNING").test_client()
    case = {"case": "medicare-no-physical-therapy", "fhir": True}
    before = client.post("/viewer/api/run", json=case).get_json()
    assert before["fhir_server"].startswith("http://127.0.0.1:") and before["written"] == []
    assert _criterion(before, "physical-therapy")["status"] != "met"
    form = client.post("/viewer/api/dtr", json={"case": case["case"]}).get_json()["response"]
    attestation = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": form["questionnaire"],
        "subject": form["subject"],
        "authored": "2026-06-01T10:00:00Z",
        "author": {"reference": "Practitioner/dr-a", "display": "Dr A"},
        "item": [
            {
                "linkId": "physical-therapy",
                "item": [
                    {"linkId": "physical-therapy.done", "answer": [{"valueBoolean": True}]},
                    {"linkId": "physical-therapy.start", "answer": [{"valueDate": "2026-01-05"}]},
                    {"linkId": "physical-therapy.end", "answer": [{"valueDate": "2026-02-20"}]},
                ],
            }
        ],
    }
    after = client.post("/viewer/api/run", json={**case, "attestations": [attestation]}).get_json()
    [location] = after["written"]
    assert location.startswith(before["fhir_server"] + "/QuestionnaireResponse/")
    therapy = _criterion(after, "physical-therapy")
    assert therapy["status"] == "met" and therapy["evidence"] == [f"QuestionnaireResponse/{location.rsplit('/', 1)[1]}"]
    again = client.post("/viewer/api/run", json=case).get_json()  # kept by the server, not resent
    assert again["written"] == [] and _criterion(again, "physical-therapy")["status"] == "met"
    plain = client.post("/viewer/api/run", json={"case": case["case"]}).get_json()  # the fixture itself unchanged
    assert _criterion(plain, "physical-therapy")["status"] != "met"
    pasted = client.post(
        "/viewer/api/run",
        json={
            "bundle": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "id": "p9"}}],
            },
            "fhir": True,
        },
    )
    assert pasted.status_code == 400 and "fixture cases only" in pasted.get_json()["issue"][0]["diagnostics"]


def test_the_served_store_creates_questionnaire_responses_only():
    import requests

    from cds import fhirstore
    from cds.fhirstore import ServedStore

    with ServedStore([{"resourceType": "Patient", "id": "p1"}]) as served:
        created = requests.post(
            f"{served.base_url}/QuestionnaireResponse",
            json={
                "resourceType": "QuestionnaireResponse",
                "status": "completed",
                "subject": {"reference": "Patient/p1"},
            },
            timeout=5,
        )
        assert created.status_code == 201
        assert created.headers["Location"] == f"{served.base_url}/QuestionnaireResponse/{created.json()['id']}"
        found = requests.get(f"{served.base_url}/QuestionnaireResponse?patient=p1&status=completed", timeout=5).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [created.json()["id"]]
        other = requests.post(f"{served.base_url}/Patient", json={"resourceType": "Patient"}, timeout=5)
        assert other.status_code == 405 and other.json()["resourceType"] == "OperationOutcome"
        fhir_json = {"Content-Type": "application/fhir+json"}
        wrong = requests.post(
            f"{served.base_url}/QuestionnaireResponse", data=b"{not json", headers=fhir_json, timeout=5
        )
        assert wrong.status_code == 400 and wrong.json()["issue"][0]["code"] == "invalid"
        # a text/plain post needs no CORS preflight: any web page could send one, so it is refused
        plain = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
        answer = b'{"resourceType": "QuestionnaireResponse", "status": "completed"}'
        forged = requests.post(f"{served.base_url}/QuestionnaireResponse", data=answer, headers=plain, timeout=5)
        assert forged.status_code == 415 and forged.json()["resourceType"] == "OperationOutcome"
        huge = b'{"resourceType":"QuestionnaireResponse","x":"' + b"a" * fhirstore.MAX_CREATED_BYTES + b'"}'
        for chunked in (False, True):  # declared or not, the body is not read past the bound
            data = iter([huge]) if chunked else huge
            big = requests.post(f"{served.base_url}/QuestionnaireResponse", data=data, headers=fhir_json, timeout=10)
            assert big.status_code == 413 and big.json()["resourceType"] == "OperationOutcome"
        for query in ("_count=abc", "_count=0", "_count=-1", "_page=1.5", "_page=-2"):
            paged = requests.get(f"{served.base_url}/QuestionnaireResponse?{query}", timeout=5)
            assert paged.status_code == 400 and paged.json()["resourceType"] == "OperationOutcome", query
        assert served.store.created == 1  # only the first, well-formed post was created
        served.store.created = fhirstore.MAX_CREATED - 1  # a loop of posts stops at the bound, with an outcome
        last = {"resourceType": "QuestionnaireResponse", "status": "completed"}
        assert requests.post(f"{served.base_url}/QuestionnaireResponse", json=last, timeout=5).status_code == 201
        full = requests.post(f"{served.base_url}/QuestionnaireResponse", json=last, timeout=5)
        assert full.status_code == 409 and "at most 100" in full.json()["issue"][0]["diagnostics"]


def test_another_patients_attestation_or_record_never_answers_for_this_one(client):
    """A QuestionnaireResponse about someone else met physical therapy (attested), and $populate prefilled this
    patient's form from another patient's Procedure: both now ignore entries whose subject is another patient."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    body = replay.standalone_request(case, replay.Options())
    for bundle in body["prefetch"].values():
        for entry in (bundle or {}).get("entry", []):
            if entry["resource"]["resourceType"] == "QuestionnaireResponse":
                entry["resource"]["subject"] = {"reference": "Patient/someone-else"}
    answer = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    pt = next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert pt["status"] != "met" and "attested" not in pt, pt

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-no-physical-therapy")
    theirs = [{**r, "subject": {"reference": "Patient/someone-else"}} if r["resourceType"] == "Procedure" else r
              for r in case.resources]  # fmt: skip
    body = _populate(case, theirs)
    response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate", json=body)
    [qr] = [p["resource"] for p in response.get_json()["parameter"] if p["name"] == "response"]
    psych = next(g for g in qr["item"] if g["linkId"] == "psych-evaluation")
    assert all("answer" not in i for i in psych["item"]), "another patient's evaluation prefilled nothing"


def test_a_questionnaire_names_a_background_document_as_background_not_as_the_source(client, stated_client):
    """The default criteria cite MP-623 as background: the form said "(source: ... MP-623)" for a payer whose own
    policy is unknown; a plan whose text states the criterion still names it as the source."""
    from .conftest import EXAMPLE_BLUE

    for payer in ("Acme Health", "Florida Blue"):  # Florida Blue: MP-623 names no plan
        [questionnaire], _ = package(client, parameters(payer=payer))
        trial = next(g for g in questionnaire["item"] if g["linkId"] == "stimulation-trial")
        assert "(background, it does not state this requirement: " in trial["text"], (payer, trial["text"])
    [own], _ = package(stated_client, parameters(payer=EXAMPLE_BLUE))
    trial = next(g for g in own["item"] if g["linkId"] == "stimulation-trial")
    assert "(source: " in trial["text"] and "mp-623" in trial["text"].lower()


def test_populate_reads_a_versioned_subject_reference_as_its_patient(client):
    from cds import fixtures

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-no-physical-therapy")
    patient = next(r for r in case.resources if r["resourceType"] == "Patient")
    body = _populate(case, subject=f"Patient/{patient['id']}/_history/2")
    response = client.post("/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate", json=body)
    [qr] = [p["resource"] for p in response.get_json()["parameter"] if p["name"] == "response"]
    psych = next(g for g in qr["item"] if g["linkId"] == "psych-evaluation")
    assert psych["item"][0]["answer"][0]["valueBoolean"] is True, "the record is this patient's, not another's"


def _populate(case, resources: list[dict] | None = None, subject: str | None = None) -> dict:
    """$populate's Parameters for a fixture case: its patient (or ``subject``), its record (or ``resources``) as
    one Bundle, and its order."""
    patient = next(r for r in case.resources if r["resourceType"] == "Patient")
    entries = [{"resource": r} for r in (case.resources if resources is None else resources)]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueReference": {"reference": subject or f"Patient/{patient['id']}"}},
            {"name": "content", "resource": {"resourceType": "Bundle", "type": "collection", "entry": entries}},
            {"name": "order", "resource": case.spec["orders"][0]},
        ],
    }


def test_an_attestation_cannot_make_a_criterion_that_does_not_apply_met(client):
    """On a diaphragm-pacing order the conservative care written for pain does not apply; the form still offers
    it, and a completed answer turned it into "met (attested)" and "already documented"."""
    from cds import fixtures, replay

    attested = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    [qr] = [r for r in attested.resources if r["resourceType"] == "QuestionnaireResponse"]
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-diaphragm-pacing")
    case.resources = [*case.resources, qr]  # the same patient (pat-64580) and the same Medicare questionnaire
    body = replay.standalone_request(case, replay.Options())
    answer = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    pt = next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == "physical-therapy")
    assert pt["status"] == "not-applicable" and not pt.get("attested"), pt


def test_the_viewers_form_and_timeline_read_the_record_as_of_the_date_asked(make_app):
    """Replayed as of January, the form prefilled the February psychological evaluation and the March trial, and
    the timeline drew the lookbacks from the order's June date; both now stop at the date asked."""
    client = make_app(VIEWER=True, LOG_LEVEL="WARNING").test_client()
    case = "medicare-all-criteria-met"

    def prefilled(body: dict) -> set[str]:
        form = client.post("/viewer/api/dtr", json=body).get_json()["response"]
        return {g["linkId"] for g in form["item"] if any("answer" in i for i in g.get("item", ()))}

    assert {"psych-evaluation", "stimulation-trial"} <= prefilled({"case": case})
    assert not {"psych-evaluation", "stimulation-trial"} & prefilled({"case": case, "as_of": "2026-01-10"})
    run = client.post("/viewer/api/run", json={"case": case, "as_of": "2026-01-10"}).get_json()
    assert run["timeline"]["order_date"] == "2026-01-11", "the order's June date, capped at the as-of date"
