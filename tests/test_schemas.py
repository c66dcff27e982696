"""The compiled validator never accepts what jsonschema refuses: the fast path changes speed, not answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cds import fixtures, replay, schemas

ROOT = Path(__file__).resolve().parents[1]


def _valid_requests() -> list[dict]:
    found = [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    found += [replay.standalone_request(c, replay.Options()) for c in fixtures.discover([fixtures.FIXTURE_DIR])[:12]]
    return found


VALID = _valid_requests()
BAD_VALUES = [None, "", "x", "\u0662\u0660\u0662\u0666-06-15", "2026-06-15\n", 7, 1.5, True, [], {}, 2**70, "ftp://x"]


def _mutations(body: dict):
    """Each top-level member removed, and each of a few members (top and nested) set to each odd value."""
    for key in list(body):
        changed = copy.deepcopy(body)
        del changed[key]
        yield changed
    paths = [("hookInstance",), ("hook",), ("fhirServer",), ("context", "patientId"), ("context", "userId"),
             ("context", "draftOrders"), ("extension", "cds64580.as-of"), ("prefetch", "patient"),
             ("fhirAuthorization", "access_token")]  # fmt: skip
    for path in paths:
        for value in BAD_VALUES:
            changed = copy.deepcopy(body)
            node = changed
            for part in path[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node[path[-1]] = value
                yield changed


def test_the_compiled_validator_is_in_use_for_requests():
    assert schemas.compiled("hook-request") is not None
    assert schemas.compiled("feedback") is not None


@pytest.mark.parametrize("body", VALID, ids=[str(i) for i in range(len(VALID))])
def test_valid_requests_are_valid_for_both(body):
    assert schemas.is_valid("hook-request", body)
    assert not list(schemas.validator("hook-request").iter_errors(body))


def test_the_compiled_validator_accepts_nothing_jsonschema_refuses():
    checked = refused = 0
    for body in VALID[:4]:
        for changed in _mutations(body):
            python_ok = not list(schemas.validator("hook-request").iter_errors(changed))
            refused += not python_ok
            if schemas.is_valid("hook-request", changed):
                assert python_ok, json.dumps(changed)[:300]
            checked += 1
    assert checked > 200 and refused > 100
