from __future__ import annotations

import contextlib
import copy
import datetime
import ipaddress
import json
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import request

from cds import coverage, create_app, policies, schemas
from cds.logs import JSONFormatter

from .support import sources_in

# Every log line the service writes during the whole run, as it would reach the log (test_zz_log_scan reads it).
CAPTURED: list[str] = []


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "werkzeug":  # the fake EHR servers' own access logs, not ours
            CAPTURED.append(JSONFormatter().format(record))


@pytest.fixture(scope="session", autouse=True)
def capture_logs():
    handler = _Capture(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield CAPTURED
    logging.getLogger().removeHandler(handler)


ROOT = Path(__file__).resolve().parent.parent


def conformance_problems(body: dict) -> list[str]:
    """What is wrong with a hook response: the response schema, then every coverage-information extension."""
    problems = [f"{e.json_path}: {e.message[:200]}" for e in schemas.validator("hook-response").iter_errors(body)]
    for action in body.get("systemActions", ()):
        for extension in action.get("resource", {}).get("extension", ()):
            if extension.get("url") == coverage.EXTENSION:
                problems += coverage.validate(extension, strict=True)
    return problems


@pytest.fixture
def make_app(tmp_path):
    """An app factory on a fresh SQLite file; every hook response it gives is checked for conformance."""
    failures: list[str] = []

    def make(**overrides):
        config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}", "HOOK_DEADLINE": 3.0, "LOG_LEVEL": "DEBUG"}
        config.update(overrides)
        app = create_app(config)

        @app.after_request
        def conformance(response):
            parts = request.path.strip("/").split("/")
            if (
                request.method == "POST"
                and len(parts) == 2
                and parts[0] == "cds-services"
                and response.status_code == 200
            ):
                problems = conformance_problems(response.get_json())
                failures.extend(f"{request.path}: {p}" for p in problems)
            return response

        return app

    yield make
    assert not failures, "non-conformant hook responses:\n" + "\n".join(failures)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


EXAMPLE_BLUE = "Example Blue"  # the test payer whose own text is MP-623 (see stated_policy_dir)


@pytest.fixture(scope="session")
def stated_policy_dir(tmp_path_factory) -> Path:
    """The shipped policies plus "Example Blue", a test-only plan whose own text is MP-623.

    MP-623 is a real Blue plan's text, but no shipped plan is confirmed as its publisher (the page names none), so
    the shipped files hold it as background and it never warns. The warnings a payer's own text gives (a missing
    trial, one requirement met in several ways) are tested on this plan, which states what MP-623 states.
    """
    target = tmp_path_factory.mktemp("stated-policies")
    for path in policies.POLICY_DIR.glob("*.json"):
        (target / path.name).write_text(path.read_text())
    data = json.loads((target / "bcbs.json").read_text())
    plan = copy.deepcopy(next(p for p in data["plans"] if p["id"] == "florida-blue"))
    plan |= {"id": "example-blue", "payer": EXAMPLE_BLUE, "match": [{"name": "^example blue$", "priority": 30}]}

    for source in sources_in(plan):
        if "/mp-623" in source["url"]:
            source.pop("context", None)
            source.pop("section", None)
    data["plans"].append(plan)
    (target / "bcbs.json").write_text(json.dumps(data))
    policies.load(target)  # valid, or the tests built on it say why at once
    return target


@pytest.fixture
def stated_client(make_app, stated_policy_dir):
    return make_app(POLICY_DIR=str(stated_policy_dir)).test_client()


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Public example files (CDS Hooks sandbox, Da Vinci CRD, Inferno, Synthea), copied with their origin and licence."""
    return ROOT / "tests" / "data" / "realdata"


@contextlib.contextmanager
def _fhir_server():
    """A real FHIR-ish HTTP server on loopback (threaded, so slow handlers do not block the others)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def _fresh(server):
    server.clear()
    server.clear_all_handlers()
    return server


@pytest.fixture(scope="session")
def ehr_server():
    with _fhir_server() as server:
        yield server


@pytest.fixture
def ehr(ehr_server):
    yield _fresh(ehr_server)
    _fresh(ehr_server)


@pytest.fixture(scope="module")
def own_ehr():
    """A FHIR server of the module's own, for handlers that outlive their test (slow answers): their late log
    entries then cannot land in another test's server log."""
    with _fhir_server() as server:
        yield server


@pytest.fixture
def slow_ehr(own_ehr):
    return _fresh(own_ehr)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for the test (nothing is checked in)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile
