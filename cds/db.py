"""The SQLAlchemy engine and the tables' metadata: SQLite by default, any SQLAlchemy URL by configuration.

SQLite runs in WAL mode with ``synchronous=FULL``, so a committed row survives a crash or power loss and
several gunicorn workers can write (``busy_timeout`` makes them wait for each other instead of failing).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

metadata = MetaData()


def engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init(engine: Engine) -> None:
    """Create missing tables (schema migrations arrive with the PostgreSQL work)."""
    from cds import feedback  # noqa: F401  (registers its table on the metadata)

    try:
        metadata.create_all(engine)
    except OperationalError:
        # Several workers starting at once race to create the same table; the loser looks again.
        metadata.create_all(engine)


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
