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


def test_the_readme_shows_the_summaries_the_example_really_gets(client):
    """The sample answer printed under the README's curl is what the service says, word for word."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("--data @examples/order-sign-64580.json") :]
    comment = " ".join(line.lstrip("# ").strip() for line in block.splitlines()[1:] if line.startswith("#"))
    shown = re.findall(r'"summary":"([^"]+)"', comment)
    body = json.loads((Path(__file__).resolve().parent.parent / "examples" / "order-sign-64580.json").read_text())
    cards = client.post("/cds-services/cpt64580-order-sign", json=body).get_json()["cards"]
    assert len(shown) >= 3
    for text in shown:
        assert any(card["summary"].startswith(text.rstrip(". ")) for card in cards), text
