"""The requests the README tells people to curl are accepted, so the README stays true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds import schemas

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_request_is_answered(client, path):
    body = json.loads(path.read_text())
    service = next(s["id"] for s in client.get("/cds-services").get_json()["services"] if s["hook"] == body["hook"])
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_json()
    schemas.validator("hook-response").validate(response.get_json())


def test_there_is_an_example():
    assert EXAMPLES
