"""`cds conformance`: our own Inferno-style CRD checks pass against our service and explain a broken one."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from cds import conformance

from . import servers

CDS = str(Path(sys.executable).with_name("cds"))


def _production_arguments() -> list[str]:
    """The production gunicorn command of docs/operations.md (tests/test_deploy.py keeps it the image's), unbound."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    command = re.search(r"\.venv/bin/(gunicorn [^`]*?--graceful-timeout \d+)", text).group(1)
    words = shlex.split(command.replace("\\\n", " "))
    at = words.index("--bind")
    return words[1:at] + words[at + 2 :]


PRODUCTION = _production_arguments()


@pytest.fixture(scope="module", params=["cds serve", "gunicorn"])
def our_service(request, certificate, tmp_path_factory):
    """The service over TLS: `cds serve --certfile/--keyfile`, and the production gunicorn command with them."""
    folder = tmp_path_factory.mktemp("conformance")
    port = servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
        "CDS_DATABASE_URL": f"sqlite:///{folder / 'c.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",
    }
    certfile, keyfile = certificate
    tls = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    if request.param == "cds serve":
        command = [CDS, "serve", "--port", str(port), *tls]
    else:
        command = [str(Path(sys.executable).with_name("gunicorn")), *PRODUCTION, "--bind", f"127.0.0.1:{port}", *tls]
    process = subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        servers.wait_port(port)
        yield f"https://127.0.0.1:{port}", certfile
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_our_service_passes_every_check(our_service):
    base, certfile = our_service
    done = subprocess.run([CDS, "conformance", base, "--cafile", str(certfile), "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout
    checks = json.loads(done.stdout)
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    ids = {c["id"] for c in checks}
    assert {"tls", "discovery", "order-sign-unsaid-system-actions", "order-sign-2.2-coverage"} <= ids
    assert {"order-select-unsaid-cards", "order-select-2.2-cards"} <= ids


BROKEN = {"system_actions": True}


def _broken_app(environ, start_response):
    """A CRD server that gets things wrong the way real ones do."""
    request = Request(environ)
    if request.path == "/cds-services":
        body = {"services": [{"hook": "order-sign", "id": "sign", "description": "d",
                              "extension": {"davinci-crd.version": ["2.0"]}}]}  # fmt: skip
    else:
        order = request.get_json()["context"]["draftOrders"]["entry"][0]["resource"]
        extension = {
            "url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
            "extension": [
                {"url": "coverage", "valueReference": {"reference": "Coverage/c"}},
                {"url": "covered", "valueCode": "indeterminate"},  # not a CRD 2.0 code
                {"url": "date", "valueDate": "2026-06-15"},
                {"url": "coverage-assertion-id", "valueString": "a"},
            ],
        }
        body = {
            "cards": [{"summary": "x" * 150, "indicator": "urgent", "source": {"label": "s"}}],
            "systemActions": [{"type": "update", "description": "d", "resource": order | {"extension": [extension]}}],
        }
        if not BROKEN["system_actions"]:
            del body["systemActions"]
    return Response(json.dumps(body), 200, mimetype="application/json")(environ, start_response)


@pytest.fixture
def broken_service():
    server = make_server("127.0.0.1", 0, _broken_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_broken_server_fails_with_the_reasons(broken_service):
    report = conformance.run(broken_service, ("order-sign",))
    failed = {c.id: c.reason for c in report.checks if not c.passed}
    assert "not served over HTTPS" in failed["tls"]
    assert "summary must be 1-139 characters (is 150)" in failed["order-sign-unsaid-cards"]
    assert "indicator 'urgent'" in failed["order-sign-unsaid-cards"]
    assert "source.topic needs code and system" in failed["order-sign-unsaid-cards"]
    assert "covered 'indeterminate' is not in CRD 2.0" in failed["order-sign-unsaid-coverage"]
    assert "order-sign-unsaid-system-actions" not in failed  # it has them
    done = subprocess.run([CDS, "conformance", broken_service, "--hooks", "order-sign"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "FAIL" in done.stdout and "passed" in done.stdout


def test_an_order_sign_answer_without_system_actions_fails(broken_service, monkeypatch):
    monkeypatch.setitem(BROKEN, "system_actions", False)
    failed = {c.id: c.reason for c in conformance.run(broken_service, ("order-sign",)).checks if not c.passed}
    assert failed["order-sign-unsaid-system-actions"] == "an order-sign response must carry systemActions"
