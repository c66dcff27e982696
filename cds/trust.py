"""Trusting CDS clients: verify the JWT every EHR call carries (CDS Hooks 2.0 #trusting-cds-clients).

Checks, in order: a Bearer token of sane size; an asymmetric ``alg`` (``none`` and HMAC are refused); ``typ`` JWT;
a ``kid``; a known ``iss``; the ``tenant`` when the client has one; the key, from the client's inline JWK Set or
a ``jku`` on the client's allow-list (cached, refreshed once when a ``kid`` is unknown, rate-limited); then the
signature, ``aud`` equal to the URL called, ``exp``/``iat`` with a small leeway and a lifetime of at most an hour;
last, a ``jti`` never seen before within its lifetime. Every failure is :class:`InvalidToken`: the client gets a
bare 401, the log gets the reason, and nobody gets the token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import jwt
import requests
import urllib3
from jwt import PyJWK, PyJWKSet

from cds import fhirclient
from cds.errors import CDSError

log = logging.getLogger(__name__)

ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
MAX_TOKEN_BYTES = 8192
MAX_LIFETIME = 3600  # seconds: "no more than an hour" (cds-hooks.org best practices)
JWKS_MAX_BYTES = 256 * 1024


class InvalidToken(CDSError):
    """401: the caller is not a trusted client. The response says only "invalid token"."""

    status = 401
    issue_code = "login"

    def __init__(self, reason: str):
        super().__init__("invalid token")
        self.reason = reason  # for the log only


class TrustConfigError(ValueError):
    """The trusted-clients file is unusable; the message names the file and the entry."""


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    jwks: PyJWKSet | None = field(default=None, repr=False)
    jku: tuple[str, ...] = ()
    tenant: str | None = None
    fhir_servers: tuple[str, ...] = ()


def load_clients(path: str | Path) -> dict[str, TrustedClient]:
    """Read ``CDS_TRUSTED_CLIENTS`` (JSON or TOML): ``clients = [{iss, jwks | jwks_file, jku, tenant, fhir_servers}]``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as exc:
        raise TrustConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise TrustConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})") from None
    entries = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TrustConfigError(f"{path}: needs a non-empty 'clients' list")
    clients: dict[str, TrustedClient] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: clients[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("iss"), str) or not entry["iss"]:
            raise TrustConfigError(f"{where}: needs an 'iss'")
        jwks = entry.get("jwks")
        if "jwks_file" in entry:
            try:
                jwks = json.loads((path.parent / entry["jwks_file"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TrustConfigError(f"{where}.jwks_file: cannot be read ({exc})") from None
        key_set = None
        if jwks is not None:
            try:
                key_set = PyJWKSet.from_dict(jwks)
            except (jwt.PyJWKSetError, jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError) as exc:
                raise TrustConfigError(f"{where}.jwks: not a usable JWK Set ({exc})") from None
            if any(k.key_type == "oct" for k in key_set.keys):
                raise TrustConfigError(f"{where}.jwks: symmetric keys are not allowed")
        jku = entry.get("jku", [])
        jku = (jku,) if isinstance(jku, str) else tuple(jku)
        if key_set is None and not jku:
            raise TrustConfigError(f"{where}: needs 'jwks', 'jwks_file' or 'jku'")
        if any(not u.startswith("https://") and not u.startswith("http://127.0.0.1") for u in jku):
            raise TrustConfigError(f"{where}.jku: JWKS URLs must be https")
        servers = entry.get("fhir_servers", [])
        clients[entry["iss"]] = TrustedClient(
            iss=entry["iss"],
            jwks=key_set,
            jku=jku,
            tenant=entry.get("tenant"),
            fhir_servers=tuple(servers),
        )
    return clients


class ReplayStore(Protocol):
    """Remembers ``jti`` values until they expire; shared (e.g. Redis) when several instances serve."""

    def first_use(self, key: str, expires_at: float) -> bool:
        """True if ``key`` was not seen before (and remember it until ``expires_at``), False for a replay."""


class MemoryReplayStore:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if self._seen.get(key, 0) > now:
                return False
            self._seen[key] = expires_at
            return True


NEGATIVE_TTL = 30.0  # seconds a failed JWK Set fetch is not retried (doubling up to the refresh interval)


class JWKSCache:
    """JWK Sets fetched from allow-listed ``jku`` URLs: cached, and refetched once for an unknown ``kid``."""

    def __init__(self, ttl: float = 3600, min_refresh: float = 300, timeout: float = 3.0):
        self._ttl, self._min_refresh, self._timeout = ttl, min_refresh, timeout
        self._sets: dict[str, tuple[float, PyJWKSet]] = {}  # url -> (fetched at, keys)
        self._failed: dict[str, tuple[float, float]] = {}  # url -> (failed at, back-off): no refetch before it ends
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}  # url -> held while one thread fetches it

    def key(self, url: str, kid: str) -> PyJWK:
        now = time.time()
        cached = self._cached(url)
        if cached is None or now - cached[0] > self._ttl:
            cached = self._refresh(url, now)
        found = _find(cached[1], kid)
        if found is None and now - cached[0] >= self._min_refresh:
            found = _find(self._refresh(url, now)[1], kid)  # a rotated key: one refetch, rate-limited
        if found is None:
            raise InvalidToken(f"kid not in the JWK Set at {url}")
        return found

    def _cached(self, url: str) -> tuple[float, PyJWKSet] | None:
        with self._lock:
            return self._sets.get(url)

    def _store(self, url: str, fetched: float, jwks: dict) -> None:
        with self._lock:
            self._sets[url] = (fetched, PyJWKSet.from_dict(jwks))

    def _refresh(self, url: str, now: float) -> tuple[float, PyJWKSet]:
        """One fetch of ``url`` at a time: tokens that name it meanwhile wait for that fetch and read its result
        (eight tokens naming a slow JWK Set made eight fetches, each holding a worker thread)."""
        before = self._cached(url)
        with self._lock:
            fetching = self._fetching.setdefault(url, threading.Lock())
        if not fetching.acquire(timeout=2 * self._timeout):
            raise InvalidToken(f"JWK Set at {url} is being fetched; not waited for longer")
        try:
            after = self._cached(url)
            if after is not None and after is not before:  # fetched while this thread waited
                return after
            return self._refresh_now(url, now)
        finally:
            fetching.release()

    def _refresh_now(self, url: str, now: float) -> tuple[float, PyJWKSet]:
        with self._lock:
            failed = self._failed.get(url)
        if failed is not None and now - failed[0] < failed[1]:
            # a JWK Set that just failed is not fetched again for every token that names it (negative cache)
            raise InvalidToken(f"JWK Set at {url} failed recently; not refetched before {failed[1]:.0f} s pass")
        try:
            return self._fetch(url, now)
        except InvalidToken:
            with self._lock:
                backoff = min(self._min_refresh, max(NEGATIVE_TTL, (failed[1] * 2) if failed else NEGATIVE_TTL))
                self._failed[url] = (now, backoff)
            raise

    def _fetch(self, url: str, now: float) -> tuple[float, PyJWKSet]:
        watchdog = fhirclient.Watchdog(self._timeout)  # each read has the timeout; the whole fetch has this one
        try:
            with watchdog, fhirclient.tracked_session() as session:
                response = session.get(url, timeout=self._timeout, allow_redirects=False, stream=True)
                body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
            if watchdog.fired:  # a server sending a byte a second: cut, whatever arrived
                raise InvalidToken(f"JWK Set at {url} took longer than {self._timeout:g} s")
            if response.status_code != 200 or len(body) > JWKS_MAX_BYTES:
                raise InvalidToken(f"JWK Set at {url} answered {response.status_code} or is too large")
            jwks = json.loads(body)
            key_set = PyJWKSet.from_dict(jwks)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError, jwt.PyJWKSetError,
                jwt.PyJWKError, jwt.InvalidKeyError) as exc:  # fmt: skip
            late = " (it took too long)" if watchdog.fired else ""
            raise InvalidToken(f"JWK Set at {url} could not be fetched ({exc.__class__.__name__}){late}") from None
        self._store(url, now, jwks)
        with self._lock:
            self._failed.pop(url, None)
        return now, key_set


def _find(key_set: PyJWKSet, kid: str) -> PyJWK | None:
    return next((k for k in key_set.keys if k.key_id == kid), None)


class Verifier:
    def __init__(
        self,
        clients: dict[str, TrustedClient],
        replay: ReplayStore | None = None,
        jwks: JWKSCache | None = None,
        leeway: float = 60,
    ):
        self.clients = clients
        self.replay = replay or MemoryReplayStore()
        self.jwks = jwks or JWKSCache()
        self.leeway = leeway

    def verify(self, authorization: str | None, audience: str) -> TrustedClient:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed JWT ({exc.__class__.__name__})") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            # the value is not quoted: it is the caller's (any text or JSON, up to the token's size) and the reason
            # is logged
            raise InvalidToken(f"alg is not one of {', '.join(sorted(ALGORITHMS))}")
        if str(header.get("typ", "")).upper() != "JWT":
            raise InvalidToken("typ is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid")
        client = self.clients.get(claims.get("iss")) if isinstance(claims.get("iss"), str) else None
        if client is None:
            raise InvalidToken("iss is not a trusted client")
        if client.tenant is not None and claims.get("tenant") != client.tenant:
            raise InvalidToken("tenant does not match the client's")
        key = self._key(client, header, kid)
        if not _fits(key, alg):
            raise InvalidToken(f"alg {alg} does not match the key's {key.algorithm_name}")
        try:
            verified = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=client.iss,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "jti", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"JWT rejected ({exc.__class__.__name__}: {exc})") from None
        if verified["aud"] not in (audience, [audience]):  # PyJWT accepts a list that holds it among others
            raise InvalidToken("aud must be the URL called, alone")
        if not all(_is_number(verified[claim]) for claim in ("exp", "iat")):
            raise InvalidToken("exp and iat must be NumericDate numbers")
        now = time.time()
        if verified["iat"] > now + self.leeway:
            raise InvalidToken("iat is in the future")
        if (
            verified["exp"] - verified["iat"] > MAX_LIFETIME + self.leeway
            or verified["exp"] > now + MAX_LIFETIME + self.leeway
        ):
            raise InvalidToken("token lifetime exceeds one hour")
        if not isinstance(verified["jti"], str) or not verified["jti"]:
            raise InvalidToken("jti is missing")
        if not _is_text(verified["jti"]):  # a lone surrogate (JSON "\ud800") no database driver can store: a 500
            raise InvalidToken("jti is not text")
        if not self.replay.first_use(_replay_key(client.iss, verified["jti"]), verified["exp"] + self.leeway):
            raise InvalidToken("jti was already used (replay)")
        return client

    def _key(self, client: TrustedClient, header: dict, kid: str) -> PyJWK:
        jku = header.get("jku")
        if jku is not None:
            if jku not in client.jku:
                raise InvalidToken("jku is not on the client's allow-list")
            return self.jwks.key(jku, kid)
        if client.jwks is not None:
            found = _find(client.jwks, kid)
            if found is not None:
                return found
        for url in client.jku:
            with_url = _maybe(self.jwks, url, kid)
            if with_url is not None:
                return with_url
        raise InvalidToken("kid is not one of the client's keys")


