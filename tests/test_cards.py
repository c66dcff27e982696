"""The cards a surgeon sees, through HTTP: one per concern, conformant, with evidence and working suggestions."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from cds import cards, codes, policies, schemas
from cds.orders import order_from

from .clinical import condition, coverage, medication, pain_score, procedure, role
from .conftest import EXAMPLE_BLUE
from .support import ORDER_SELECT, ORDER_SIGN, full_prefetch, hook_request, searchset, service_request

AS_OF = "2026-06-15"
CRITERIA = {c.id for c in policies.load().plan("medicare-ffs").current().criteria}  # the payer most cards use
# every criteria list a card may carry: any plan's, on any pathway
CRITERIA_LISTS = {
    frozenset(c.id for c in criteria)
    for plan in policies.load().plans
    for version in plan.versions
    for criteria in version.pathways.values()
}


def documented(*, pt: bool = True, payer: str = "Medicare", trial: bool = True) -> dict:
    """Prefetch for a patient whose record meets every documentation criterion (pain scores are queried)."""
    data = full_prefetch()
    del data["painScores"]  # the client omits the key: the service asks for them because there was a trial
    _org, cov = coverage(payer)  # the payer Organization is not prefetched; the label comes from payor.display
    cov["payor"][0]["display"] = payer
    data["coverage"] = searchset(cov)
    data["conditions"] = searchset(condition("G89.29", onset="2025-06-01"))
    therapy = [procedure("97110", "2026-01-05"), procedure("97140", "2026-02-20")] if pt else []
    data["procedures"] = searchset(
        *therapy,
        *([procedure("64555", "2026-03-01", "2026-03-07")] if trial else []),
        procedure("90791", "2026-02-01"),
        procedure("95886", "2025-12-01"),  # EMG: MP-623's objective pathology
    )
    data["medicationRequests"] = searchset(medication("25480"))
    data["practitionerRoles"] = searchset(role("a", id="ra"), role("b", id="rb", specialty="207X00000X"))
    return data


def serve_pain_scores(ehr) -> str:
    """Pain scores are situational (only a trial needs them): the service queries them from the EHR."""
    ehr.expect_request("/fhir/Observation").respond_with_json(
        searchset(pain_score(8, "2026-02-25"), pain_score(3, "2026-03-04"))
    )
    return ehr.url_for("/fhir")


def order(*performers: str, modifiers: tuple[str, ...] = (), id: str = "sr-64580") -> dict:
    sr = service_request(id=id)
    sr["performer"] = [{"reference": p} for p in performers] or [{"reference": "PractitionerRole/ra"}]
    if modifiers:
        sr["orderDetail"] = [{"coding": [{"system": codes.CPT, "code": m}]} for m in modifiers]
    return sr


def call(client, *, prefetch=None, orders=None, hook="order-sign", extension=None, fhir_server=None, instance=None):
    body = hook_request(
        hook=hook,
        prefetch=prefetch if prefetch is not None else documented(),
        orders=orders or [order()],
        fhir_server=fhir_server,
    )
    body["extension"] |= {"cds64580.as-of": AS_OF, **(extension or {})}
    if instance:
        body["hookInstance"] = instance
    service = ORDER_SIGN if hook == "order-sign" else ORDER_SELECT
    response = client.post(f"/cds-services/{service}", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    schemas.validator("hook-response").validate(result)
    for card in result["cards"]:
        assert len(card["summary"]) < 140
        assert frozenset(c["id"] for c in card["extension"][cards.CRITERIA_EXTENSION]) in CRITERIA_LISTS
    return result


def by_topic(result: dict) -> dict[str, list[dict]]:
    topics: dict[str, list[dict]] = {}
    for card in result["cards"]:
        topics.setdefault(card["source"]["topic"]["code"], []).append(card)
    return topics


def statuses(card: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in card["extension"][cards.CRITERIA_EXTENSION]}


def test_a_missing_trial_gives_a_documentation_warning_with_a_task(stated_client):
    # MP-623, when it is the payer's own text: "Demonstration of pain relief with ... a temporarily implanted electrode"
    result = call(stated_client, prefetch=documented(trial=False, payer=EXAMPLE_BLUE))
    [doc, summary] = by_topic(result)["appropriate-use"]
    assert doc["indicator"] == "warning"
    assert "stimulation trial" in doc["summary"]
    assert statuses(doc)["stimulation-trial"] == "not-met"
    assert statuses(doc)["indication"] == "met"
    assert doc["source"]["label"] == EXAMPLE_BLUE
    assert doc["links"][0]["label"].startswith("Policy source: ")
    assert any(link["type"] == "absolute" for link in doc["links"])
    [suggestion] = doc["suggestions"]
    [action] = suggestion["actions"]
    assert action["type"] == "create"
    task = Task.model_validate(action["resource"])
    assert task.focus.reference == "ServiceRequest/sr-64580"
    assert any("stimulation trial" in n.text.lower() for n in task.note)
    assert summary["indicator"] == "info"


def test_an_unrecognised_payer_is_told_what_to_document_but_never_warned(client):
    """The default criteria are modelled on MP-623, one Blue plan's text: for a payer whose own policy is unknown
    they say what is missing, with a task, and ask to verify (they warned before)."""
    result = call(client, prefetch=documented(pt=False, payer="Acme Health"))
    [doc, _summary] = by_topic(result)["appropriate-use"]
    assert doc["indicator"] == "info" and doc["summary"].startswith("Documentation unconfirmed")
    assert statuses(doc)["physical-therapy"] == "unknown" and doc["suggestions"]
    assert doc["links"][0]["label"].startswith("Background: ")


def test_a_policy_that_accepts_any_one_therapy_is_not_turned_into_one_requirement_per_therapy(stated_client):
    """MP-623: "Other treatment modalities (pharmacological, surgical, physical or psychological therapies) have been
    tried" (no time window): a medication trial is enough, and physical therapy years old still counts."""
    result = call(stated_client, prefetch=documented(pt=False, payer=EXAMPLE_BLUE))
    criteria = {c["id"]: c for c in by_topic(result)["appropriate-use"][-1]["extension"]["cds64580.criteria"]}
    assert criteria["medication-trial"]["status"] == "met"
    pt = criteria["physical-therapy"]
    assert pt["status"] == "not-applicable"
    assert pt["reason"].startswith("not needed, the policy asks for any one of physical therapy")
    assert not any(c["indicator"] == "warning" for c in result["cards"])

    neither = documented(pt=False, payer=EXAMPLE_BLUE)
    neither["medicationRequests"] = searchset()
    neither["procedures"]["entry"].append({"resource": procedure("97110", "2019-03-01")})  # seven years before
    criteria = {
        c["id"]: c for c in call(stated_client, prefetch=neither)["cards"][-1]["extension"]["cds64580.criteria"]
    }
    assert criteria["physical-therapy"]["status"] == "met", criteria["physical-therapy"]
    assert criteria["medication-trial"]["status"] == "not-applicable"

    none = documented(pt=False, payer=EXAMPLE_BLUE)
    none["medicationRequests"] = searchset()
    criteria = {c["id"]: c for c in call(stated_client, prefetch=none)["cards"][-1]["extension"]["cds64580.criteria"]}
    for criterion in ("physical-therapy", "medication-trial"):
        assert criteria[criterion]["status"] == "not-met"
        assert criteria[criterion]["reason"].endswith("is enough for this policy)")
    assert "in the last" not in criteria["physical-therapy"]["reason"], "MP-623 states no window"

    # physical therapy the record cannot settle (status unknown), no drug: the requirement may be met, no warning
    unsettled = documented(pt=False, payer=EXAMPLE_BLUE)
    unsettled["medicationRequests"] = searchset()
    unsettled["procedures"]["entry"].append({"resource": procedure("97110", "2026-01-05", status="unknown")})
    answer = call(stated_client, prefetch=unsettled)
    criteria = {c["id"]: c for c in answer["cards"][-1]["extension"]["cds64580.criteria"]}
    assert criteria["physical-therapy"]["status"] == "unknown"
    assert criteria["medication-trial"]["status"] == "unknown"
    assert criteria["medication-trial"]["reason"].endswith("and physical therapy tried is unknown")


