"""Fuzzing: schemathesis against the live app from /openapi.json, and hypothesis properties of the data path.

Bounded here so the suite stays fast; `make fuzz` runs the same with many more examples (FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cds import create_app, hooks, prefetch, records
from cds.config import Settings
from cds.errors import CDSError
from cds.services import SERVICES

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
DERANDOMIZE = EXAMPLES <= 100  # the bounded run in `make test` is the same every time; `make fuzz` explores
_app = create_app(
    {"DATABASE_URL": "sqlite:///:memory:", "HOOK_DEADLINE": 0.5, "FHIR_ALLOWED_SERVERS": ["http://127.0.0.1:9"]}
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", _app)


def test_openapi_document_is_served_and_names_every_endpoint():
    document = _app.test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert {"/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback"} <= set(
        document["paths"]
    )


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_no_input_gives_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


# ---- properties of the data path ---------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)
resource_types = st.sampled_from(
    [
        "Condition",
        "Procedure",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Coverage",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Patient",
        "Bundle",
        "Encounter",
    ]
)
fields = st.sampled_from(
    [
        "id",
        "code",
        "status",
        "subject",
        "onsetDateTime",
        "performedPeriod",
        "performedDateTime",
        "clinicalStatus",
        "medicationCodeableConcept",
        "payor",
        "entry",
        "contained",
        "valueQuantity",
        "effectiveDateTime",
        "practitioner",
        "specialty",
        "meta",
        "resourceType",
    ]
)
resources = st.builds(
    lambda t, extra: {"resourceType": t, **extra}, resource_types, st.dictionaries(fields, json_values, max_size=6)
)


@given(st.lists(st.one_of(resources, json_values), max_size=12), st.one_of(st.none(), st.text(max_size=10)))
@settings(max_examples=EXAMPLES * 5, deadline=None, derandomize=DERANDOMIZE)
def test_the_record_builder_never_crashes(items, patient_id):
    record = records.build(items, patient_id)
    assert record.unreadable >= 0
    for value_set in (records.codes.PHYSICAL_THERAPY, records.codes.STIMULATION_TRIAL):
        record.procedure_events(value_set)
    record.medication_events()
    record.pain_scores()


@given(
    st.dictionaries(
        st.sampled_from([t.key for t in SERVICES["cpt64580-order-sign"].prefetch] + ["extra"]),
        st.one_of(
            st.none(),
            resources,
            st.builds(
                lambda e: {"resourceType": "Bundle", "entry": e},
                st.lists(st.builds(lambda r: {"resource": r}, resources), max_size=4),
            ),
        ),
        max_size=9,
    )
)
@settings(
    max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=DERANDOMIZE
)
def test_the_prefetch_resolver_returns_data_or_a_clear_error(prefetch_values):
    service = SERVICES["cpt64580-order-sign"]
    body = {
        "hook": "order-sign",
        "hookInstance": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
        "context": {"userId": "Practitioner/1", "patientId": "p1", "draftOrders": {"resourceType": "Bundle"}},
        "prefetch": prefetch_values,
    }
    try:
        request = hooks.parse(service, body)
        resolved = prefetch.resolve(service, request, Settings(database_url="sqlite://", hook_deadline=0.2))
    except CDSError as exc:
        assert 400 <= exc.status < 500
        return
    assert set(resolved.origin) <= {t.key for t in service.prefetch}
    assert all(isinstance(r, dict) for r in resolved.all())


@pytest.mark.slow
def test_long_fuzz_is_a_separate_target():
    """Marker for `make fuzz`: the same tests, run with FUZZ_EXAMPLES=500."""


# ---- any value anywhere in a real request (issue 15.6): wrong JSON types at every level, dates at the edges ----

EDGE_DATES = st.sampled_from(
    [
        "0001-01-01",
        "9999-12-31",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2026-01-01T00:00:00-23:59",
        "2026-02-30",
        "2026",
        "",
    ]
)


def _paths(node, prefix=()):
    """Every path to a value in ``node`` (dict keys and list indexes), the node itself first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _real_request() -> dict:
    from .support import full_prefetch, hook_request

    body = hook_request(prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"][0]["resource"] |= {
        "performer": [{"reference": "PractitionerRole/ra"}],
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G90.522"}]}],
        "bodySite": [{"text": "left leg"}],
        "authoredOn": "2026-06-15",
    }
    return body


_REQUEST = _real_request()
_PATHS = [p for p in _paths(_REQUEST) if p]


def _case_bundle(name: str) -> dict:
    from cds import fixtures

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / name)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in case.resources]}


# a whole record (every kind the rules read), not the sparse prefetch: the store's search reads more elements
_BUNDLE = _case_bundle("medicare-all-criteria-met")
_BUNDLE_PATHS = [p for p in _paths(_BUNDLE) if p]
odd_values = st.one_of(json_values, EDGE_DATES)


def _with(document: dict, path: tuple, value) -> dict:
    """A deep copy of ``document`` with ``value`` put at ``path``."""
    import copy

    out = copy.deepcopy(document)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _post(app, url: str, body) -> object:
    import orjson

    return app.test_client().post(url, data=orjson.dumps(body), content_type="application/json")


