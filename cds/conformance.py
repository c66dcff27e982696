"""``cds conformance URL``: Inferno-style CRD server checks, runnable against any CRD server (ours included).

What HL7's Da Vinci CRD test kit checks of a server (its `crd_server` suite, CRD 2.0.1, and the CRD 2.2
coverage-information rules), done from here: TLS 1.2+ and nothing older, discovery, each hook called with
realistic bodies (once as a CRD 2.0 client that names no version, once naming 2.2 when the service declares it),
the CDS Hooks card rules, ``systemActions`` on order-sign, and each coverage-information extension: cardinalities,
the invariants crd-ci-q1..q5 and the value sets of the version asked. Each check says why it failed.
"""

from __future__ import annotations

import json
import socket
import ssl
import uuid
import warnings
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import requests

from cds import coverage

CPT = "http://www.ama-assn.org/go/cpt"
INDICATORS = {"info", "warning", "critical", "hard-stop"}
ACTION_TYPES = {"create", "update", "delete"}
LINK_TYPES = {"absolute", "smart"}
SELECTION = {"at-most-one", "any"}
COVERAGE_VALUE_SETS = {  # HL7/davinci-crd tags 2.0.1 and 2.2.1, input/fsh/valuesets/CoverageInformationValuesets.fsh
    "2.0": {
        "covered": {"covered", "not-covered", "conditional"},
        "pa-needed": {"no-auth", "auth-needed", "satisfied", "performpa", "conditional"},
        "doc-needed": {"clinical", "admin", "both", "conditional"},
    },
    "2.2": {
        "covered": {"covered", "not-covered", "conditional", "indeterminate"},
        "pa-needed": {"no-auth", "auth-needed", "satisfied", "performpa", "conditional", "indeterminate"},
        "doc-needed": {"clinical", "admin", "patient", "conditional", "indeterminate"},
    },
}


@dataclass
class Check:
    id: str
    title: str
    passed: bool
    reason: str = ""


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, id: str, title: str, problems: list[str]) -> None:
        self.checks.append(Check(id, title, not problems, "; ".join(problems[:5])))

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def table(self) -> str:
        rows = ["| check | result | why |", "|---|---|---|"]
        rows += [f"| {c.title} | {'pass' if c.passed else 'FAIL'} | {c.reason} |" for c in self.checks]
        failed = sum(not c.passed for c in self.checks)
        return "\n".join(rows) + f"\n\n{len(self.checks) - failed} passed, {failed} failed"

    def json(self) -> str:
        return json.dumps([asdict(c) for c in self.checks], indent=2)


def run(base: str, hooks: tuple[str, ...] = ("order-sign", "order-select"), cafile: str | None = None) -> Report:
    """Every check against the CRD server at ``base`` (its URL without /cds-services, or with it)."""
    base = base.rstrip("/").removesuffix("/cds-services")
    verify: bool | str = cafile or True
    report = Report()
    _tls(report, base, cafile)
    services = _discovery(report, base, verify)
    for hook in hooks:
        service = next((s for s in services if s.get("hook") == hook), None)
        if service is None:
            report.add(f"{hook}-service", f"{hook}: a service is declared", [f"discovery lists no {hook} service"])
            continue
        declared = (service.get("extension") or {}).get("davinci-crd.version") or []
        for version in [None, *(["2.2"] if "2.2" in declared else [])]:
            _hook(report, base, verify, service, hook, version)
    return report


# ---- TLS ------------------------------------------------------------------------------------------------------


def _tls(report: Report, base: str, cafile: str | None) -> None:
    parts = urlsplit(base)
    if parts.scheme != "https":
        report.add(
            "tls", "TLS 1.2 or later, nothing older", ["the service is not served over HTTPS (CRD requires TLS)"]
        )
        return
    host, port = parts.hostname or "", parts.port or 443
    problems = []
    for version, wanted in (
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, None),  # offered by many, required by none
        (ssl.TLSVersion.TLSv1, False),
        (ssl.TLSVersion.TLSv1_1, False),
    ):
        accepted = _handshake(host, port, version, cafile)
        if wanted is True and accepted is not True:
            problems.append(f"{version.name} refused ({accepted})")
        if wanted is False and accepted is True:
            problems.append(f"{version.name} accepted (only TLS 1.2 and later may be)")
    report.add("tls", "TLS 1.2 or later, nothing older", problems)


def _handshake(host: str, port: int, version: ssl.TLSVersion, cafile: str | None) -> bool | str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    try:
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point: Python calls them deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # this side is willing: only the server may refuse
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (ssl.SSLError, OSError, ValueError) as exc:
        return exc.__class__.__name__


# ---- discovery ------------------------------------------------------------------------------------------------


