"""Structured logs: one JSON object per line, with the hook call's facts and never its secrets.

Only what an operator needs goes in: event, hookInstance, service, status, latency, payer policy ids, card topics,
client; every string is capped.
No tokens, JWTs, names, birth dates or identifiers: those are never passed to a logger in this package, and the
HTTP library's URL logging (FHIR search URLs carry patient ids) is held at WARNING.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime

import orjson


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        return orjson.dumps(cap(entry), default=str).decode()


MAX_LOGGED = 256  # characters of any one logged string; a 200 KB value never makes a 200 KB line


def cap(value: object, depth: int = 0) -> object:
    """Every string cut to MAX_LOGGED characters, every list to 50 items, nesting to 4 levels."""
    if isinstance(value, str):
        return value if len(value) <= MAX_LOGGED else value[:MAX_LOGGED] + "…"
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        return {cap(k, depth + 1): cap(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [cap(v, depth + 1) for v in list(value)[:50]]
    return value


def configure(level: str, json_lines: bool = True) -> None:
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_cds", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._cds = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(
        JSONFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, message, extra={"fields": {k: v for k, v in fields.items() if v is not None}})


def unexpected(logger: logging.Logger, exc: BaseException) -> None:
    """Log an unexpected exception by its type and code locations only: its message and source lines may quote
    request data (PHI)."""
    frames = " <- ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
        for f in reversed(traceback.extract_tb(exc.__traceback__))
    )
    logger.error("unexpected %s at %s", type(exc).__name__, frames)
