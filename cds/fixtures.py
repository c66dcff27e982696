"""Test cases as folders: a hook request, or a patient Bundle plus ``case.json``, and ``expected.json``.

A case folder holds ``request.json`` (a complete CDS Hooks request) or ``bundle.json`` (a patient Bundle of any
type) with ``case.json`` (hook, draft orders, "as of" date, whether prefetch is sent); ``expected.json`` is the
outcome a tester expects (``schemas/fixture.schema.json``). A bare Bundle or a raw hook request file works too:
a bare Bundle without a draft CPT 64580 order gets one, and says so.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cds import schemas
from cds.codes import CPT, canonical, codings
from cds.errors import SchemaViolation
from cds.fhirstore import FHIRStore, flatten
from cds.fhirvalues import is_fhir_id
from cds.prefetch import render
from cds.services import SERVICES

REPLAY_TOKEN = "replay-access-token"  # noqa: S105  (a fixture value, not a secret)
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fhir_fixtures"


class CaseError(ValueError):
    """A case cannot be read; the message names the file and what is wrong."""


@dataclass
class Case:
    name: str
    path: Path
    spec: dict = field(default_factory=dict)
    resources: list[dict] = field(default_factory=list)
    request: dict | None = None
    expected: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def hook(self) -> object:
        """The hook the case calls; a pasted request that is not an object names none (None)."""
        if self.request is not None and not isinstance(self.request, dict):
            return None
        return (self.request or {}).get("hook") or self.spec.get("hook", "order-sign")

    @property
    def fetch(self) -> bool:
        return bool(self.spec.get("fetch"))

    @property
    def expected_path(self) -> Path:
        return (self.path if self.path.is_dir() else self.path.parent) / (
            "expected.json" if self.path.is_dir() else f"{self.path.stem}.expected.json"
        )


def discover(paths: list[Path]) -> list[Case]:
    """Cases under each path: a case folder, a folder of case folders, or a JSON file."""
    cases: list[Case] = []
    for path in paths:
        if path.is_dir():
            if any((path / n).exists() for n in ("case.json", "request.json", "bundle.json")):
                cases.append(load_folder(path))
            else:
                children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
                cases.extend(load_folder(p) for p in children)
        elif path.is_file():
            cases.append(load_file(path))
        else:
            raise CaseError(f"{path}: no such file or folder")
    return cases


MAX_CASE_FILE = 64 * 1024 * 1024  # bytes; a Synthea record is a few MB


def _read(path: Path) -> object:
    """A case file's JSON: a regular file (a FIFO or a device linked in would block or never end), of bounded size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CaseError(f"{path}: not a regular file")
            if info.st_size > MAX_CASE_FILE:
                raise CaseError(f"{path}: larger than {MAX_CASE_FILE} bytes")
            return json.loads(file.read(MAX_CASE_FILE + 1).decode("utf-8"), parse_constant=_not_json)
    except OSError as exc:
        raise CaseError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise CaseError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CaseError(f"{path}: nested too deeply to read") from None


def _not_json(name: str) -> None:
    """NaN and Infinity are Python's extension, not JSON (an EHR's parser refuses them, as the service does)."""
    raise ValueError(f"{name} is not a JSON number")


def _check(schema: str, path: Path, data: object) -> None:
    try:
        schemas.validate(schema, data)
    except SchemaViolation as exc:
        raise CaseError(f"{path}: {exc.problems[0][1]}") from None


def load_folder(path: Path) -> Case:
    case = Case(path.name, path)
    if (path / "case.json").exists():
        case.spec = _read(path / "case.json")
        _check("fixture#case", path / "case.json", case.spec)
    if (path / "request.json").exists():
        case.request = _read(path / "request.json")
        if not isinstance(case.request, dict) or "hook" not in case.request:
            raise CaseError(f"{path / 'request.json'}: not a CDS Hooks request (no 'hook')")
    elif (path / "bundle.json").exists():
        case.resources = _bundle(path / "bundle.json")
        if not case.spec:
            raise CaseError(f"{path}: bundle.json needs a case.json naming the hook and the orders")
    else:
        raise CaseError(f"{path}: needs request.json, or bundle.json with case.json")
    if (path / "expected.json").exists():
        case.expected = _read(path / "expected.json")
        _check("fixture#expected", path / "expected.json", case.expected)
    return case


def load_file(path: Path) -> Case:
    data = _read(path)
    case = Case(path.stem, path)
    if isinstance(data, dict) and "hook" in data and "context" in data:
        case.request = data
    elif isinstance(data, dict) and data.get("resourceType") == "Bundle":
        case.resources = _bundle(path, data)
        orders = [r for r in case.resources if r["resourceType"] == "ServiceRequest" and _is_64580(r)]
        if not orders:
            patient = _patient_id(case.resources, None)
            orders = [_draft_order(patient)]
            case.notes.append("no draft CPT 64580 order in the Bundle: one was added for the replay")
        case.spec = {"hook": "order-sign", "orders": orders}
    else:
        raise CaseError(f"{path}: neither a FHIR Bundle nor a CDS Hooks request")
    expected = case.expected_path
    if expected.exists():
        case.expected = _read(expected)
        _check("fixture#expected", expected, case.expected)
        if "as_of" in case.expected and case.request is None:  # a bare Bundle replays as of its recorded date
            case.spec["as_of"] = case.expected.pop("as_of")
    return case


def _bundle(path: Path, data: object = None) -> list[dict]:
    data = _read(path) if data is None else data
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise CaseError(f"{path}: not a FHIR Bundle (resourceType must be 'Bundle')")
    entries = data.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CaseError(f"{path}: Bundle.entry must be a list of entries")
    return flatten([data])


def _is_64580(resource: dict) -> bool:
    return any(
        canonical(system, code) == (CPT, "64580") for system, code in codings(resource.get("code"))
    )  # a code of any shape is read as FHIR allows or not at all


def _patient_id(resources: list[dict], declared: str | None) -> str:
    if declared:
        return declared
    patient = next((r for r in resources if r["resourceType"] == "Patient" and r.get("id")), None)
    if patient is None:
        raise CaseError("the Bundle has no Patient with an id, and the case names none")
    if not is_fhir_id(patient["id"]):
        raise CaseError("the Bundle's Patient.id is not a FHIR id (1-64 letters, digits, '-' or '.')")
    return patient["id"]


def _draft_order(patient_id: str) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": "replay-64580",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": CPT, "code": "64580"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def with_payer(resources: list[dict], payer: str) -> list[dict]:
    """The resources with every active Coverage's payer replaced by ``payer``: its name only, no type."""
    out = []
    for r in resources:
        if r["resourceType"] == "Coverage" and r.get("status") == "active":
            r = {k: v for k, v in r.items() if k not in ("contained", "type")} | {"payor": [{"display": payer}]}
        out.append(r)
    return out


def build_request(case: Case, store: FHIRStore, *, as_of: str | None, prefetch: bool) -> dict:
    """The hook request a case stands for: its own request, or one built from its Bundle and case.json."""
    if case.request is not None:
        body = json.loads(json.dumps(case.request))
        if as_of and isinstance(body, dict):  # a pasted request of another shape is the service's to refuse
            extension = body.get("extension")
            if isinstance(extension, dict):
                extension["cds64580.as-of"] = as_of
            elif extension is None:
                body["extension"] = {"cds64580.as-of": as_of}
        return body
    spec = case.spec
    patient = _patient_id(store.resources, spec.get("patient"))
    hook = spec.get("hook", "order-sign")
    orders = spec.get("orders", [])
    context: dict = {
        "userId": spec.get("user", "Practitioner/replay-user"),
        "patientId": patient,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]},
    }
    if hook == "order-select":
        context["selections"] = spec.get("selections") or [f"{o['resourceType']}/{o['id']}" for o in orders[:1]]
    body: dict = {
        "hook": hook,
        "hookInstance": spec.get("hookInstance", "00000000-0000-4000-8000-000000064580"),
        "fhirServer": store.base_url,
        "fhirAuthorization": {
            "access_token": REPLAY_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "cds64580-replay",
        },
        "context": context,
    }
    if prefetch:
        service = next(s for s in SERVICES.values() if s.hook == hook)
        tokens = {"context.patientId": patient, "context.userId": context["userId"]}
        kind, _, ident = context["userId"].partition("/")
        tokens[f"user{kind}Id"] = ident
        body["prefetch"] = {}
        for template in service.prefetch:
            query = render(template.query, tokens)
            if query is None:
                continue
            status, answer = store.answer(query)
            body["prefetch"][template.key] = answer if status == 200 else None
    # a case speaks CRD 2.2, the version whose answers say "indeterminate" where they cannot say more
    body["extension"] = {"davinci-crd.requestedVersion": spec.get("crd_version", "2.2")}
    when = as_of or spec.get("as_of")
    if when:
        body["extension"]["cds64580.as-of"] = when
    return body