def test_a_member_of_one_requirement_that_arrived_late_is_not_needed_when_another_is_met():
    """Late data makes a criterion unknown; weighed after it, one requirement met by a medication trial leaves
    physical therapy not needed, not "did not answer in time"."""
    from datetime import date

    from cds import records, rules

    plan = next(p for p in policies.load().plans if p.id == "florida-blue")
    ruleset = plan.current().ruleset("pain")
    record = records.build([condition("G89.29", onset="2025-06-01"), medication("25480")], "pat-1")
    order = order_from(service_request())
    findings = {
        f.criterion: f
        for f in rules.evaluate(record, order, ruleset, date(2026, 6, 15), late=frozenset({"procedures"}))
    }
    assert findings["medication-trial"].status == rules.Status.MET
    assert findings["physical-therapy"].status == rules.Status.NOT_APPLICABLE
    assert (
        findings["psych-evaluation" if "psych-evaluation" in findings else "objective-pathology"].status
        == rules.Status.UNKNOWN
    )


def test_a_requirement_resting_on_summaries_only_asks_to_verify_instead_of_warning(client):
    result = call(client, prefetch=documented(pt=False))  # Medicare's PT rule: a MAC article read only in a summary
    [doc, _summary] = by_topic(result)["appropriate-use"]
    assert doc["indicator"] == "info" and doc["summary"].startswith("Documentation unconfirmed")
    assert statuses(doc)["physical-therapy"] == "unknown"
    assert "no physical therapy in the last 12 months; only a secondary summary states it" in doc["detail"]
    assert any(link["label"].startswith("Unverified summary: ") for link in doc["links"])


