"""What an attacker's pass on extreme values found (November 2026): numbers and dates at their limits in the
record, an attestation or a Coverage. Each is a clear 4xx or a true verdict, never a 500 nor a wrong "met"."""

from __future__ import annotations

import json

import pytest

from cds import fhirvalues, fixtures, records, replay

from .clinical import coverage, medication, pain_score, procedure
from .support import ORDER_SIGN, full_prefetch, hook_request, outcome, searchset, service_request

HOOK = f"/cds-services/{ORDER_SIGN}"
TRIAL = ("2026-03-01", "2026-03-07")


def criterion(answer: dict, wanted: str) -> dict:
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    return next(c for c in summary["extension"]["cds64580.criteria"] if c["id"] == wanted)


def trial_with(*scores: dict) -> dict:
    prefetch = full_prefetch()
    prefetch["procedures"] = searchset(procedure("64555", *TRIAL))
    prefetch["painScores"] = searchset(*scores)
    body = hook_request(prefetch=prefetch)
    body["extension"]["cds64580.as-of"] = "2026-06-15"
    return body


def test_pain_scores_whose_sum_overflows_a_float_are_an_answer_not_a_500(client):
    body = trial_with(pain_score(8, "2026-02-20"), pain_score(1e308, "2026-03-03"), pain_score(1e308, "2026-03-04"))
    response = client.post(HOOK, json=body)
    assert response.status_code == 200, response.get_json()
    trial = criterion(response.get_json(), "stimulation-trial")
    assert trial["status"] == "unknown" and "a score during it is missing" in trial["reason"]


def test_pain_scores_off_the_0_to_10_scale_are_not_used_and_are_named(client):
    """Scores 8, -100, -100 gave "1350% relief": met. A value off the scale is an entry error, not a score."""
    low = [pain_score(-100, "2026-03-03"), pain_score(-100, "2026-03-04")]
    answer = client.post(HOOK, json=trial_with(pain_score(8, "2026-02-20"), *low)).get_json()
    trial = criterion(answer, "stimulation-trial")
    assert trial["status"] == "unknown" and "relief" not in trial["reason"].split("(")[0], trial
    assert "pain -100 is off the 0-10 scale, not used" in json.dumps(answer)
    # a negative baseline was reported as "baseline pain score is 0"
    answer = client.post(HOOK, json=trial_with(pain_score(-5, "2026-02-20"), pain_score(2, "2026-03-03"))).get_json()
    assert "a baseline score before it is missing" in criterion(answer, "stimulation-trial")["reason"]
    # on the scale, the same record still computes relief
    answer = client.post(HOOK, json=trial_with(pain_score(8, "2026-02-20"), pain_score(2, "2026-03-03"))).get_json()
    assert "75% relief" in criterion(answer, "stimulation-trial")["reason"]


def test_a_met_trial_still_names_the_pain_readings_off_the_scale_on_a_card(client):
    """The finding carried the note, but no card showed a met criterion's notes."""
    answer = client.post(
        HOOK, json=trial_with(pain_score(8, "2026-02-20"), pain_score(2, "2026-03-03"), pain_score(77, "2026-03-04"))
    ).get_json()
    assert criterion(answer, "stimulation-trial")["status"] == "met"
    [summary] = [c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria")]
    assert "**Notes on met criteria:**" in summary["detail"]
    assert "pain 77 is off the 0-10 scale, not used" in summary["detail"].split("**Notes on met criteria:**")[1]


def test_the_summary_does_not_repeat_the_billing_cards_notes():
    """Billing criteria are shown, notes and all, on the billing card: met ones are not noted again."""
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "assistant-non-physician")
    cards = replay.run(case, replay.Options()).response["cards"]
    billing = next(c for c in cards if c["source"]["topic"]["code"] == "claim")
    assert "\n- " in billing["detail"]  # the billing card has notes of its own
    [summary] = [c for c in cards if c["summary"].startswith("CPT 64580 criteria")]
    assert "Notes on met criteria" not in summary["detail"]


