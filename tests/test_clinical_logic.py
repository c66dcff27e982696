"""Clinical logic a pain surgeon would sign: diagnosis status, chronicity, prior implants, medication lookback.

Each case here was "met" where it must not be, or "not met" where the record is fine, before the rules read
verification status, clinical status, removal procedures and dates.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from cds import codes, provenance, records
from cds.orders import order_from
from cds.rules import Status

from .clinical import condition, medication, pain_score, procedure
from .support import PATIENT_ID, service_request
from .test_criteria import REVISION_EXEMPT, TRIAL, finding, stating

MET, NOT_MET, UNKNOWN, NA = Status.MET, Status.NOT_MET, Status.UNKNOWN, Status.NOT_APPLICABLE


@pytest.mark.parametrize(
    ("verification", "status"),
    [
        (None, MET),
        ("confirmed", MET),
        ("refuted", NOT_MET),
        ("entered-in-error", NOT_MET),
        ("unconfirmed", UNKNOWN),
        ("provisional", UNKNOWN),
        ("differential", UNKNOWN),
    ],
)
def test_indication_reads_verification_status(verification, status):
    result = finding("indication", condition("G90.522", verification=verification))
    assert result.status == status, result.reason
    if status == UNKNOWN:
        assert "not confirmed" in result.reason


def test_a_refuted_diagnosis_does_not_hide_a_confirmed_one():
    both = [condition("G90.522", verification="refuted"), condition("G89.29")]
    assert finding("indication", *both).status == MET


@pytest.mark.parametrize(
    ("resources", "params", "status"),
    [
        ([condition("F11.20", verification="refuted")], {}, MET),
        ([condition("F11.20", verification="provisional")], {}, UNKNOWN),
        ([condition("F11.20", clinical="resolved")], {}, MET),
        ([condition("F10.91")], {}, MET),  # alcohol use, unspecified, in remission
        ([condition("F12.11")], {}, MET),  # cannabis abuse, in remission
        ([condition("F17.210")], {}, MET),  # nicotine alone: only where a policy names tobacco
        ([condition("F17.210")], {"value_sets": ["substance-use", "tobacco-use"]}, NOT_MET),
        ([condition("F17.211")], {"value_sets": ["substance-use", "tobacco-use"]}, MET),  # in remission
        ([condition("F15.20")], {}, NOT_MET),
    ],
)
def test_substance_use_status_remission_and_nicotine(resources, params, status):
    assert finding("substance-use", *resources, **params).status == status


def test_chronicity_is_measured_on_the_active_diagnosis_not_a_resolved_old_episode():
    old = condition("G56.01", onset="2016-03-01", clinical="resolved", abatementDateTime="2016-09-01")
    new = condition("G90.522", onset="2026-05-01")
    result = finding("chronicity", old, new)
    assert result.status == NOT_MET and "G90.522" in result.reason and "2026-05-01" in result.reason
    assert [e.reference for e in result.evidence] == [f"Condition/{new['id']}"], "the old episode is no evidence"
    assert any("2016-03-01" in n and "resolved" in n for n in result.notes), "but it is shown as context"


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([condition("G90.522", onset="2025-01-01", verification="provisional")], UNKNOWN),
        ([condition("G90.522", onset="2025-01-01", verification="refuted")], NOT_MET),
        ([condition("G90.522", onset="2025-01-01", clinical="inactive")], NOT_MET),
    ],
)
def test_chronicity_needs_an_active_confirmed_diagnosis(resources, status):
    assert finding("chronicity", *resources).status == status


@pytest.mark.parametrize(
    ("resources", "params", "status"),
    [
        ([medication("25480", when="2020-05-01")], {}, NOT_MET),  # six years ago
        ([medication("25480", when="2024-07-01")], {}, MET),  # inside 24 months
        ([medication("25480", when="2020-05-01", status="active")], {}, MET),  # still taking it
        ([medication("25480", when="2020-05-01", until="2025-01-01")], {}, MET),  # a course ending in the window
        ([medication("25480", when="2024-07-01")], {"lookback_months": 12}, NOT_MET),
        ([medication("25480", when="2026-01-01", until="2026-01-15")], {"min_weeks": 4}, NOT_MET),  # 2 weeks
        ([medication("25480", when="2026-01-01", until="2026-03-01")], {"min_weeks": 4}, MET),
        ([medication("25480", when="2026-04-01")], {"min_weeks": 4}, MET),  # no duration recorded: counts
    ],
)
def test_medication_trial_lookback_and_duration(resources, params, status):
    window = stating(params.get("lookback_months", 24))
    assert finding("medication-trial", *resources, sources=window, **params).status == status


def test_medication_reason_names_drugs_classes_and_dates():
    result = finding(
        "medication-trial",
        medication("25480", text="gabapentin 300 MG", when="2025-11-01", status="active"),
        medication("72625", text="duloxetine 60 MG", when="2025-12-01", until="2026-02-01"),
        medication("25480", text="gabapentin 100 MG", when="2019-01-01"),
    )
    assert result.status == MET
    assert "gabapentin 300 MG (gabapentinoids) from 2025-11-01, ongoing" in result.reason
    assert "duloxetine 60 MG (serotonin-norepinephrine reuptake inhibitors) 2025-12-01 to 2026-02-01" in result.reason
    assert "2019" not in result.reason


def test_an_old_medication_is_named_when_nothing_recent_is_found():
    result = finding("medication-trial", medication("25480", text="gabapentin", when="2020-05-01"), sources=stating(24))
    assert result.status == NOT_MET and any("2020-05-01" in n and "Older than 24 months" in n for n in result.notes)


LUMBAR, FOREARM = "122496007", "14975008"  # SNOMED CT body structures (lumbar spine, forearm)


@pytest.mark.parametrize(
    ("resources", "order_site", "status", "said"),
    [
        ([procedure("64580", "2023-01-10")], None, NA, "CPT 64580 placed on 2023-01-10"),
        ([procedure("64575", "2023-01-10")], None, NA, "CPT 64575"),
        ([procedure("64597", "2024-01-10")], None, NA, "CPT 64597"),
        ([procedure("64555", "2023-01-10", text="Permanent percutaneous PNS array")], None, NA, "a permanent 64555"),
        ([procedure("64581", "2020-01-10"), procedure("64590", "2020-01-10")], None, NOT_MET, "sacral nerve array"),
        ([procedure("64582", "2021-01-10")], None, NOT_MET, "hypoglossal nerve system"),
        ([procedure("64585", "2023-01-10")], None, NOT_MET, ""),  # a removal alone
        ([procedure("64580", "2022-01-10"), procedure("64585", "2023-01-10")], None, NOT_MET, ""),  # removed since
        ([procedure("64580", "2022-01-10", site=FOREARM)], LUMBAR, NOT_MET, ""),  # another target
        ([procedure("64580", "2022-01-10", site=LUMBAR)], LUMBAR, NA, "CPT 64580"),
        ([procedure("64580", "2022-01-10")], LUMBAR, NA, "CPT 64580"),  # the earlier site is not coded
    ],
)
def test_only_a_true_revision_waives_the_trial(resources, order_site, status, said):
    order = service_request()
    if order_site:
        order["bodySite"] = [{"coding": [{"system": "http://snomed.info/sct", "code": order_site}]}]
    result = finding("stimulation-trial", *resources, order=order, sources=(REVISION_EXEMPT,))
    assert result.status == status, result.reason
    assert said in result.reason + " ".join(result.notes)


def test_a_revision_needs_no_new_trial_only_where_the_payers_own_text_says_so():
    """Only MP-623 says "revision or replacement ... does not require a trial"; the card said "no new trial
    required" for every payer (the truth audit, November 2026). Elsewhere it is for the payer to say."""
    prior = procedure("64580", "2023-01-10")
    result = finding("stimulation-trial", prior, sources=stating(12))
    assert result.status == UNKNOWN and result.explained, result.reason
    assert result.reason.endswith("whether a new trial is needed is not stated in the payer's own text: verify")
    for said_elsewhere in (replace(REVISION_EXEMPT, context=True), replace(REVISION_EXEMPT, kind="secondary")):
        assert finding("stimulation-trial", prior, sources=(said_elsewhere,)).status == UNKNOWN  # not the payer's
    assert finding("stimulation-trial", prior, sources=(REVISION_EXEMPT,)).reason.endswith("requires no new trial")
    for other in (
        "A revision of the system requires a trial.",
        "Revision: see section 4. The policy does not require a trial of TENS first.",  # another sentence
        "Replacement of a battery does not require a trial.",  # says nothing of a revision
    ):
        quoted = replace(REVISION_EXEMPT, quote=other)
        assert finding("stimulation-trial", prior, sources=(quoted,)).status == UNKNOWN, other


