"""A bounded load test against gunicorn on loopback: zero errors, and every feedback post is in the database.

`make load` runs it with LOAD_REQUESTS=5000.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, func, select

from cds.audit import audit_table
from cds.feedback import feedback_table

from . import servers
from .support import ORDER_SIGN, full_prefetch, hook_request

REQUESTS = int(os.environ.get("LOAD_REQUESTS", "300"))


@pytest.fixture
def gunicorn(tmp_path):
    port = servers.free_port()
    database = tmp_path / "load.sqlite3"
    env = {"CDS_DATABASE_URL": f"sqlite:///{database}", "CDS_LOG_LEVEL": "WARNING"}
    with servers.gunicorn(tmp_path, port, env, "load", workers=2) as process:
        yield f"http://127.0.0.1:{port}", database, process


def test_bounded_load_has_no_errors_and_loses_no_feedback(gunicorn):
    base, database, process = gunicorn
    prefetch = full_prefetch()
    session_by_thread: dict[int, requests.Session] = {}

    def one(i: int) -> tuple[str, int]:
        import threading

        session = session_by_thread.setdefault(threading.get_ident(), requests.Session())
        kind = ("hook", "feedback", "hook", "discovery")[i % 4]
        if kind == "hook":
            response = session.post(
                f"{base}/cds-services/{ORDER_SIGN}", json=hook_request(prefetch=prefetch), timeout=30
            )
        elif kind == "feedback":
            item = {
                "card": card,
                "outcome": "overridden",
                "outcomeTimestamp": f"2026-11-27T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            }
            response = session.post(f"{base}/cds-services/{ORDER_SIGN}/feedback", json={"feedback": [item]}, timeout=30)
        else:
            response = session.get(f"{base}/cds-services", timeout=30)
        return kind, response.status_code

    card = requests.post(f"{base}/cds-services/{ORDER_SIGN}", json=hook_request(prefetch=prefetch), timeout=30)
    card = card.json()["cards"][0]["uuid"]  # feedback is for a card the service issued
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    elapsed = time.monotonic() - started
    errors = [r for r in results if r[1] != 200]
    assert not errors, errors[:5]
    process.terminate()  # a graceful stop: the audit rows the workers still hold are committed before they exit
    assert process.wait(timeout=30) == 0
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(feedback_table))
        audited = conn.scalar(select(func.count()).select_from(audit_table))
    assert stored == sum(1 for kind, _ in results if kind == "feedback")
    assert audited == sum(1 for kind, _ in results if kind == "hook") + 1
    print(f"{REQUESTS} requests in {elapsed:.1f}s ({REQUESTS / elapsed:.0f}/s), 0 errors")