def test_many_pain_readings_off_the_scale_are_named_three_and_counted():
    """12,000 of them made 12,000 notes, and de-duplicating the card's notes took 18.7 s."""
    from .test_criteria import TRIAL as DAYS
    from .test_criteria import finding

    wrong = [pain_score(40 + i % 50, "2026-03-03") for i in range(3000)]
    result = finding("stimulation-trial", procedure("64555", *DAYS), pain_score(8, "2026-02-20"), *wrong)
    off = [n for n in result.notes if "off the 0-10 scale" in n]
    assert len(off) == 4 and off[-1] == "2997 more pain readings are off the 0-10 scale around the trial, not used"
    one_more = finding("stimulation-trial", procedure("64555", *DAYS), pain_score(8, "2026-02-20"), *wrong[:4])
    assert one_more.notes[-1] == "1 more pain reading is off the 0-10 scale around the trial, not used"


@pytest.mark.parametrize(
    "path", ["/fhir/Questionnaire/$questionnaire-package", "/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate"]
)
@pytest.mark.parametrize("parameter", [5, True, 1.5, "x", {"name": "subject"}, None])
def test_a_parameters_body_whose_parameter_is_not_an_array_is_a_400(client, path, parameter):
    said = outcome(client.post(path, json={"resourceType": "Parameters", "parameter": parameter}), 400)
    assert "Parameters.parameter must be an array" in said


def _case_with_score(tmp_path, value_text: str, element: str = "valueQuantity"):
    case = fixtures.FIXTURE_DIR / "medicare-trial-too-little-relief"
    folder = tmp_path / "case"
    folder.mkdir()
    for name in ("bundle.json", "case.json"):
        (folder / name).write_text((case / name).read_text())
    bundle = json.loads((folder / "bundle.json").read_text())
    scores = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert scores, "the case has pain scores to change"
    if element == "valueInteger":
        del scores[0]["valueQuantity"]
        scores[0]["valueInteger"] = 0
        marker = '"valueInteger": 0'
    else:
        scores[0]["valueQuantity"]["value"] = 0
        marker = '"value": 0'
    (folder / "bundle.json").write_text(json.dumps(bundle).replace(marker, marker[:-1] + value_text, 1))
    return folder


@pytest.mark.parametrize("element", ["valueQuantity", "valueInteger"])
def test_a_fixture_with_a_400_digit_score_replays_without_a_500(tmp_path, element):
    folder = _case_with_score(tmp_path, "1" + "0" * 400, element)
    result = replay.run(fixtures.load_folder(folder), replay.Options())
    assert result.status == 200, result.response


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_fixture_with_nan_or_infinity_is_refused_as_not_json(tmp_path, constant):
    """Python reads them; no EHR's parser does, and a "-Infinity" mean made a trial "met"."""
    folder = _case_with_score(tmp_path, constant)
    with pytest.raises(fixtures.CaseError, match=f"{constant.lstrip('-')} is not a JSON number"):
        fixtures.load_folder(folder)


def test_an_unexpected_error_in_a_replay_is_logged_as_it_says(monkeypatch, caplog):
    """The in-process replay answered "the error was logged" and logged nothing."""
    from cds import engine

    def broken(*_args, **_kwargs):
        raise OverflowError("a value from the record")

    monkeypatch.setattr(engine, "invoke", broken)
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-all-criteria-met")
    result = replay.run(case, replay.Options())
    assert result.status == 500 and "the error was logged" in json.dumps(result.response)
    logged = [r.getMessage() for r in caplog.records if r.name == "cds.replay"]
    assert logged and logged[0].startswith("unexpected OverflowError at ")
    assert "a value from the record" not in caplog.text  # the message may quote the record: never logged