def test_a_64596_is_a_prior_system_not_a_trial():
    result = finding("stimulation-trial", procedure("64596", *TRIAL), sources=(REVISION_EXEMPT,))
    assert result.status == NA and "revision or replacement" in result.reason


def test_a_criterion_resting_on_secondary_sources_never_warns_on_its_own():
    from dataclasses import replace

    from cds import policies, records, rules
    from cds.rules.params import Criterion

    from .test_criteria import AS_OF

    summary_only = Criterion(
        "physical-therapy", "Physical therapy tried", "https://x.org (unverified summary: y)", "secondary"
    )
    ruleset = replace(policies.default_ruleset(), criteria=(summary_only,))
    [finding_] = rules.evaluate(records.build([], "pat-1"), order_from(service_request()), ruleset, AS_OF)
    assert finding_.status == UNKNOWN
    assert finding_.reason.startswith("no physical therapy")  # what the record shows, then the caveat
    assert finding_.reason.endswith("; only a secondary summary states it; the payer's own text was not found: verify")


# ---- from a second reading (issue 13 review) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("PNS trial lead before permanent implant", UNKNOWN),  # a trial: judged as one (no scores here)
        ("non-permanent percutaneous array", UNKNOWN),
        ("Permanent percutaneous PNS array", NA),
    ],
)
def test_only_a_64555_the_record_calls_permanent_is_a_prior_system(text, status):
    result = finding("stimulation-trial", procedure("64555", *TRIAL, text=text), sources=(REVISION_EXEMPT,))
    assert result.status == status, result.reason


