"""Scale-out, proven on loopback: PostgreSQL, Redis, two gunicorn instances and nginx in front.

Needs Debian's postgresql, redis-server and nginx (`.ci/run` installs them); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import requests
from sqlalchemy import create_engine, func, select

from cds.feedback import feedback_table

from . import servers
from .support import ORDER_SIGN, full_prefetch, hook_request
from .test_trust import ISS, JWKS, token

REASON = servers.missing("initdb", "redis-server", "nginx", "runuser")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
URL = f"/cds-services/{ORDER_SIGN}"


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    with ExitStack() as stack:
        database = stack.enter_context(servers.postgres(tmp / "pg"))
        redis_url = stack.enter_context(servers.redis_server(tmp))
        yield tmp, database, redis_url


def cluster(stack: ExitStack, tmp, database: str, redis_url: str, *, trust: bool):
    """Two instances behind nginx; returns (nginx base URL, [instance URLs], [processes])."""
    lb_port = servers.free_port()
    base = f"http://127.0.0.1:{lb_port}"
    env = {
        "CDS_DATABASE_URL": database,
        "CDS_REDIS_URL": redis_url,
        "CDS_PUBLIC_BASE_URL": base,
        "CDS_LOG_LEVEL": "WARNING",
    }
    if trust:
        clients = tmp / "clients.json"
        clients.write_text(json.dumps({"clients": [{"iss": ISS, "jwks": JWKS}]}))
        env["CDS_TRUSTED_CLIENTS"] = str(clients)
    ports = [servers.free_port(), servers.free_port()]
    processes = [stack.enter_context(servers.gunicorn(tmp, port, env, f"cds-{i + 1}")) for i, port in enumerate(ports)]
    (tmp / f"nginx-{lb_port}").mkdir(parents=True)
    stack.enter_context(servers.nginx(tmp / f"nginx-{lb_port}", ports, lb_port))
    return base, [f"http://127.0.0.1:{p}" for p in ports], processes


def at(i: int) -> str:
    """A distinct outcome time per post: one card's outcome at one time is stored once."""
    return f"2026-11-27T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"


def bearer(base: str, path: str = URL) -> dict:
    return {"Authorization": "Bearer " + token(aud=base + path)}


def test_instances_agree_share_replay_state_and_store_everything_in_postgres(backends):
    tmp, database, redis_url = backends
    with ExitStack() as stack:
        (tmp / "trusted").mkdir()
        base, direct, _ = cluster(stack, tmp / "trusted", database, redis_url, trust=True)

        # Round-robin: the same call answered by both instances, identically.
        body = hook_request(prefetch=full_prefetch())
        answers, instances = [], set()
        for _ in range(4):
            response = requests.post(base + URL, json=body, headers=bearer(base), timeout=10)
            assert response.status_code == 200
            answers.append(response.json())
            instances.add(response.headers["X-CDS-Instance"])
        assert instances == {"cds-1", "cds-2"}
        assert all(a == answers[0] for a in answers)

        # A token used at one instance is refused at the other (the jti lives in Redis).
        once = bearer(base)
        assert requests.post(direct[0] + URL, json=body, headers=once, timeout=10).status_code == 200
        assert requests.post(direct[1] + URL, json=body, headers=once, timeout=10).status_code == 401

        # 1,000 feedback posts (one issued card, a new time each) across both instances: every one in PostgreSQL.
        path = f"/cds-services/{ORDER_SIGN}/feedback"
        card = answers[0]["cards"][0]["uuid"]

        def post(i: int) -> int:
            item = {"card": card, "outcome": "overridden", "outcomeTimestamp": at(i)}
            return requests.post(
                base + path, json={"feedback": [item]}, headers=bearer(base, path), timeout=20
            ).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(post, range(1000)))
        assert statuses.count(200) == 1000
        engine = create_engine(database)
        with engine.connect() as conn:
            stored = conn.scalar(
                select(func.count()).select_from(feedback_table).where(feedback_table.c.card_uuid == card)
            )
        assert stored == 1000


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "graceful-shutdown"])
def test_losing_an_instance_mid_load_loses_no_accepted_request(backends, stop):
    tmp, database, redis_url = backends
    with ExitStack() as stack:
        folder = tmp / f"open-{stop.name}"
        folder.mkdir()
        base, _direct, processes = cluster(stack, folder, database, redis_url, trust=False)
        path = f"/cds-services/{ORDER_SIGN}/feedback"
        body = hook_request(prefetch=full_prefetch())
        card = requests.post(base + URL, json=body, timeout=20).json()["cards"][0]["uuid"]
        posts = 400
        done = threading.Event()

        def post(i: int) -> int:
            if i == 120:
                os.kill(processes[1].pid, stop)  # one instance dies (or is told to stop) mid-load
                done.set()
            if i % 2:
                return requests.post(base + URL, json=body, timeout=20).status_code
            item = {"card": card, "outcome": "overridden", "outcomeTimestamp": at(i)}
            return requests.post(base + path, json={"feedback": [item]}, timeout=20).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(post, range(posts)))
        assert done.is_set()
        assert statuses.count(200) == len(statuses), [s for s in statuses if s != 200][:5]
        posted = [i for i in range(posts) if i % 2 == 0]
        engine = create_engine(database)
        with engine.connect() as conn:
            rows = conn.scalar(
                select(func.count()).select_from(feedback_table).where(feedback_table.c.card_uuid == card)
            )
        assert rows == len(posted), "every accepted feedback is stored exactly once"