@pytest.mark.parametrize(
    "where", ["coverage.end", "coverage.start", "occurrence", "authoredOn", "performed", "lastUpdated"]
)
def test_a_date_of_ten_digits_is_not_a_date_not_a_500(client, where):
    """'9999999999' read as a year overflowed a C int in as_date: an OverflowError, a 500."""
    org, cov = coverage("Medicare")
    prefetch = full_prefetch()
    order = service_request()
    if where.startswith("coverage"):
        cov["period"] = {where.split(".")[1]: "9999999999"}
    elif where == "occurrence":
        order["occurrenceDateTime"] = "9999999999"
    elif where == "authoredOn":
        order["authoredOn"] = "2147483648"
    else:
        done = procedure("64555", "2026-03-01")
        if where == "performed":
            done["performedDateTime"] = "9999999999"
            prefetch["procedures"] = searchset(done)
        else:
            other = dict(done, meta={"lastUpdated": "6000000000000000:60"})
            prefetch["procedures"] = searchset(done | {"meta": {"lastUpdated": "2147483648"}}, other)
    prefetch["coverage"] = searchset(org, cov)
    response = client.post(HOOK, json=hook_request(prefetch=prefetch, orders=[order]))
    assert response.status_code == 200, response.get_json()


# ---- attestations ----------------------------------------------------------------------------------------------


def _attested(client, start: str, end: str, dated: bool = True, authored: str | None = None) -> dict:
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-attested-physical-therapy")
    text = json.dumps(replay.standalone_request(case, replay.Options()))
    assert '"2026-01-05"' in text and '"2026-02-20"' in text
    body = json.loads(text.replace('"2026-01-05"', json.dumps(start)).replace('"2026-02-20"', json.dumps(end)))
    responses = [e["resource"] for p in body["prefetch"].values() for e in (p or {}).get("entry", [])]
    responses = [r for r in responses if r.get("resourceType") == "QuestionnaireResponse"]
    assert responses
    for response in responses:
        if not dated:
            del response["authored"]
        elif authored is not None:
            response["authored"] = authored
    return criterion(client.post(HOOK, json=body).get_json(), "physical-therapy")


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("0001-01-01", "9999-12-31", "the dates run past the day it was signed (2026-06-10)"),
        ("2026-01-05", "2026-08-20", "the dates run past the day it was signed (2026-06-10)"),
        ("1901-01-05", "2026-02-20", "it starts before the patient's birth date (1968-04-12)"),
    ],
)
def test_attested_dates_that_cannot_be_true_do_not_count(client, start, end, why):
    pt = _attested(client, start, end)
    assert pt["status"] != "met" and pt["attested"] is True and why in pt["reason"], pt


def test_attested_dates_past_today_do_not_count_when_the_response_has_no_date(client):
    pt = _attested(client, "2026-01-05", "2026-09-01", dated=False)  # the case is evaluated as of 2026-06-15
    assert pt["status"] != "met" and "run past the day of this evaluation (2026-06-15)" in pt["reason"], pt
    assert _attested(client, "2026-01-05", "2026-02-20", dated=False)["status"] == "met"


def test_a_response_signed_in_a_year_may_attest_to_any_day_of_it(client):
    """authored "2026" was read as 1 January: therapy to June ran "past the day it was signed (2026-01-01)"."""
    assert _attested(client, "2026-01-05", "2026-06-10", authored="2026")["status"] == "met"
    pt = _attested(client, "2026-01-05", "2026-06-10", authored="2026-03")
    assert pt["status"] != "met" and "past the day it was signed (by 2026-03-31)" in pt["reason"], pt
    pt = _attested(client, "2026-01-05", "2026-09-01", authored="garbage")
    assert "and the response has no readable date" in pt["reason"], pt


def test_attested_dates_that_can_be_true_still_count(client):
    assert _attested(client, "2026-01-05", "2026-06-11")["status"] == "met"  # a day's leeway for time zones


# ---- versions, coverage periods and therapy periods -----------------------------------------------------------


def test_the_newer_version_is_the_later_instant_whatever_its_offset():
    """As text, "09:00+05:00" (04:00 UTC) sorted after "08:00Z": the older version won."""
    older = procedure("64555", "2026-03-01") | {"meta": {"lastUpdated": "2026-05-01T09:00:00+05:00"}}
    newer = dict(older, status="entered-in-error", meta={"lastUpdated": "2026-05-01T08:00:00Z"})
    for order in ([older, newer], [newer, older]):
        record = records.build(order, "pat-1")
        assert [p.status for p in record.procedures] == ["entered-in-error"]


def test_a_leap_second_is_its_own_second_not_midnight():
    """ "23:59:60Z" could not be read as a time and fell back to the day's first moment: the older version won."""
    earlier = procedure("64555", "2026-03-01") | {"meta": {"lastUpdated": "2016-12-31T12:00:00Z"}}
    leap = dict(earlier, status="entered-in-error", meta={"lastUpdated": "2016-12-31T23:59:60Z"})
    for order in ([earlier, leap], [leap, earlier]):
        assert [p.status for p in records.build(order, "pat-1").procedures] == ["entered-in-error"]


@pytest.mark.parametrize(
    ("period", "why"),
    [
        ({"start": "1999-01-01", "end": "2001-12-31"}, "ended on 2001-12-31"),
        ({"start": "2027-01-01"}, "begins on 2027-01-01"),
        ({"start": "2025", "end": "2026-05"}, "ended on 2026-05-31"),  # a month runs to its last day
    ],
)
def test_a_coverage_out_of_its_period_is_not_in_force(client, period, why):
    org, cov = coverage("Medicare")
    cov["period"] = period
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(org, cov)
    body = hook_request(prefetch=prefetch)
    body["extension"]["cds64580.as-of"] = "2026-06-15"
    answer = client.post(HOOK, json=body).get_json()
    payer = next(c for c in answer["cards"] if "coverage is not active" in c["summary"])
    assert f"Coverage/{cov['id']} {why}" in payer["detail"]
    # the card and the coverage information say the same (it said "coverage was not determined")
    assert "tells the EHR 'not covered: no active coverage'" in payer["detail"]
    [action] = answer["systemActions"]
    [info] = action["resource"]["extension"]
    assert {"url": "covered", "valueCode": "not-covered"} in info["extension"]
    cov["period"] = {"start": "2020-01-01", "end": "2026-06-15"}  # in force on the day
    answer = client.post(HOOK, json=body | {"prefetch": prefetch}).get_json()
    assert not any("coverage is not active" in c["summary"] for c in answer["cards"])


def test_without_coverage_information_the_card_does_not_claim_it_tells_the_ehr(client):
    """order-select is information only and gets no system action: its card said the coverage information tells
    the EHR 'not covered'. (An EHR that switches coverage information off gets no payer card at all.)"""
    from .support import ORDER_SELECT

    org, cov = coverage("Medicare")
    cov["period"] = {"end": "2001-12-31"}
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(org, cov)
    answer = client.post(f"/cds-services/{ORDER_SELECT}", json=hook_request(hook="order-select", prefetch=prefetch))
    assert not answer.get_json().get("systemActions")
    payer = next(c for c in answer.get_json()["cards"] if "coverage is not active" in c["summary"])
    assert "tells the EHR" not in payer["detail"] and "ended on 2001-12-31" in payer["detail"], payer["detail"]


def _answer(client, coverages: list[dict], occurrence: str | None = None, insurance: str | None = None) -> dict:
    org, _cov = coverage("Medicare")
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(org, *coverages)
    order = service_request() | ({"occurrenceDateTime": occurrence} if occurrence else {})
    if insurance:
        order["insurance"] = [{"reference": f"Coverage/{insurance}"}]
    body = hook_request(prefetch=prefetch, orders=[order])
    body["extension"]["cds64580.as-of"] = "2026-06-15"
    return client.post(HOOK, json=body).get_json()


def _payer_cards(client, period: dict, occurrence: str | None = None) -> tuple[dict, list[dict]]:
    _org, cov = coverage("Medicare")
    cov["period"] = period
    answer = _answer(client, [cov], occurrence)
    return cov, [c for c in answer["cards"] if "The patient's coverage is not" in c["summary"]]


@pytest.mark.parametrize("end", ["2026", "2026-06", "2026-06-30T23:00:00-05:00"])
def test_a_coverage_ending_in_a_partial_date_is_in_force_to_its_last_day(client, end):
    """ "2026" and "2026-06" were read as their first day: the EHR was told a June plan was not covering."""
    assert _payer_cards(client, {"start": "2025-01-01", "end": end})[1] == []


def test_a_loosely_written_full_end_date_is_the_day_it_names():
    """Only a year or a year-month runs to its last day: "2026-6-1" is the first of June, as as_date reads it."""
    assert fhirvalues.as_end_date("2026-6-1") == fhirvalues.as_date("2026-6-1") == fhirvalues.as_date("2026-06-01")
    assert fhirvalues.as_end_date("2026-06-3").day == 3 and fhirvalues.as_end_date("2026-06").day == 30


