"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas; nginx accepts its configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from . import servers
from .test_tls import check_versions

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_kubernetes_manifest_is_valid(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_the_manifests_cover_what_production_needs():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Secret"} <= kinds
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_a_broken_manifest_is_caught():
    bad = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text())
    bad["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30.0", strict=True)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")  # offering them is the point
@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (.ci/run installs it)")
def test_nginx_terminates_tls_1_2_and_1_3_only_in_front_of_the_service(tmp_path, certificate):
    """deploy/nginx.conf as written (a generated certificate at its paths), in front of a running instance."""
    import os
    import sys

    app_port, port = servers.free_port(), servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'nginx.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",
    }
    app = subprocess.Popen([str(Path(sys.executable).with_name("cds")), "serve", "--port", str(app_port)],
                           env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        servers.wait_port(app_port)
        with servers.nginx(tmp_path, [app_port], port, certificate) as base:
            assert base.startswith("https://")
            check_versions(port, certificate[0])
    finally:
        app.terminate()
        app.wait(timeout=20)


def _dockerfile_command() -> list[str]:
    import json

    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD "))
    return json.loads(line.removeprefix("CMD "))


def test_the_image_runs_gunicorn_as_the_operations_doc_and_the_manifest_do():
    import re
    import shlex

    command = _dockerfile_command()
    readme = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"\.venv/bin/(gunicorn [^`]*?--graceful-timeout \d+)", readme).group(1)
    assert shlex.split(block.replace("\\\n", " ")) == command
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == command


def test_the_manifests_name_the_image_make_image_builds():
    import re
    import subprocess

    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    built = subprocess.run(["make", "-s", "-n", "image"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert f"docker build -t registry.example.org/cds64580:{version} ." in built.stdout
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"] + pod["initContainers"]} == {
        f"registry.example.org/cds64580:{version}"
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER cds" in dockerfile and "HEALTHCHECK" in dockerfile and "-slim" in dockerfile


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (.ci/run installs it)")
def test_slow_clients_wait_at_nginx_never_in_the_services_threads(tmp_path):
    """gunicorn's threads read a request as it arrives: a few connections that send a body a byte at a time held every
    thread (the attacker's pass: /healthz unanswered for 55 s). deploy/nginx.conf reads whole requests first, so
    behind it they never reach an instance; straight at gunicorn (the control) they still starve it."""
    import socket
    import time

    import requests

    app_port, port = servers.free_port(), servers.free_port()
    env = {"CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.sqlite3'}", "CDS_LOG_LEVEL": "WARNING"}
    head = b"POST /cds-services/cpt64580-order-sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    def crawl(target: int) -> list[socket.socket]:
        held = [socket.create_connection(("127.0.0.1", target)) for _ in range(6)]
        for sock in held:
            sock.sendall(head + b"Content-Length: 1000\r\n\r\n{")  # and nothing more
        time.sleep(0.5)
        return held

    with servers.gunicorn(tmp_path, app_port, env, "slow", workers=1, threads=2):
        with servers.nginx(tmp_path, [app_port], port) as base:
            held = crawl(port)
            try:
                started = time.monotonic()
                assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
                assert time.monotonic() - started < 2
            finally:
                for sock in held:
                    sock.close()
        held = crawl(app_port)
        try:
            with pytest.raises(requests.exceptions.Timeout):
                requests.get(f"http://127.0.0.1:{app_port}/healthz", timeout=2)
        finally:
            for sock in held:
                sock.close()
