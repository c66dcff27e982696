"""The Da Vinci DTR side (``/fhir``): the CPT 64580 documentation questionnaire of the order's payer policy.

``POST /fhir/Questionnaire/$questionnaire-package`` takes the DTR input Parameters (``coverage``, ``order``,
optionally ``referenced``/``questionnaire`` canonicals) and answers the output Parameters: a ``PackageBundle`` with
the Questionnaire, and an ``outcome`` saying what we could not produce. ``GET /fhir/Questionnaire/{id}`` and
``GET /fhir/metadata`` serve DTR clients. The same JWT checks guard these routes as the hooks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from flask import Blueprint, Response, current_app

from cds import api, payers, questionnaires, records
from cds.errors import InvalidRequest, NotFound

bp = Blueprint("dtr", __name__, url_prefix="/fhir")
bp.before_request(api.authenticate)
FHIR_JSON = "application/fhir+json"
PACKAGE_OPERATION = "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/questionnaire-package"


def _base() -> str:
    """The base of our canonicals: CDS_PUBLIC_BASE_URL, as the hooks use it (the demo default otherwise)."""
    return current_app.config.get("PUBLIC_BASE_URL") or questionnaires.DEFAULT_BASE


def _fhir(body: dict, status: int = 200) -> Response:
    response = api.json_response(body, status)
    response.mimetype = FHIR_JSON
    return response


@bp.get("/metadata")
def metadata() -> Response:
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "implementation": {
            "description": "CPT 64580 documentation questionnaires (Da Vinci DTR)",
            "url": f"{_base()}/fhir",
        },
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}],
                        "operation": [{"name": "questionnaire-package", "definition": PACKAGE_OPERATION}],
                    }
                ],
            }
        ],
    }
    CapabilityStatement.model_validate(statement)
    return _fhir(statement)


@bp.get("/Questionnaire/<questionnaire_id>")
def read(questionnaire_id: str) -> Response:
    found = questionnaires.find(current_app.extensions["cds.policies"], questionnaire_id[:128], _base())
    if found is None:
        raise NotFound(f"no Questionnaire {questionnaire_id[:64]!r}; GET /fhir/metadata says what is served")
    return _fhir(questionnaires.build(*found, _base()))


@bp.post("/Questionnaire/$questionnaire-package")
def package() -> Response:
    body = api.read_json()
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("send a FHIR Parameters resource", expression=("resourceType",))
    parameters = [p for p in body.get("parameter") or () if isinstance(p, dict)]
    coverages = [p.get("resource") for p in parameters if p.get("name") == "coverage"]
    orders = [p.get("resource") for p in parameters if p.get("name") == "order"]
    wanted = [p.get("valueCanonical") for p in parameters if p.get("name") in ("referenced", "questionnaire")]
    coverages = [c for c in coverages if isinstance(c, dict) and c.get("resourceType") == "Coverage"]
    orders = [o for o in orders if isinstance(o, dict) and isinstance(o.get("resourceType"), str)]
    if not coverages:
        raise InvalidRequest("Parameters.parameter 'coverage' must hold a Coverage", expression=("parameter",))
    if not orders:
        raise InvalidRequest("Parameters.parameter 'order' must hold the order", expression=("parameter",))
    policy_set = current_app.extensions["cds.policies"]
    issues: list[dict] = []
    if any(isinstance(w, str) for w in wanted):
        chosen = [questionnaires.find(policy_set, w, _base()) for w in wanted if isinstance(w, str)]
        if None in chosen:
            raise NotFound(
                "a requested questionnaire canonical is not one this service serves", expression=("parameter",)
            )
        found = [c for c in chosen if c is not None]
    else:
        record = records.build(coverages, None)
        order = records.order_from(orders[0])
        today = datetime.now(UTC).date()
        route = payers.route(record, order, policy_set, today)
        found = [(route.plan, route.version)]
        if not route.matched:
            issues.append(
                {
                    "severity": "warning",
                    "code": "not-found",
                    "diagnostics": f"no CPT 64580 policy for this coverage ({route.unknown_because or route.outcome}): "
                    "the questionnaire holds the default clinical criteria, not the payer's",
                }
            )
    bundles = [
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": q["url"], "resource": q}],
        }
        for q in (questionnaires.build(plan, version, _base()) for plan, version in found)
    ]
    output = [{"name": "PackageBundle", "resource": b} for b in bundles]
    if issues:
        output.append({"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": issues}})
    return _fhir({"resourceType": "Parameters", "parameter": output})