def _fits(key: PyJWK, alg: str) -> bool:
    """Whether a token signed with ``alg`` may be checked with ``key``: the JWK's own ``alg`` when it names one;
    else its type (an RSA key serves RS* and PS*). PyJWK fills in RS256 for an RSA JWK that names none, which
    refused PS256, RS384, ... (an EC key's curve fixes its ES algorithm, so that default is right)."""
    declared = getattr(key, "_jwk_data", {}).get("alg")
    if declared or key.key_type != "RSA":
        return key.algorithm_name == alg
    return alg[:2] in ("RS", "PS")


def _maybe(cache: JWKSCache, url: str, kid: str) -> PyJWK | None:
    try:
        return cache.key(url, kid)
    except InvalidToken:
        return None


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization is not a Bearer token")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    return token


def _is_text(value: str) -> bool:
    """Text every store can hold: encodable as UTF-8 (no lone surrogate) and without NUL (PostgreSQL refuses it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _replay_key(issuer: str, jti: str) -> str:
    """The replay store's key for a token: a digest of issuer and jti, of fixed length (a key cut at 512
    characters made two long jti values that share a prefix one token)."""
    return hashlib.sha256(f"{issuer}|{jti}".encode()).hexdigest()


def _is_number(value: object) -> bool:
    """RFC 7519 NumericDate is a JSON number; PyJWT lets numeric strings through for iat."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