def test_well_documented_single_surgeon_gets_the_payer_stance_and_the_summary(client, ehr):
    result = call(client, fhir_server=serve_pain_scores(ehr))
    [payer, summary] = result["cards"]
    assert payer["source"]["topic"]["code"] == "guideline" and payer["indicator"] == "info"
    assert payer["summary"].startswith("Medicare: implanted PNS payable as a prosthetic device")
    assert summary["indicator"] == "info"
    assert summary["summary"] == "CPT 64580 criteria for Medicare: 7 met, 0 not met, 0 unknown"
    assert "links" not in summary and "suggestions" not in summary, "an Instructions card"
    assert statuses(summary)["stimulation-trial"] == "met"
    assert statuses(summary)["co-surgeon-modifier"] == "not-applicable"
    assert "| Physical therapy tried | met |" in summary["detail"]


def _every_card_text(result: dict) -> str:
    return json.dumps(result["cards"])


def _modifiers_set_by(action: dict) -> set[str]:
    details = action["resource"].get("orderDetail") or [] if action["type"] == "update" else []
    return {c["code"] for d in details for c in d.get("coding", [])}


def test_two_medicare_surgeons_are_told_co_surgeons_are_not_paid_and_offered_assistant_billing(client):
    sr = order("PractitionerRole/ra", "PractitionerRole/rb")
    sr["note"] = [{"text": "left side"}]
    result = call(client, orders=[sr])
    [claim] = by_topic(result)["claim"]
    assert claim["indicator"] == "warning"
    assert claim["summary"].startswith("Medicare does not pay co-surgeons on CPT 64580")
    assert "RVU" in claim["detail"] and "64580-AS" in claim["detail"] and "64590" in claim["detail"]
    labels = [s["label"] for s in claim["suggestions"]]
    assert any("64580-80" in label for label in labels) and any("64580-82" in label for label in labels)
    for suggestion in claim["suggestions"]:
        for action in suggestion["actions"]:
            assert "62" not in _modifiers_set_by(action) and "66" not in _modifiers_set_by(action)
            if action["type"] == "create":
                Task.model_validate(action["resource"])
                assert "PractitionerRole/rb" in action["resource"]["description"]
    assert "cds mpfs" not in _every_card_text(result) and ".json" not in claim["detail"]
    [info] = result["systemActions"]
    billing = [e for e in info["resource"]["extension"][-1]["extension"] if e["url"] == "billingCode"]
    assert [b["valueCoding"]["code"] for b in billing] == ["64580"]


@pytest.mark.parametrize("user", ["PractitionerRole/ra", "Patient/pat-1"])
def test_the_roles_the_ehr_prefetched_are_read_whoever_the_user_is(client, user):
    """Epic sends userId PractitionerRole/... and fills {{userPractitionerId}} itself: the practitionerRoles it
    prefetched are read although the service cannot render that token (they were dropped: "roles missing")."""
    body = hook_request(prefetch=documented(), orders=[order("PractitionerRole/ra", "PractitionerRole/rb")])
    body["context"]["userId"] = user
    body["extension"]["cds64580.as-of"] = AS_OF
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    [claim] = by_topic(response.get_json())["claim"]
    assert claim["summary"].startswith("Medicare does not pay co-surgeons on CPT 64580")


