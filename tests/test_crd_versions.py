"""Answers valid for the CRD version the client speaks: 2.2's 'indeterminate' never reaches a 2.0/2.1 client.

Value sets from the HL7/davinci-crd sources: tag 2.0.1 and 2.2.1, input/fsh/valuesets/CoverageInformationValuesets.fsh.
"""

from __future__ import annotations

import pytest

from cds import coverage, engine, fixtures, replay
from cds.config import Settings
from cds.errors import FHIRTimeout
from cds.fhirstore import FHIRStore
from cds.services import SERVICES

ORDER_SIGN = "cpt64580-order-sign"
VALUE_SETS = {
    "2.0": {
        "covered": {"covered", "not-covered", "conditional"},
        "pa-needed": {"no-auth", "auth-needed", "satisfied", "performpa", "conditional"},
        "doc-needed": {"clinical", "admin", "both", "conditional"},
        "reason-codes": {"gold-card", "detail-code"},
    },
    "2.2": {
        "covered": {"covered", "not-covered", "conditional", "indeterminate"},
        "pa-needed": {"no-auth", "auth-needed", "satisfied", "performpa", "conditional", "indeterminate"},
        "doc-needed": {"clinical", "admin", "patient", "conditional", "indeterminate"},
        "reason-codes": {"gold-card", "detail-code", "no-member-found", "no-active-coverage", "coverage-not-found",
                         "auth-out-network", "technical"},
    },
}  # fmt: skip
# (case, what 2.2 says is covered): one per outcome a surgeon can meet
OUTCOMES = [
    ("medicare-all-criteria-met", "covered"),
    ("aetna-all-criteria-met", "indeterminate"),  # a stance read only in summaries
    ("medicare-no-physical-therapy", "conditional"),
    ("anthem-investigational", "not-covered"),
    ("unknown-payer", "indeterminate"),
    ("no-coverage", "not-covered"),
]
VERSIONS = {"2.0": "2.0", "2.0.1": "2.0", "2.1": "2.0", None: "2.0", "2.2": "2.2"}


def _values(response: dict) -> list[dict[str, list]]:
    found = []
    for action in response["systemActions"]:
        for ext in action["resource"]["extension"]:
            if ext["url"] == coverage.EXTENSION:
                assert not coverage.validate(ext), coverage.validate(ext)
                values: dict[str, list] = {}
                for sub in ext["extension"]:
                    value = next(v for k, v in sub.items() if k.startswith("value") or k == "extension")
                    values.setdefault(sub["url"], []).append(value)
                found.append(values)
    assert found
    return found


def _answer(case_name: str, requested: str | None, client_factory=None, fetch: bool = False) -> dict:
    case = fixtures.load_folder(fixtures.FIXTURE_DIR / case_name)
    store = FHIRStore(case.resources)
    body = fixtures.build_request(case, store, as_of=None, prefetch=not fetch)
    body["extension"].pop("davinci-crd.requestedVersion")
    if requested is not None:
        body["extension"]["davinci-crd.requestedVersion"] = requested
    settings = Settings(database_url="sqlite://", fhir_allowed_servers=(store.base_url,))
    return engine.invoke(ORDER_SIGN, body, settings, client_factory or store.client)


def _check(values: dict[str, list], form: str) -> None:
    sets = VALUE_SETS[form]
    for element in ("covered", "pa-needed", "doc-needed"):
        assert set(values.get(element, ())) <= sets[element], (element, values.get(element))
    codes = {c["code"] for r in values.get("reason", ()) for c in r.get("coding", ())}
    assert codes <= sets["reason-codes"], codes
    assert all(r.get("text") for r in values.get("reason", ())), "every reason keeps its text"
    if values["covered"] != ["not-covered"]:  # crd-ci-q2 as its 2.0.1 FHIRPath reads
        assert values.get("pa-needed"), "pa-needed present unless not-covered"


@pytest.mark.parametrize("requested", list(VERSIONS), ids=[str(v) for v in VERSIONS])
@pytest.mark.parametrize(("case_name", "covered_22"), OUTCOMES, ids=[c for c, _ in OUTCOMES])
def test_each_outcome_is_valid_for_the_version_asked(case_name, covered_22, requested):
    form = VERSIONS[requested]
    response = _answer(case_name, requested)
    for values in _values(response):
        _check(values, form)
        expected = "conditional" if (form == "2.0" and covered_22 == "indeterminate") else covered_22
        assert values["covered"] == [expected]
    system = response["cards"][0]["source"]["topic"]["system"]
    assert system == ("http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp" if form == "2.0"
                      else "http://terminology.hl7.org/CodeSystem/cdshooks-card-type")  # fmt: skip


@pytest.mark.parametrize("requested", ["2.0", None, "2.2"], ids=["2.0", "unsaid", "2.2"])
def test_a_technical_failure_is_told_in_each_version(requested):
    """The EHR's FHIR server times out on the Coverage search: 'indeterminate' + 'technical' in 2.2, and in 2.0
    'conditional' (a decision that needs more information) with the same reason text and no 2.2-only code."""
    store = FHIRStore(fixtures.load_folder(fixtures.FIXTURE_DIR / "aetna-all-criteria-met").resources)

    class SlowCoverage:
        def __init__(self, *_args):
            self.inner = store.client()

        def get(self, query):
            if query.startswith("Coverage"):
                raise FHIRTimeout("the FHIR server did not answer the Coverage query in time")
            return self.inner.get(query)

        def collect(self, bundle, label):
            return self.inner.collect(bundle, label)

        def close(self):
            pass

    response = _answer("aetna-all-criteria-met", requested, SlowCoverage, fetch=True)
    [values] = _values(response)
    form = VERSIONS[requested]
    _check(values, form)
    reason = values["reason"][0]
    assert "did not return the patient's coverage in time" in reason["text"]
    if form == "2.2":
        assert values["covered"] == ["indeterminate"] and reason["coding"][0]["code"] == "technical"
    else:
        assert values["covered"] == ["conditional"] and "coding" not in reason
    payer = response["cards"][0]  # it said "Payer the payer is not recognised"
    assert payer["summary"].startswith("The EHR did not return the patient's coverage in time"), payer["summary"]
    assert payer["indicator"] == "info"


def test_discovery_declares_both_versions_as_two_nodes():
    for service in SERVICES.values():
        assert service.discovery()["extension"]["davinci-crd.version"] == ["2.0", "2.2"]


def test_replayed_cases_speak_2_2():
    case = fixtures.discover([fixtures.FIXTURE_DIR])[0]
    body = replay.standalone_request(case, replay.Options())
    assert body["extension"]["davinci-crd.requestedVersion"] == "2.2"
