"""The audit trail CRD found-37 asks for: every hook call and its response, to settle disputes and claims.

Rows hold PHI (the response names the patient's findings), so the database is access-restricted and rows older
than the configured retention are purged. Card uuids are stored apart so feedback can be joined to its call.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, String, Table, Text, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds.db import metadata

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


class AuditLog:
    def __init__(self, engine: Engine, retention_days: int):
        self._engine = engine
        self._retention = timedelta(days=retention_days)

    def record(
        self,
        *,
        hook_instance: str | None,
        service_id: str,
        client: str | None,
        status: int,
        latency_ms: float,
        response: dict | None,
    ) -> None:
        cards = (response or {}).get("cards", []) if status == 200 else []
        row = {
            "hook_instance": hook_instance,
            "service_id": service_id,
            "client": client,
            "received_at": datetime.now(UTC),
            "status": status,
            "latency_ms": latency_ms,
            "outcome": orjson.dumps(outcome_summary(response)).decode() if status == 200 else None,
            "card_uuids": orjson.dumps([c.get("uuid") for c in cards]).decode(),
            "response": orjson.dumps(response).decode() if response is not None else None,
        }
        with self._engine.begin() as conn:
            audit_id = conn.execute(audit_table.insert().returning(audit_table.c.id), row).scalar_one()
            uuids = [c.get("uuid") for c in cards if isinstance(c.get("uuid"), str)]
            if uuids:
                conn.execute(audit_cards_table.insert(), [{"audit_id": audit_id, "card_uuid": u[:64]} for u in uuids])

    def purge(self) -> int:
        cutoff = datetime.now(UTC) - self._retention
        try:
            with self._engine.begin() as conn:
                old = select(audit_table.c.id).where(audit_table.c.received_at < cutoff)
                conn.execute(delete(audit_cards_table).where(audit_cards_table.c.audit_id.in_(old)))
                return conn.execute(delete(audit_table).where(audit_table.c.received_at < cutoff)).rowcount
        except SQLAlchemyError:
            return 0

    def unknown_cards(self, card_uuids: list[str]) -> list[str]:
        """The uuids among ``card_uuids`` that no audited response ever carried, in the order given."""
        wanted = list(dict.fromkeys(u[:64] for u in card_uuids))
        with self._engine.connect() as conn:
            known = set(
                conn.scalars(select(audit_cards_table.c.card_uuid).where(audit_cards_table.c.card_uuid.in_(wanted)))
            )
        return [u for u in wanted if u not in known]

    def for_hook_instance(self, hook_instance: str) -> list[dict]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(audit_table).where(audit_table.c.hook_instance == hook_instance))
            return [dict(r._mapping) for r in rows]

    def for_card(self, card_uuid: str) -> list[dict]:
        query = select(audit_table).join(audit_cards_table, audit_cards_table.c.audit_id == audit_table.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.where(audit_cards_table.c.card_uuid == card_uuid))
            return [dict(r._mapping) for r in rows]


class RefusalLimiter:
    """How many refused (401) calls one source may have audited per minute; past it they are counted, not stored.

    An unauthenticated caller must not be able to fill the audit table (rows are kept a year) or make every 401
    cost a database write. Per process: with N workers a source gets at most N x ``per_minute`` rows a minute.
    """

    def __init__(self, per_minute: int = 30):
        self._per_minute = per_minute
        self._window: dict[str, tuple[int, int]] = {}  # source -> (minute, rows written)
        self._lock = threading.Lock()

    def allow(self, source: str) -> bool:
        minute = int(time.monotonic() // 60)
        with self._lock:
            if len(self._window) > 10_000:  # many sources: forget the old minutes
                self._window = {k: v for k, v in self._window.items() if v[0] == minute}
            seen_minute, count = self._window.get(source, (minute, 0))
            if seen_minute != minute:
                count = 0
            if count >= self._per_minute:
                return False
            self._window[source] = (minute, count + 1)
            return True


def outcome_summary(response: dict | None) -> dict:
    """Per order id: the coverage-information codes (no free text)."""
    summary = {}
    for action in (response or {}).get("systemActions", ()):
        resource = action.get("resource") or {}
        for ext in resource.get("extension") or ():
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith("ext-coverage-information"):
                values = {s["url"]: s.get("valueCode") for s in ext.get("extension", ()) if "valueCode" in s}
                summary[str(resource.get("id"))] = values
    return summary