def test_surgeons_whose_roles_the_order_contains_are_read_from_it(client):
    """Performers given as roles contained in the order ("#r1"): the co-surgery check vanished from the answer (no
    warning, no "roles missing"), since a reference without a type was taken for no surgeon."""
    prefetch = documented()
    prefetch["practitionerRoles"] = None  # nothing but what the order holds
    sr = order("#r1", "#r2")
    sr["contained"] = [role("a", id="r1"), role("b", id="r2", specialty="207X00000X")]
    [claim] = by_topic(call(client, prefetch=prefetch, orders=[sr]))["claim"]
    assert claim["summary"].startswith("Medicare does not pay co-surgeons on CPT 64580")
    # the same surgeon named twice, once through a contained role and once directly, is one surgeon
    sr = order("#r1", "Practitioner/a")
    sr["contained"] = [role("a", id="r1")]
    assert "claim" not in by_topic(call(client, prefetch=prefetch, orders=[sr]))
    # a contained role of the same local id as a record's PractitionerRole is the order's own, never the record's
    prefetch["practitionerRoles"] = searchset(role("a", id="r1"), role("b", id="r2", specialty="207X00000X"))
    sr = order("#r1", "#r2")
    sr["contained"] = [role("a", id="r1"), role("b", "assistant-surgeon", id="r2", specialty="207X00000X")]
    assert "Medicare does not pay co-surgeons" not in json.dumps(call(client, prefetch=prefetch, orders=[sr]))


def test_a_62_on_a_medicare_co_surgery_order_is_taken_off_by_every_suggestion(client):
    sr = order("PractitionerRole/ra", "PractitionerRole/rb", modifiers=("62",))
    sr["orderDetail"].append({"text": "bring the programmer"})
    [claim] = by_topic(call(client, orders=[sr]))["claim"]
    assert claim["indicator"] == "warning" and "must come off" in claim["detail"]
    assert claim["suggestions"][-1]["label"].startswith("Remove modifier 62 only")
    for suggestion in claim["suggestions"]:
        [update] = [a for a in suggestion["actions"] if a["type"] == "update"]
        ServiceRequest.model_validate(update["resource"])
        assert update["resource"]["orderDetail"] == [{"text": "bring the programmer"}]


def test_modifier_62_with_one_surgeon_is_flagged_and_removed(client):
    sr = order("PractitionerRole/ra", modifiers=("62",))
    sr["orderDetail"].append({"text": "bring the programmer"})
    [claim] = by_topic(call(client, orders=[sr]))["claim"]
    assert claim["indicator"] == "warning"
    assert "only one primary surgeon" in claim["summary"]
    updated = claim["suggestions"][0]["actions"][0]["resource"]
    assert updated["orderDetail"] == [{"text": "bring the programmer"}]


def test_the_removal_names_the_modifier_the_order_carries(client):
    sr = order("PractitionerRole/ra", "PractitionerRole/rb", modifiers=("66",))
    [claim] = by_topic(call(client, orders=[sr]))["claim"]
    assert claim["suggestions"][-1]["label"].startswith("Remove modifier 66 only")


def test_a_request_without_a_64580_order_gets_no_cards(client):
    result = call(client, orders=[service_request(id="lab", code="80053")])
    assert result == {"cards": [], "systemActions": []}


def test_cards_are_identical_for_a_retried_call_and_unique_within_it(client):
    instance = "6f1c7f9e-7c1a-4a57-9a7e-3b5d0e6c2a41"
    orders_ = [order("PractitionerRole/ra", "PractitionerRole/rb")]
    data = documented(pt=False)
    first = call(client, prefetch=data, orders=orders_, instance=instance)
    again = call(client, prefetch=data, orders=orders_, instance=instance)
    assert first == again
    ids = [c["uuid"] for c in first["cards"]] + [s["uuid"] for c in first["cards"] for s in c.get("suggestions", ())]
    assert len(ids) == len(set(ids))
    other = call(client, prefetch=data, orders=orders_)
    assert not {c["uuid"] for c in other["cards"]} & {c["uuid"] for c in first["cards"]}


