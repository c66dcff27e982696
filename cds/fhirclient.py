"""A small FHIR R4 client for the EHR's server: bearer token, timeouts, paging, size caps, an allow-list.

The EHR's token goes only to the base URL the hook call named, and only if that URL is allowed; ``next``
links must stay on the same origin, redirects are never followed, bodies are capped in bytes and every read
is bounded by the hook's :class:`Deadline`. Failures raise the :class:`~cds.errors.FHIRError` family, whose
messages name the resource type, never the URL (it carries the patient id) nor the token.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool

from cds import metrics
from cds.config import Settings
from cds.errors import (
    FHIRAuthError,
    FHIRError,
    FHIRNotAllowed,
    FHIRResponseError,
    FHIRTimeout,
    FHIRTooLarge,
    FHIRUnavailable,
)

CHUNK = 64 * 1024
MAX_RETRY_WAIT = 1.0  # seconds we will wait on a 429's Retry-After within one hook call


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is too coarse for a hook call and is not waited on)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Deadline:
    """A point in monotonic time that all the FHIR calls of one hook call share."""

    def __init__(self, seconds: float):
        self._end = time.monotonic() + seconds

    def remaining(self, grace: float = 0.0) -> float:
        """Seconds left, or left of ``grace`` past the deadline (the same end for every caller that adds it)."""
        return max(0.0, self._end + grace - time.monotonic())


# ---- a watchdog over the whole read ---------------------------------------------------------------------------
# A socket timeout bounds each recv, not the response: a server that drips a byte a second never times out. So
# every connection this client opens is remembered per thread, and a timer shuts it down when the hook's deadline
# passes, whatever phase (headers or body) the read is in.
_open = threading.local()


def _track(sock: socket.socket | None) -> None:
    watchdog = getattr(_open, "watchdog", None)
    if watchdog is not None:
        watchdog.sock = sock


class _TrackedHTTPConnection(urllib3_connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _track(self.sock)


class _TrackedHTTPSConnection(urllib3_connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _track(self.sock)


class _TrackedHTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _track(getattr(conn, "sock", None))  # a kept-alive connection is not connected again
        return conn


class _TrackedHTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _track(getattr(conn, "sock", None))
        return conn


class _TrackedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def tracked_session() -> requests.Session:
    """A session whose connections a :class:`Watchdog` of the calling thread can cut."""
    session = requests.Session()
    session.mount("http://", _TrackedAdapter())
    session.mount("https://", _TrackedAdapter())
    return session


def _sever(sock: socket.socket | None) -> None:
    """Shut the connection down under a read that outlived the deadline (the blocked recv then fails)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """Cuts the connection of the calling thread's request when ``seconds`` have passed."""

    def __init__(self, seconds: float):
        self._timer: threading.Timer | None = None
        self._seconds = seconds
        self.fired = False
        self.sock: socket.socket | None = None  # set by the connection this thread opens

    def _fire(self) -> None:
        self.fired = True
        _sever(self.sock)

    def __enter__(self) -> Watchdog:
        _open.watchdog = self
        self._timer = threading.Timer(self._seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        _open.watchdog = None
        if self._timer is not None:
            self._timer.cancel()


def is_allowed(base_url: str, allowed: tuple[str, ...]) -> bool:
    """True when ``base_url`` is one of the allowed bases (or below one); "*" allows any http(s) URL.

    A base with a query or a fragment (even an empty one) is refused: resolving ``Patient/1`` against
    ``https://ehr/fhir?x`` drops ``/fhir``, and the token would go to a path outside the allowed base."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        return False
    if "?" in base_url or "#" in base_url:
        return False
    if _segments(base_url) is None:
        return False
    return any(entry == "*" or is_under(base_url, entry) for entry in allowed)


def _segments(url: str) -> tuple[str, str, list[str]] | None:
    """(scheme, host, path segments), decoded; None when the path climbs (``.``/``..``, even percent-encoded, or
    with path parameters: servlet containers read ``/fhir/..;/admin`` as ``/admin``)."""
    parts = urlsplit(url)
    segments = [s for s in unquote(parts.path).split("/") if s]
    if any(s.split(";", 1)[0] in (".", "..") or "\\" in s for s in segments):
        return None
    return parts.scheme.lower(), parts.netloc.lower(), segments


def is_under(url: str, base: str) -> bool:
    """``url`` is ``base`` or below it: same scheme and host, and ``base``'s path segments first."""
    target, root = _segments(url), _segments(base)
    if target is None or root is None:
        return False
    return target[:2] == root[:2] and target[2][: len(root[2])] == root[2]


class FHIRClient:
    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        settings: Settings,
        deadline: Deadline,
        session: requests.Session | None = None,
    ):
        if not is_allowed(base_url, settings.fhir_allowed_servers):
            raise FHIRNotAllowed("fhirServer is not on this service's allow-list; it was not contacted")
        self.base_url = base_url.rstrip("/") + "/"
        self._settings = settings
        self._deadline = deadline
        self._session = session or tracked_session()
        self._session.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        self._headers = {"Accept": "application/fhir+json, application/json;q=0.9"}
        self._taken = 0  # resources read by this client, all searches together (they run in parallel)
        self._taken_lock = threading.Lock()
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"

    def close(self) -> None:
        self._session.close()

    def get(self, query: str) -> list[dict]:
        """The resources a read (``Patient/1``) or a search (``Condition?patient=1``) returns, all pages."""
        label = query.split("?", 1)[0].split("/", 1)[0] or "query"
        is_read = "?" not in query and "/" in query
        body = self._fetch(urljoin(self.base_url, query), label, missing_ok=is_read)
        if body is None:
            return []
        if body.get("resourceType") == "Bundle":
            return self.collect(body, label)
        if body.get("resourceType") == "OperationOutcome":
            raise FHIRResponseError(f"the FHIR server answered the {label} query with an OperationOutcome")
        self._take(1, label)
        return [body]

    def _take(self, count: int, label: str) -> None:
        """Count what this call has read: no more than a prefetch may carry (``max_prefetch_entries``), however many
        pages in time a server sends (a server sending 160,000 resources kept a worker busy for minutes)."""
        limit = self._settings.max_prefetch_entries
        with self._taken_lock:
            self._taken += count
            over = self._taken > limit
        if over:
            raise FHIRTooLarge(f"the {label} search returns more than this service reads ({limit} resources)")

    def collect(self, bundle: dict, label: str) -> list[dict]:
        """Entries of ``bundle`` and of every page its ``next`` links lead to, de-duplicated."""
        resources: list[dict] = []
        seen_ids: set[tuple[str, str]] = set()
        seen_pages: set[str] = set()
        page: dict | None = bundle
        pages = 0
        while page is not None:
            pages += 1
            found = bundle_resources(page)
            self._take(len(found), label)
            for resource in found:
                key = (resource.get("resourceType"), resource.get("id"))
                if isinstance(key[0], str) and isinstance(key[1], str):  # an id of another type identifies nothing
                    if key in seen_ids:
                        continue
                    seen_ids.add(key)
                resources.append(resource)
            next_url = next_link(page)
            if next_url is None:
                break
            next_url = urljoin(self.base_url, next_url)
            if next_url in seen_pages:
                raise FHIRResponseError(f"the {label} search's next links loop")
            if pages >= self._settings.fhir_max_pages:
                raise FHIRResponseError(f"the {label} search has more than {pages} pages")
            if not is_under(next_url, self.base_url):
                raise FHIRNotAllowed(f"the {label} search's next link leaves the FHIR server's base; not followed")
            seen_pages.add(next_url)
            page = self._fetch(next_url, label, missing_ok=False)
            if page is None or page.get("resourceType") != "Bundle":
                raise FHIRResponseError(f"a page of the {label} search is not a Bundle")
        return resources

    def _fetch(self, url: str, label: str, *, missing_ok: bool, retried: bool = False) -> dict | None:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise FHIRTimeout(f"the hook deadline passed before the {label} query")
        timeout = (
            min(self._settings.fhir_connect_timeout, remaining),
            min(self._settings.fhir_read_timeout, remaining),
        )
        started = time.perf_counter()
        try:
            with Watchdog(remaining) as watchdog:
                try:
                    return self._fetch_once(url, label, timeout, missing_ok=missing_ok, retried=retried)
                except FHIRError:
                    if watchdog.fired:
                        raise FHIRTimeout(f"the hook deadline passed while reading the {label} answer") from None
                    raise
        except FHIRError as exc:
            metrics.FHIR_ERRORS.labels(label, type(exc).__name__).inc()
            raise
        finally:
            metrics.FHIR_LATENCY.labels(label).observe(time.perf_counter() - started)

    def _fetch_once(self, url: str, label: str, timeout, *, missing_ok: bool, retried: bool) -> dict | None:
        try:
            response = self._session.get(
                url, headers=self._headers, timeout=timeout, stream=True, allow_redirects=False
            )
        except requests.Timeout:
            raise FHIRTimeout(f"the FHIR server did not answer the {label} query in time") from None
        except requests.RequestException:
            raise FHIRUnavailable(f"the FHIR server could not be reached for the {label} query") from None
        with response:
            status = response.status_code
            if status in (401, 403):
                raise FHIRAuthError(f"the FHIR server refused the {label} query ({status})")
            if status in (404, 410) and missing_ok:
                return None
            if status == 429 and not retried:
                wait = _retry_after(response.headers.get("Retry-After"))
                if wait is not None and wait <= min(MAX_RETRY_WAIT, self._deadline.remaining() - 0.2):
                    response.close()
                    time.sleep(wait)  # the server asked for a short pause and the deadline allows it: one retry
                    return self._fetch(url, label, missing_ok=missing_ok, retried=True)
            if status == 429 or status >= 500:
                raise FHIRUnavailable(f"the FHIR server failed the {label} query ({status})")
            if 300 <= status < 400:
                raise FHIRResponseError(f"the FHIR server redirected the {label} query; redirects are not followed")
            if status != 200:
                raise FHIRResponseError(f"the FHIR server answered the {label} query with {status}")
            raw = self._read_body(response, label)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise FHIRResponseError(f"the FHIR server's answer to the {label} query is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FHIRResponseError(f"the FHIR server's answer to the {label} query is not a FHIR resource")
        return body

    def _read_body(self, response: requests.Response, label: str) -> bytes:
        cap = self._settings.fhir_max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FHIRResponseError(f"the FHIR server's answer to the {label} query is larger than {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise FHIRResponseError(f"the FHIR server's answer to the {label} query is larger than {cap} bytes")
                if self._deadline.remaining() <= 0:
                    raise FHIRTimeout(f"the hook deadline passed while reading the {label} answer")
                chunks.append(chunk)
        except requests.RequestException:
            raise FHIRTimeout(f"the FHIR server stopped answering the {label} query") from None
        except FHIRError:
            # the error's traceback keeps this frame alive until a full garbage collection: up to the cap in
            # chunks per failed query, so the chunks go now
            chunks.clear()
            raise
        return b"".join(chunks)


def bundle_resources(bundle: dict) -> list[dict]:
    """The resources of a Bundle's entries, leaving out search outcomes and entries without a resource."""
    out = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") == "OperationOutcome":
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        out.append(resource)
    return out


def next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
