"""GET /metrics: what an operator graphs and alerts on."""

from __future__ import annotations

import logging
import re

from .support import ORDER_SIGN, full_prefetch, hook_request


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_calls_latency_cards_and_fhir_fetches(client, ehr):
    before = client.get("/metrics").get_data(as_text=True)
    ehr.expect_request("/fhir/Procedure").respond_with_json({"resourceType": "Bundle", "type": "searchset"})
    data = full_prefetch()
    del data["procedures"]
    body = hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir"))
    assert client.post(f"/cds-services/{ORDER_SIGN}", json=body).status_code == 200
    assert client.post(f"/cds-services/{ORDER_SIGN}", json={"hook": "x"}).status_code == 400
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = response.get_data(as_text=True)

    def grew(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("cds_hook_latency_seconds_count", service=ORDER_SIGN) == 1
    assert grew("cds_requests_total", endpoint="cds.call_service", status="400") == 1
    assert grew("cds_cards_total", topic="appropriate-use", indicator="info") == 2  # default criteria never warn
    assert grew("cds_fhir_fetch_seconds_count", resource="Procedure") == 1
    assert sample(after, "cds_crd_responses_under_5s_percent") == 100.0
    assert re.search(r'cds_hook_latency_seconds_bucket\{le="5.0",service="cpt64580-order-sign"\}', after)


def test_each_hook_call_logs_one_line_naming_the_policy_and_card_topics(client, caplog):
    """What an operator greps for a call: its status, policy ids (never a payer's display) and card topics."""
    with caplog.at_level(logging.INFO, logger="cds"):
        answer = client.post(f"/cds-services/{ORDER_SIGN}", json=hook_request(prefetch=full_prefetch()))
    assert answer.status_code == 200
    [line] = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "hook"]
    cards = answer.get_json()["cards"]
    policies = {c["policy"] for c in cards[0]["extension"]["cds64580.criteria"]}
    assert len(policies) == 1 and line["policies"] == [policies.pop().split("@")[0]]
    assert line["topics"] == [c["source"]["topic"]["code"] for c in cards] and line["status"] == 200


def test_the_production_command_creates_a_missing_metrics_folder(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR naming a folder that does not exist yet made every hook call a 500."""
    import requests

    from . import servers

    folder = tmp_path / "not-yet" / "metrics"
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",
    }
    with servers.gunicorn(tmp_path, port, env, "prod", workers=2):
        body = hook_request(prefetch=full_prefetch())
        assert requests.post(f"{base}/cds-services/{ORDER_SIGN}", json=body, timeout=20).status_code == 200
        assert requests.get(f"{base}/cds-services", timeout=20).status_code == 200
        scraped = requests.get(f"{base}/metrics", timeout=20)
        assert scraped.status_code == 200 and "cds_hook_responses_total" in scraped.text
        assert requests.get(f"{base}/readyz", timeout=20).json()["checks"]["metrics"] == "pass"
    assert folder.is_dir() and any(folder.iterdir())


def test_a_metrics_folder_that_cannot_be_made_stops_start_up_naming_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(blocker / "metrics"), "PATH": "/usr/bin:/bin"}
    cds = str(Path(sys.executable).with_name("cds"))
    result = subprocess.run([cds, "serve", "--port", "0"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr and "Traceback" not in result.stderr
