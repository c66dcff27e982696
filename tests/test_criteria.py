"""The criteria matrix: every criterion through met / not-met / unknown / not-applicable and its boundaries.

Pure: records are built from FHIR dicts and evaluated with a pinned "as of" date; no Flask, no HTTP.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from types import MappingProxyType

import pytest

from cds import codes, mpfs, policies, provenance, records, rules
from cds.orders import order_from
from cds.rules import Status
from cds.rules.params import Criterion

from .clinical import condition, medication, pain_score, procedure
from .support import service_request

AS_OF = date(2026, 6, 15)
MET, NOT_MET, UNKNOWN, NA = Status.MET, Status.NOT_MET, Status.UNKNOWN, Status.NOT_APPLICABLE


def stating(months: int) -> tuple:
    """A payer source that states a criterion's window: the window's own logic is tested under it."""
    quote = f"documented in the past {months} months"
    return (provenance.Source("https://payer.example/policy", "payer", "Policy", quote, "2026-11-27"),)


# MP-623's words: a payer source that exempts a revision from the trial (the revision logic is tested under it)
REVISION_EXEMPT = provenance.Source(
    "https://payer.example/mp-623",
    "payer",
    "Policy",
    "(revision or replacement of the pulse generator, electrodes or receiver does not require a trial)",
    "2026-11-28",
)


def finding(
    criterion: str,
    *resources: dict,
    order: dict | None = None,
    schedule: mpfs.FeeSchedule | None = None,
    as_of: date = AS_OF,
    sources: tuple | None = None,
    **params,
):
    """``criterion`` of the default policy (with ``params`` and ``sources`` over its own) evaluated on ``resources``."""
    ruleset = policies.default_ruleset(schedule)
    chosen = ruleset.criterion(criterion) or Criterion(criterion, criterion, "test (no default policy uses it)")
    if params:
        chosen = replace(chosen, params=MappingProxyType({**chosen.params, **params}))
    if sources is not None:
        chosen = replace(chosen, sources=sources)
    chosen = replace(chosen, confidence="primary")  # the rule's logic; test_clinical_logic covers unverified sources
    record = records.build(list(resources), "pat-1")
    [result] = rules.evaluate(
        record, order_from(order or service_request()), replace(ruleset, criteria=(chosen,)), as_of
    )
    assert result.criterion == criterion and result.policy.startswith("default-clinical@") and result.source
    return result


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([condition("G89.29")], MET),
        ([condition("G56.01")], NOT_MET),  # a named nerve alone: 64575's indication
        ([condition("G56.01"), condition("M62.830")], MET),  # with a neuromuscular target (spasm)
        ([condition("G8929")], MET),  # no dot
        ([condition("G89.29", system="urn:oid:2.16.840.1.113883.6.90")], MET),  # OID spelling
        ([condition("M62.830")], MET),  # spasm
        ([condition("M79.7")], NOT_MET),  # fibromyalgia only: excluded
        ([condition("M79.7"), condition("G90.512")], MET),
        ([condition("G89.29", clinical="resolved")], NOT_MET),
        ([condition("G89.29", onset="2026-07-01")], NOT_MET),  # after the order
        ([condition("J45.909")], NOT_MET),
        ([], NOT_MET),
    ],
)
def test_indication(resources, status):
    assert finding("indication", *resources).status == status


def test_indication_names_its_evidence():
    c = condition("G89.29")
    result = finding("indication", c)
    assert [e.reference for e in result.evidence] == [f"Condition/{c['id']}"]
    assert "G89.29" in result.reason  # as published, with its dot


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([condition("F11.20")], NOT_MET),
        ([condition("F11.21")], MET),  # dependence in remission
        ([condition("F10.20", clinical="remission")], MET),
        ([condition("G89.29")], MET),
        ([], MET),
    ],
)
def test_substance_use(resources, status):
    assert finding("substance-use", *resources).status == status


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([condition("G89.29", onset="2026-03-15")], MET),  # exactly 3 months before 2026-06-15
        ([condition("G89.29", onset="2026-03-16")], NOT_MET),
        ([condition("G89.29", onset=None, recordedDate="2026-01-01")], MET),
        ([condition("G89.29", onset=None)], UNKNOWN),
        ([condition("G89.29", onset="2025")], MET),  # partial date
        ([condition("G89.29", onset="2026-05-01"), condition("G56.01", onset="2025-12-01")], MET),
        ([condition("M62.50")], NA),  # atrophy, not pain
        ([], NOT_MET),
    ],
)
def test_chronicity(resources, status):
    assert finding("chronicity", *resources).status == status


def test_chronicity_uses_the_order_date_when_the_order_has_one():
    order = service_request() | {"authoredOn": "2026-05-01"}
    assert finding("chronicity", condition("G89.29", onset="2026-02-01"), order=order).status == MET
    assert finding("chronicity", condition("G89.29", onset="2026-02-02"), order=order).status == NOT_MET


@pytest.mark.parametrize(
    ("resources", "params", "status"),
    [
        ([procedure("97110", "2026-01-10")], {}, MET),
        ([procedure("97110", "2025-06-15")], {}, MET),  # first day of the 12-month window
        ([procedure("97110", "2025-06-14")], {}, NOT_MET),
        ([procedure("91251008", "2026-01-10", system=codes.SNOMED)], {}, MET),
        ([procedure("97163", "2026-01-10", system=codes.HCPCS)], {}, MET),  # CPT under the HCPCS system
        ([procedure("97110", None)], {}, UNKNOWN),
        ([procedure("97110", "2026-01-10", status="not-done")], {}, NOT_MET),
        ([procedure("99213", "2026-01-10")], {}, NOT_MET),
        ([procedure("97110", "2026-01-01"), procedure("97140", "2026-02-12")], {"min_weeks": 6}, MET),  # 42 days
        ([procedure("97110", "2026-01-01"), procedure("97140", "2026-02-11")], {"min_weeks": 6}, NOT_MET),
        ([procedure("97110", "2026-01-01", "2026-02-20")], {"min_weeks": 6}, MET),  # one period record
        ([], {}, NOT_MET),
    ],
)
def test_physical_therapy(resources, params, status):
    assert finding("physical-therapy", *resources, sources=stating(12), **params).status == status


def test_physical_therapy_span_is_explained():
    result = finding(
        "physical-therapy", procedure("97110", "2026-01-01"), procedure("97110", "2026-01-22"), min_weeks=6
    )
    assert "3 weeks" in result.reason and "6 weeks" in result.reason


@pytest.mark.parametrize(
    ("resources", "params", "status"),
    [
        ([medication("25480")], {}, MET),  # gabapentin ingredient
        ([medication("N02BF01", system=codes.ATC)], {}, MET),
        ([medication("N03AX12", system=codes.ATC)], {}, MET),  # gabapentin's former ATC code
        ([medication("310431", text="gabapentin 300 MG Oral Capsule")], {}, MET),  # product code, matched by name
        ([medication("72625", kind="MedicationStatement")], {}, MET),
        ([medication("N02AA01", system=codes.ATC)], {}, NOT_MET),  # an opioid is not a listed class
        ([medication("25480", status="entered-in-error")], {}, NOT_MET),
        ([medication("25480", when="2026-09-01")], {}, NOT_MET),  # after the order
        ([medication("25480")], {"min_classes": 2}, NOT_MET),
        ([medication("25480"), medication("5640")], {"min_classes": 2}, MET),
        ([], {}, NOT_MET),
    ],
)
def test_medication_trial(resources, params, status):
    assert finding("medication-trial", *resources, **params).status == status


def test_medication_by_reference_to_a_contained_medication():
    request = medication("0")
    del request["medicationCodeableConcept"]
    request["contained"] = [
        {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": codes.RXNORM, "code": "187832"}]}}
    ]
    request["medicationReference"] = {"reference": "#m1"}
    assert finding("medication-trial", request).status == MET


TRIAL = ("2026-03-01", "2026-03-07")


@pytest.mark.parametrize(
    ("resources", "params", "status"),
    [
        ([], {}, NOT_MET),
        ([procedure("64555", *TRIAL)], {}, UNKNOWN),  # no scores
        ([procedure("64555", *TRIAL), pain_score(8, "2026-02-20")], {}, UNKNOWN),  # baseline only
        ([procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(4, "2026-03-05")], {}, MET),  # 50%
        (
            [procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(4.1, "2026-03-05")],
            {},
            UNKNOWN,
        ),  # 48.8%: no primary quote of 50%
        (
            [
                procedure("64555", *TRIAL),
                pain_score(8, "2026-02-20"),
                pain_score(2, "2026-03-03"),
                pain_score(6, "2026-03-06"),
            ],
            {},
            MET,  # mean 4 of 8
        ),
        ([procedure("64555", *TRIAL), pain_score(0, "2026-02-20"), pain_score(0, "2026-03-05")], {}, UNKNOWN),
        (
            [procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(3, "2026-03-05")],
            {"min_reduction_percent": 70},
            UNKNOWN,  # no primary source of the default policy quotes 70%: it informs, it never warns
        ),
        (
            [procedure("64555", "2026-03-01", "2026-03-02"), pain_score(8, "2026-02-20"), pain_score(2, "2026-03-02")],
            {"min_days": 3},
            NOT_MET,
        ),
        (
            [procedure("64555", "2026-03-01"), pain_score(8, "2026-02-20"), pain_score(2, "2026-03-09")],
            {"min_days": 3},
            UNKNOWN,
        ),
        ([procedure("64555", "2026-03-01"), pain_score(8, "2026-02-20"), pain_score(2, "2026-03-09")], {}, MET),
        ([procedure("64555", "2025-05-01", "2025-05-07")], {}, NOT_MET),  # older than 12 months
        ([procedure("64580", "2024-01-10"), procedure("64555", *TRIAL)], {}, NA),  # revision
        ([procedure("64590", "2024-01-10")], {}, NOT_MET),  # a generator alone is no array to revise
        ([procedure("64596", "2025-01-10")], {}, NA),  # a percutaneous integrated system: a prior permanent system
        ([procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(4, "2026-03-05", "38208-5")], {}, MET),
    ],
)
def test_stimulation_trial(resources, params, status):
    window = stating(params.get("lookback_months", 12))
    sources = (*window, REVISION_EXEMPT)
    assert finding("stimulation-trial", *resources, sources=sources, **params).status == status


@pytest.mark.parametrize(
    ("kind", "quote", "status"),
    [
        (
            "payer",
            "Once effectiveness is confirmed (at least 70% reduction in pain), electrodes are implanted.",
            NOT_MET,
        ),
        ("payer", "a 70 percent reduction in pain", NOT_MET),
        ("payer", "if pain is effectively controlled by percutaneous stimulation", UNKNOWN),  # no number
        ("payer", "at least 170% of the fee", UNKNOWN),  # another number
        ("secondary", "Successful trial with at least 70% pain reduction", UNKNOWN),  # a summary's number
    ],
)
def test_too_little_relief_warns_only_on_a_threshold_the_payers_own_text_states(kind, quote, status):
    source = provenance.Source("https://payer.example/policy", kind, "Policy", quote, "2026-11-27")
    trial = [procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(3, "2026-03-05")]  # 62.5%
    result = finding("stimulation-trial", *trial, sources=(source,), min_reduction_percent=70)
    assert result.status == status, result.reason
    if status == UNKNOWN:
        assert result.reason.endswith(">= 70% is read only in a secondary summary, not in the payer's own text: verify")


def test_stimulation_trial_reports_the_computed_relief():
    result = finding(
        "stimulation-trial", procedure("64555", *TRIAL), pain_score(8, "2026-02-20"), pain_score(4.1, "2026-03-05")
    )
    assert "48.8% relief" in result.reason
    assert result.confidence == "primary"  # carried from the criterion to the finding
    assert len(result.evidence) == 3


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([procedure("90791", "2026-02-01")], MET),
        ([procedure("96137", "2026-02-01")], MET),  # inside a range
        ([procedure("90791", "2025-01-01")], NOT_MET),
        ([procedure("90791", None)], UNKNOWN),
        ([], NOT_MET),
    ],
)
def test_psych_evaluation(resources, status):
    assert finding("psych-evaluation", *resources, sources=stating(12)).status == status


def test_every_criterion_is_evaluated_in_policy_order():
    ruleset = policies.default_ruleset()
    record = records.build([], "pat-1")
    findings = rules.evaluate(record, order_from(service_request()), ruleset, AS_OF)
    assert [f.criterion for f in findings] == [c.id for c in ruleset.criteria]
    assert {c.id for c in ruleset.criteria} <= set(rules.CRITERIA)


@pytest.mark.parametrize(
    ("criterion", "resources", "params", "status"),
    [
        ("objective-pathology", [procedure("95886", "2026-01-10")], {}, MET),
        ("objective-pathology", [procedure("95910", "2026-01-10")], {}, MET),
        # EMG is the policy's example of objective evidence, not the only one: none found is to verify
        ("objective-pathology", [procedure("95910", "2024-01-10")], {"lookback_months": 12}, UNKNOWN),
        ("objective-pathology", [procedure("95910", None)], {}, UNKNOWN),
        ("objective-pathology", [procedure("95999", "2026-01-10")], {}, UNKNOWN),
        ("objective-pathology", [], {}, UNKNOWN),
        ("objective-pathology", [procedure("95860", "2026-01-10")], {}, MET),  # needle EMG, one extremity
        ("objective-pathology", [procedure("95872", "2026-01-10")], {}, MET),
        ("diagnostic-block", [procedure("64450", "2026-01-10")], {}, MET),
        ("diagnostic-block", [procedure("64400", "2026-01-10")], {}, MET),
        ("diagnostic-block", [procedure("64451", "2026-01-10")], {}, MET),
        ("diagnostic-block", [procedure("64454", "2026-01-10")], {}, MET),
        ("diagnostic-block", [procedure("64461", "2026-01-10")], {}, NOT_MET),
        ("diagnostic-block", [procedure("64450", "2026-07-10")], {}, NOT_MET),  # after the order
    ],
)
def test_diagnostic_procedures(criterion, resources, params, status):
    assert finding(criterion, *resources, **params).status == status


def _stating(quote: str) -> tuple:
    source = {"url": "https://example.org/p", "kind": "payer", "title": "P", "quote": quote, "retrieved": "2026-11-27"}
    return provenance.parse([source])


def test_no_emg_is_not_proof_of_no_objective_pathology():
    """MP-623: "objective evidence of pathology (e.g., electromyography)": the card said 'no EMG or nerve conduction
    study documented' as a warning, as if EMG were required."""
    result = finding(
        "objective-pathology", sources=_stating("objective evidence of pathology (e.g., electromyography)")
    )
    assert result.status == UNKNOWN
    assert "EMG being one example" in result.reason and "imaging" in result.reason
    assert result.order_modifiers is None and not result.documents


def test_emg_is_called_an_example_only_where_the_policy_says_so():
    """Aetna's summaries name objective pathology and no test: MP-623's "EMG being one example" is not Aetna's."""
    result = finding("objective-pathology", sources=_stating("refractory pain, objective pathology, named nerve"))
    assert result.status == UNKNOWN
    assert "naming no test" in result.reason and "EMG" not in result.reason.split(";", 1)[1]


@pytest.mark.parametrize(
    ("test", "status"),
    [
        (procedure("72148", "2025-12-01"), MET),  # lumbar MRI
        (procedure("95886", "2025-12-01"), MET),  # needle EMG
        (procedure("95910", "2025-12-01"), UNKNOWN),  # nerve conduction alone: nerves, not the muscle
        (procedure("72148", "2023-01-01"), UNKNOWN),  # older than 24 months
    ],
)
def test_multifidus_dysfunction_needs_imaging_or_needle_emg(test, status):
    """ReActiv8's indication: dysfunction "evidenced by imaging or physiological testing"; a nerve conduction study
    counted as that evidence (the truth audit, November 2026)."""
    result = finding("multifidus-dysfunction", condition("M62.85"), test)
    assert result.status == status, result.reason
