"""The typed view read straight from JSON says what the fhir.resources models say, for every real resource we have."""

from __future__ import annotations

import importlib
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from cds import fhirview, fixtures
from cds.fhirstore import flatten

ROOT = Path(__file__).resolve().parents[1]


def _resources() -> list[dict]:
    found = []
    for path in sorted((ROOT / "tests" / "data" / "realdata").rglob("*.json")) + sorted(
        fixtures.FIXTURE_DIR.rglob("bundle.json")
    ):
        data = json.loads(path.read_text())
        for resource in flatten(data if isinstance(data, list) else [data]):
            if resource.get("resourceType") in fhirview.BUILDERS:
                found.append(resource)
    return found


RESOURCES = _resources()


def _model(resource: dict):
    rtype = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}")
    return getattr(module, rtype).model_validate(resource)


def _plain(value):
    """The model's value in the view's terms: dates as the strings they were written as, tuples for lists."""
    if isinstance(value, (datetime, date)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def _same(view, model, path: str) -> None:
    if hasattr(view, "_fields"):  # a view type (a named tuple)
        if model is None:
            raise AssertionError(f"{path}: the view has a value the model lacks")
        for name in view._fields:
            if name in ("contained", "answers"):
                continue  # the view keeps only contained payor Organizations, and answers flattened by linkId
            _same(getattr(view, name), getattr(model, name, None), f"{path}.{name}")
    elif isinstance(view, tuple):
        items = tuple(model or ())
        assert len(view) == len(items), f"{path}: {len(view)} != {len(items)}"
        for i, (v, m) in enumerate(zip(view, items, strict=True)):
            _same(v, m, f"{path}[{i}]")
    elif isinstance(model, (datetime, date)):
        assert view is not None and model.isoformat().startswith(view[:10]), f"{path}: {view} != {model}"
    elif isinstance(model, float) or isinstance(view, float):
        assert model == view or float(model) == view, f"{path}: {view} != {model}"
    else:
        assert view == (model if not hasattr(model, "value") else model.value), f"{path}: {view!r} != {model!r}"


def test_there_is_real_data_to_compare():
    kinds = {r["resourceType"] for r in RESOURCES}
    assert len(RESOURCES) > 500 and {"Condition", "Procedure", "Coverage", "Observation"} <= kinds


def test_the_view_reads_every_real_resource_as_the_model_does():
    compared = 0
    for resource in RESOURCES:
        try:
            model = _model(resource)
        except ValidationError:
            continue  # invalid FHIR: the view reads what it can (tests/test_records.py), the model refuses
        view = fhirview.build(resource["resourceType"], resource)
        _same(view, model, f"{resource['resourceType']}/{resource.get('id')}")
        compared += 1
    assert compared > 500


def test_strict_mode_validates_with_the_models():
    good = {"resourceType": "Procedure", "id": "p", "status": "completed", "subject": {"reference": "Patient/1"}}
    assert fhirview.build("Procedure", good, strict=True).status == "completed"
    with pytest.raises(ValidationError):
        fhirview.build("Procedure", good | {"performedDateTime": "last spring"}, strict=True)


def test_wrong_types_are_read_as_absent_not_as_errors():
    messy = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": 7, "code": "G89.29"}, "x"], "text": ["no"]},
        "onsetDateTime": 20250101,
        "subject": "Patient/1",
    }
    view = fhirview.build("Condition", messy, "pat-1")
    assert view.code.coding[0].system is None and view.code.coding[0].code == "G89.29" and len(view.code.coding) == 1
    assert view.code.text is None and view.onsetDateTime is None
    assert view.subject.reference == "Patient/pat-1"