def test_card_uuids_stay_the_ones_issued_before_an_upgrade(client):
    """Feedback and retries reconcile across releases: a card's uuid is the RFC 4122 name-based (version 5) UUID
    of the hookInstance, the order and the card kind, in the service's namespace, however it is computed."""
    instance = "0d7c2e0a-9a55-4f6e-8a8e-2b1f3d4c5e6f"
    answer = call(client, prefetch=documented(pt=False), orders=[order("PractitionerRole/ra")], instance=instance)
    kinds = {"guideline": "payer", "claim": "billing"}
    for card in answer["cards"]:
        value = uuid.UUID(card["uuid"])
        assert (value.version, value.variant) == (5, uuid.RFC_4122)
    payer = next(c for c in answer["cards"] if c["source"]["topic"]["code"] in kinds)
    kind = kinds[payer["source"]["topic"]["code"]]
    expected = uuid.uuid5(cards._NAMESPACE, f"{instance}|{answer['systemActions'][0]['resource']['id']}|{kind}")
    assert payer["uuid"] == str(expected)


@pytest.mark.parametrize(
    ("configuration", "topics"),
    [
        ({}, ["appropriate-use", "guideline", "claim", "appropriate-use"]),
        ({"appropriate-use": False}, ["guideline", "claim"]),
        ({"claim": False}, ["appropriate-use", "guideline", "appropriate-use"]),
        ({"coverage-info": False}, ["appropriate-use", "claim", "appropriate-use"]),
        ({"max-cards": 1}, ["appropriate-use"]),
        ({"max-cards": 0}, []),
    ],
)
def test_crd_configuration_is_honoured(stated_client, configuration, topics):
    untried = documented(pt=False, payer=EXAMPLE_BLUE)
    untried["medicationRequests"] = searchset()  # no other modality tried: MP-623's documentation warning
    result = call(
        stated_client,
        prefetch=untried,
        orders=[order("PractitionerRole/ra", "PractitionerRole/rb")],
        extension={"davinci-crd.configuration": configuration},
    )
    assert [c["source"]["topic"]["code"] for c in result["cards"]] == topics
    assert bool(result["systemActions"]) == configuration.get("coverage-info", True)  # present, empty when off
    severities = [c["indicator"] for c in result["cards"]]
    assert severities == sorted(severities, key=["warning", "info"].index), "warnings come first"


def test_order_select_is_information_only(client):
    result = call(
        client,
        hook="order-select",
        prefetch=documented(pt=False),
        orders=[order("PractitionerRole/ra", "PractitionerRole/rb")],
    )
    assert result["cards"]
    assert all("suggestions" not in c for c in result["cards"])


def test_order_select_answers_about_the_selected_orders_only(client):
    """order-select: "decision support should focus on the selected orders"; the unsigned 64580 order in the
    session was answered when it was selected, and selecting a drug next must not show its cards again."""
    drug = {
        "resourceType": "MedicationRequest",
        "id": "med-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "medicationCodeableConcept": {"text": "gabapentin 300 mg"},
    }
    body = hook_request(hook="order-select", prefetch=documented(), orders=[order(id="sr-64580"), drug])
    body["extension"]["cds64580.as-of"] = AS_OF
    for selections, answered in ((["MedicationRequest/med-1"], False), (["ServiceRequest/sr-64580"], True)):
        body["context"]["selections"] = selections
        response = client.post(
            f"/cds-services/{ORDER_SELECT}", data=orjson.dumps(body), content_type="application/json"
        )
        assert response.status_code == 200, response.get_json()
        assert bool(response.get_json()["cards"]) is answered, selections


def test_crd_2_1_clients_get_the_older_card_type_system(client):
    result = call(client, extension={"davinci-crd.requestedVersion": "2.1"})
    assert {c["source"]["topic"]["system"] for c in result["cards"]} == {cards.CARD_TYPES_CRD_2_1}


def test_each_64580_order_gets_its_own_cards(client):
    result = call(
        client,
        prefetch=documented(pt=False),
        orders=[order(id="sr-a"), order(id="sr-b"), service_request(id="x", code="80053")],
    )
    associated = [c["extension"]["davinci-crd.associated-resource"][0]["reference"] for c in result["cards"]]
    assert sorted(associated) == ["ServiceRequest/sr-a"] * 3 + ["ServiceRequest/sr-b"] * 3
    assert [a["resource"]["id"] for a in result["systemActions"]] == ["sr-a", "sr-b"]


def test_bad_as_of_is_a_400(client):
    body = hook_request(prefetch=full_prefetch())
    body["extension"] = {"cds64580.as-of": "June"}
    response = client.post(f"/cds-services/{ORDER_SIGN}", json=body)
    assert response.status_code == 400
    assert "cds64580.as-of" in response.get_json()["issue"][0]["expression"][0]