def test_a_provisional_restorative_diagnosis_does_not_choose_the_pathway():
    from cds import records, rules

    record = records.build([condition("G89.29"), condition("M62.85", verification="provisional")], "pat-1")
    pathway = rules.choose_pathway(record, order_from(service_request()), date(2026, 6, 15))
    assert pathway.id == "pain"


@pytest.mark.parametrize(
    ("resources", "reason", "status"),
    [
        ([condition("M79.7"), condition("G47.33")], None, NOT_MET),  # fibromyalgia is the indication, not OSA
        ([condition("G47.33")], "G90.522", NOT_MET),  # the order names a 64580 indication: no 64582 pointer
    ],
)
def test_a_comorbidity_is_never_read_as_the_indication(resources, reason, status):
    order = service_request()
    if reason:
        order["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": reason}]}]
    result = finding("indication", *resources, order=order)
    assert result.status == status and result.alternative is None, result.reason


RIGHT, LEFT = "24028007", "7771000"


def test_an_implant_on_the_other_side_is_not_a_revision():
    prior = procedure("64580", "2022-01-10", site=RIGHT)
    order = service_request()
    order["bodySite"] = [{"coding": [{"system": "http://snomed.info/sct", "code": LEFT}]}]
    assert finding("stimulation-trial", prior, order=order, sources=(REVISION_EXEMPT,)).status == NOT_MET


def test_a_same_day_revision_is_still_the_system_in_place():
    same_day = [procedure("64580", "2022-01-10"), procedure("64585", "2023-05-10"), procedure("64580", "2023-05-10")]
    assert finding("stimulation-trial", *same_day, sources=(REVISION_EXEMPT,)).status == NA


def test_an_active_statement_whose_period_ended_long_ago_is_not_ongoing():
    old = medication("25480", kind="MedicationStatement", when="2015-01-01", until="2016-01-01", status="active")
    result = finding("medication-trial", old, sources=stating(24))
    assert result.status == NOT_MET and "ongoing" not in result.reason


def test_a_proposed_prescription_was_not_tried():
    proposal = medication("25480", when="2026-01-01")
    proposal["intent"] = "proposal"
    assert finding("medication-trial", proposal).status == NOT_MET


