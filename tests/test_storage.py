"""Storage through one SQLAlchemy code path: migrations match the tables, PostgreSQL keeps feedback durably."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from cds import audit, create_app, db, feedback  # noqa: F401  (their tables join the metadata)

from . import servers
from .support import full_prefetch, hook_request

CDS = str(Path(sys.executable).with_name("cds"))


def test_migrations_create_exactly_the_tables_the_code_uses(tmp_path):
    engine = db.engine_for(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    db.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_cds_db_upgrade_and_instances_starting_together(tmp_path):
    url = f"sqlite:///{tmp_path / 'together.sqlite3'}"
    result = subprocess.run(
        [CDS, "db", "upgrade"], env={"CDS_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode == 0 and "up to date" in result.stdout
    # Four worker processes starting at once on a fresh database: one migrates, none fails.
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    code = f"from cds import create_app; create_app({{'DATABASE_URL': {fresh!r}, 'LOG_LEVEL': 'WARNING'}})"
    workers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = [(w.wait(timeout=60), w.stderr.read()) for w in workers]
    assert all(code == 0 for code, _ in outcomes), [err[-500:] for code, err in outcomes if code]


@pytest.mark.skipif(servers.missing("initdb", "runuser") is not None, reason=servers.missing("initdb", "runuser") or "")
def test_feedback_and_audit_on_postgresql_survive_a_restart(tmp_path):
    with servers.postgres(tmp_path) as url:
        first = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
        issued = first.test_client().post(
            "/cds-services/cpt64580-order-sign", json=hook_request(prefetch=full_prefetch())
        )
        card = issued.get_json()["cards"][0]["uuid"]
        [row] = first.extensions["cds.audit"].for_card(card)  # the answer as sent, stored as text
        assert row["response"] == issued.get_data(as_text=True) and "—" in row["response"]
        item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"}
        assert (
            first.test_client()
            .post("/cds-services/cpt64580-order-sign/feedback", json={"feedback": [item]})
            .status_code
            == 200
        )
        assert (
            first.test_client()
            .post("/cds-services/cpt64580-order-sign/feedback", json={"feedback": [item]})
            .get_json()["stored"]
            == 0
        )
        # PostgreSQL refuses NUL (valid JSON as \u0000) in text: such feedback was a 503 on every retry, a lost record
        reason = {"reason": {"system": "urn:x\u0000", "code": "c\u0000", "display": "d"}, "userComment": "ok\u0000no"}
        odd = item | {"outcomeTimestamp": "2026-11-27T11:00:00Z", "overrideReason": reason}
        posted = first.test_client().post("/cds-services/cpt64580-order-sign/feedback", json={"feedback": [odd]})
        assert posted.status_code == 200, posted.get_data()
        nul_card = item | {"card": "not-a-card\u0000"}  # never issued: a 404, not a 500 asking to retry forever
        refused = first.test_client().post("/cds-services/cpt64580-order-sign/feedback", json={"feedback": [nul_card]})
        assert refused.status_code == 404, refused.get_data()
        first.extensions["cds.engine"].dispose()
        second = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
        rows = second.extensions["cds.feedback"].for_card(card)
        assert sorted(r["user_comment"] or "" for r in rows) == ["", "ok\ufffdno"]
        with second.extensions["cds.engine"].connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == []
        second.extensions["cds.engine"].dispose()


def test_audit_rows_of_concurrent_calls_share_transactions_and_none_is_lost(tmp_path):
    """Group commit: many calls, few fsyncs; every row is there once flushed."""
    import threading

    from cds import metrics
    from cds.audit import AuditLog, audit_table
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30)
    before_count, before_sum = _histogram(metrics.AUDIT_BATCH_ROWS)
    response = {"cards": [{"uuid": "u"}]}

    def call(i: int) -> None:
        log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0, response=response)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.flush(10)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(audit_table)) == 200
    count, total = _histogram(metrics.AUDIT_BATCH_ROWS)
    assert total - before_sum == 200
    assert count - before_count < 200, "some transactions carried the rows of several calls"


def test_rows_of_calls_answered_one_after_another_share_a_transaction_and_a_flush_does_not_wait_for_them(tmp_path):
    """A worker answers calls one at a time: woken by each row, the writer committed each alone and took the GIL
    from the request thread every time. It lingers for the rows that follow; a flush (a feedback post, shutdown)
    cuts the linger short."""
    import time

    from cds import metrics
    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30, linger=5.0)
    before_count, before_sum = _histogram(metrics.AUDIT_BATCH_ROWS)
    for i in range(10):
        log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
        time.sleep(0.02)  # a call's worth of work between rows
    started = time.monotonic()
    assert log.flush(10)
    assert time.monotonic() - started < 2, "the flush cut the writer's linger short"
    count, total = _histogram(metrics.AUDIT_BATCH_ROWS)
    assert (count - before_count, total - before_sum) == (1, 10), "ten rows, one transaction"
    assert all(log.for_hook_instance(f"h{i}") for i in range(10))
    log.close()


def test_feedback_reaching_another_instance_finds_a_card_still_in_the_answering_writers_linger(tmp_path):
    """Two instances on one database: the card's row waits out the answering writer's linger while feedback on it
    reaches the other instance, which had answered 404 ("never issued", final for the EHR)."""
    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    upgrade(engine_for(url))
    answering, other = AuditLog(engine_for(url), 30, linger=0.2), AuditLog(engine_for(url), 30, linger=0.2)
    answering.record(hook_instance="h", service_id="s", client=None, status=200, latency_ms=1.0,
                     response={"cards": [{"uuid": "card-1"}]})  # fmt: skip
    assert other.unknown_cards(["card-1"], "s") == []
    assert other.unknown_cards(["never-issued"], "s") == ["never-issued"]
    answering.close()


def test_feedback_on_made_up_cards_cannot_hold_a_worker_in_second_looks(tmp_path):
    """Each second look waits 5 x the linger in a sync worker: a client posting made-up card ids held a worker 100 ms a
    post. Second looks are bounded per client and minute; past that, "never issued" is answered at once."""
    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    upgrade(engine_for(url))
    log = AuditLog(engine_for(url), 30, linger=0.1, looks_again_per_minute=2)

    def waited(client: str) -> float:
        started = time.monotonic()
        assert log.unknown_cards(["made-up"], "s", client) == ["made-up"]
        return time.monotonic() - started

    assert [waited("ehr-a") >= 0.5 for _ in range(2)] == [True, True]  # a card issued elsewhere may still appear
    # the budget is spent: answered without the wait (a new minute may refill it once: two more looks at most)
    assert sum(waited("ehr-a") < 0.4 for _ in range(5)) >= 3
    assert waited("ehr-b") >= 0.5, "another client has its own budget"
    log.close()


def test_a_flush_waits_for_the_rows_handed_over_before_it_not_for_those_still_arriving(tmp_path, monkeypatch):
    """A feedback post flushes before it looks its card up: under steady hook traffic on a slower database it used
    to wait for every row that kept arriving, up to its 10 s timeout (and then looked up too early)."""
    import threading
    import time

    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30, batch_size=4)
    inserts = log._writer._statements
    real = inserts.commit

    stop = threading.Event()

    def slow(connection, batch):
        if not stop.is_set():
            time.sleep(0.05)  # a database a network away, while the traffic lasts
        real(connection, batch)

    monkeypatch.setattr(inserts, "commit", slow)

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
            i += 1
            time.sleep(0.004)

    producer = threading.Thread(target=traffic)
    producer.start()
    try:
        time.sleep(0.3)
        log.record(hook_instance="mine", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
        started = time.monotonic()
        assert log.flush(20)
        waited = time.monotonic() - started
        assert log.for_hook_instance("mine"), "the row handed over before the flush is committed"
    finally:
        stop.set()
        producer.join()
    assert waited < 5, f"the flush waited {waited:.1f} s for rows that arrived after it"
    assert log.flush(30)
    log.close()


def test_audit_rows_wait_out_a_database_restart_instead_of_being_lost(tmp_path, monkeypatch):
    """Three quick attempts lost the rows of calls already answered when PostgreSQL restarted for 5 s; a database
    that cannot be reached is retried for OUTAGE_RETRY_SECONDS, and no row is lost. A row the database refuses for
    its content still gets three attempts, not the outage's wait."""
    import sqlite3

    from cds import audit as audit_module
    from cds import metrics
    from cds.audit import AuditLog, audit_table
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30)
    inserts = log._writer._statements
    real_connect, down, pauses = inserts.connect, [8], []

    def restarting(dedicated):
        if down[0] > 0:
            down[0] -= 1
            raise sqlite3.OperationalError("unable to open database file")  # the server is not there
        return real_connect(dedicated)

    monkeypatch.setattr(inserts, "connect", restarting)
    monkeypatch.setattr(audit_module.time, "sleep", pauses.append)
    lost = _counter(metrics.AUDIT_ROWS_LOST, "database")
    for i in range(5):
        log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
    assert log.flush(30)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(audit_table)) == 5
    assert _counter(metrics.AUDIT_ROWS_LOST, "database") == lost
    assert len(pauses) >= 8 and max(pauses) <= 2.0

    real_commit, refusals = inserts.commit, []

    def refusing(connection, batch):
        refusals.append(len(batch))
        raise sqlite3.IntegrityError("refused")

    monkeypatch.setattr(inserts, "commit", refusing)
    log.record(hook_instance="bad", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
    assert log.flush(30)
    assert refusals == [1, 1, 1] and _counter(metrics.AUDIT_ROWS_LOST, "database") == lost + 1
    monkeypatch.setattr(inserts, "commit", real_commit)
    log.close()


def test_feedback_whose_card_the_audit_trail_cannot_confirm_yet_is_a_503_to_retry_not_a_404(tmp_path):
    """A 404 ("this service never issued that card") is final: an EHR does not retry it, so feedback on a card
    still waiting for a slow database was lost."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}", "LOG_LEVEL": "WARNING"})
    client = app.test_client()
    card = client.post("/cds-services/cpt64580-order-sign", json=hook_request(prefetch=full_prefetch()))
    item = {
        "card": card.get_json()["cards"][0]["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-28T10:00:00Z",
    }
    app.extensions["cds.audit"]._writer.flush = lambda _timeout: False  # the writer is behind
    response = client.post("/cds-services/cpt64580-order-sign/feedback", json={"feedback": [item]})
    assert response.status_code == 503 and response.get_json()["resourceType"] == "OperationOutcome"
    assert "retry" in response.get_json()["issue"][0]["diagnostics"]


def _histogram(histogram) -> tuple[float, float]:
    samples = {s.name: s.value for m in histogram.collect() for s in m.samples if s.labels.get("log") == "audit"}
    return samples.get("cds_audit_batch_rows_count", 0.0), samples.get("cds_audit_batch_rows_sum", 0.0)


def test_audit_rows_read_back_as_written_and_feedback_keeps_full_sync(tmp_path):
    """The writer's own INSERTs store what Core would (dates, JSON); its relaxed sync never reaches the pool."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30)
    response = {"cards": [{"uuid": "card-1"}, {"uuid": "card-2"}], "systemActions": []}
    log.record(hook_instance="h-1", service_id="s", client="ehr", status=200, latency_ms=2.5, response=response)
    [row] = log.for_card("card-2")
    assert row["hook_instance"] == "h-1" and row["client"] == "ehr" and row["latency_ms"] == 2.5
    # stored as SQLAlchemy Core stores it on SQLite (naive UTC text), so old and new rows compare
    assert row["received_at"].tzinfo is None
    assert abs(row["received_at"].replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT received_at FROM audit")).scalar()
    assert len(stored) == len("2026-11-28 05:08:57.271265") and "+" not in stored
    assert row["response"] == '{"cards":[{"uuid":"card-1"},{"uuid":"card-2"}],"systemActions":[]}'
    # the answer's bytes are stored as text, not as a blob: SQL's text and JSON functions read it
    answer = {"cards": [{"uuid": "card-9", "summary": "≥ 6 weeks — \U0001f600", "detail": "a\u0000b"}]}
    log.record(hook_instance="h-2", service_id="s", client=None, status=200, latency_ms=1, response=answer)
    [row] = log.for_hook_instance("h-2")
    assert orjson.loads(row["response"]) == answer
    with engine.connect() as conn:
        kind, summary = conn.execute(
            text("SELECT typeof(response), json_extract(response, '$.cards[0].summary') FROM audit WHERE id = :i"),
            {"i": row["id"]},
        ).one()
    assert (kind, summary) == ("text", answer["cards"][0]["summary"])
    assert log.unknown_cards(["card-1", "card-3"], "s") == ["card-3"]
    assert log.unknown_cards(["card-1"], "s", client="ehr") == []
    assert log.unknown_cards(["card-1"], "other-service") == ["card-1"]  # issued by another service
    assert log.unknown_cards(["card-1"], "s", client="another-ehr") == ["card-1"]  # issued to another client
    for _ in range(3):  # every pooled connection (feedback's) still commits with synchronous=FULL (2)
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    log.close()


def test_the_audit_writer_outlives_a_failing_row_and_keeps_the_others(tmp_path, monkeypatch):
    """A row the database refuses is lost alone (counted); an unexpected error does not stop the writer; a NUL
    in a caller's hookInstance (valid JSON, refused by PostgreSQL) is stored readable."""
    import sqlite3
    import time

    from cds import audit as audit_module
    from cds import metrics
    from cds.audit import AuditLog, audit_table
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30)
    inserts = log._writer._statements
    real = inserts.commit

    pause, batches = time.sleep, []

    def refusing(connection, batch):
        batches.append([row["hook_instance"] for row, _ in batch])
        if batch[0][0]["hook_instance"] == "slow":
            pause(0.3)  # the next rows queue meanwhile, and go as one batch
        if any(row["hook_instance"] == "refused" for row, _ in batch):
            raise sqlite3.IntegrityError("refused")
        if any(row["hook_instance"] == "crash" for row, _ in batch):
            raise RuntimeError("not a database error")
        real(connection, batch)

    monkeypatch.setattr(inserts, "commit", refusing)
    monkeypatch.setattr(audit_module.time, "sleep", lambda _s: None)
    lost = {r: _counter(metrics.AUDIT_ROWS_LOST, r) for r in ("database", "error")}
    for name in ("slow", "ok-1", "refused", "ok-2"):
        log.record(hook_instance=name, service_id="s", client=None, status=200, latency_ms=1.0, response=None)
    assert log.flush(10)
    log.record(hook_instance="crash", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
    assert log.flush(10), "the writer survived an unexpected error"
    log.record(hook_instance="nul\x00here", service_id="s", client=None, status=200, latency_ms=1.0, response=None)
    assert log.flush(10)
    with engine.connect() as conn:
        names = set(conn.scalars(select(audit_table.c.hook_instance)))
    assert names == {"slow", "ok-1", "ok-2", "nul\ufffdhere"}
    assert any("refused" in b and "ok-2" in b for b in batches), "the refused row came in a batch with others"
    assert ["ok-1"] in batches and ["ok-2"] in batches, "then each row was tried alone"
    assert _counter(metrics.AUDIT_ROWS_LOST, "database") - lost["database"] == 1
    assert _counter(metrics.AUDIT_ROWS_LOST, "error") - lost["error"] == 1
    log.close()


def _counter(counter, reason: str) -> float:
    return next(
        (
            s.value
            for m in counter.collect()
            for s in m.samples
            if s.labels.get("reason") == reason and s.name.endswith("_total")
        ),
        0.0,
    )


def test_a_flush_gives_up_at_its_timeout_even_while_calls_wait_on_a_full_queue(tmp_path, monkeypatch):
    """During an outage the writer keeps retrying, the queue fills and a call waits in put(): a feedback post's
    flush must still answer at its timeout (then 503, retry), not wait for the database with them."""
    import threading
    import time

    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30, queue_size=2, batch_size=1)
    down = _outage(log, monkeypatch)

    def call(i: int) -> None:
        log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0, response=None)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(5)]  # 1 being written, 2 queued, 2 waiting
    for caller in callers:
        caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert log.flush(0.5) is False
    assert time.monotonic() - started < 2
    down.clear()
    for caller in callers:
        caller.join(10)
    assert log.flush(10)
    assert len([r for i in range(5) for r in log.for_hook_instance(f"h{i}")]) == 5
    log.close()


