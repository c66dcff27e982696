"""Benchmark: the order-sign service against the floor, on the same gunicorn settings, in one run (`make bench`).

The floor (bench/floor.py) is a Flask app that parses the same body with orjson and answers pre-serialised bytes
of the size of the service's answer: what any hook call must cost. Both run as gunicorn with the same workers, one
after the other on the same cores, and are loaded the same way: wrk with 8 connections cycling through 32 request
bodies that differ in patient and hookInstance (nothing is faster because a body repeats), for a typical
order-sign (~20 resources, ~12 KB) and, on one connection, a 5,000-resource record. The targets of issue #17 are
checked against the floor measured in the same run; the exit status is 1 when one is missed. The service's answer
to the first body must give the same outcome as bench/expected-*.json (cards by topic and indicator, criterion
statuses, coverage values): a faster service that says something else is not faster.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds import replay  # noqa: E402
from tests import servers  # noqa: E402
from tests.clinical import condition, medication, pain_score, procedure, role  # noqa: E402
from tests.support import PATIENT_ID, full_prefetch, hook_request, searchset, service_request  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = 8
VARIANTS = 32
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SERVICE = "/cds-services/cpt64580-order-sign"
FLOOR = "bench.floor:app"
CEILING = "bench.ceiling:app"  # the service with the rules' answer canned: what everything but the rules costs
TARGETS = {  # issue #17: ratios against the floor of the same run, absolute bounds for the rest
    "typical throughput / floor": (">=", 0.3),
    "typical p50 / floor p50": ("<=", 3.0),
    "typical p99 ms (8 connections)": ("<", 50.0),
    "large p50 ms": ("<", 150.0),
    "peak RSS per worker MiB": ("<=", 150.0),
}


def typical() -> dict:
    """About 20 resources (~12 KB): a documented Medicare patient, two surgeons, a trial with pain scores."""
    data = full_prefetch()
    data["coverage"] = searchset(
        {
            "resourceType": "Coverage",
            "id": "cov-1",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{PATIENT_ID}"},
            "payor": [{"reference": "Organization/org-1"}],
        },
        {"resourceType": "Organization", "id": "org-1", "name": "Medicare"},
    )
    data["conditions"] = searchset(
        condition("G90.522", onset="2025-04-02"),
        condition("J06.9", onset="2024-02-10", clinical="resolved"),
        condition("I10", onset="2019-05-01"),
    )
    data["procedures"] = searchset(
        *(procedure("97110", f"2026-0{1 + i % 3}-1{i}") for i in range(4)),
        procedure("64555", "2026-03-01", "2026-03-07"),
        procedure("90791", "2026-02-10"),
        procedure("99213", "2025-11-05"),
    )
    data["medicationRequests"] = searchset(medication("25480"), medication("5640"))
    data["practitionerRoles"] = searchset(role("a", id="ra"), role("b", id="rb", specialty="207X00000X"))
    data["painScores"] = searchset(
        pain_score(8, "2026-02-25"), pain_score(3, "2026-03-04"), pain_score(4, "2026-03-06")
    )
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
    prefetch["painScores"] = searchset(*obs, pain_score(8, "2026-02-25"), pain_score(3, "2026-03-04"))
    return body


def variants(body: dict, n: int) -> list[bytes]:
    """``n`` bodies that differ in patient and hookInstance (the first is ``body`` itself), each about one patient
    throughout: context, references and the Patient resource."""
    raw = json.dumps(body)
    out = []
    for i in range(n):
        text = raw if i == 0 else raw.replace(f"Patient/{PATIENT_ID}", f"Patient/{PATIENT_ID}-{i}")
        varied = json.loads(text)
        if i:
            varied["context"]["patientId"] = f"{PATIENT_ID}-{i}"
            varied["hookInstance"] = str(uuid.uuid4())
            patient = varied["prefetch"].get("patient")
            if isinstance(patient, dict):  # the Patient itself, or the service leaves it out as another patient's
                patient["id"] = f"{PATIENT_ID}-{i}"
        out.append(json.dumps(varied).encode())
    return out


def count_resources(body: dict) -> int:
    return sum(
        len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1 for v in body["prefetch"].values() if v
    )


# ---- load --------------------------------------------------------------------------------------------------------

WRK_SCRIPT = """
local bodies, i = {}, 0
function init(args)
  for n = 0, tonumber(args[1]) - 1 do
    local f = assert(io.open(args[2] .. "/" .. n .. ".json", "rb"))
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
  i = math.random(#bodies)
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, bodies: list[bytes], connections: int, seconds: float) -> dict:
    """wrk's own numbers: requests/s, p50 and p99 latency (ms); non-2xx answers fail the run."""
    with tempfile.TemporaryDirectory() as folder:
        for n, raw in enumerate(bodies):
            Path(folder, f"{n}.json").write_bytes(raw)
        script = Path(folder, "bodies.lua")
        script.write_text(WRK_SCRIPT)
        threads = min(2, connections)
        done = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url,
             "--", str(len(bodies)), folder],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    out = done.stdout
    if "Non-2xx" in out:
        raise SystemExit(f"bench: error answers from {url}:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
    }