def test_surgeon_roles_and_pain_scores_are_fetched_when_not_prefetched(client, ehr):
    data = documented()
    data["practitionerRoles"] = searchset()
    ehr.expect_request("/fhir/PractitionerRole/ra").respond_with_json(role("a", id="ra"))
    ehr.expect_request("/fhir/PractitionerRole", query_string={"practitioner": "b"}).respond_with_json(
        searchset(role("b", id="rb", specialty="207X00000X"))
    )
    ehr.expect_request("/fhir/Observation").respond_with_json(
        searchset(pain_score(8, "2026-02-25"), pain_score(3, "2026-03-04"))
    )
    result = call(
        client, prefetch=data, orders=[order("PractitionerRole/ra", "Practitioner/b")], fhir_server=ehr.url_for("/fhir")
    )
    topics = by_topic(result)
    assert statuses(topics["claim"][0])["co-surgeon-modifier"] == "not-met"
    assert statuses(topics["claim"][0])["stimulation-trial"] == "met"
    observation_query = next(r for r, _ in ehr.log if r.path == "/fhir/Observation")
    assert observation_query.args["code"] == "http://loinc.org|38208-5,http://loinc.org|72514-3"


def test_situational_fetch_failure_leaves_criteria_unknown_not_an_error(client, ehr):
    data = documented()
    data["practitionerRoles"] = searchset()
    ehr.expect_request("/fhir/PractitionerRole/ra").respond_with_data("", status=500)
    ehr.expect_request("/fhir/PractitionerRole/rb").respond_with_data("", status=500)
    result = call(
        client,
        prefetch=data,
        orders=[order("PractitionerRole/ra", "PractitionerRole/rb")],
        fhir_server=ehr.url_for("/fhir"),
    )
    assert statuses(result["cards"][0])["co-surgeon-modifier"] == "unknown"


def test_markdown_from_the_record_is_escaped():
    assert cards.md("<img src=x onerror=alert(1)> [x](javascript:y) *b*") == (
        "\\<img src=x onerror=alert(1)\\> \\[x\\](javascript:y) \\*b\\*"
    )


@pytest.mark.parametrize(
    ("title", "in_a_sentence"),
    [
        ("Objective pathology (EMG/NCS)", "objective pathology (EMG/NCS)"),
        ("Physical therapy tried", "physical therapy tried"),
        ("EMG or nerve conduction study", "EMG or nerve conduction study"),
        ("NCD 160.7 trial", "NCD 160.7 trial"),
    ],
)
def test_a_criterion_title_keeps_the_policys_case_inside_a_summary(title, in_a_sentence):
    assert cards._in_sentence(title) == in_a_sentence


@pytest.mark.parametrize(
    ("orders", "extension"),
    [
        ([service_request(id="lab", code="80053")], None),  # no order of ours
        (None, {"davinci-crd.configuration": {"coverage-info": False}}),  # coverage information switched off
        (None, None),
    ],
    ids=["no-64580-order", "coverage-info-off", "a-64580-order"],
)
def test_every_order_sign_answer_carries_system_actions(client, orders, extension):
    """CRD clients (and the Inferno test kit) require the member on every order-sign response."""
    result = call(client, orders=orders, extension=extension)
    assert isinstance(result["systemActions"], list)
    assert bool(result["systemActions"]) == (orders is None and extension is None)


# ---- diaphragm pacing: what a card asks of a ventilated patient --------------------------------------------------


def pacing(payer: str = "Medicare") -> dict:
    """A ventilated patient for diaphragm pacing (J96.11, Z99.11) whose record also holds pain-style conservative care."""
    data = documented(payer=payer)
    data["conditions"] = searchset(condition("J96.11", onset="2025-06-01"), condition("Z99.11", onset="2025-06-01"))
    return data


def test_diaphragm_pacing_is_not_judged_on_conservative_care_written_for_pain(client):
    """NCD 160.19 asks for an intact phrenic nerve and diaphragm: physical therapy, medications and a
    psychological evaluation are no step for pacing, not even "already documented"."""
    result = call(client, prefetch=pacing())
    [summary] = [c for c in by_topic(result)["appropriate-use"] if "criteria for" in c["summary"]]
    found = statuses(summary)
    assert found["phrenic-nerve"] == "unknown"
    for borrowed in ("physical-therapy", "medication-trial", "psych-evaluation", "substance-use"):
        assert found[borrowed] == "not-applicable", borrowed
    reasons = {c["id"]: c["reason"] for c in summary["extension"][cards.CRITERIA_EXTENSION]}
    assert reasons["physical-therapy"] == "the policy states this for pain, not for diaphragm pacing"
    [documentation] = [c for c in by_topic(result)["appropriate-use"] if c is not summary]
    assert "Already documented: Qualifying diagnosis." in documentation["detail"]
    assert "Physical therapy tried" not in documentation["detail"]


