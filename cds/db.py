"""The SQLAlchemy engine and the tables' metadata: SQLite by default, any SQLAlchemy URL by configuration.

SQLite runs in WAL mode with ``synchronous=FULL``, so a committed row survives a crash or power loss and
several gunicorn workers can write (``busy_timeout`` makes them wait for each other instead of failing).
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

metadata = MetaData()


def engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # a host that drops packets would hold each connect for minutes (the audit writer retries through outages)
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


CONNECT_TIMEOUT = 5  # seconds, PostgreSQL


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (``cds db upgrade``; also run at start-up)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_lock(engine):
        for attempt in range(3):
            try:
                with engine.begin() as connection:
                    config.attributes["connection"] = connection
                    tables = inspect(connection).get_table_names()
                    if "feedback" in tables and "alembic_version" not in tables:
                        command.stamp(config, "0001")  # a database made before migrations existed
                    command.upgrade(config, revision)
                return
            except SQLAlchemyError:
                if attempt == 2:
                    raise


@contextlib.contextmanager
def _sqlite_lock(engine: Engine):
    """SQLite runs DDL outside transactions: workers starting at once take turns on a lock file next to it."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def init(engine: Engine) -> None:
    upgrade(engine)


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
