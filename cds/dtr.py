"""The Da Vinci DTR side (``/fhir``): the CPT 64580 documentation questionnaire of the order's payer policy.

``POST /fhir/Questionnaire/$questionnaire-package`` takes the DTR input Parameters (``coverage``, ``order``,
optionally ``referenced``/``questionnaire`` canonicals) and answers the output Parameters: a ``PackageBundle`` with
the Questionnaire, and an ``outcome`` saying what we could not produce. ``GET /fhir/Questionnaire/{id}`` and
``GET /fhir/metadata`` serve DTR clients; ``POST /fhir/Questionnaire/{id}/$populate`` (SDC) prefills a response from
the patient's data. The same JWT checks guard these routes as the hooks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Blueprint, Response, current_app

from cds import api, engine, fhirvalues, payers, questionnaires, records, rules
from cds.errors import InvalidRequest, NotFound, PayloadTooLarge
from cds.orders import order_from

MAX_REQUESTED = 20

bp = Blueprint("dtr", __name__, url_prefix="/fhir")
bp.before_request(api.authenticate)
bp.after_request(api.cors)
FHIR_JSON = "application/fhir+json"
PACKAGE_OPERATION = "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/questionnaire-package"
POPULATE_OPERATION = "http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-populate"


def base() -> str:
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
            "url": f"{base()}/fhir",
        },
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}],
                        "operation": [
                            {"name": "questionnaire-package", "definition": PACKAGE_OPERATION},
                            {"name": "populate", "definition": POPULATE_OPERATION},
                        ],
                    }
                ],
            }
        ],
    }
    CapabilityStatement.model_validate(statement)
    return _fhir(statement)


@bp.get("/Questionnaire/<questionnaire_id>")
def read(questionnaire_id: str) -> Response:
    found = questionnaires.find(current_app.extensions["cds.policies"], questionnaire_id[:128])
    if found is None:
        raise NotFound(f"no Questionnaire {questionnaire_id[:64]!r}; GET /fhir/metadata says what is served")
    return _fhir(questionnaires.build(*found, base()))


def _parameters(body: object) -> list[dict]:
    """The ``parameter`` entries of a Parameters body (a list of objects, as FHIR's JSON has it)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("send a FHIR Parameters resource", expression=("resourceType",))
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise InvalidRequest("Parameters.parameter must be an array", expression=("parameter",))
    return [p for p in parameters if isinstance(p, dict)]


@bp.post("/Questionnaire/$questionnaire-package")
def package() -> Response:
    parameters = _parameters(api.read_json())
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
    wanted = list(dict.fromkeys(w for w in wanted if isinstance(w, str)))  # each questionnaire once
    if len(wanted) > MAX_REQUESTED:
        raise InvalidRequest(
            f"at most {MAX_REQUESTED} questionnaire canonicals a request (this service serves one per policy version)",
            expression=("parameter",),
        )
    if wanted:
        chosen = [questionnaires.find(policy_set, w) for w in wanted]
        if None in chosen:
            raise NotFound(
                "a requested questionnaire canonical is not one this service serves", expression=("parameter",)
            )
        found = [c for c in chosen if c is not None]
    else:
        record = records.build(coverages, None)
        order = order_from(orders[0])
        today = datetime.now(UTC).date()
        route = payers.route(record, order, policy_set, today)
        found = [(route.plan, route.version)]
        if not route.matched:
            issues.append(
                {
                    "severity": "warning",
                    "code": "not-found",
                    "diagnostics": f"no CPT 64580 policy for this coverage ({route.unknown_because or route.inactive or route.outcome}): "
                    "the questionnaire holds the default clinical criteria, not the payer's",
                }
            )
    bundles = [
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": q["url"], "resource": q}],
        }
        for q in (questionnaires.build(plan, version, base()) for plan, version in found)
    ]
    output = [{"name": "PackageBundle", "resource": b} for b in bundles]
    if issues:
        output.append({"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": issues}})
    return _fhir({"resourceType": "Parameters", "parameter": output})


# ---- $populate (SDC): prefill from the same evidence the rules use ---------------------------------------------

EVIDENCE_EXTENSION = "urn:cds64580:evidence"  # on an answer: the record entry it was read from


