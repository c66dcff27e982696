"""The audit trail CRD found-37 asks for: every hook call and its response, to settle disputes and claims.

Rows hold PHI (the response names the patient's findings), so the database is access-restricted and rows older
than the configured retention are purged. Card uuids are stored apart so feedback can be joined to its call.

Rows are written by one writer thread per process that groups the rows of concurrent calls into one transaction
(group commit): a call hands its row over and answers without waiting for the disk, and under load one fsync
serves many calls instead of each call queueing for SQLite's single writer. Woken by a row, the writer lingers a
few milliseconds for the rows of the calls being answered meanwhile: woken once per row, it took the GIL from the
request thread for every row, and the switches cost the worker more CPU than the writes. The queue is bounded
(a full queue makes the call wait: back-pressure, never a dropped row), it is drained before anything reads the
audit table (a feedback post finds the card it names) and at exit, so a graceful shutdown loses no row. Feedback
itself is written synchronously elsewhere: a 200 to a feedback post still means committed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import mmap
import multiprocessing
import os
import queue
import struct
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError

from cds import metrics
from cds.db import metadata
from cds.errors import ServiceUnavailable
from cds.orders import updated_order_ids

log = logging.getLogger(__name__)

audit_table = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_instance", String(64), index=True),
    Column("service_id", String(128), nullable=False),
    Column("client", String(512)),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("outcome", Text),  # per order: covered / pa-needed (compact JSON)
    Column("card_uuids", Text),
    Column("response", Text),
)

# One row per card of an audited answer, so feedback (which names only the card) finds its call by index.
audit_cards_table = Table(
    "audit_cards",
    metadata,
    Column("audit_id", Integer, ForeignKey("audit.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("card_uuid", String(64), nullable=False, index=True),
)


FEEDBACK_WAIT = 8.0  # seconds a feedback post waits for audit rows: under deploy/nginx.conf's 10 s read timeout
_BEHIND = "the audit trail is behind (its database is slow or down); nothing was saved, retry"


class AuditLog:
    def __init__(
        self,
        engine: Engine,
        retention_days: int,
        queue_size: int = 2_000,
        batch_size: int = 256,
        queue_bytes: int = 64 << 20,
        linger: float = 0.02,
        looks_again_per_minute: int = 30,
    ):
        self._engine = engine
        self._retention = timedelta(days=retention_days)
        self._writer = _GroupWriter(engine, queue_size, batch_size, queue_bytes=queue_bytes, linger=linger)
        # a second look costs the worker 5 x linger of waiting: bounded per client, so feedback on made-up cards
        # cannot hold the workers (a real card issued elsewhere a moment ago is rare: a few a minute at most)
        self._looks_again = RefusalLimiter(looks_again_per_minute)

    def record(
        self,
        *,
        hook_instance: str | None,
        service_id: str,
        client: str | None,
        status: int,
        latency_ms: float,
        response: dict | None,
        body: bytes | None = None,
    ) -> None:
        """Hand the row to the writer; it is committed with the rows of other calls within milliseconds.

        ``body`` is ``response`` as the client received it (JSON bytes), when the caller has it: the row stores
        those bytes rather than serialising the answer a second time."""
        cards = (response or {}).get("cards", []) if status == 200 else []
        row = {
            "hook_instance": printable(hook_instance),
            "service_id": printable(service_id),
            "client": printable(client),
            "received_at": datetime.now(UTC),
            "status": status,
            "latency_ms": latency_ms,
            "outcome": orjson.dumps(outcome_summary(response)).decode() if status == 200 else None,
            "card_uuids": orjson.dumps([c.get("uuid") for c in cards]).decode(),
            "response": (body or orjson.dumps(response)) if response is not None else None,  # UTF-8 JSON bytes
        }
        uuids = [printable(c.get("uuid")[:64]) for c in cards if isinstance(c.get("uuid"), str)]
        self._writer.put(row, uuids)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed over so far is committed (True), or ``timeout`` passed (False)."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def purge(self) -> int:
        self.flush()
        cutoff = datetime.now(UTC) - self._retention
        try:
            with self._engine.begin() as conn:
                old = select(audit_table.c.id).where(audit_table.c.received_at < cutoff)
                conn.execute(delete(audit_cards_table).where(audit_cards_table.c.audit_id.in_(old)))
                return conn.execute(delete(audit_table).where(audit_table.c.received_at < cutoff)).rowcount
        except SQLAlchemyError:
            return 0

    def unknown_cards(self, card_uuids: list[str], service_id: str, client: str | None = None) -> list[str]:
        """The uuids among ``card_uuids`` that ``service_id`` never issued (to ``client``, when the caller is
        authenticated: one EHR cannot file feedback on another's cards), in the order given."""
        deadline = time.monotonic() + FEEDBACK_WAIT  # one budget for both waits, below the proxy's read timeout
        if not self.flush(FEEDBACK_WAIT):  # a card answered a moment ago by this process is in the table first
            raise ServiceUnavailable(_BEHIND)
        # the stored form (64 characters, no NUL: PostgreSQL refuses one as a parameter) -> the uuid as given
        given = {printable(u[:64]): u for u in reversed(card_uuids)}
        wanted = list(dict.fromkeys(printable(u[:64]) for u in card_uuids))
        query = (
            select(audit_cards_table.c.card_uuid)
            .join(audit_table, audit_table.c.id == audit_cards_table.c.audit_id)
            .where(audit_cards_table.c.card_uuid.in_(wanted), audit_table.c.service_id == service_id)
        )
        if client is not None:
            query = query.where(audit_table.c.client == client)
        with self._engine.connect() as conn:
            known = set(conn.scalars(query))
        missing = [u for u in wanted if u not in known]
        if missing and PEERS is not None and (others := PEERS.elsewhere(os.getpid())):
            # another worker may hold the row of a card it answered a moment ago: wait for what it had, then look
            while not PEERS.caught_up(others):
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(_BEHIND)
                time.sleep(0.01)
            with self._engine.connect() as conn:
                known |= set(conn.scalars(query))
        if (
            len(known) < len(wanted)
            and self._writer.linger
            and not self._writer.direct
            and self._looks_again.allow(client or "(no client)")
        ):
            # another instance (its own database writer) may have answered the card a moment ago, its row still in
            # the writer's linger: look once more after it, before telling the EHR "never issued" (a final 404)
            time.sleep(self._writer.linger * 5)
            with self._engine.connect() as conn:
                known |= set(conn.scalars(query))
        return [given[u] for u in wanted if u not in known]

    def for_hook_instance(self, hook_instance: str) -> list[dict]:
        self.flush()
        with self._engine.connect() as conn:
            rows = conn.execute(select(audit_table).where(audit_table.c.hook_instance == hook_instance))
            return [dict(r._mapping) for r in rows]

    def for_card(self, card_uuid: str) -> list[dict]:
        self.flush()
        query = select(audit_table).join(audit_cards_table, audit_cards_table.c.audit_id == audit_table.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.where(audit_cards_table.c.card_uuid == printable(card_uuid)))
            return [dict(r._mapping) for r in rows]


class Peers:
    """Each worker's audit progress (rows handed over, rows handled), in memory every worker of one gunicorn master
    shares: made in the master before it forks (``cds.gunicorn_conf.on_starting``).

    A card answered by one worker waits in that worker's queue until its row commits; feedback on it that reaches
    another worker must not be told "never issued" (a 404 the EHR does not retry: the feedback was lost). A slot
    is (pid, queued, handled) as int64s; each process writes only its own slot, the master clears a slot when its
    worker exits (``child_exit``), so a worker killed with rows pending does not hold feedback back for ever."""

    SLOTS = 64
    _FIELD = struct.Struct("q")

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * 3 * 8)  # anonymous and shared: inherited through fork
        self._claim = multiprocessing.get_context("fork").Lock()  # no resource tracker in the master

    def _get(self, slot: int, field: int) -> int:
        return self._FIELD.unpack_from(self._memory, (slot * 3 + field) * 8)[0]

    def _set(self, slot: int, field: int, value: int) -> None:
        self._FIELD.pack_into(self._memory, (slot * 3 + field) * 8, value)

    def claim(self, pid: int) -> int | None:
        """A free slot for ``pid`` (None when all are taken, or the lock is held by a worker killed while claiming:
        that worker's rows are then not waited for, and this worker still starts)."""
        if not self._claim.acquire(timeout=1.0):
            return None
        try:
            for slot in range(self.SLOTS):
                if self._get(slot, 0) in (0, pid):
                    self._set(slot, 1, 0)
                    self._set(slot, 2, 0)
                    self._set(slot, 0, pid)  # last: a reader never pairs this pid with another worker's counts
                    return slot
            return None
        finally:
            self._claim.release()

    def progress(self, slot: int, queued: int | None = None, handled: int | None = None) -> None:
        if queued is not None:
            self._set(slot, 1, queued)
        if handled is not None:
            self._set(slot, 2, handled)

    def gone(self, pid: int) -> None:
        """Free ``pid``'s slot. No lock: only the master clears slots, with one 8-byte store, and it may run inside
        a signal handler (gunicorn 23 reaps there) where waiting on a lock could hang the master."""
        for slot in range(self.SLOTS):
            if self._get(slot, 0) == pid:
                self._set(slot, 0, 0)

    def elsewhere(self, pid: int) -> dict[int, tuple[int, int]]:
        """slot -> (pid, rows handed over so far) of the other workers that have rows not yet handled."""
        found = {}
        for slot in range(self.SLOTS):
            owner = self._get(slot, 0)
            if owner not in (0, pid) and self._get(slot, 2) < (queued := self._get(slot, 1)):
                found[slot] = (owner, queued)
        return found

    def caught_up(self, targets: dict[int, tuple[int, int]]) -> bool:
        """Whether each of those workers has handled the rows it had then (or is gone)."""
        return all(self._get(s, 0) != pid or self._get(s, 2) >= queued for s, (pid, queued) in targets.items())


