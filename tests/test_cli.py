"""The ``cds`` command, run as a user runs it: a real process serving real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from . import servers
from .support import ORDER_SIGN, full_prefetch, hook_request

CDS = str(Path(sys.executable).with_name("cds"))


@pytest.fixture
def served(tmp_path):
    port = servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    process = subprocess.Popen(
        [CDS, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"cds serve did not start:\n{process.stdout.read()}")
        time.sleep(0.1)
    yield base, tmp_path
    process.terminate()
    process.wait(timeout=10)


def test_serve_answers_discovery_hooks_and_feedback_over_http(served):
    base, cwd = served
    services = requests.get(f"{base}/cds-services", timeout=5).json()["services"]
    assert {s["id"] for s in services} >= {ORDER_SIGN}

    response = requests.post(
        f"{base}/cds-services/{ORDER_SIGN}", json=hook_request(prefetch=full_prefetch()), timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    kinds = [c["source"]["topic"]["code"] for c in response.json()["cards"]]
    assert kinds == ["insurance", "appropriate-use", "appropriate-use"], "no coverage, documentation, summary"
    assert response.json()["systemActions"][0]["type"] == "update"

    card = response.json()["cards"][0]["uuid"]
    feedback = {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"}]}
    assert requests.post(f"{base}/cds-services/{ORDER_SIGN}/feedback", json=feedback, timeout=5).status_code == 200
    assert (cwd / "var" / "cds.sqlite3").exists(), "the default database lives under ./var/"

    bad = requests.post(
        f"{base}/cds-services/{ORDER_SIGN}", data="{", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"


def test_bad_configuration_stops_with_a_clear_message(tmp_path):
    env = {**os.environ, "CDS_HOOK_DEADLINE": '"soon"'}
    result = subprocess.run(
        [CDS, "serve", "--port", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "CDS_HOOK_DEADLINE" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_serve():
    result = subprocess.run([CDS, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "serve" in result.stdout
