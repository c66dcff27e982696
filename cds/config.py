"""Defaults that serve a demo on a laptop with no setup, overridden by ``CDS_*`` environment variables.

Flask's ``from_prefixed_env("CDS")`` reads ``CDS_DATABASE_URL`` into ``DATABASE_URL`` and parses JSON values,
so ``CDS_HOOK_DEADLINE=2.5`` is a float and ``CDS_FHIR_ALLOWED_SERVERS='["https://ehr.example/fhir"]'`` a list.
The rest of the package reads the typed :class:`Settings`, never the Flask config.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'var' / 'cds.sqlite3'}"


DEFAULTS: dict[str, Any] = {
    # Storage (SQLAlchemy URL); SQLite under ./var/ unless CDS_DATABASE_URL says otherwise.
    "DATABASE_URL": None,
    # Largest request body accepted (a 5,000-resource prefetch is about 10 MiB).
    "MAX_CONTENT_LENGTH": 32 * MiB,
    # Most separators (commas) and objects one JSON body may hold, counted on the bytes before parsing: a body of
    # a million tiny items costs gigabytes once parsed (a real 20,000-resource prefetch is under both).
    "MAX_JSON_ITEMS": 1_000_000,
    # Refused (401) calls audited per source address and minute, per process; more are counted in a metric only.
    "AUDIT_REFUSALS_PER_MINUTE": 30,
    "MAX_JSON_OBJECTS": 400_000,
    # Calls to the EHR's FHIR server.
    "FHIR_CONNECT_TIMEOUT": 2.0,
    "FHIR_READ_TIMEOUT": 4.0,
    "FHIR_MAX_PAGES": 50,
    "FHIR_MAX_RESPONSE_BYTES": 16 * MiB,
    "FHIR_MAX_PARALLEL": 6,
    # Base URLs we may send the EHR's token to; "*" allows any (demo only: see README, Security).
    "FHIR_ALLOWED_SERVERS": ["*"],
    # Overall budget for FHIR fetches in one hook call (CRD asks for 5 s at p90); past it the answer is partial.
    "HOOK_DEADLINE": 3.0,
    "LOG_LEVEL": "INFO",
    # Folder of payer policy files; the package's own by default.
    "POLICY_DIR": None,
    # Trusted EHR clients (JSON or TOML, see README); when set, every call must carry a valid JWT.
    "TRUSTED_CLIENTS": None,
    # The service's public base URL, for the JWT audience when behind a proxy (default: as the request arrived).
    "PUBLIC_BASE_URL": None,
    "JWT_LEEWAY": 60,
    # Origins browsers may call us from (the CDS Hooks sandbox is a browser app); "*" allows any.
    "CORS_ORIGINS": ["*"],
    # Audit rows (every hook call and response, CRD found-37) older than this are purged.
    "AUDIT_RETENTION_DAYS": 365,
    # Request limits beyond the body size.
    "MAX_DRAFT_ORDERS": 50,
    "MAX_PREFETCH_ENTRIES": 20000,
    # Redis for state shared by several instances (JWT replay store, JWKS cache); in-process without it.
    "REDIS_URL": None,
    # A name for this instance, sent back as X-CDS-Instance (which instance behind the balancer answered).
    "INSTANCE_NAME": None,
    # The card viewer at /viewer (on for `make run`; leave off in production).
    "VIEWER": False,
    # JSON lines logs (set false for plain text when reading a terminal).
    "LOG_JSON": True,
}


@dataclass(frozen=True)
class Settings:
    """The typed configuration the domain code reads."""

    database_url: str
    fhir_connect_timeout: float = 2.0
    fhir_read_timeout: float = 4.0
    fhir_max_pages: int = 50
    fhir_max_response_bytes: int = 16 * MiB
    fhir_max_parallel: int = 6
    fhir_allowed_servers: tuple[str, ...] = ("*",)
    hook_deadline: float = 3.0
    policy_dir: str | None = None
    max_draft_orders: int = 50
    max_prefetch_entries: int = 20000
    max_json_items: int = 1_000_000
    max_json_objects: int = 400_000

    @classmethod
    def from_mapping(cls, config: dict[str, Any]) -> Settings:
        values = {}
        for f in fields(cls):
            key = f.name.upper()
            if key in config and config[key] is not None:
                values[f.name] = _coerce(key, config[key], f.type)
        if not values.get("database_url"):
            values["database_url"] = default_database_url()
        allowed = values.get("fhir_allowed_servers", ("*",))
        if isinstance(allowed, str):
            allowed = [s.strip() for s in allowed.split(",") if s.strip()]
        values["fhir_allowed_servers"] = tuple(allowed)
        return cls(**values)


class ConfigError(ValueError):
    """A configuration value has the wrong type; the message names the CDS_* variable."""


def _coerce(key: str, value: Any, type_name: str) -> Any:
    try:
        if type_name == "float":
            number = float(value)
            if number <= 0:
                raise ValueError
            return number
        if type_name == "int":
            if isinstance(value, bool) or int(value) <= 0:
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"CDS_{key} must be a positive {type_name}") from None
    if type_name == "str" and not isinstance(value, str):
        raise ConfigError(f"CDS_{key} must be a string")
    return value