def test_spasm_still_reads_the_conservative_care_the_policy_wrote_for_pain(client):
    """Only pacing sets the borrowed criteria aside: for spasm they still inform (met here)."""
    data = documented()
    data["conditions"] = searchset(condition("M62.830", onset="2025-06-01"))
    [summary] = [c for c in by_topic(call(client, prefetch=data))["appropriate-use"] if "criteria for" in c["summary"]]
    assert statuses(summary)["physical-therapy"] == "met"


def test_the_medicare_payer_card_names_ncd_160_19_and_leaves_pain_documentation_out_for_pacing(client):
    [payer] = by_topic(call(client, prefetch=pacing()))["guideline"]
    assert "NCD 160.19" in payer["summary"] and "NCD 160.2 non-coverage" in payer["summary"]
    assert "64580 unconfirmed" in payer["summary"]
    assert "Chronic severe pain" not in payer["detail"]
    assert "Trial 64555" not in payer["detail"], "pacing has no percutaneous trial"
    [pain_card] = by_topic(call(client))["guideline"]
    assert "Keep in the record: Chronic severe pain of at least 3 months" in pain_card["detail"]


def test_a_documentation_item_scoped_to_an_unknown_pathway_is_refused(tmp_path):
    source = json.loads((policies.POLICY_DIR / "medicare.json").read_text())
    source["plans"][0]["versions"][0]["documentation"][0]["pathways"] = ["pacing"]
    (tmp_path / "medicare.json").write_text(json.dumps(source))
    with pytest.raises(policies.PolicyError, match="pathways"):
        policies.load(tmp_path)


def test_restorative_criteria_quote_the_devices_indication_and_say_the_copy_is_unverified(client):
    """ReActiv8's FDA indication states the restorative criteria (multifidus dysfunction shown by imaging or
    physiological testing, failed medications and physical therapy, not a spine-surgery candidate); the copy read
    is not FDA's own file, so its link is an unverified summary beside the trial paper."""
    data = documented(trial=False)
    data["conditions"] = searchset(condition("M62.85", onset="2025-06-01"))
    [_doc, summary] = by_topic(call(client, prefetch=data))["appropriate-use"]
    criteria = {c["id"]: c for c in summary["extension"][cards.CRITERIA_EXTENSION]}
    source = criteria["not-surgical-candidate"]["source"]
    assert "unverified summary: Summary of Safety and Effectiveness Data, ReActiv8 System" in source
    assert criteria["multifidus-dysfunction"]["status"] == "met"  # the EMG
    assert criteria["not-surgical-candidate"]["status"] == "unknown"


def test_a_documentation_line_gives_its_caveat_once(client):
    """A criterion only summaries state says so in its reason ("the payer's own text was not found; verify"): the
    line no longer repeats it as "(unverified summary: ...)" after the reason."""
    result = call(client, prefetch=documented(pt=False, payer="Acme Health"))
    [doc, _summary] = by_topic(result)["appropriate-use"]
    [line] = [ln for ln in doc["detail"].splitlines() if ln.startswith("- **Physical therapy tried**")]
    assert "verify" in line and line.count("verify") == 1, line


def test_a_card_gives_a_note_once_even_when_another_note_goes_on_from_it():
    """Two surgeons and an assistant: the assistant indicator was listed twice, once alone and once inside the
    co-surgeon note that goes on to say who bills what (the truth audit, November 2026)."""
    from cds import fixtures, replay

    answer = replay.run(fixtures.load_folder(fixtures.FIXTURE_DIR / "assistant-with-co-surgeons"), replay.Options())
    claim = next(c for c in answer.response["cards"] if c["source"]["topic"]["code"] == "claim")
    lines = claim["detail"].splitlines()
    assert sum("assistant-at-surgery indicator 2 for 64580" in line for line in lines) == 1, claim["detail"]
    assert len(lines) == len(set(lines))
