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
    # Base URLs we may send the EHR's token to; "*" allows any (demo only: see docs/security.md).
    "FHIR_ALLOWED_SERVERS": ["*"],
    # Overall budget for FHIR fetches in one hook call (CRD asks for 5 s at p90); past it the answer is partial.
    "HOOK_DEADLINE": 3.0,
    "LOG_LEVEL": "INFO",
    # Folder of payer policy files; the package's own by default.
    "POLICY_DIR": None,
    # Trusted EHR clients (JSON or TOML, see docs/security.md); when set, every call must carry a valid JWT.
    "TRUSTED_CLIENTS": None,
    # The service's public base URL, for the JWT audience when behind a proxy (default: as the request arrived).
    "PUBLIC_BASE_URL": None,
    "DTR_APP_URL": None,
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
    # Proxies in front of the service that set X-Forwarded-For (deploy/nginx.conf: 1). The per-source limits then
    # count the address the nearest proxy saw; with 0 the header is ignored (a caller can write any address there).
    "PROXY_HOPS": 0,
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
    public_base_url: str | None = None  # where this service is reached: the base of our questionnaires' canonicals
    dtr_app_url: str | None = None  # the EHR's DTR SMART app: the documentation card links it with appContext
    # the built-in questionnaire form (the viewer's /viewer/dtr), linked for EHRs with no DTR app; set by create_app
    dtr_form_url: str | None = None

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
    if type_name in ("str", "str | None") and not isinstance(value, str):
        raise ConfigError(f"CDS_{key} must be a string")
    return value


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_WHOLE_NUMBERS = ("MAX_CONTENT_LENGTH", "AUDIT_REFUSALS_PER_MINUTE", "AUDIT_RETENTION_DAYS")
_SWITCHES = ("VIEWER", "LOG_JSON")
_OTHER_KNOWN = ("ENV", "DEBUG", "SECRET_KEY", "TESTING")  # Flask's own


def check(config: dict[str, Any], environ: dict[str, str]) -> list[str]:
    """Refuse a wrong value with one line naming its ``CDS_*`` variable; return warnings (unknown names).

    Checked before anything uses them: before, a bad log level or database dialect ended in a traceback.
    """
    level = config.get("LOG_LEVEL")
    if not isinstance(level, str) or level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"CDS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    config["LOG_LEVEL"] = level.upper()
    for key in _WHOLE_NUMBERS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"CDS_{key} must be a positive whole number")
    hops = config.get("PROXY_HOPS")
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
        raise ConfigError(
            "CDS_PROXY_HOPS must be a whole number from 0 to 5 (the proxies in front that set X-Forwarded-For)"
        )
    leeway = config.get("JWT_LEEWAY")
    if isinstance(leeway, bool) or not isinstance(leeway, (int, float)) or not 0 <= leeway <= 300:
        raise ConfigError("CDS_JWT_LEEWAY must be a number of seconds from 0 to 300")
    for key in _SWITCHES:
        if not isinstance(config.get(key), bool):
            raise ConfigError(f"CDS_{key} must be true or false")
    origins = config.get("CORS_ORIGINS")
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("CDS_CORS_ORIGINS must be a JSON list of origins, e.g. '[\"https://ehr.example.org\"]'")
    if config.get("DATABASE_URL"):
        _check_database_url(config["DATABASE_URL"])
    for key, kind in (("TRUSTED_CLIENTS", "file"), ("POLICY_DIR", "folder")):
        value = config.get(key)
        if value is None:
            continue
        path = Path(str(value))
        if not (path.is_file() if kind == "file" else path.is_dir()):
            raise ConfigError(f"CDS_{key}={str(value)[:200]} is not a {kind} this process can read")
    known = set(DEFAULTS) | set(_OTHER_KNOWN)
    unknown = sorted(name for name in environ if name.startswith("CDS_") and name[4:] not in known)
    return [_unknown(name, known) for name in unknown]


def _check_database_url(url: Any) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if not isinstance(url, str):
        raise ConfigError("CDS_DATABASE_URL must be a string")
    try:
        make_url(url).get_dialect()
    except (NoSuchModuleError, ImportError):  # NoSuchModuleError is an ArgumentError: first
        scheme = url.split(":", 1)[0][:40]
        raise ConfigError(
            f"CDS_DATABASE_URL names the database kind '{scheme}', which is not installed or not known; "
            "for PostgreSQL write postgresql+psycopg://user:password@host/db, for SQLite sqlite:///path"
        ) from None
    except (ArgumentError, ValueError):
        raise ConfigError("CDS_DATABASE_URL is not a database URL (e.g. postgresql+psycopg://user@host/db)") from None


def _unknown(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name[4:], sorted(known), n=1)
    hint = f" (did you mean CDS_{close[0]}?)" if close else ""
    return f"{name[:64]} is not a setting this service knows and is ignored{hint}"