def test_diagnoses_are_told_as_published_with_the_records_name_for_them():
    """A clinician reads G57.12, not the G5712 codes are compared in, and the name the record gives it."""
    assert codes.published(codes.ICD10CM, "G5712") == "G57.12"
    assert codes.published(codes.ICD10CM, "g57.12") == "G57.12"
    assert codes.published(codes.ICD10CM, "G89") == "G89"
    assert codes.published(codes.CPT, "64580") == "64580"
    named = condition("G57.12", onset="2025-01-10")
    named["code"]["coding"][0]["display"] = "Meralgia paresthetica, left lower limb"
    record = records.build([named], PATIENT_ID)
    [event] = record.condition_events(codes.NAMED_NERVE_PAIN)
    assert event.shown == "G57.12 \u2013 Meralgia paresthetica, left lower limb"


def test_pain_criteria_borrowed_for_a_spasm_indication_inform_but_never_warn():
    """No source read gives criteria for implanted stimulation for spasm: the policy's pain criteria (here the
    psychological evaluation) applied to that indication can say what is missing, never fail the order; its trial,
    which measures pain relief, is not asked for at all (the truth audit, November 2026)."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-spasm-indication")
    case.resources = [r for r in case.resources if not {"64555", "90791"} & set(str(r.get("code")).split("'"))]
    answer = replay.run(case, replay.Options()).response
    [criteria] = {str(c["extension"]["cds64580.criteria"]) for c in answer["cards"]}
    found = {c["id"]: c for c in answer["cards"][0]["extension"]["cds64580.criteria"]}
    assert found["stimulation-trial"]["status"] == "not-applicable", criteria
    assert found["stimulation-trial"]["reason"].startswith("the policy's trial measures pain relief")
    assert found["psych-evaluation"]["status"] == "unknown", criteria
    documentation = [c for c in answer["cards"] if c["summary"].startswith("Documentation")]
    assert documentation and all(c["indicator"] == "info" for c in documentation)
    # a criterion whose primary source states it, written for pain and applied to spasm, says so
    from cds.rules import Criterion, Finding, informs_only

    borrowed = Criterion("stimulation-trial", "trial", "", confidence="primary", borrowed_from="pain")
    told = informs_only(Finding("stimulation-trial", NOT_MET, "no percutaneous trial"), borrowed)
    assert told.status == UNKNOWN
    assert told.reason == "no percutaneous trial; the policy states this for pain, not for this indication"


def test_a_primary_document_cited_for_context_never_makes_a_criterion_warn():
    """NCD 160.7.1 says a percutaneous trial can justify an implant, not that one is required (its patient-selection
    conditions are written under central nervous system stimulators): cited as background, it no longer turned
    Medicare's missing trial into a warning."""
    from cds import fixtures, replay

    answer = replay.run(fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-explanted-array"), replay.Options())
    cards = answer.response["cards"]
    trial = next(c for c in cards[0]["extension"]["cds64580.criteria"] if c["id"] == "stimulation-trial")
    assert trial["status"] == "unknown" and trial["confidence"] == "secondary", trial
    assert trial["reason"].endswith(
        "no source read states it for this payer (the primary documents cited are background): verify"
    )
    documentation = next(c for c in cards if c["summary"].startswith("Documentation"))
    assert documentation["indicator"] == "info"
    kinds = {link["label"].split(":")[0] for link in documentation["links"]}
    assert kinds == {"Background", "Unverified summary"}, documentation["links"]
    background = provenance.Source("https://x.example", "cms", "t", "q", "2026-11-28", context=True)
    assert provenance.confidence((background,)) == "secondary"
    assert provenance.cited(provenance.citation((background,)))[0]["context"] is True


def test_a_diagnosis_with_an_abatement_date_and_no_clinical_status_is_not_active():
    """FHIR con-4: an abated condition is inactive, resolved or in remission even when the status is not sent."""
    over = condition("G90.522", abatementDateTime="2025-06-01")
    del over["clinicalStatus"]
    assert finding("indication", over).status == NOT_MET
    ongoing = condition("G90.522")
    del ongoing["clinicalStatus"]
    assert finding("indication", ongoing).status == MET


def test_a_procedure_of_unknown_status_neither_counts_as_done_nor_fails_the_order():
    """FHIR R4 Procedure.status "unknown": the source system does not know which status applies (not-done and
    entered-in-error included). A criterion resting on such a Procedure alone is unknown, naming it."""
    alone = procedure("97110", "2026-01-10", status="unknown")
    result = finding("physical-therapy", alone)
    assert result.status == UNKNOWN
    assert f"only if Procedure/{alone['id']} happened (status unknown in the record; verify)" in result.reason
    assert [e.reference for e in result.evidence] == [f"Procedure/{alone['id']}"]
    missing_status = procedure("97110", "2026-01-10")
    del missing_status["status"]  # required by FHIR; read as unknown
    assert finding("physical-therapy", missing_status).status == UNKNOWN
    # a course the record settles is met whatever else it holds; in progress counts as under way
    settled = finding("physical-therapy", procedure("97110", "2026-01-10"), alone)
    assert settled.status == MET and f"Procedure/{alone['id']}" not in [e.reference for e in settled.evidence]
    assert settled.reason.startswith("1 physical-therapy record(s)"), "the unsettled session is not counted"
    assert finding("physical-therapy", procedure("97110", "2026-01-10", status="in-progress")).status == MET
    # the same for a drug: a prescription of unknown status may never have been filled or taken
    unclear = medication("25480", when="2025-11-01", status="unknown")
    tried = finding("medication-trial", unclear)
    assert tried.status == UNKNOWN and f"only if MedicationRequest/{unclear['id']} happened" in tried.reason
    assert finding("medication-trial", medication("25480", when="2025-11-01")).status == MET


def test_a_trial_of_unknown_status_shows_as_unconfirmed_on_the_card():
    """Through a replayed case: the trial the record cannot confirm is not counted among the met criteria."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-all-criteria-met")
    trials = [r for r in case.resources if r.get("resourceType") == "Procedure" and "64555" in str(r.get("code"))]
    assert trials
    for trial in trials:
        trial["status"] = "unknown"
    answer = replay.run(case, replay.Options()).response
    criteria = {c["id"]: c for c in answer["cards"][0]["extension"]["cds64580.criteria"]}
    assert criteria["stimulation-trial"]["status"] == "unknown"
    assert "status unknown in the record; verify" in criteria["stimulation-trial"]["reason"]
    summary = next(c for c in answer["cards"] if c["summary"].startswith("CPT 64580 criteria"))
    assert "1 unknown" in summary["summary"], summary["summary"]


def test_entries_sent_without_an_id_are_each_counted_as_themselves():
    """Two prescriptions without ids were one "MedicationRequest/None": the gabapentin took the class of the
    opioid listed after it (a class this policy does not count), and the card asked for a trial the record shows."""
    gabapentin = medication("25480", text="gabapentin 300 MG", when="2025-11-01")
    opioid = medication("N02AA05", system=codes.ATC, text="oxycodone", when="2025-12-01")
    for resource in (gabapentin, opioid):
        del resource["id"]
    result = finding("medication-trial", gabapentin, opioid)
    assert result.status == MET and "gabapentin 300 MG (gabapentinoids)" in result.reason
    pt = [procedure("97110", when=day) for day in ("2026-01-10", "2026-02-10")]
    for resource in pt:
        del resource["id"]
    therapy = finding("physical-therapy", *pt)
    references = [e.reference for e in therapy.evidence]
    assert therapy.status == MET and len(set(references)) == 2
    assert all(r.startswith("Procedure/(no id #") for r in references), references


@pytest.mark.parametrize(
    ("quote", "status"),
    [
        ("Other treatment modalities (pharmacological, physical) have been tried", UNKNOWN),  # MP-623: no window
        ("physical therapy within the past 12 months", NOT_MET),
        ("a course of physical therapy in the previous twelve months", NOT_MET),
        ("physical therapy within one year of the request", NOT_MET),
        ("physical therapy within the past 6 months", UNKNOWN),  # another window than the one applied
        ("physical therapy in the 12 months prior to the request", NOT_MET),
        ("pain for at least 12 months despite physical therapy", UNKNOWN),  # how long the pain lasted
    ],
)
def test_therapy_older_than_a_window_no_source_states_is_unknown_not_a_warning(quote, status):
    """Therapy 14 months before the order, under the default 12-month window: a warning only where the payer's own
    text states that window; else the card names the earlier therapy and asks to verify."""
    source = provenance.Source("https://payer.example/policy", "payer", "Policy", quote, "2026-11-27")
    pt = [procedure("97110", "2025-04-01"), procedure("97140", "2025-04-20")]
    result = finding("physical-therapy", *pt, sources=(source,))
    assert result.status == status, result.reason
    if status == UNKNOWN:
        assert "2 physical-therapy record(s) from 2025-04-01 to 2025-04-20" in result.reason
        assert result.reason.endswith("(12 months is this service's assumption): verify")
        assert len(result.evidence) == 2


def test_no_therapy_at_all_is_still_not_met_whatever_the_window():
    source = provenance.Source(
        "https://payer.example/policy", "payer", "Policy", "therapy has been tried", "2026-11-27"
    )
    assert finding("physical-therapy", sources=(source,)).status == NOT_MET
    old = medication("25480", text="gabapentin 300 MG", when="2020-05-01")
    result = finding("medication-trial", old, sources=(source,))
    assert result.status == UNKNOWN and "gabapentin 300 MG (gabapentinoids) on 2020-05-01" in result.reason
    opioid = medication("N02AA05", system=codes.ATC, text="oxycodone", when="2020-05-01")  # not a class counted
    assert finding("medication-trial", opioid, sources=(source,)).status == NOT_MET


def test_an_empty_id_or_one_shaped_like_our_label_never_merges_two_entries():
    """An id of "" was one shared key (the second drug lost), and a sender's own "(no id #1)" took the label an
    id-less entry gets: each entry stays itself, and the gabapentin is counted either way."""
    for first_id in ("", "(no id #1)"):
        opioid = medication("N02AA05", system=codes.ATC, text="oxycodone", when="2025-12-01")
        gabapentin = medication("25480", text="gabapentin 300 MG", when="2025-11-01")
        opioid["id"], gabapentin["id"] = first_id, ""
        result = finding("medication-trial", opioid, gabapentin)
        assert result.status == MET and "gabapentin 300 MG (gabapentinoids)" in result.reason, first_id


def test_a_course_too_short_inside_the_window_is_not_excused_by_an_old_visit():
    """The assumed window makes therapy that is only old unknown; therapy inside it that is too short still is not
    met (the policy's own six weeks), however old an earlier visit."""
    source = provenance.Source("https://payer.example/policy", "payer", "Policy", "6 weeks of therapy", "2026-11-27")
    pt = [procedure("97110", "2023-05-01"), procedure("97110", "2026-04-01"), procedure("97110", "2026-04-14")]
    result = finding("physical-therapy", *pt, sources=(source,), min_weeks=6)
    assert result.status == NOT_MET and "spans" in result.reason


def test_a_trial_or_evaluation_older_than_a_window_no_source_states_is_unknown():
    """The 12-month lookbacks of the stimulation trial and the psychological evaluation are this service's too: a
    good trial 14 months before the order is 'verify', not a warning; a trial with too little relief still warns."""
    source = provenance.Source("https://payer.example/policy", "payer", "Policy", "a trial precedes implantation",
                               "2026-11-27")  # fmt: skip
    trial = [procedure("64555", "2025-04-01", "2025-04-20"), pain_score(8, "2025-03-20"), pain_score(3, "2025-04-10")]
    result = finding("stimulation-trial", *trial, sources=(source,))
    assert result.status == UNKNOWN and "(12 months is this service's assumption): verify" in result.reason
    weak = [procedure("64555", "2025-04-01", "2025-04-20"), pain_score(8, "2025-03-20"), pain_score(7, "2025-04-10")]
    assert finding("stimulation-trial", *weak, sources=(source,)).status == NOT_MET
    psych = finding("psych-evaluation", procedure("90791", "2025-01-01"), sources=(source,))
    assert psych.status == UNKNOWN and "2025-01-01" in psych.reason


def _about(resource: dict, reference: str) -> dict:
    return {**resource, "subject": {"reference": reference}}


@pytest.mark.parametrize(
    ("criterion", "resource", "params"),
    [
        ("indication", condition("G90.522"), {}),
        ("physical-therapy", procedure("97110", "2026-01-05", "2026-03-01"), {}),
        ("psych-evaluation", procedure("90791", "2026-02-01"), {}),
        ("medication-trial", medication("25480", when="2026-01-01"), {}),
    ],
)
@pytest.mark.parametrize(
    "other",
    ["Patient/someone-else", "https://ehr.example.org/fhir/Patient/someone-else/_history/3"],
)
def test_another_patients_entries_are_never_this_patients_evidence(criterion, resource, params, other):
    """A prefetch that returns another patient's therapy or diagnosis is the EHR's error; counting it told a surgeon
    that this patient had it (the attacker's pass: met on someone else's physical therapy)."""
    mine = finding(criterion, resource, **params)
    assert mine.status == MET, mine.reason
    theirs = finding(criterion, _about(resource, other), **params)
    assert theirs.status != MET and theirs.evidence == (), theirs.reason
    same = finding(criterion, _about(resource, "https://ehr.example.org/fhir/Patient/pat-1"), **params)
    assert same.status == MET, "an absolute reference to this patient is this patient"


def test_another_patients_coverage_and_patient_resource_are_left_out():
    record = records.build(
        [
            {"resourceType": "Patient", "id": "someone-else", "birthDate": "1950-01-01"},
            {"resourceType": "Coverage", "id": "c9", "status": "active",
             "beneficiary": {"reference": "Patient/someone-else"}, "payor": [{"display": "Medicare"}]},
            {"resourceType": "Coverage", "id": "c1", "status": "active",
             "beneficiary": {"reference": f"Patient/{PATIENT_ID}"}, "payor": [{"display": "Aetna"}]},
        ],
        PATIENT_ID,
    )  # fmt: skip
    assert record.patient is None
    assert [c.id for c in record.coverages] == ["c1"]
    assert record.elsewhere == 2


@pytest.mark.parametrize(
    ("second", "status"),
    [("entered-in-error", NOT_MET), ("refuted", NOT_MET), ("provisional", UNKNOWN), ("confirmed", MET)],
)
def test_verification_status_is_read_from_hl7s_coding_not_the_first_one(second, status):
    """An EHR's local code first and HL7's ``entered-in-error`` second: the diagnosis was counted, met."""
    verification = {
        "coding": [
            {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.698084.10", "code": "7"},
            {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": second},
        ]
    }
    result = finding("indication", condition("G90.522", verificationStatus=verification))
    assert result.status == status, result.reason


@pytest.mark.parametrize("payer", ["Blue Cross and Blue Shield of Kansas", "Acme Mutual Health", "Florida Blue"])
def test_another_plans_policy_informs_a_plan_without_its_own_but_never_warns(payer, stated_policy_dir):
    """A Blue plan without a policy file of its own, an unknown payer, and Florida Blue (MP-623 names no plan) were
    warned of a missing trial on MP-623, one Blue plan's text: it is background for them (rule 31: 'other BCBS:
    plan-specific; confirm plan')."""
    from cds import fixtures, replay

    from .conftest import EXAMPLE_BLUE

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-explanted-array")
    cards = replay.run(case, replay.Options(payer=payer)).response["cards"]
    trial = next(c for c in cards[0]["extension"]["cds64580.criteria"] if c["id"] == "stimulation-trial")
    assert trial["status"] == "unknown" and trial["confidence"] == "secondary", trial
    assert all(c["indicator"] == "info" for c in cards if c["source"]["topic"]["code"] == "appropriate-use")
    publisher = replay.Options(payer=EXAMPLE_BLUE, policy_dir=str(stated_policy_dir))
    own = replay.run(case, publisher).response["cards"]
    assert any(c["indicator"] == "warning" for c in own if c["summary"].startswith("Documentation")), (
        "a plan whose own text it is still warns"
    )


@pytest.mark.parametrize(
    ("as_of", "status"),
    [
        (date(2026, 1, 20), NOT_MET),  # replayed as of January: the February therapy had not happened yet
        (date(2026, 2, 19), MET),  # a day's leeway for time zones: the EHR's local date may run ahead of UTC
        (date(2026, 6, 15), MET),
    ],
)
def test_the_record_is_read_as_of_the_evaluation_date_even_when_the_order_says_later(as_of, status):
    order = service_request()
    order["authoredOn"] = "2026-06-15"
    therapy = [procedure("97110", "2026-02-20"), procedure("97140", "2026-02-20")]
    result = finding("physical-therapy", *therapy, order=order, as_of=as_of, sources=stating(12))
    assert result.status == status, result.reason
