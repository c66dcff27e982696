"""Alembic environment: runs on the connection ``cds.db.upgrade`` hands it (or on ``sqlalchemy.url``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from cds import audit, feedback  # noqa: F401  (their tables join the metadata)
from cds.db import metadata

config = context.config


def run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several instances may start at once: one migrates, the others wait and then find nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(64580)"))
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