def test_a_coverage_must_be_in_force_on_the_day_of_surgery(client):
    """A plan in force today that ends before the scheduled surgery pays nothing for it: the card says so; a plan
    that begins by then is the one that pays, though it is not yet in force today."""
    cov, [card] = _payer_cards(client, {"start": "2020-01-01", "end": "2026-06-30"}, "2026-08-03")
    assert card["summary"].startswith("The patient's coverage is not in force on the day of surgery")
    assert f"Coverage/{cov['id']} ends on 2026-06-30, before the surgery planned on 2026-08-03" in card["detail"]
    _cov, [card] = _payer_cards(client, {"start": "2026-09-01"}, "2026-08-03")
    assert "begins on 2026-09-01, after the surgery planned on 2026-08-03" in card["detail"]
    assert _payer_cards(client, {"start": "2026-08-01"}, "2026-08-03")[1] == []
    # one that ended before today says so plainly, not "ends on"
    cov, [card] = _payer_cards(client, {"end": "2020-12-31"}, "2026-12-15")
    assert f"Coverage/{cov['id']} ended on 2020-12-31" in card["detail"]
    assert card["summary"].startswith("The patient's coverage is not active")


@pytest.mark.parametrize(
    ("period", "occurrence"),
    [({"end": "2026-11-30"}, "2026-12-01"), ({"start": "2026-12-02"}, "2026-12-01")],
)
def test_the_day_of_surgery_is_compared_exactly(client, period, occurrence):
    """Both are the EHR's calendar dates: the day's leeway for 'today' matched a plan a day off the surgery."""
    assert len(_payer_cards(client, period, occurrence)[1]) == 1


def test_a_surgery_on_the_day_before_utcs_today_is_checked_against_the_coverage(client):
    """An EHR west of Greenwich signs for a surgery that evening after UTC's midnight: the day was read as past, so
    a plan beginning the next day was matched as if it paid for the surgery."""
    _org, cov = coverage("Medicare")
    cov["period"] = {"start": "2026-06-16"}
    order = service_request() | {"occurrenceDateTime": "2026-06-14T19:00:00-10:00"}  # 05:00 UTC on 2026-06-15
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(cov)
    body = hook_request(prefetch=prefetch, orders=[order])
    body["extension"]["cds64580.as-of"] = "2026-06-15"
    [card] = [c for c in client.post(HOOK, json=body).get_json()["cards"] if "coverage is not" in c["summary"]]
    assert card["summary"].startswith("The patient's coverage is not in force on the day of surgery")
    assert "begins on 2026-06-16, after the surgery planned on 2026-06-14" in card["detail"]


def test_a_month_of_surgery_is_not_its_first_day_for_the_coverage(client):
    """ "2026-07" was read as 1 July: a plan beginning on 15 July was said to begin "after the surgery planned on
    2026-07-01", a day the order never named. A month is no day: the coverage is judged as for an order with no
    date, on the evaluation day."""
    _org, cov = coverage("Medicare")
    cov["period"] = {"start": "2026-07-15"}
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(cov)
    body = hook_request(prefetch=prefetch, orders=[service_request() | {"occurrenceDateTime": "2026-07"}])
    body["extension"]["cds64580.as-of"] = "2026-06-15"
    answer = client.post(HOOK, json=body).get_json()
    [card] = [c for c in answer["cards"] if "coverage is not" in c["summary"]]
    assert "(Coverage/" in card["detail"] and "begins on 2026-07-15)" in card["detail"]
    assert "2026-07-01" not in json.dumps(answer)


def test_a_plan_change_at_the_year_end_picks_the_plan_of_the_surgery_day(client):
    """Two coverages, the order naming neither: on 31 December or 1 January only one is in force."""
    _org, old = coverage("Medicare")
    old["period"] = {"end": "2026"}
    _org, new = coverage("Medicare")
    new |= {"id": old["id"] + "-2027", "period": {"start": "2027-01-01"}}
    for day, wanted in (("2026-12-31", old["id"]), ("2027-01-01", new["id"])):
        [info] = _answer(client, [old, new], day)["systemActions"][0]["resource"]["extension"]
        assert {"url": "coverage", "valueReference": {"reference": f"Coverage/{wanted}"}} in info["extension"], day