def post(port: int, path: str, raw: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, raw, {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.status, response.read()
    conn.close()
    return answer


def gunicorn(app: str, port: int, env: dict) -> subprocess.Popen:
    args = [str(Path(sys.executable).with_name("gunicorn"))]
    if app != FLOOR:  # the service, and the service with its rules canned, run as production runs them
        args += ["-c", "python:cds.gunicorn_conf"]
    args += [app, "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def worker_rss_mib(master: int) -> list[float]:
    peaks = []
    for child in Path(f"/proc/{master}/task").glob("*/children"):
        for pid in child.read_text().split():
            status = Path(f"/proc/{pid}/status").read_text()
            peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    return peaks


def measure(app: str, env: dict, loads: dict[str, list[bytes]], answer_size: dict[str, int] | None) -> dict:
    port = servers.free_port()
    server = gunicorn(app, port, env)
    results: dict = {}
    try:
        servers.wait_ready(f"http://127.0.0.1:{port}", server) if app != FLOOR else servers.wait_port(port)
        for name, bodies in loads.items():
            path = SERVICE + (f"?size={answer_size[name]}" if answer_size else "")
            status, answer = post(port, path, bodies[0])
            assert status == 200, answer[:300]
            results[f"{name}-answer"] = answer
            for raw in bodies[:4]:  # warm-up: imports, caches of the code (never of a body: each differs)
                post(port, path, raw)
            connections = CONNECTIONS if name == "typical" else 1
            results[name] = wrk(f"http://127.0.0.1:{port}{path}", bodies, connections, SECONDS)
        results["rss"] = worker_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def check_outcome(name: str, answer: bytes) -> str:
    expected_path = ROOT / "bench" / f"expected-{name}.json"
    actual = replay.outcome(200, json.loads(answer))
    if os.environ.get("BENCH_RECORD"):
        expected_path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    expected = json.loads(expected_path.read_text())
    return "same outcome as recorded" if actual == expected else "DIFFERENT OUTCOME:\n" + replay.diff(expected, actual)


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is needed (apt-get install wrk); it loads both apps the same way", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
        "CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "CDS_LOG_LEVEL": "WARNING",
    }
    bodies = {"typical": typical(), "large": large()}
    loads = {"typical": variants(bodies["typical"], VARIANTS), "large": variants(bodies["large"], 4)}
    service = measure("cds.wsgi:app", env, loads, None)
    sizes = {name: len(service[f"{name}-answer"]) for name in loads}
    floor = measure(FLOOR, env, loads, sizes)
    ceiling = measure(CEILING, env, {"typical": loads["typical"]}, None)

    print(f"gunicorn {WORKERS} sync workers for both; wrk, {SECONDS:g} s per run, {VARIANTS} varied bodies;")
    print(f"typical at {CONNECTIONS} connections, large at 1\n")
    print("| request | resources | body | answer | floor p50 / p99 ms | service p50 / p99 ms | p50 ratio | "
          "floor req/s | service req/s | throughput ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in loads:
        f, s = floor[name], service[name]
        print(
            f"| {name} | {count_resources(bodies[name])} | {len(loads[name][0]) / 1024:.0f} KiB | "
            f"{sizes[name] / 1024:.0f} KiB | {f['p50']:.2f} / {f['p99']:.2f} | {s['p50']:.2f} / {s['p99']:.2f} | "
            f"{s['p50'] / f['p50']:.2f}x | {f['rps']:.0f} | {s['rps']:.0f} | {s['rps'] / f['rps']:.2f}x |"
        )
    f, c = floor["typical"], ceiling["typical"]
    print(
        f"| typical, rules canned | | | {sizes['typical'] / 1024:.0f} KiB | {f['p50']:.2f} / {f['p99']:.2f} | "
        f"{c['p50']:.2f} / {c['p99']:.2f} | {c['p50'] / f['p50']:.2f}x | {f['rps']:.0f} | {c['rps']:.0f} | "
        f"{c['rps'] / f['rps']:.2f}x |"
    )
    print(
        "\n'rules canned' (bench/ceiling.py) is the service answering every call with the typical answer computed "
        "once:\nHTTP, Flask, the checks, metrics, the log line and the audit row, no rules. It bounds what the "
        "service can reach."
    )
    rss = max(service["rss"])
    print(f"\npeak RSS per worker (service): {', '.join(f'{m:.0f} MiB' for m in service['rss'])}")
    measured = {
        "typical throughput / floor": service["typical"]["rps"] / floor["typical"]["rps"],
        "typical p50 / floor p50": service["typical"]["p50"] / floor["typical"]["p50"],
        "typical p99 ms (8 connections)": service["typical"]["p99"],
        "large p50 ms": service["large"]["p50"],
        "peak RSS per worker MiB": rss,
    }
    missed = 0
    print("\n| target | measured | met |\n|---|---|---|")
    for label, (op, bound) in TARGETS.items():
        value = measured[label]
        met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        missed += not met
        print(f"| {label} {op} {bound:g} | {value:.2f} | {'yes' if met else 'NO'} |")
    for name in loads:
        verdict = check_outcome(name, service[f"{name}-answer"])
        missed += verdict.startswith("DIFFERENT")
        print(f"\n{name}: {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
