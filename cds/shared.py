"""State shared by every instance when ``CDS_REDIS_URL`` is set: the JWT ``jti`` replay store and the JWKS cache.

Without Redis the in-process stores in :mod:`cds.trust` serve a single instance. With it, a token replayed to
another instance behind the load balancer is refused, and a JWK Set fetched by one instance serves them all.
"""

from __future__ import annotations

import contextlib
import json
import time

import redis

from cds.errors import ServiceUnavailable
from cds.trust import JWKSCache, PyJWKSet


class RedisReplayStore:
    def __init__(self, client: redis.Redis, prefix: str = "cds64580:jti:"):
        self._redis = client
        self._prefix = prefix

    def first_use(self, key: str, expires_at: float) -> bool:
        ttl = max(1, int(expires_at - time.time()) + 1)
        try:
            # SET NX is atomic: of two instances seeing the same jti at once, exactly one wins.
            return bool(self._redis.set(self._prefix + key, "1", nx=True, ex=ttl))
        except redis.RedisError:
            raise ServiceUnavailable("the shared replay store is unreachable; the token cannot be checked") from None


class RedisJWKSCache(JWKSCache):
    """The JWKS cache with its sets (and the refresh rate limit) kept in Redis for all instances."""

    def __init__(self, client: redis.Redis, prefix: str = "cds64580:jwks:", **kwargs):
        super().__init__(**kwargs)
        self._redis = client
        self._prefix = prefix

    def _cached(self, url: str):
        try:
            raw = self._redis.get(self._prefix + url)
        except redis.RedisError:
            return super()._cached(url)  # Redis away: this instance's own cache
        if raw is None:
            return None
        data = json.loads(raw)
        return data["fetched"], PyJWKSet.from_dict(data["jwks"])

    def _store(self, url: str, fetched: float, jwks: dict) -> None:
        super()._store(url, fetched, jwks)
        with contextlib.suppress(redis.RedisError):  # unreachable Redis: the next instance fetches it itself
            self._redis.set(self._prefix + url, json.dumps({"fetched": fetched, "jwks": jwks}), ex=int(self._ttl))


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