@bp.post("/Questionnaire/<questionnaire_id>/$populate")
def populate(questionnaire_id: str) -> Response:
    """A QuestionnaireResponse (in-progress) prefilled from the patient's data sent in the Parameters.

    Input: ``subject`` (the Patient reference) and the patient's resources as ``content`` (a resource or Bundle)
    or ``context.content``; optionally an ``order`` (its date is the day criteria are judged on; today otherwise).
    Each criterion the data meets is answered (done, dates, detail) with the evidence on every answer; what the
    data does not show is left for the clinician."""
    policy_set = current_app.extensions["cds.policies"]
    found = questionnaires.find(policy_set, questionnaire_id[:128])
    if found is None:
        raise NotFound(f"no Questionnaire {questionnaire_id[:64]!r}; GET /fhir/metadata says what is served")
    plan, version = found
    parameters = _parameters(api.read_json())
    subject = next((p.get("valueReference") for p in parameters if p.get("name") == "subject"), None)
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise InvalidRequest("Parameters.parameter 'subject' must reference the Patient", expression=("parameter",))
    content: list[dict] = []
    for p in parameters:
        if p.get("name") == "content" and isinstance(p.get("resource"), dict):
            content.append(p["resource"])
        parts = p.get("part") if p.get("name") == "context" else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and part.get("name") == "content" and isinstance(part.get("resource"), dict):
                content.append(part["resource"])
    limit = current_app.extensions["cds.settings"].max_prefetch_entries
    bundles = [r for r in content if r.get("resourceType") == "Bundle"]
    loose = len(content) - len(bundles)  # resources given one by one; a Bundle's entries are counted as a hook's
    if loose > limit or engine.entries_over(bundles, limit - loose):
        raise PayloadTooLarge(
            f"the content holds more than {limit} resources (the hooks' prefetch limit)", expression=("parameter",)
        )
    order_resource = next((p.get("resource") for p in parameters if p.get("name") == "order"), None)
    response = prefill(plan, version, base(), reference, content, order_resource)
    return _fhir({"resourceType": "Parameters", "parameter": [{"name": "response", "resource": response}]})


def prefill(
    plan,
    version,
    base: str,
    subject: str,
    content: list[dict],
    order_resource: object = None,
    as_of: date | None = None,
) -> dict:
    """The in-progress QuestionnaireResponse for ``subject`` ("Patient/x") from ``content``, as of ``as_of`` (today
    by default; the viewer passes its case's date); lookbacks count from the order's date (``order_day``)."""
    record = records.build(content, fhirvalues.ref_id(subject))  # a versioned reference names its patient too
    order = order_from(order_resource if isinstance(order_resource, dict) else {"id": "populate"})
    day = as_of or datetime.now(UTC).date()
    pathway = rules.choose_pathway(record, order, day)
    findings = {f.criterion: f for f in rules.evaluate(record, order, version.ruleset(pathway.id), day, pathway)}
    questionnaire = questionnaires.build(plan, version, base)
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "in-progress",
        "subject": {"reference": subject},
        "authored": datetime.now(UTC).isoformat(timespec="seconds"),
        "item": [_prefilled(group, findings.get(group["linkId"])) for group in questionnaire["item"]],
    }
    QuestionnaireResponse.model_validate(response)
    return response


def _prefilled(group: dict, finding) -> dict:
    """A group of the response: answered from the finding when the record meets the criterion with evidence, else
    empty. A criterion met by an absence (no substance use disorder in the record) is not something the record
    confirms: the clinician answers it."""
    item: dict = {"linkId": group["linkId"], "text": group["text"], "item": []}
    if finding is None or finding.status != rules.Status.MET or finding.attested or not finding.evidence:
        item["item"] = [{"linkId": i["linkId"], "text": i["text"]} for i in group["item"]]
        return item
    evidence = [
        {"url": EVIDENCE_EXTENSION, "valueReference": fhirvalues.as_reference(e.reference)} for e in finding.cited()
    ]
    dates = sorted(e.date for e in finding.evidence if e.date)
    values = {"done": {"valueBoolean": True}, "detail": {"valueString": finding.reason}}
    if dates:
        values["start"] = {"valueDate": dates[0].isoformat()}
        values["end"] = {"valueDate": dates[-1].isoformat()}
    for child in group["item"]:
        answer = values.get(child["linkId"].rpartition(".")[2])
        entry: dict = {"linkId": child["linkId"], "text": child["text"]}
        if answer is not None:
            entry["answer"] = [{**answer, **({"extension": evidence} if evidence else {})}]
        item["item"].append(entry)
    return item