PEERS: Peers | None = None  # set in the gunicorn master (share_between_workers); None in one process


def share_between_workers() -> None:
    global PEERS
    PEERS = Peers()


def worker_gone(pid: int) -> None:
    if PEERS is not None:
        PEERS.gone(pid)


class _GroupWriter:
    """One thread per process that commits queued audit rows in batches.

    Started on the first row (and again in a forked worker, whose parent's thread does not exist there), it
    ends after ``idle`` seconds without rows, so an app that is built and dropped (tests, the gunicorn master's
    configuration check) leaves no thread behind. An in-memory SQLite database is per connection, so its rows
    are written in the caller's thread.
    """

    def __init__(
        self,
        engine: Engine,
        queue_size: int,
        batch_size: int,
        idle: float = 30.0,
        queue_bytes: int = 64 << 20,
        linger: float = 0.0,
    ):
        self._engine = engine
        self._batch_size = batch_size
        self._idle = idle
        self.linger = linger
        # set when rows should not wait out the linger: a flush (feedback, shutdown) or a batch's worth queued
        self._hurry = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        # the queue is bounded in bytes too: 2,000 rows of 33 MB answers (a huge draft order echoed back) held
        # 1.3 GB while the database was stalled. A row over the budget waits until the rows ahead are written;
        # one larger than the whole budget waits for an empty queue (it is never refused: its call was answered)
        self._max_bytes = queue_bytes
        self._bytes = 0
        self._room = threading.Condition()
        self._lock = threading.Lock()
        # rows handed over and rows handled (committed or counted lost), in queue order: a flush waits for the rows
        # handed over before it, not for every row that keeps arriving meanwhile (under steady load that was 10 s)
        self._queued = 0
        self._handled = 0
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._slot = PEERS.claim(self._pid) if PEERS is not None else None  # a worker's app, built after the fork
        url = engine.url
        self.direct = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        self._statements = _Inserts(engine)
        atexit.register(self.close)

    def put(self, row: dict, uuids: list[str]) -> None:
        if self.direct:
            self._write([(row, uuids)])
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's queue and thread are not ours
                self._queue, self._thread, self._pid = queue.Queue(maxsize=self._queue.maxsize), None, os.getpid()
                self._queued = self._handled = self._bytes = 0
                self._progress, self._room = threading.Condition(), threading.Condition()
                self._hurry = threading.Event()
                self._slot = PEERS.claim(self._pid) if PEERS is not None else None
        size = _size(row)
        with self._room:  # calls wait here, as on a full queue, while the rows ahead are too large to add this one
            while self._bytes and self._bytes + size > self._max_bytes:
                self._room.wait()
            self._bytes += size
        with self._lock:  # a thread that is ending on idle checks the queue under the same lock
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            self._queue.put((row, uuids))  # blocks when full: the call waits rather than a row being lost
            self._queued += 1
            if self._queued - self._handled >= self._batch_size:
                self._hurry.set()
            if self._slot is not None:
                PEERS.progress(self._slot, queued=self._queued)
        metrics.child(metrics.AUDIT_QUEUE_ROWS, "audit").set(self._queue.qsize())

    def flush(self, timeout: float) -> bool:
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        target = self._queued  # read without the lock: a call blocked on a full queue holds it (a database outage)
        if self._handled < target:
            self._hurry.set()
        with self._progress:
            while self._handled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(left)
        return True

    def close(self) -> None:
        """Commit what is queued (at exit: a graceful shutdown loses no row)."""
        self.flush(30.0)

    def _run(self) -> None:
        connection = None  # the writer's own DBAPI connection, outside the pool (see _Inserts)
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self._idle)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                if self.linger and self._queued - self._handled < self._batch_size:
                    self._hurry.wait(self.linger)
                self._hurry.clear()
                batch = [first]
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    connection = self._write(batch, connection)
                except Exception:  # the writer must outlive any row, or every later call would wait on it
                    connection = _close(connection)
                    metrics.AUDIT_ROWS_LOST.labels("error").inc(len(batch))
                    log.exception("audit: %d rows could not be written", len(batch))
                finally:
                    for _ in batch:
                        self._queue.task_done()
                    with self._room:
                        self._bytes = max(0, self._bytes - sum(_size(row) for row, _ in batch))
                        self._room.notify_all()
                    with self._progress:
                        self._handled += len(batch)
                        self._progress.notify_all()
                    if self._slot is not None:
                        PEERS.progress(self._slot, handled=self._handled)
                # the rows written are not kept while the writer waits for the next (up to ``idle``): their bytes
                # left the queue's budget, so a batch of answers kept here was held on top of a full queue
                first = batch = None
                metrics.child(metrics.AUDIT_QUEUE_ROWS, "audit").set(self._queue.qsize())
        finally:
            _close(connection)

    def _write(self, batch: list[tuple[dict, list[str]]], connection=None):
        """Commit ``batch``; returns the connection to use next (None: in the caller's thread).

        A database that cannot be reached (a connection that cannot be made or was lost: a restart, a failover) is
        retried with growing pauses for :data:`OUTAGE_RETRY_SECONDS` of wall-clock time: rows wait in the queue
        (and, once it is full, calls wait) rather than being lost; three quick attempts gave a 5 s PostgreSQL
        restart 15 lost rows of calls already answered. Any other refusal gets three attempts, then each row alone,
        so one bad row does not take the others with it."""
        dedicated = not self.direct
        attempt, give_up, unreachable = 0, None, False
        while True:
            connecting = connection is None
            try:
                connection = connection or self._statements.connect(dedicated)
                connecting = False
                self._statements.commit(connection, batch)
                metrics.child(metrics.AUDIT_BATCH_ROWS, "audit").observe(len(batch))
                if not dedicated:
                    connection = _close(connection)
                return connection
            except (SQLAlchemyError, self._statements.errors) as exc:
                unreachable = dedicated and (connecting or self._statements.lost(exc, connection))
                connection = _close(connection)
                attempt += 1
                log.warning("audit batch of %d rows not written (attempt %d): %s", len(batch), attempt,
                            exc.__class__.__name__)  # fmt: skip
                if unreachable and give_up is None:
                    give_up = time.monotonic() + OUTAGE_RETRY_SECONDS
                if attempt >= 3 and not (unreachable and time.monotonic() < give_up):
                    break
                time.sleep(min(2.0, 0.05 * 2 ** (attempt - 1)) if unreachable else 0.05 * attempt)
        if len(batch) > 1 and not unreachable:
            for single in batch:
                connection = self._write([single], connection)
            return connection
        metrics.AUDIT_ROWS_LOST.labels("database").inc(len(batch))
        log.error("audit: %d rows could not be written after %d attempts", len(batch), attempt)
        return None


