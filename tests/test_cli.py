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


MISTAKES = [
    ("CDS_HOOK_DEADLINE", '"soon"', "positive float"),
    ("CDS_LOG_LEVEL", "verbose", "one of DEBUG"),
    ("CDS_DATABASE_URL", "postgres://cds@db.internal/cds", "database kind 'postgres'"),
    ("CDS_DATABASE_URL", "not a url", "not a database URL"),
    ("CDS_TRUSTED_CLIENTS", "/nowhere/clients.json", "not a file"),
    ("CDS_POLICY_DIR", "/nowhere/policies", "not a folder"),
    ("CDS_AUDIT_RETENTION_DAYS", "-1", "positive whole number"),
    ("CDS_VIEWER", "yes", "true or false"),
    ("CDS_CORS_ORIGINS", "https://ehr.example.org", "JSON list"),
    ("CDS_PROXY_HOPS", "9", "from 0 to 5"),
]


def _clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | extra


@pytest.mark.parametrize(("name", "value", "says"), MISTAKES, ids=[f"{n}={v}" for n, v, _ in MISTAKES])
def test_bad_configuration_stops_with_a_clear_message(tmp_path, name, value, says):
    result = subprocess.run(
        [CDS, "serve", "--port", "1"],
        cwd=tmp_path,
        env=_clean_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert name in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(("name", "value", "says"), MISTAKES[1:5], ids=[f"{n}" for n, _, _ in MISTAKES[1:5]])
def test_under_gunicorn_a_configuration_mistake_is_one_line_not_a_traceback(tmp_path, name, value, says):
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    result = subprocess.run(
        [
            gunicorn,
            "-c",
            "python:cds.gunicorn_conf",
            "cds.wsgi:app",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{servers.free_port()}",
        ],
        cwd=tmp_path,
        env=_clean_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"cds: configuration error: {name}" in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_misspelled_setting_is_warned_about_with_the_likely_name(make_app, monkeypatch, caplog):
    monkeypatch.setenv("CDS_HOOK_DEADLNE", "2")
    with caplog.at_level("WARNING", logger="cds"):
        make_app()
    assert any("CDS_HOOK_DEADLNE" in r.getMessage() and "CDS_HOOK_DEADLINE" in r.getMessage() for r in caplog.records)


def test_help_lists_serve():
    result = subprocess.run([CDS, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "serve" in result.stdout


def test_under_gunicorn_a_broken_policy_file_is_one_line_not_a_traceback(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "broken.json").write_text('{"id": "broken"')
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    result = subprocess.run(
        [gunicorn, "-c", "python:cds.gunicorn_conf", "cds.wsgi:app", "--bind", f"127.0.0.1:{servers.free_port()}"],
        cwd=tmp_path,
        env=_clean_env(CDS_POLICY_DIR=str(policies)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cds: policy error:" in result.stderr and "broken.json" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_serve_names_its_questionnaires_where_it_is_reached(served):
    """On a port other than 8080, the canonicals a DTR client follows point at this server, not the demo default."""
    base, _cwd = served
    questionnaire = requests.get(f"{base}/fhir/Questionnaire/medicare-ffs-2019-12-01", timeout=5).json()
    assert questionnaire["url"] == f"{base}/fhir/Questionnaire/medicare-ffs-2019-12-01"
    assert requests.get(questionnaire["url"], timeout=5).status_code == 200


def test_a_listing_piped_into_a_reader_that_stops_early_ends_without_a_traceback():
    """`cds policies sources | head`: the reader closing the pipe made Python print a BrokenPipeError traceback."""
    process = subprocess.Popen([CDS, "policies", "sources"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline()  # the first line, as `head -1` reads it
    process.stdout.close()
    _out, errors = process.communicate(timeout=60)
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors, errors.decode()[-500:]
    assert process.returncode == 141