def _discovery(report: Report, base: str, verify) -> list[dict]:
    problems: list[str] = []
    try:
        response = requests.get(f"{base}/cds-services", timeout=10, verify=verify)
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        report.add(
            "discovery", "discovery answers 200 with JSON", [f"GET /cds-services failed: {exc.__class__.__name__}"]
        )
        return []
    if response.status_code != 200:
        problems.append(f"GET /cds-services answered {response.status_code}")
    services = body.get("services") if isinstance(body, dict) else None
    if not isinstance(services, list):
        problems.append("the body has no services array")
        services = []
    for i, s in enumerate(services):
        for member in ("hook", "description", "id"):
            if not isinstance(s.get(member) if isinstance(s, dict) else None, str):
                problems.append(f"services[{i}].{member} is not a string")
        versions = (s.get("extension") or {}).get("davinci-crd.version") if isinstance(s, dict) else None
        if not (
            isinstance(versions, list) and versions and all(isinstance(v, str) and v.count(".") == 1 for v in versions)
        ):
            problems.append(f"services[{i}] declares no two-node davinci-crd.version (CRD dev-1)")
    report.add(
        "discovery", "discovery answers 200 with JSON; each service has hook, description, id, versions", problems
    )
    return [s for s in services if isinstance(s, dict)]


# ---- hook calls -----------------------------------------------------------------------------------------------


def _hook(report: Report, base: str, verify, service: dict, hook: str, version: str | None) -> None:
    label = f"{hook} ({'CRD ' + version if version else 'no version named: a CRD 2.0 client'})"
    key = f"{hook}-{version or 'unsaid'}"
    body = request_body(hook, version)
    try:
        response = requests.post(f"{base}/cds-services/{service['id']}", json=body, timeout=15, verify=verify)
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        report.add(f"{key}-call", f"{label}: 200 with JSON", [f"the call failed: {exc.__class__.__name__}"])
        return
    if response.status_code != 200 or not isinstance(answer, dict):
        report.add(f"{key}-call", f"{label}: 200 with JSON", [f"answered {response.status_code}"])
        return
    report.add(f"{key}-call", f"{label}: 200 with JSON", [])
    report.add(f"{key}-cards", f"{label}: cards follow the CDS Hooks rules", _cards(answer))
    if hook == "order-sign":
        present = isinstance(answer.get("systemActions"), list)
        report.add(f"{key}-system-actions", f"{label}: systemActions present",
                   [] if present else ["an order-sign response must carry systemActions"])  # fmt: skip
    if isinstance(answer.get("systemActions"), list):
        form = "2.2" if version and not version.startswith(("2.0", "2.1")) else "2.0"
        report.add(f"{key}-coverage", f"{label}: coverage information valid for CRD {form}",
                   _coverage_information(answer["systemActions"], form, hook))  # fmt: skip


def _cards(answer: dict) -> list[str]:
    cards = answer.get("cards")
    if not isinstance(cards, list):
        return ["cards is not an array"]
    problems = []
    for i, card in enumerate(cards):
        where = f"cards[{i}]"
        if not isinstance(card, dict):
            problems.append(f"{where} is not an object")
            continue
        summary = card.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) >= 140:
            problems.append(
                f"{where}.summary must be 1-139 characters (is {len(summary) if isinstance(summary, str) else 'absent'})"
            )
        if card.get("indicator") not in INDICATORS:
            problems.append(f"{where}.indicator {card.get('indicator')!r} is not info, warning or critical")
        source = card.get("source") if isinstance(card.get("source"), dict) else {}
        topic = source.get("topic") if isinstance(source.get("topic"), dict) else {}
        if not source.get("label"):
            problems.append(f"{where}.source.label is missing")
        if not (topic.get("code") and topic.get("system")):
            problems.append(f"{where}.source.topic needs code and system (the CRD card type)")
        for j, suggestion in enumerate(card.get("suggestions") or ()):
            for k, action in enumerate(suggestion.get("actions") or ()):
                problems += _action(action, f"{where}.suggestions[{j}].actions[{k}]")
            if "actions" in suggestion and not suggestion["actions"]:
                problems.append(f"{where}.suggestions[{j}].actions is empty")
        if card.get("suggestions") and card.get("selectionBehavior") not in SELECTION:
            problems.append(f"{where}.selectionBehavior must be at-most-one or any with suggestions")
        for j, reason in enumerate(card.get("overrideReasons") or ()):
            if not all(reason.get(m) for m in ("code", "system", "display")):
                problems.append(f"{where}.overrideReasons[{j}] needs code, system and display")
        for j, link in enumerate(card.get("links") or ()):
            if not all(link.get(m) for m in ("label", "url", "type")) or link.get("type") not in LINK_TYPES:
                problems.append(f"{where}.links[{j}] needs label, url and type absolute or smart")
            elif link["type"] == "absolute" and "appContext" in link:
                problems.append(f"{where}.links[{j}]: an absolute link carries no appContext")
    return problems


