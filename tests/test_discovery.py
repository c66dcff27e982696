"""GET /cds-services: what an EHR reads before calling us."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jsonschema.exceptions import ValidationError

from cds import schemas
from cds.services import SERVICES

from .support import hook_request, service_request

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_TOKENS = {
    "context.patientId",
    "context.encounterId",
    "context.userId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


@pytest.fixture
def services(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    schemas.validator("discovery").validate(document)
    return {s["hook"]: s for s in document["services"]}


def test_lists_an_order_sign_and_an_order_select_service(services):
    assert set(services) == {"order-sign", "order-select"}
    for service in services.values():
        for member in ("id", "title", "description", "usageRequirements", "prefetch"):
            assert service[member], member
        assert "64580" in service["title"]


def test_prefetch_uses_only_cds_hooks_2_tokens(services):
    for service in services.values():
        for key, template in service["prefetch"].items():
            tokens = set(re.findall(r"\{\{([^}]*)\}\}", template))
            assert tokens, f"{key} has no token"
            assert tokens <= ALLOWED_TOKENS, f"{key}: {tokens - ALLOWED_TOKENS}"


def test_prefetch_asks_for_what_the_rules_always_need(services):
    templates = set(services["order-sign"]["prefetch"].values())
    assert "Patient/{{context.patientId}}" in templates
    # the payer comes with the Coverage, so a prefetch-only client still gets a recognised payer
    assert "Coverage?patient={{context.patientId}}&status=active&_include=Coverage:payor" in templates
    assert (
        "Observation?patient={{context.patientId}}&code=http://loinc.org|38208-5,http://loinc.org|72514-3" in templates
    )
    for resource_type in ("Condition", "Procedure", "MedicationRequest", "MedicationStatement", "PractitionerRole"):
        assert any(t.startswith(resource_type) for t in templates), resource_type


def test_the_documented_prefetch_table_is_the_one_discovery_serves(services):
    """What an EHR integrator reads is what discovery says: every key and template, and which are required."""
    text = (ROOT / "docs" / "integrating-an-ehr.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(.+?)` \| (yes|no)\b", text, re.M)
    documented = {key: template.replace("\\|", "|") for key, template, _ in rows}
    assert documented == services["order-sign"]["prefetch"]
    required = {key for key, _, flag in rows if flag == "yes"}
    assert required == {t.key for t in SERVICES["cpt64580-order-sign"].prefetch if t.required}


def test_discovery_schema_rejects_nested_context_tokens():
    document = {
        "services": [
            {
                "hook": "order-sign",
                "id": "x",
                "description": "d",
                "prefetch": {"orders": "ServiceRequest?_id={{context.draftOrders.ServiceRequest.id}}"},
            }
        ]
    }
    with pytest.raises(ValidationError):
        schemas.validator("discovery").validate(document)


def test_publishes_crd_version_and_configuration_options(services):
    for service in services.values():
        extension = service["extension"]
        assert extension["davinci-crd.version"]
        assert all(re.fullmatch(r"\d+\.\d+", v) for v in extension["davinci-crd.version"])
        options = {o["code"]: o for o in extension["davinci-crd.configuration-options"]}
        assert options["coverage-info"]["type"] == "boolean"
        assert options["max-cards"] == {**options["max-cards"], "type": "integer", "default": 10}
        for option in options.values():
            assert {"code", "type", "name", "description", "default"} <= set(option)
            assert option["type"] in ("boolean", "integer")
            assert isinstance(option["default"], bool if option["type"] == "boolean" else int)


def test_every_listed_service_answers_at_its_url(client, services):
    other = service_request(id="lab-1", code="80053")  # not ours: answered at once, with no cards
    for service in services.values():
        response = client.post(
            f"/cds-services/{service['id']}", json=hook_request(hook=service["hook"], orders=[other])
        )
        assert response.status_code == 200, response.get_json()
        expected = {"cards": [], "systemActions": []} if service["hook"] == "order-sign" else {"cards": []}
        assert response.get_json() == expected