def test_a_scheduled_day_already_past_is_not_routed_on(client):
    """A draft order signed today cannot be performed in 2020: routing on it told the EHR 'not covered'."""
    assert _payer_cards(client, {"start": "2025-01-01"}, "2020-01-01")[1] == []


def test_a_therapy_period_ending_before_it_starts_is_read_as_its_start_only():
    """An end before the start (FHIR per-1) shortened the course's span to a negative one."""
    from .test_criteria import finding

    sessions = [procedure("97110", "2026-01-05"), procedure("97110", "2026-04-01", "2025-01-01")]
    result = finding("physical-therapy", *sessions)
    assert "from 2026-01-05 to 2026-04-01" in result.reason, result.reason
    assert result.status.value == "met"


def test_a_prescription_whose_period_ends_before_it_starts_has_an_unknown_length_and_is_not_ongoing():
    """Reading such a period as (start, no end) let an "active" prescription from years ago run up to the order:
    met. Its start is read; how long it lasted is not known, so it is neither ongoing nor too short."""
    from .clinical import medication
    from .test_criteria import finding

    old = medication("25480", when="2023-01-05", until="2022-01-01", status="active")
    result = finding("medication-trial", old)
    assert result.status.value != "met" and "2023-01-05" in result.reason + " ".join(result.notes), result
    recent = medication("25480", when="2026-01-05", until="2025-01-01", status="active")
    result = finding("medication-trial", recent, min_weeks=6)
    assert result.status.value == "met" and "ongoing" not in result.reason, result  # as with no end at all
    assert finding("medication-trial", recent | {"dispenseRequest": {}}, min_weeks=6).status.value == "met"


def test_an_order_whose_insurance_is_not_in_force_says_why(client):
    _org, cov = coverage("Medicare", status="cancelled")
    prefetch = full_prefetch()
    prefetch["coverage"] = searchset(_org, cov)
    order = service_request() | {"insurance": [{"reference": f"Coverage/{cov['id']}"}]}
    answer = client.post(HOOK, json=hook_request(prefetch=prefetch, orders=[order])).get_json()
    payer = next(c for c in answer["cards"] if "coverage is not active" in c["summary"])
    assert f"Coverage/{cov['id']} has status cancelled" in payer["detail"]


@pytest.mark.parametrize(
    "coding",
    [
        {"system": "http://www.ama-assn.org/go/cpt", "code": 62},
        {"system": "http://www.ama-assn.org/go/cpt", "code": {}},
        {"system": "http://www.ama-assn.org/go/cpt", "code": ["62"]},
        {"system": "http://www.ama-assn.org/go/cpt", "code": True},
        {"system": {}, "code": "62"},
        {"system": ["http://www.ama-assn.org/go/cpt"], "code": "62"},
    ],
)
def test_a_modifier_coded_with_a_number_or_an_object_is_no_modifier_not_a_500(client, coding):
    """orderDetail codings of the wrong type: `code.upper()` of 62 and a dict system in the code-system memo were
    a 500 (an AttributeError, an unhashable TypeError)."""
    order = service_request() | {"orderDetail": [{"coding": [coding]}]}
    response = client.post(HOOK, json=hook_request(prefetch=full_prefetch(), orders=[order]))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("contained", [5, True, 1.5])
def test_a_medication_whose_contained_is_not_an_array_is_read_without_it_not_a_500(client, contained):
    """A MedicationRequest naming '#m1' with `contained: 5`: iterating the number was a TypeError, a 500."""
    prefetch = full_prefetch()
    drug = medication(text="unused")
    del drug["medicationCodeableConcept"]
    drug |= {"medicationReference": {"reference": "#m1"}, "contained": contained}
    prefetch["medicationRequests"] = searchset(drug)
    response = client.post(HOOK, json=hook_request(prefetch=prefetch))
    assert response.status_code == 200, response.get_json()
