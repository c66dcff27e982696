"""The JWT replay store in the service's database: shared by every gunicorn worker and every instance.

A token's ``iss|jti`` is inserted once; a second insert of the same key fails on the primary key, atomically,
whichever process tries. Expired keys are deleted now and then. (Redis, when ``CDS_REDIS_URL`` is set, does the same
job with SET NX; an in-process store would let each worker accept the same token once.)
"""

from __future__ import annotations

import random
import time

from sqlalchemy import Column, Float, String, Table, delete, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds.db import metadata
from cds.errors import ServiceUnavailable

replay_table = Table(
    "jwt_replay",
    metadata,
    Column("token_key", String(512), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)
PURGE_CHANCE = 0.01  # one call in a hundred clears expired keys


class DatabaseReplayStore:
    def __init__(self, engine: Engine):
        self._engine = engine

    def first_use(self, key: str, expires_at: float) -> bool:
        try:
            with self._engine.begin() as connection:
                if random.random() < PURGE_CHANCE:  # noqa: S311 - housekeeping, not security
                    connection.execute(delete(replay_table).where(replay_table.c.expires_at < time.time()))
                connection.execute(insert(replay_table).values(token_key=key[:512], expires_at=expires_at))
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError:
            raise ServiceUnavailable("the replay store is unreachable; the token cannot be checked") from None