@given(st.sampled_from(_PATHS), odd_values)
@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_any_value_anywhere_in_a_real_request_is_never_a_500(path, value):
    response = _post(_app, "/cds-services/cpt64580-order-sign", _with(_REQUEST, path, value))
    assert response.status_code < 500, (path, value, response.get_data(as_text=True)[:200])


_viewer = create_app({"DATABASE_URL": "sqlite:///:memory:", "HOOK_DEADLINE": 0.5, "VIEWER": True})


@given(st.sampled_from(["request", "bundle"]), st.data())
@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_the_viewer_answers_any_pasted_shape_without_a_500(kind, data):
    base, paths = (_REQUEST, _PATHS) if kind == "request" else (_BUNDLE, _BUNDLE_PATHS)
    pasted = _with(base, data.draw(st.sampled_from(paths)), data.draw(odd_values))
    response = _post(_viewer, "/viewer/api/run", {kind: pasted})
    assert response.status_code < 500, response.get_data(as_text=True)[:200]


@given(st.sampled_from(["case", "url", "as_of", "payer", "hook"]), st.one_of(odd_values, st.just("9999-99-99")))
@example("as_of", "9999-12-31")  # the calendar's last day: the lookbacks' day of leeway overflowed (a 500)
@example("as_of", "0001-01-01")
@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_the_viewer_form_fields_of_any_type_are_a_4xx_or_a_run(field, value):
    response = _post(_viewer, "/viewer/api/run", {"case": "medicare-all-criteria-met", field: value})
    assert response.status_code < 500, response.get_data(as_text=True)[:200]
    if response.status_code >= 400:
        assert response.get_json()["resourceType"] == "OperationOutcome"


@given(st.sampled_from(["request", "bundle"]), st.data())
@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_cds_replay_of_any_shape_exits_cleanly(tmp_path_factory, kind, data):
    import contextlib
    import io

    import orjson

    from cds import cli

    base, paths = (_REQUEST, _PATHS) if kind == "request" else (_BUNDLE, _BUNDLE_PATHS)
    document = _with(base, data.draw(st.sampled_from(paths)), data.draw(odd_values))
    source = tmp_path_factory.mktemp("replay") / "input.json"
    source.write_bytes(orjson.dumps(document))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["replay", str(source)])
    assert code in (0, 1, 2), code  # an exception here is the traceback a user would have seen
    assert "Traceback" not in stderr.getvalue()


def _at(kind: str) -> int:
    return next(i for i, e in enumerate(_BUNDLE["entry"]) if e["resource"]["resourceType"] == kind)


_PATIENT_AT = _at("Patient")
# the fixture store's search read these elements as their FHIR types (the attacker's pass: 169 of 7,368 were 500s)
_STORE_SHAPES = {
    "observation-code-string": ("Observation", ("code",), "72514-3"),
    "observation-coding-string": ("Observation", ("code", "coding"), "72514-3"),
    "observation-coding-of-strings": ("Observation", ("code", "coding"), ["72514-3"]),
    "coverage-payor-strings": ("Coverage", ("payor",), ["a"]),
    "coverage-payor-object": ("Coverage", ("payor",), {"reference": "Organization/x"}),
    "coverage-beneficiary-string": ("Coverage", ("beneficiary",), "Patient/pat-1"),
    "procedure-subject-list": ("Procedure", ("subject",), [{"reference": "Patient/pat-1"}]),
    "role-practitioner-number": ("PractitionerRole", ("practitioner",), 7),
}


def _store_shape(name: str) -> dict:
    kind, path, value = _STORE_SHAPES[name]
    return _with(_BUNDLE, ("entry", _at(kind), "resource", *path), value)


@pytest.mark.parametrize(
    "body",
    [
        {"request": {**_REQUEST, "context": None}},
        {"request": {**_REQUEST, "prefetch": []}},
        {"bundle": _with(_BUNDLE, ("entry", _PATIENT_AT, "resource", "id"), True)},
        {"bundle": _with(_BUNDLE, ("entry", _PATIENT_AT, "resource", "id"), "pat 1\n")},
    ],
    ids=["context-null", "prefetch-list", "patient-id-boolean", "patient-id-not-a-fhir-id"],
)
def test_shapes_the_viewer_once_failed_on_are_a_4xx_or_a_run(body):
    response = _post(_viewer, "/viewer/api/run", body)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:200]


@pytest.mark.parametrize("name", sorted(_STORE_SHAPES))
def test_a_pasted_bundle_with_elements_of_the_wrong_type_is_a_run_not_a_500(name, tmp_path):
    import contextlib
    import io

    import orjson

    from cds import cli

    bundle = _store_shape(name)
    response = _post(_viewer, "/viewer/api/run", {"bundle": bundle})
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    source = tmp_path / "bundle.json"
    source.write_bytes(orjson.dumps(bundle))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["replay", str(source)])
    assert code in (0, 1, 2) and "Traceback" not in stderr.getvalue(), stderr.getvalue()[-500:]


def test_the_fixture_store_matches_no_resource_for_an_empty_reference():
    from cds.fhirstore import FHIRStore

    store = FHIRStore(_BUNDLE["entry"] and [e["resource"] for e in _BUNDLE["entry"]])
    for query in ("Condition?patient=Patient/", "PractitionerRole?practitioner=Practitioner/"):
        status, bundle = store.answer(query)
        assert status == 200 and bundle.get("entry", []) == [], query