def test_postgresql_connections_give_up_after_a_few_seconds_unless_the_url_says_otherwise(monkeypatch):
    """The audit writer retries through an outage: against a host that drops packets each connect would otherwise
    hang for minutes while calls wait on the full queue."""
    from cds import db

    made = []
    monkeypatch.setattr(db, "create_engine", lambda url, **kwargs: made.append(kwargs.get("connect_args", {})))
    db.engine_for("postgresql+psycopg://cds@db.example/cds")
    db.engine_for("postgresql+psycopg://cds@db.example/cds?connect_timeout=30")
    assert made == [{"connect_timeout": db.CONNECT_TIMEOUT}, {}]


def test_the_audit_queue_is_bounded_in_bytes_and_still_loses_no_row(tmp_path, monkeypatch):
    """2,000 queued rows of 33 MB answers (a huge draft order echoed back) held 1.3 GB while the database stalled
    (the attacker's pass): past the byte budget a call waits, as on a full queue, and every row is still written."""
    import threading
    import time

    from cds.audit import AuditLog
    from cds.db import engine_for, upgrade

    engine = engine_for(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    log = AuditLog(engine, retention_days=30, batch_size=1, queue_bytes=100_000)
    writer = log._writer
    down = _outage(log, monkeypatch)
    returned = []

    def call(i: int) -> None:
        body = b'{"cards":[],"pad":"' + b"x" * 40_000 + b'"}'
        log.record(hook_instance=f"h{i}", service_id="s", client=None, status=200, latency_ms=1.0,
                   response={"cards": []}, body=body)  # fmt: skip
        returned.append(i)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for caller in callers:
        caller.start()
    time.sleep(0.3)
    assert len(returned) == 2, "two 40 KB rows fit a 100 KB budget; the others wait"
    assert writer._bytes <= 100_000
    down.clear()
    for caller in callers:
        caller.join(10)
    assert log.flush(10) and sorted(returned) == [0, 1, 2, 3, 4]
    assert len([r for i in range(5) for r in log.for_hook_instance(f"h{i}")]) == 5
    assert writer._bytes == 0
    log.close()


def _outage(log, monkeypatch):
    """The audit writer's commits hang until the returned event is cleared (a database that stopped answering)."""
    import threading
    import time

    inserts = log._writer._statements
    real, down = inserts.commit, threading.Event()
    down.set()

    def outage(connection, batch):
        while down.is_set():
            time.sleep(0.01)
        real(connection, batch)

    monkeypatch.setattr(inserts, "commit", outage)
    return down


def test_feedback_that_reaches_another_worker_waits_for_the_card_its_peer_just_answered(tmp_path):
    """Two gunicorn workers, the database stalled: the card's audit row waits in the worker that answered it, and
    feedback on it that reached the other worker was told 'never issued' (404, final: the EHR does not retry, the
    feedback was lost). Now every post waits for the other workers' pending rows, then finds the card."""
    import sqlite3
    import time
    from concurrent.futures import ThreadPoolExecutor

    import requests

    port, database = servers.free_port(), tmp_path / "cds.sqlite3"
    env = {"CDS_DATABASE_URL": f"sqlite:///{database}"}
    # one thread a worker: while the answering worker waits for its own row, the other takes the next posts
    with servers.gunicorn(tmp_path, port, env, "peers", workers=2, threads=1):
        base = f"http://127.0.0.1:{port}/cds-services/cpt64580-order-sign"
        stall = sqlite3.connect(database, isolation_level=None)
        try:
            stall.execute("BEGIN EXCLUSIVE")  # the writer waits on its busy timeout; readers still read
            answer = requests.post(base, json=hook_request(prefetch=full_prefetch()), timeout=30)
            card = answer.json()["cards"][0]["uuid"]
            item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-28T10:00:00Z"}
            with ThreadPoolExecutor(8) as pool:  # a connection each
                posts = [pool.submit(requests.post, base + "/feedback", json={"feedback": [item]}, timeout=30)
                         for _ in range(8)]  # fmt: skip
                time.sleep(1.5)
                stall.execute("COMMIT")
                statuses = [p.result().status_code for p in posts]
        finally:
            stall.close()
        assert statuses == [200] * 8, statuses
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1


def test_peers_wait_only_for_rows_another_worker_had_and_never_for_a_worker_that_is_gone():
    peers = audit.Peers()
    mine, theirs, gone = peers.claim(101), peers.claim(202), peers.claim(303)
    assert len({mine, theirs, gone}) == 3
    peers.progress(mine, queued=5)  # our own rows are flushed locally, never waited for here
    peers.progress(theirs, queued=3, handled=1)
    peers.progress(gone, queued=9, handled=2)
    waiting = peers.elsewhere(101)
    assert set(waiting) == {theirs, gone} and not peers.caught_up(waiting)
    peers.progress(theirs, queued=4, handled=3)  # a row handed over after we looked is not waited for
    peers.gone(303)  # killed with rows pending: the master clears its slot
    assert peers.caught_up(waiting)
    assert peers.claim(404) == gone, "a freed slot is taken again, with fresh counts"
    assert peers.elsewhere(101) == {theirs: (202, 4)}


def test_the_master_frees_a_slot_without_the_lock_and_a_stuck_lock_never_stops_a_worker_starting():
    """gunicorn 23 reaps workers inside its SIGCHLD handler: a second exit while gone() held the lock hung the master
    (the reviewer). A worker killed while claiming leaves the lock held: the next worker starts, without a slot."""
    import time

    peers = audit.Peers()
    slot = peers.claim(101)
    peers.progress(slot, queued=3)
    assert peers._claim.acquire(timeout=1)  # held, as by a worker killed mid-claim
    try:
        peers.gone(101)  # returns at once
        assert peers.elsewhere(999) == {}
        started = time.monotonic()
        assert peers.claim(202) is None
        assert time.monotonic() - started < 3
    finally:
        peers._claim.release()
    assert peers.claim(202) == slot


def test_feedback_waits_less_than_the_proxy_gives_it():
    """Both waits of a feedback post share one budget, under deploy/nginx.conf's read timeout: past it nginx would
    retry the post elsewhere and answer 504, not the 503 (retry) this service means."""
    import re

    conf = (Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf").read_text()
    read_timeout = float(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1))
    assert read_timeout > audit.FEEDBACK_WAIT
