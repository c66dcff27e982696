"""Building the PatientRecord from real and messy data: it parses, it never crashes, it reads what the rules need."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import orjson
import pytest

from cds import codes, fhirvalues, policies, records, rules
from cds.orders import order_from

from .clinical import condition, medication, procedure
from .support import ORDER_SIGN, hook_request, searchset, service_request

AS_OF = date(2026, 6, 15)


def patient_bundles(realdata: Path) -> list[Path]:
    return sorted([*realdata.glob("synthea/*.json"), realdata / "test-ehr" / "HypoxemiaPatientBundle.json"])


def primary_ruleset():
    """The default criteria as if their sources were primary: these tests are about the record, not provenance."""
    ruleset = policies.default_ruleset()
    return replace(ruleset, criteria=tuple(replace(c, confidence="primary") for c in ruleset.criteria))


def test_real_bundles_build_and_give_sensible_not_met_findings(realdata):
    bundles = patient_bundles(realdata)
    assert len(bundles) == 3
    for path in bundles:
        bundle = json.loads(path.read_text())
        record = records.build([bundle], None)
        assert record.unreadable == 0, path.name
        findings = {
            f.criterion: f for f in rules.evaluate(record, order_from(service_request()), primary_ruleset(), AS_OF)
        }
        # COVID-19 and hypoxemia patients: nothing qualifies them for a neurostimulator.
        for criterion in ("indication", "chronicity", "physical-therapy", "stimulation-trial", "psych-evaluation"):
            assert findings[criterion].status == rules.Status.NOT_MET, (
                path.name,
                criterion,
                findings[criterion].reason,
            )
        assert findings["co-surgeon-modifier"].status == rules.Status.NOT_APPLICABLE


def test_real_hl7_examples_parse(realdata):
    resources = [json.loads(p.read_text()) for p in sorted((realdata / "davinci-crd-ig-2.0.1-package").glob("*.json"))]
    record = records.build(resources, "example")
    assert record.unreadable == 0
    assert record.patient is not None and len(record.coverages) == 1 and record.organizations


def test_synthea_patient_as_prefetch_over_http(client, realdata):
    bundle = json.loads(
        (realdata / "synthea" / "Leta870_Kihn564_5a67c244-3dae-770c-1a41-85790f73b1b1.json").read_text()
    )
    body = hook_request(
        prefetch={
            key: None for key in ("patient", "coverage", "procedures", "medicationRequests", "medicationStatements")
        }
    )
    body["prefetch"]["conditions"] = bundle  # a whole patient Bundle under one key: every resource is read
    body["extension"] |= {"cds64580.as-of": "2026-06-15"}
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 200
    cards = {}
    for card in response.get_json()["cards"]:
        cards.setdefault(card["source"]["topic"]["code"], card)  # the first of each topic
    # no coverage: the default criteria, modelled on another plan's text, say what is missing without warning
    assert cards["appropriate-use"]["indicator"] == "info" and "Documentation" in cards["appropriate-use"]["summary"]
    # Synthea keeps Coverage only inside ExplanationOfBenefit: no coverage for the order, and the card says so.
    assert cards["insurance"]["summary"].startswith("No insurance coverage found")


def test_duplicates_keep_the_newest_version():
    old = condition("J45.909") | {"id": "c1", "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}
    new = condition("G89.29") | {"id": "c1", "meta": {"lastUpdated": "2026-02-01T00:00:00Z"}}
    record = records.build([searchset(old), searchset(new), searchset(old)], "pat-1")
    [kept] = record.conditions
    assert kept.code.coding[0].code == "G89.29"


def test_messy_resources_are_repaired_not_dropped():
    unknown_element = procedure("97110") | {"futureElement": {"x": 1}}
    bad_date = condition("G89.29") | {"recordedDate": "last spring"}
    no_subject = procedure("64555", "2026-03-01")
    del no_subject["subject"]
    no_status = procedure("90791", "2026-02-01")
    del no_status["status"]
    half_coding = condition("G56.01")
    half_coding["code"]["coding"].append({"system": 7})  # wrong type inside a coding
    record = records.build([unknown_element, bad_date, no_subject, no_status, half_coding], "pat-1")
    assert record.unreadable == 0
    assert len(record.procedures) == 3 and len(record.conditions) == 2
    assert record.procedures[1].subject.reference == "Patient/pat-1"


def test_unreadable_resources_are_counted_not_fatal():
    hopeless = {
        "resourceType": "Condition",
        "id": "x",
        "code": {"coding": [{"system": codes.ICD10CM, "code": "G89.29"}]},
        "subject": "not a reference",
        "clinicalStatus": 42,
    }
    record = records.build(
        [hopeless, "not even a dict", {"resourceType": 5}, {"entry": "nope", "resourceType": "Bundle"}], "pat-1"
    )
    assert record.unreadable <= 1
    assert record.conditions == [] or record.conditions[0].id == "x"


def test_irrelevant_resources_are_never_parsed(monkeypatch):
    validated = []

    def counting(rtype, read):
        return lambda resource, patient_id: validated.append(rtype) or read(resource, patient_id)

    for rtype, kind in records._KINDS.items():
        monkeypatch.setitem(records._KINDS, rtype, kind._replace(read=counting(rtype, kind.read)))
    noise = [condition("J45.909") for _ in range(200)] + [procedure("99213") for _ in range(200)]
    noise += [{"resourceType": "Immunization", "id": f"i{i}"} for i in range(200)]
    noise += [medication("1049221", text="acetaminophen 325 MG") for _ in range(100)]
    record = records.build([*noise, condition("G89.29"), procedure("97110")], "pat-1")
    assert sorted(validated) == ["Condition", "Procedure"]
    assert len(record.conditions) == 1 and len(record.procedures) == 1


def test_a_record_of_thousands_of_resources_builds(realdata):
    bundle = json.loads(
        (realdata / "synthea" / "Leta870_Kihn564_5a67c244-3dae-770c-1a41-85790f73b1b1.json").read_text()
    )
    resources = [e["resource"] for e in bundle["entry"]] * 20
    resources += [procedure("97110", f"2026-0{1 + i % 5}-1{i % 9}") for i in range(300)]
    assert len(resources) > 2000
    record = records.build(resources, None)
    assert len(record.procedures) == 300


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://hl7.org/fhir/sid/icd-10-cm/", "g89.29", (codes.ICD10CM, "G8929")),
        ("urn:oid:2.16.840.1.113883.6.12", "64580", (codes.CPT, "64580")),
        ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "97110", (codes.CPT, "97110")),
        (codes.HCPCS, "L8680", (codes.HCPCS, "L8680")),
        ("http://example.org/local", "X1", ("http://example.org/local", "X1")),
    ],
)
def test_code_systems_are_normalised(system, code, expected):
    assert codes.canonical(system, code) == expected


def test_partial_dates():
    assert fhirvalues.as_date("2025") == date(2025, 1, 1)
    assert fhirvalues.as_date("2025-03") == date(2025, 3, 1)
    assert fhirvalues.as_date("garbage") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-09", date(2025, 3, 9)),
        ("2025-03-09T23:30:00-05:00", date(2025, 3, 9)),  # the day as written, not shifted to UTC
        ("2025-3-9", date(2025, 3, 9)),  # loose, but readable
        ("2025-02-30", None),  # no such day
        ("2025-13-01", None),
        ("20250309", None),  # not a FHIR date
    ],
)
def test_dates_are_read_as_written(value, expected):
    assert fhirvalues.as_date(value) == expected


def test_an_update_action_edits_a_copy_of_the_draft_order_never_the_request():
    """The cards' and coverage information's updates each change their own copy: the request (which the CLI and
    viewer replay again) and the other update keep the order as it was sent."""
    draft = service_request()
    draft["orderDetail"] = [{"coding": [{"system": codes.CPT, "code": "62"}]}]
    draft["extension"] = [{"url": "urn:x", "valueCodeableConcept": {"coding": [{"code": "a"}]}}]
    sent = json.loads(json.dumps(draft))
    order = order_from(draft)
    copy = order.editable()
    assert copy == sent
    copy["extension"][0]["valueCodeableConcept"]["coding"].append({"code": "b"})
    copy["orderDetail"][0]["coding"][0]["code"] = "66"
    copy["code"]["coding"].clear()
    assert draft == sent and order.editable() == sent


def test_two_undated_versions_that_disagree_are_evidence_of_nothing_for_certain():
    """The same Procedure twice with no meta.lastUpdated, once completed and once entered-in-error: which is
    current cannot be told, so physical therapy is unknown ("verify"), neither met nor not met."""
    done = procedure("97110", "2026-01-05") | {"id": "pt-1"}
    retracted = done | {"status": "entered-in-error"}
    ruleset = primary_ruleset()
    order = order_from(service_request())
    for versions in ([done, retracted], [retracted, done]):
        record = records.build([searchset(*versions)], "pat-1")
        [pt] = [f for f in rules.evaluate(record, order, ruleset, AS_OF) if f.criterion == "physical-therapy"]
        assert pt.status == rules.Status.UNKNOWN, pt.reason
        assert "Procedure/pt-1" in pt.reason and "verify" in pt.reason
    same = records.build([searchset(done, dict(done))], "pat-1")  # an exact repeat is no dispute
    [pt] = [f for f in rules.evaluate(same, order, ruleset, AS_OF) if f.criterion == "physical-therapy"]
    assert pt.status == rules.Status.MET


def test_two_undated_versions_of_a_diagnosis_that_disagree_leave_it_unconfirmed():
    confirmed = condition("G89.29", verification="confirmed") | {"id": "c1"}
    refuted = condition("G89.29", verification="refuted") | {"id": "c1"}
    record = records.build([searchset(confirmed), searchset(refuted)], "pat-1")
    order = order_from(service_request())
    [indication] = [f for f in rules.evaluate(record, order, primary_ruleset(), AS_OF) if f.criterion == "indication"]
    assert indication.status == rules.Status.UNKNOWN and "not confirmed" in indication.reason


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            medication("25480") | {"id": "m1", "status": "active"},
            medication("25480") | {"id": "m1", "status": "completed"},
        ),
        (condition("G89.29", verification="confirmed") | {"id": "c1"}, condition("G89.29") | {"id": "c1"}),
        (
            condition("G89.29") | {"id": "c1"},
            condition("G89.29")
            | {
                "id": "c1",
                "code": {"coding": [{"system": codes.ICD10CM, "code": "G89.29", "display": "Other chronic pain"}]},
            },
        ),
    ],
    ids=["active-and-completed", "confirmed-and-silent", "a-display-added"],
)
def test_two_versions_that_only_look_different_are_no_dispute(first, second):
    """Both versions say the same as the rules read them (taken, confirmed): the evidence stands."""
    record = records.build([searchset(first, second)], "pat-1")
    order = order_from(service_request())
    criterion = "medication-trial" if first["resourceType"] == "MedicationRequest" else "indication"
    [found] = [f for f in rules.evaluate(record, order, primary_ruleset(), AS_OF) if f.criterion == criterion]
    assert found.status == rules.Status.MET, found.reason


@pytest.mark.parametrize(
    ("occurrence", "first", "until"),
    [
        (
            {"occurrencePeriod": {"start": "2026-01-12", "end": "2026-02-20T17:00:00Z"}},
            date(2026, 1, 12),
            date(2026, 2, 20),
        ),
        ({"occurrencePeriod": {"start": "2026-01-12", "end": "2026-01-12"}}, date(2026, 1, 12), None),  # one day
        ({"occurrencePeriod": {"start": "2026-01-12", "end": "2025-12-01"}}, date(2026, 1, 12), None),  # breaks per-1
        ({"occurrencePeriod": {"start": "2026-01-12", "end": "2026-02"}}, date(2026, 1, 12), date(2026, 2, 28)),
        ({"occurrencePeriod": {"start": "2026-01-12", "end": "2026"}}, date(2026, 1, 12), date(2026, 12, 31)),
        (
            {"occurrenceTiming": {"repeat": {"boundsPeriod": {"start": "2026-01-12", "end": "2026-02-20"}}}},
            date(2026, 1, 12),
            date(2026, 2, 20),
        ),
        (
            {"occurrenceTiming": {"event": ["2026-01-12"], "repeat": {"boundsPeriod": {"end": "2026-02-20"}}}},
            date(2026, 1, 12),
            None,
        ),  # an event is the day
        ({"occurrencePeriod": {"end": "2026-02-20"}}, None, date(2026, 2, 20)),  # a window with only its end
        ({"occurrenceDateTime": "2026-01-12"}, date(2026, 1, 12), None),
    ],
)
def test_the_window_an_order_plans_the_surgery_in(occurrence, first, until):
    order = order_from(service_request() | occurrence)
    assert (order.occurrence, order.occurrence_until) == (first, until)
