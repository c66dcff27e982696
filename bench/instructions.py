"""Instructions per typical ``engine.invoke`` call, counted by valgrind's callgrind (`make bench-instructions`).

Wall-clock timings on a shared machine drift by a third between runs; instruction counts do not (about 1%). The
script runs itself twice under callgrind, with N calls and with none, and prints the difference per call: compare
it before and after a change to the rules core. Needs valgrind (`apt-get install valgrind`); takes ~3 minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CALLS = 200


def calls(n: int) -> None:
    import orjson

    from bench import SERVICE, typical, variants
    from cds import create_app, engine

    app = create_app({"DATABASE_URL": "sqlite://", "LOG_LEVEL": "WARNING"})
    settings, policy_set = app.extensions["cds.settings"], app.extensions["cds.policies"]
    bodies = [orjson.loads(b) for b in variants(typical(), 32)]
    service = SERVICE.rsplit("/", 1)[-1]
    for i in range(32 + n):  # the first 32 warm every path up in both runs
        engine.invoke(service, bodies[i % 32], settings, policy_set=policy_set)


def counted(n: int) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, str(n)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main() -> int:
    if len(sys.argv) > 1:
        calls(int(sys.argv[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("make bench-instructions needs valgrind, which is not installed here", file=sys.stderr)
        return 2
    per_call = (counted(CALLS) - counted(0)) / CALLS
    print(f"typical engine.invoke: {per_call / 1e6:.2f} million instructions a call ({CALLS} calls, callgrind)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
