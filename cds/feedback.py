"""CDS Hooks feedback: what clinicians did with our cards, stored durably (a 200 means committed).

Each item gets a key derived from its content, so a client that retries a post (or a load balancer that
replays it) never stores it twice, while genuinely repeated feedback for one card (a new timestamp) is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Column, DateTime, Integer, String, Table, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds import schemas
from cds.audit import printable
from cds.db import metadata
from cds.errors import SchemaViolation, ServiceUnavailable

feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feedback_key", String(64), nullable=False, unique=True),
    Column("service_id", String(128), nullable=False),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", Text),
    Column("override_reason_system", String(512)),
    Column("override_reason_code", String(128)),
    Column("override_reason_display", String(512)),
    Column("user_comment", Text),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("client", String(512)),
)


@dataclass(frozen=True)
class Feedback:
    service_id: str
    card_uuid: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_reason_system: str | None = None
    override_reason_code: str | None = None
    override_reason_display: str | None = None
    user_comment: str | None = None
    client: str | None = None  # the verified client that posted it (None with JWT checks off)

    @property
    def key(self) -> str:
        """One card's outcome at one time is one piece of feedback: a retry, whatever else it says, is a duplicate."""
        parts = [self.service_id, self.card_uuid, self.outcome, self.outcome_timestamp.isoformat()]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def parse(service_id: str, body: object, client: str | None = None) -> list[Feedback]:
    """Validate a feedback body (``schemas/feedback.schema.json``) into :class:`Feedback` values."""
    schemas.validate("feedback", body)
    items = []
    for i, raw in enumerate(body["feedback"]):
        reason = raw.get("overrideReason") or {}
        coding = reason.get("reason") or {k: reason[k] for k in ("system", "code") if k in reason}
        items.append(
            Feedback(
                service_id=service_id,
                card_uuid=raw["card"],
                outcome=raw["outcome"],
                outcome_timestamp=_timestamp(raw["outcomeTimestamp"], i),
                accepted_suggestions=tuple(s["id"] for s in raw.get("acceptedSuggestions", ())),
                override_reason_system=coding.get("system"),
                override_reason_code=coding.get("code"),
                override_reason_display=coding.get("display"),
                user_comment=reason.get("userComment"),
                client=client,
            )
        )
    return items


def _timestamp(text: str, index: int) -> datetime:
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):  # year 9999 at -14:00 is past what a datetime can hold in UTC
        where = f"feedback[{index}].outcomeTimestamp"
        raise SchemaViolation([(where, f"{where} is not a real date and time")]) from None


class FeedbackStore:
    def __init__(self, engine: Engine):
        self._engine = engine

    def save(self, items: list[Feedback]) -> int:
        """Store every item in one transaction; returns how many were new (retries are not duplicated)."""
        now = datetime.now(UTC)
        rows = {item.key: _row(item, now) for item in items}
        for _attempt in range(3):
            try:
                with self._engine.begin() as conn:
                    known = set(
                        conn.scalars(
                            select(feedback_table.c.feedback_key).where(feedback_table.c.feedback_key.in_(rows))
                        )
                    )
                    fresh = [row for key, row in rows.items() if key not in known]
                    if fresh:
                        conn.execute(feedback_table.insert(), fresh)
                return len(fresh)
            except IntegrityError:
                continue  # a concurrent retry of the same post won the race; look again
            except SQLAlchemyError as exc:
                raise ServiceUnavailable("feedback could not be stored; nothing was saved, please retry") from exc
        raise ServiceUnavailable("feedback could not be stored; nothing was saved, please retry")

    def for_card(self, card_uuid: str) -> list[dict]:
        with self._engine.connect() as conn:
            result = conn.execute(
                select(feedback_table).where(feedback_table.c.card_uuid == card_uuid).order_by(feedback_table.c.id)
            )
            return [dict(row._mapping) for row in result]


def _row(item: Feedback, now: datetime) -> dict:
    return {
        "feedback_key": item.key,
        "service_id": item.service_id,
        "card_uuid": printable(item.card_uuid),
        "outcome": item.outcome,
        "accepted_suggestions": orjson.dumps(list(item.accepted_suggestions)).decode()
        if item.accepted_suggestions
        else None,
        # a NUL (valid JSON, "\u0000") is refused by PostgreSQL: every retry of the post would fail (a lost record)
        "override_reason_system": printable(item.override_reason_system),
        "override_reason_code": printable(item.override_reason_code),
        "override_reason_display": printable(item.override_reason_display),
        "user_comment": printable(item.user_comment),
        "outcome_timestamp": item.outcome_timestamp,
        "received_at": now,
        "client": item.client[:512] if item.client else None,
    }
