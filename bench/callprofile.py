"""Where one hook call's time goes: cProfile over N typical calls through the app in-process (`make profile`).

The same app and database settings as `make bench` (SQLite file, JWT checks off), varied bodies, the top functions
by their own time and by cumulative time, and the total per call.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import SERVICE, large, typical, variants  # noqa: E402  (bench/bench.py, beside this file)
from cds import create_app  # noqa: E402


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "typical"
    calls = int(os.environ.get("PROFILE_CALLS", "300" if name == "typical" else "10"))
    with tempfile.TemporaryDirectory(prefix="cds-profile-") as tmp:
        return profiled(
            name, calls, create_app({"DATABASE_URL": f"sqlite:///{tmp}/profile.sqlite3", "LOG_LEVEL": "WARNING"})
        )


def profiled(name: str, calls: int, app) -> int:
    """Profile ``calls`` hook calls; the audit rows are committed before the caller removes their file."""
    client = app.test_client()
    bodies = variants(typical() if name == "typical" else large(), 32)
    for raw in bodies[:4]:
        assert client.post(SERVICE, data=raw, content_type="application/json").status_code == 200
    started = time.perf_counter()
    profile = cProfile.Profile()
    profile.enable()
    for i in range(calls):
        client.post(SERVICE, data=bodies[i % len(bodies)], content_type="application/json")
    profile.disable()
    elapsed = time.perf_counter() - started
    app.extensions["cds.audit"].flush(30)
    print(f"{name}: {calls} calls, {elapsed / calls * 1000:.2f} ms per call under the profiler\n")
    stats = pstats.Stats(profile).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