def _action(action: dict, where: str) -> list[str]:
    problems = []
    if action.get("type") not in ACTION_TYPES or not action.get("description"):
        problems.append(f"{where} needs type create/update/delete and a description")
    if action.get("type") in ("create", "update") and not isinstance(action.get("resource"), dict):
        problems.append(f"{where}: {action.get('type')} carries a resource")
    if action.get("type") == "delete" and not action.get("resourceId"):
        problems.append(f"{where}: delete carries a resourceId")
    return problems


def _coverage_information(actions: list, form: str, hook: str) -> list[str]:
    problems: list[str] = []
    found = 0
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            problems.append(f"systemActions[{i}] is not an object")
            continue
        problems += _action(action, f"systemActions[{i}]")
        resource = action.get("resource") if isinstance(action.get("resource"), dict) else {}
        for ext in resource.get("extension") or ():
            if not (isinstance(ext, dict) and ext.get("url") == coverage.EXTENSION):
                continue
            found += 1
            if action.get("type") != "update" or "resourceId" in action:
                problems.append(f"systemActions[{i}]: coverage information is an update without resourceId")
            problems += [f"systemActions[{i}]: {p}" for p in coverage.validate(ext)]
            for sub in ext.get("extension") or ():
                allowed = COVERAGE_VALUE_SETS[form].get(sub.get("url"))
                if allowed is not None and sub.get("valueCode") not in allowed:
                    problems.append(f"systemActions[{i}]: {sub['url']} {sub.get('valueCode')!r} is not in CRD {form}")
    if hook == "order-sign" and not found:
        problems.append("no coverage information for the CPT 64580 order (CRD: one update per draft order)")
    return problems


# ---- request bodies ---------------------------------------------------------------------------------------------


def request_body(hook: str, version: str | None) -> dict:
    """A realistic CRD request: a CPT 64580 order for a Medicare patient with a documented pain diagnosis,
    therapy, a trial with pain scores, two surgeons, and a complete prefetch (so no FHIR server is needed)."""
    patient = "conformance-patient"
    subject = {"reference": f"Patient/{patient}"}
    order = {
        "resourceType": "ServiceRequest", "id": "conformance-order", "status": "draft", "intent": "order",
        "code": {"coding": [{"system": CPT, "code": "64580"}]}, "subject": subject, "authoredOn": "2026-06-15",
        "performer": [{"reference": "PractitionerRole/conformance-role-1"}],
        "insurance": [{"reference": "Coverage/conformance-coverage"}],
    }  # fmt: skip

    def searchset(*resources: dict) -> dict:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}

    def procedure(i: int, code: str, start: str, end: str | None = None) -> dict:
        when = {"performedPeriod": {"start": start, "end": end}} if end else {"performedDateTime": start}
        return {"resourceType": "Procedure", "id": f"conformance-procedure-{i}", "status": "completed",
                "code": {"coding": [{"system": CPT, "code": code}]}, "subject": subject, **when}  # fmt: skip

    def pain(i: int, value: int, when: str) -> dict:
        return {"resourceType": "Observation", "id": f"conformance-pain-{i}", "status": "final", "subject": subject,
                "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                "effectiveDateTime": when, "valueInteger": value}  # fmt: skip

    prefetch = {
        "patient": {"resourceType": "Patient", "id": patient, "birthDate": "1961-03-02", "gender": "female"},
        "coverage": searchset(
            {"resourceType": "Coverage", "id": "conformance-coverage", "status": "active", "beneficiary": subject,
             "payor": [{"reference": "Organization/conformance-payer"}]},
            {"resourceType": "Organization", "id": "conformance-payer", "name": "Medicare"},
        ),
        "conditions": searchset({
            "resourceType": "Condition", "id": "conformance-condition", "subject": subject,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G90.522",
                                 "display": "Complex regional pain syndrome I of left lower limb"}]},
            "onsetDateTime": "2025-04-02",
        }),
        "procedures": searchset(
            procedure(1, "97110", "2026-01-05"), procedure(2, "97110", "2026-02-20"),
            procedure(3, "90791", "2026-02-10"), procedure(4, "64555", "2026-03-01", "2026-03-07"),
        ),
        "medicationRequests": searchset({
            "resourceType": "MedicationRequest", "id": "conformance-medication", "status": "completed",
            "intent": "order", "subject": subject, "authoredOn": "2025-10-01",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "25480", "display": "gabapentin"}]},
        }),
        "medicationStatements": searchset(),
        "practitionerRoles": searchset({
            "resourceType": "PractitionerRole", "id": "conformance-role-1",
            "practitioner": {"reference": "Practitioner/conformance-surgeon"},
        }),
        "painScores": searchset(pain(1, 8, "2026-02-25"), pain(2, 3, "2026-03-04")),
    }  # fmt: skip
    body: dict = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/conformance-surgeon",
            "patientId": patient,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
        },
        "prefetch": prefetch,
    }
    if hook == "order-select":
        body["context"]["selections"] = ["ServiceRequest/conformance-order"]
    if version:
        body["extension"] = {"davinci-crd.requestedVersion": version}
    return body
