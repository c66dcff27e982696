"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas; nginx accepts its configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

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


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (.ci/run installs it)")
def test_nginx_accepts_the_configuration(tmp_path):
    conf = (DEPLOY / "nginx.conf").read_text().replace("cds-1:8080", "127.0.0.1:1").replace("cds-2:8080", "127.0.0.1:2")
    conf = f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n" + conf.replace(
        "/var/log/nginx/cds-access.log", f"{tmp_path}/a.log"
    )
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


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
