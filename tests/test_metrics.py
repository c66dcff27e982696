"""GET /metrics: what an operator graphs and alerts on."""

from __future__ import annotations

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
    assert grew("cds_cards_total", topic="appropriate-use", indicator="warning") == 1
    assert grew("cds_fhir_fetch_seconds_count", resource="Procedure") == 1
    assert sample(after, "cds_crd_responses_under_5s_percent") == 100.0
    assert re.search(r'cds_hook_latency_seconds_bucket\{le="5.0",service="cpt64580-order-sign"\}', after)
