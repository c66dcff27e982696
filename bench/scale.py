"""Requests per second for the typical hook call: one instance, and two instances behind nginx, on PostgreSQL and
Redis, all on this machine (`make bench-scale`). Needs Debian's postgresql, redis-server and nginx."""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench import SERVICE, throughput, typical  # noqa: E402
from tests import servers  # noqa: E402


def main() -> int:
    raw = json.dumps(typical()).encode()
    tmp = Path(tempfile.mkdtemp(prefix="cds-scale-"))
    results = []
    with ExitStack() as stack:
        database = stack.enter_context(servers.postgres(tmp / "pg"))
        redis_url = stack.enter_context(servers.redis_server(tmp))
        env = {"CDS_DATABASE_URL": database, "CDS_REDIS_URL": redis_url, "CDS_LOG_LEVEL": "WARNING"}
        ports = [servers.free_port(), servers.free_port()]
        stack.enter_context(servers.gunicorn(tmp, ports[0], env, "cds-1"))
        stack.enter_context(servers.gunicorn(tmp, ports[1], env, "cds-2"))
        lb = servers.free_port()
        (tmp / "nginx").mkdir()
        stack.enter_context(servers.nginx(tmp / "nginx", ports, lb))
        for label, port in (
            ("one instance (1 worker x 4 threads), direct", ports[0]),
            ("two instances behind nginx", lb),
        ):
            throughput(port, SERVICE, raw, 8, 2.0)  # warm-up
            results.append((label, throughput(port, SERVICE, raw, 8, 8.0)))
    for label, rate in results:
        print(f"{label}: {rate:.0f} requests/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