def _size(row: dict) -> int:
    """What a queued row holds in memory, near enough: its answer's bytes dominate."""
    response = row.get("response")
    return 512 + (len(response) if isinstance(response, (bytes, str)) else 0)


OUTAGE_RETRY_SECONDS = 15.0  # below gunicorn's graceful timeout (20 s), so a stopping worker still commits its rows


def printable(value: str | None) -> str | None:
    """A caller's string as a text column takes it: PostgreSQL refuses NUL, which JSON can carry (\\u0000)."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def _close(connection) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
            connection.close()


def _text_from_utf8(dialect: str):
    """The answer's UTF-8 JSON bytes stored as text by the database itself: turned into a Python str and back to
    UTF-8 for the driver, a 38 KiB answer cost a third of the audit row's CPU (callgrind)."""
    raw = bindparam("response", type_=LargeBinary)
    if dialect == "sqlite":
        return cast(raw, Text)  # SQLite's text is UTF-8: the bytes are taken as they are
    if dialect == "postgresql":
        return func.convert_from(raw, literal_column("'UTF8'"))  # checked as UTF-8 by the server
    return None  # another database: the text is decoded here (see _Inserts._params)


class _Inserts:
    """The two INSERTs of a batch, compiled once for the engine's dialect and run on a DBAPI connection.

    Why not SQLAlchemy Core per batch: building and compiling the statements, and checking a connection out of
    the pool, cost more CPU than SQLite's own write (0.9 ms against 0.5 ms for a typical row, measured), and the
    writer shares the worker's cores with the calls. Values go through the columns' own bind processors, so a row
    reads back exactly as one written by Core. The writer thread keeps its own connection, detached from the pool;
    on SQLite it commits with ``synchronous=NORMAL`` (WAL: a committed row survives a crash of the process, not
    necessarily of the machine) — audit rows already wait in memory for milliseconds before their commit (see the
    module docstring) — while feedback, written on the pool's connections with FULL, keeps its guarantee.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        dialect = engine.dialect
        self.errors = dialect.loaded_dbapi.Error
        self._sqlite = dialect.name == "sqlite"
        columns = [c.name for c in audit_table.columns if c.name != "id"]
        stored = _text_from_utf8(dialect.name)
        self._decode = stored is None
        insert = audit_table.insert() if stored is None else audit_table.insert().values(response=stored)
        insert = insert.returning(audit_table.c.id).compile(dialect=dialect, column_keys=columns)
        self._audit_sql, self._audit_order = str(insert), insert.positiontup
        cards = audit_cards_table.insert().compile(dialect=dialect, column_keys=["audit_id", "card_uuid"])
        self._cards_sql, self._cards_order = str(cards), cards.positiontup
        self._bind = {  # the dialect's own processors (SQLite's DateTime writes its naive text form, as Core does)
            c.name: processor
            for c in audit_table.columns
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def lost(self, exc: Exception, connection) -> bool:
        """Whether ``exc`` says the database went away (the dialect's own judgement), not that it refused the rows."""
        if isinstance(exc, DisconnectionError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return True
        raw = exc.orig if isinstance(exc, DBAPIError) else exc
        return isinstance(raw, self.errors) and self._engine.dialect.is_disconnect(raw, connection, None)

    def connect(self, dedicated: bool):
        """A DBAPI connection: the writer's own (out of the pool, so its settings never reach feedback), or a
        pooled one for a single write (in-memory SQLite, which exists only on the caller's connection)."""
        connection = self._engine.raw_connection()
        if dedicated:
            connection.detach()
            if self._sqlite:
                connection.cursor().execute("PRAGMA synchronous=NORMAL")
        return connection

    def _params(self, row: dict, order: list[str] | None) -> dict | tuple:
        """A row's values as the driver takes them: positional in the statement's order (SQLite), else by name."""
        if order:
            return tuple(self._value(key, row[key]) for key in order)
        return {key: self._value(key, value) for key, value in row.items()}

    def _value(self, key: str, value):
        processor = self._bind.get(key)
        if processor is not None:
            value = processor(value)
        if self._decode and key == "response" and isinstance(value, bytes):
            value = value.decode()
        return value

    def commit(self, connection, batch: list[tuple[dict, list[str]]]) -> None:
        cursor = connection.cursor()
        try:
            cards = []
            for row, uuids in batch:
                cursor.execute(self._audit_sql, self._params(row, self._audit_order))
                audit_id = cursor.fetchone()[0]
                cards += [self._params({"audit_id": audit_id, "card_uuid": u}, self._cards_order) for u in uuids]
            if cards:
                cursor.executemany(self._cards_sql, cards)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()


class RefusalLimiter:
    """How many times one source may do a costly thing per minute, per process: have a refused (401) call audited
    (past it the call is counted, not stored), or have feedback on a card not found look a second time.

    An unauthenticated caller must not be able to fill the audit table (rows are kept a year) or make every 401
    cost a database write. Per process: with N workers a source gets at most N x ``per_minute`` rows a minute.
    """

    def __init__(self, per_minute: int = 30, max_sources: int = 10_000):
        self._per_minute = per_minute
        self._max_sources = max_sources
        self._minute = -1
        self._window: dict[str, int] = {}  # source -> rows written this minute
        self._lock = threading.Lock()

    def allow(self, source: str) -> bool:
        """O(1) a call. The window holds this minute's sources only, at most ``max_sources`` of them: a flood from
        more addresses in one minute (an IPv6 /64 has 2**64) is counted, not stored, past that. Pruning the dict
        only of older minutes once it held 10,000 sources rebuilt it on every 401 of that minute (2.4 ms a call
        at 20,000 sources, under the lock) and let it grow with the flood."""
        minute = int(time.monotonic() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._window = minute, {}
            count = self._window.get(source)
            if count is None:
                if len(self._window) >= self._max_sources:
                    return False
                count = 0
            if count >= self._per_minute:
                return False
            self._window[source] = count + 1
            return True


def outcome_summary(response: dict | None) -> dict:
    """Per order id: the coverage-information codes (no free text). Orders sent without an id are keyed as the
    answer names them, "(no id #n)" in the order answered."""
    summary = {}
    actions = (response or {}).get("systemActions", ())
    for action, order_id in zip(actions, updated_order_ids(actions), strict=True):
        resource = action.get("resource") or {}
        for ext in resource.get("extension") or ():
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith("ext-coverage-information"):
                values = {s["url"]: s.get("valueCode") for s in ext.get("extension", ()) if "valueCode" in s}
                summary[order_id] = values
    return summary
