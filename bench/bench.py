"""Benchmark: our order-sign service against the floor, on the same gunicorn setup, in one run.

(a) the floor: /bench/floor parses the same body with orjson and returns pre-serialised bytes of the same size as
    the service's answer; (b) POST /cds-services/cpt64580-order-sign. For a typical request (~50 resources) and a
    large record (~5,000 resources): latency p50/p99 from sequential calls on one keep-alive connection, throughput
    from concurrent clients, the ratios (b)/(a), and peak RSS per worker. Run with `make bench`.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402
from tests.clinical import condition, medication, pain_score, procedure, role  # noqa: E402
from tests.support import full_prefetch, hook_request, searchset, service_request  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
SERVICE = "/cds-services/cpt64580-order-sign"


def typical() -> dict:
    """About 50 resources: a documented Medicare patient with some history."""
    data = full_prefetch()
    data["coverage"] = searchset(
        {
            "resourceType": "Coverage",
            "id": "cov-1",
            "status": "active",
            "beneficiary": {"reference": "Patient/pat-1"},
            "payor": [{"display": "Medicare"}],
        }
    )
    conditions = [condition("G90.522", onset="2025-04-02")] + [
        condition("J06.9", onset=f"2024-0{1 + i % 9}-10", clinical="resolved") for i in range(10)
    ]
    procedures = [procedure("97110", f"2026-0{1 + i % 3}-1{i}") for i in range(6)] + [
        procedure("64555", "2026-03-01", "2026-03-07"),
        procedure("90791", "2026-02-10"),
    ]
    procedures += [procedure("99213", f"2025-{1 + i:02d}-05") for i in range(12)]
    meds = [medication("25480"), medication("5640")] + [
        medication("1049221", text="acetaminophen 325 MG") for _ in range(8)
    ]
    data["conditions"] = searchset(*conditions)
    data["procedures"] = searchset(*procedures)
    data["medicationRequests"] = searchset(*meds)
    data["practitionerRoles"] = searchset(role("a", id="ra"), role("b", id="rb", specialty="207X00000X"))
    order = service_request() | {
        "performer": [{"reference": "PractitionerRole/ra"}, {"reference": "PractitionerRole/rb"}]
    }
    body = hook_request(prefetch=data, orders=[order])
    body["extension"] = {"cds64580.as-of": "2026-06-15"}
    return body


def large() -> dict:
    """About 5,000 resources: years of history, most of it irrelevant to 64580, as real records are."""
    body = typical()
    prefetch = body["prefetch"]
    history = [
        condition("J06.9", onset=f"20{15 + i % 10}-0{1 + i % 9}-1{i % 9}", clinical="resolved") for i in range(1200)
    ]
    history += [condition("G90.522", onset="2025-04-02")]
    procs = [procedure("99213", f"20{15 + i % 10}-0{1 + i % 9}-1{i % 9}") for i in range(2400)]
    procs += [procedure("97110", f"2026-0{1 + i % 3}-1{i % 9}") for i in range(40)] + [
        procedure("64555", "2026-03-01", "2026-03-07")
    ]
    meds = [medication("1049221", text="acetaminophen 325 MG", when=f"20{15 + i % 10}-01-01") for i in range(1200)] + [
        medication("25480")
    ]
    obs = [pain_score(5, f"2025-0{1 + i % 9}-1{i % 9}") for i in range(150)]
    prefetch["conditions"] = searchset(*history)
    prefetch["procedures"] = searchset(*procs)
    prefetch["medicationRequests"] = searchset(*meds)
    prefetch["medicationStatements"] = searchset(*obs[:0])
    return body


def count_resources(body: dict) -> int:
    return sum(
        len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1 for v in body["prefetch"].values() if v
    )


def post(conn: http.client.HTTPConnection, path: str, raw: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, raw, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def latency(port: int, path: str, raw: bytes, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(max(3, n // 10)):  # warm-up
        post(conn, path, raw)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        status, _ = post(conn, path, raw)
        times.append(time.perf_counter() - started)
        assert status == 200, status
    conn.close()
    return times


def throughput(port: int, path: str, raw: bytes, clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < stop:
            status, _ = post(conn, path, raw)
            assert status == 200
            done[i] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def worker_rss_kb(master: int) -> list[int]:
    peaks = []
    for child in Path(f"/proc/{master}/task").glob("*/children"):
        for pid in child.read_text().split():
            status = Path(f"/proc/{pid}/status").read_text()
            peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return peaks


def main() -> int:
    port = servers.free_port()
    tmp = tempfile.mkdtemp()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
        "CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "CDS_BENCH_FLOOR": "true",
        "CDS_LOG_LEVEL": "WARNING",
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [
            gunicorn,
            "-c",
            "python:cds.gunicorn_conf",
            "cds.wsgi:app",
            "--workers",
            str(WORKERS),
            "--threads",
            str(THREADS),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        servers.wait_ready(f"http://127.0.0.1:{port}", server)
        time.sleep(0.5)
        rows = []
        for name, body, n, seconds in (("typical", typical(), 400, 5.0), ("large", large(), 40, 8.0)):
            raw = json.dumps(body).encode()
            conn = http.client.HTTPConnection("127.0.0.1", port)
            status, answer = post(conn, SERVICE, raw)
            conn.close()
            assert status == 200, answer[:300]
            floor_path = f"/bench/floor?size={len(answer)}"
            svc = latency(port, SERVICE, raw, n)
            flo = latency(port, floor_path, raw, n)
            svc_tp = throughput(port, SERVICE, raw, 8, seconds)
            flo_tp = throughput(port, floor_path, raw, 8, seconds)
            rows.append((name, count_resources(body), len(raw), len(answer), flo, svc, flo_tp, svc_tp))
        rss = worker_rss_kb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"gunicorn {WORKERS} workers x {THREADS} threads; latency from sequential calls, throughput from 8 clients\n")
    print(
        "| request | resources | body | answer | floor p50 / p99 ms | service p50 / p99 ms | p50 ratio | floor req/s | service req/s | throughput ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, resources, body, answer, flo, svc, flo_tp, svc_tp in rows:
        print(
            f"| {name} | {resources} | {body / 1024:.0f} KiB | {answer / 1024:.0f} KiB | {pct(flo, 0.5):.2f} / {pct(flo, 0.99):.2f} | "
            f"{pct(svc, 0.5):.2f} / {pct(svc, 0.99):.2f} | {pct(svc, 0.5) / pct(flo, 0.5):.2f}x | {flo_tp:.0f} | {svc_tp:.0f} | "
            f"{svc_tp / flo_tp:.0%} |"
        )
    print(f"\npeak RSS per worker after the large record: {', '.join(f'{k / 1024:.0f} MiB' for k in rss)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
