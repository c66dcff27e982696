"""Benchmark: the order-sign service against the floor, on the same gunicorn settings, in one run (`make bench`).

The floor (bench/floor.py) is a Flask app that parses the same body with orjson and answers pre-serialised bytes
of the size of the service's answer: what any hook call must cost. Both run as gunicorn with the same workers, on the
same cores, and are loaded the same way, in turns (rounds of service, floor and the service with its rules canned, so
a machine that drifts during the run weighs on each alike): wrk with 8 connections cycling through 32 request
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
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds import replay  # noqa: E402
from tests import servers  # noqa: E402
from tests.clinical import condition, medication, pain_score, procedure, role  # noqa: E402
from tests.support import PATIENT_ID, full_prefetch, hook_request, searchset, service_request  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = 8
VARIANTS = 32
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))  # one load of one app
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # of the typical load: service, floor and canned rules in turn
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


class Served:
    """One app under gunicorn on its own port, started before any load so all three take turns on warm workers."""

    def __init__(self, app: str, env: dict) -> None:
        self.app, self.port = app, servers.free_port()
        self.server = gunicorn(app, self.port, env)
        url = f"http://127.0.0.1:{self.port}"
        servers.wait_ready(url, self.server) if app != FLOOR else servers.wait_port(self.port)

    def path(self, size: int | None) -> str:
        return SERVICE + (f"?size={size}" if self.app == FLOOR else "")

    def warm(self, bodies: list[bytes], size: int | None) -> bytes:
        """The answer to the first body; a few more calls load the code (never a body's cache: each differs)."""
        status, answer = post(self.port, self.path(size), bodies[0])
        assert status == 200, answer[:300]
        for raw in bodies[1:4]:
            post(self.port, self.path(size), raw)
        return answer

    def load(self, bodies: list[bytes], size: int | None, connections: int, seconds: float) -> dict:
        return wrk(f"http://127.0.0.1:{self.port}{self.path(size)}", bodies, connections, seconds)

    def stop(self) -> list[float]:
        """Peak RSS of each worker (MiB), then the server stopped."""
        rss = worker_rss_mib(self.server.pid)
        self.server.terminate()
        self.server.wait(timeout=30)
        return rss


def measure(env: dict, loads: dict[str, list[bytes]]) -> dict:
    """Rounds in turn: service, floor and canned rules each loaded once per round, in a rotating order, so a machine
    that slows down or speeds up during the run weighs on all three alike; the ratios are per round."""
    served = {"service": Served("cds.wsgi:app", env), "floor": Served(FLOOR, env), "canned": Served(CEILING, env)}
    results: dict = {"rounds": []}
    try:
        answers = {name: served["service"].warm(bodies, None) for name, bodies in loads.items()}
        sizes = {name: len(answer) for name, answer in answers.items()}
        results["answers"], results["sizes"] = answers, sizes
        served["floor"].warm(loads["typical"], sizes["typical"])
        served["floor"].warm(loads["large"], sizes["large"])
        served["canned"].warm(loads["typical"], None)
        order = list(served)
        for n in range(ROUNDS):
            this_round = {}
            for who in order[n % 3 :] + order[: n % 3]:
                this_round[who] = served[who].load(loads["typical"], sizes["typical"], CONNECTIONS, SECONDS)
            results["rounds"].append(this_round)
        for who in ("service", "floor"):  # the large record: absolute target only, one connection
            results[f"large-{who}"] = served[who].load(loads["large"], sizes["large"], 1, SECONDS)
    finally:
        results["rss"] = served["service"].stop()
        served["floor"].stop()
        served["canned"].stop()
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
    bodies = {"typical": typical(), "large": large()}
    loads = {"typical": variants(bodies["typical"], VARIANTS), "large": variants(bodies["large"], 4)}
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:  # the audit file grows ~1.5 GB a run
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
            "CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "CDS_LOG_LEVEL": "WARNING",
        }
        measured_runs = measure(env, loads)
    rounds, sizes = measured_runs["rounds"], measured_runs["sizes"]

    print(f"gunicorn {WORKERS} sync workers for each app; wrk, {SECONDS:g} s a load, {VARIANTS} varied bodies;")
    print(
        f"typical at {CONNECTIONS} connections in {ROUNDS} rounds (service, floor, canned rules in turn), large at 1\n"
    )
    print("| request | round | floor p50 / p99 ms | service p50 / p99 ms | p50 ratio | floor req/s | service req/s | "
          "throughput ratio | canned req/s | canned ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(rounds, 1):
        f, s, c = r["floor"], r["service"], r["canned"]
        print(
            f"| typical | {n} | {f['p50']:.2f} / {f['p99']:.2f} | {s['p50']:.2f} / {s['p99']:.2f} | "
            f"{s['p50'] / f['p50']:.2f}x | {f['rps']:.0f} | {s['rps']:.0f} | {s['rps'] / f['rps']:.2f}x | "
            f"{c['rps']:.0f} | {c['rps'] / f['rps']:.2f}x |"
        )
    f, s = measured_runs["large-floor"], measured_runs["large-service"]
    print(
        f"| large | | {f['p50']:.2f} / {f['p99']:.2f} | {s['p50']:.2f} / {s['p99']:.2f} | {s['p50'] / f['p50']:.2f}x | "
        f"{f['rps']:.0f} | {s['rps']:.0f} | {s['rps'] / f['rps']:.2f}x | | |"
    )
    print(
        f"\ntypical: {count_resources(bodies['typical'])} resources, {len(loads['typical'][0]) / 1024:.0f} KiB body, "
        f"{sizes['typical'] / 1024:.0f} KiB answer; large: {count_resources(bodies['large'])} resources, "
        f"{len(loads['large'][0]) / 1024:.0f} KiB body, {sizes['large'] / 1024:.0f} KiB answer."
    )
    print(
        "'canned' (bench/ceiling.py) is the service answering every call with the typical answer computed once:\n"
        "HTTP, Flask, the checks, metrics, the log line and the audit row, no rules. It bounds what the service can "
        "reach.\nThe targets take the median of the rounds' ratios (and of the service's p99)."
    )
    rss = max(measured_runs["rss"])
    print(f"\npeak RSS per worker (service): {', '.join(f'{m:.0f} MiB' for m in measured_runs['rss'])}")
    measured = {
        "typical throughput / floor": median([r["service"]["rps"] / r["floor"]["rps"] for r in rounds]),
        "typical p50 / floor p50": median([r["service"]["p50"] / r["floor"]["p50"] for r in rounds]),
        "typical p99 ms (8 connections)": median([r["service"]["p99"] for r in rounds]),
        "large p50 ms": s["p50"],
        "peak RSS per worker MiB": rss,
    }
    missed = 0
    print("\n| target | measured | met |\n|---|---|---|")
    for label, (op, bound) in TARGETS.items():
        value = measured[label]
        met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        missed += not met
        print(f"| {label} {op} {bound:g} | {value:.3f} | {'yes' if met else 'NO'} |")
    for name in loads:
        verdict = check_outcome(name, measured_runs["answers"][name])
        missed += verdict.startswith("DIFFERENT")
        print(f"\n{name}: {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
