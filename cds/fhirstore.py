"""A patient Bundle as a small FHIR server: in memory for in-process replay, over HTTP for ``--fhir``.

It answers exactly the interactions this service makes: instance reads (``Patient/1``) and type searches by
``patient``/``subject``/``beneficiary``, ``status``, ``code`` (``system|code``), ``practitioner`` and ``_id``, with
``_count`` paging through ``next`` links, and ``_include=Coverage:payor`` (the payor Organizations, marked
``include``). Anything else is a 400 OperationOutcome, as a strict server would do; ``include=False`` makes it
refuse ``_include`` too, like the many servers that do not support it. Served, it also takes a FHIR create
(``POST QuestionnaireResponse``): the viewer's DTR form writes a completed questionnaire there, as a DTR app writes
to the EHR, and the next hook call reads it back.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterable
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from cds.errors import FHIRResponseError
from cds.fhirclient import bundle_resources

PAGE = 100
MAX_CREATED = 100
MAX_CREATED_BYTES = 4 * 2**20
_LOCK = threading.Lock()  # creates append while a threaded server may be searching
_REFERENCE_PARAMS = {
    "patient": ("subject", "patient", "beneficiary"),
    "subject": ("subject",),
    "beneficiary": ("beneficiary",),
}
_SUPPORTED = {
    "patient",
    "subject",
    "beneficiary",
    "status",
    "code",
    "practitioner",
    "_id",
    "_count",
    "_page",
    "_include",
}
_INCLUDES = {"Coverage:payor": "payor", "Coverage:payor:Organization": "payor"}


def flatten(resources: Iterable[dict]) -> list[dict]:
    """Every resource of some Bundles and resources (transaction, batch, collection or searchset alike)."""
    out: list[dict] = []
    pending = deque(resources)
    while pending:
        resource = pending.popleft()
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            pending.extendleft(reversed(bundle_resources(resource)))
        elif isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            out.append(resource)
    return out


class FHIRStore:
    PAGE = PAGE

    def __init__(
        self,
        resources: Iterable[dict],
        base_url: str = "http://fixture.invalid/fhir",
        include: bool = True,
        page: int = PAGE,
    ):
        self.resources = flatten(resources)
        self.created = 0
        self.created_bytes = 0
        self.base_url = base_url.rstrip("/")
        self.include = include
        self.page = page

    # -- interactions -------------------------------------------------------------------------------------

    def read(self, resource_type: str, ident: str) -> dict | None:
        return next((r for r in self.resources if r["resourceType"] == resource_type and r.get("id") == ident), None)

    def search(self, resource_type: str, params: dict[str, str]) -> list[dict]:
        unknown = set(params) - _SUPPORTED
        if "_include" in params and (not self.include or _INCLUDES.get(f"{params['_include']}") is None):
            unknown.add("_include")
        if unknown:
            raise ValueError(f"unsupported search parameter(s): {', '.join(sorted(unknown))}")
        found = [r for r in self.resources if r["resourceType"] == resource_type]
        for name, value in params.items():
            if name in ("_count", "_page", "_include"):
                continue
            found = [r for r in found if _matches(r, name, value)]
        return found

    def answer(self, path_and_query: str) -> tuple[int, dict]:
        """(status, body) for a request path relative to the base, e.g. ``Condition?patient=1``."""
        parts = urlsplit(path_and_query)
        segments = [s for s in parts.path.split("/") if s]
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if len(segments) == 2:
            found = self.read(*segments)
            if found is None:
                return 404, _outcome("not-found", f"{segments[0]}/{segments[1]} is not in this bundle")
            return 200, found
        if len(segments) != 1:
            return 400, _outcome("not-supported", "only reads and type searches are supported")
        try:
            matches = self.search(segments[0], params)
        except ValueError as exc:
            return 400, _outcome("not-supported", str(exc))
        count, page = _whole(params.get("_count"), self.page), _whole(params.get("_page"), 0)
        if count is None or count < 1 or page is None or page < 0:
            return 400, _outcome("invalid", "_count must be a whole number of at least 1, _page one of at least 0")
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches[page * count : (page + 1) * count]],
        }
        if "_include" in params:
            shown = [entry["resource"] for entry in bundle["entry"]]
            bundle["entry"] += [{"resource": r, "search": {"mode": "include"}} for r in self.included(shown)]
        if (page + 1) * count < len(matches):
            query = urlencode({**params, "_count": count, "_page": page + 1})
            bundle["link"] = [{"relation": "next", "url": f"{self.base_url}/{segments[0]}?{query}"}]
        return 200, bundle

    def included(self, coverages: list[dict]) -> list[dict]:
        """The payor Organizations the Coverages reference (once each), as ``_include=Coverage:payor`` returns."""
        found: dict[str, dict] = {}
        for coverage in coverages:
            for payor in _list(coverage.get("payor")):
                kind, _, ident = _reference(payor).rpartition("/")
                if kind.rsplit("/", 1)[-1] == "Organization" and ident not in found:
                    organization = self.read("Organization", ident)
                    if organization is not None:
                        found[ident] = organization
        return list(found.values())

    def create(self, resource_type: str, resource: object) -> tuple[int, dict]:
        """FHIR create of one QuestionnaireResponse: 201 with it (a new id), or the refusal."""
        status, created = self.create_all(resource_type, [resource])
        return status, created[0] if status == 201 else created

    def create_all(self, resource_type: str, resources: list) -> tuple[int, list[dict] | dict]:
        """Create QuestionnaireResponses (the only kind this store takes), all or none: (201, the created, with new
        ids) or (4xx, an OperationOutcome). At most :data:`MAX_CREATED` of them and :data:`MAX_CREATED_BYTES`, so
        a loop of posts cannot grow a demo server's memory without end."""
        if resource_type != "QuestionnaireResponse":
            return 405, _outcome("not-supported", "this store creates QuestionnaireResponses only")
        if not all(isinstance(r, dict) and r.get("resourceType") == resource_type for r in resources):
            return 400, _outcome("invalid", f"send a {resource_type} resource as JSON")
        created = [{**r, "id": uuid.uuid4().hex} for r in resources]
        size = sum(len(orjson.dumps(r)) for r in created)
        with _LOCK:
            if self.created + len(created) > MAX_CREATED:
                return 409, _outcome(
                    "too-costly", f"this store holds at most {MAX_CREATED} created resources ({self.created} so far)"
                )
            if self.created_bytes + size > MAX_CREATED_BYTES:
                return 409, _outcome(
                    "too-costly", f"this store holds at most {MAX_CREATED_BYTES // 2**20} MiB of created resources"
                )
            self.created += len(created)
            self.created_bytes += size
            self.resources.extend(created)
        return 201, created

    # -- as a FHIRClient (in-process replay) --------------------------------------------------------------

    def client(self, *_args) -> StoreClient:
        return StoreClient(self)

    # -- as an HTTP server (--fhir) -------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        prefix = urlsplit(self.base_url).path.rstrip("/")
        path = request.path[len(prefix) :] if request.path.startswith(prefix) else request.path
        headers = {}
        if request.method == "POST":
            status, body = self._posted(request)
            if status == 0:
                status, body = self.create(path.strip("/"), body)
            if status == 201:
                headers["Location"] = f"{self.base_url}/{body['resourceType']}/{body['id']}"
        else:
            query = request.query_string.decode()
            status, body = self.answer(path + (f"?{query}" if query else ""))
        response = Response(orjson.dumps(body), status, headers, mimetype="application/fhir+json")
        return response(environ, start_response)

    def _posted(self, request: Request) -> tuple[int, object]:
        """(0, the body) for a FHIR JSON body within :data:`MAX_CREATED_BYTES`, else the refusal. Read no further
        than that (an unbounded body once took the whole process down), and only as FHIR JSON: a ``text/plain``
        post needs no CORS preflight, so any web page could otherwise write into a case."""
        mimetype = request.mimetype
        if mimetype not in ("application/fhir+json", "application/json"):
            return 415, _outcome("not-supported", "send the resource as application/fhir+json")
        length = request.content_length
        if length is not None and length > MAX_CREATED_BYTES:
            return 413, _outcome("too-costly", f"a body over {MAX_CREATED_BYTES // 2**20} MiB is not taken")
        data = request.stream.read(MAX_CREATED_BYTES + 1)
        if len(data) > MAX_CREATED_BYTES:
            return 413, _outcome("too-costly", f"a body over {MAX_CREATED_BYTES // 2**20} MiB is not taken")
        try:
            return 0, orjson.loads(data)
        except orjson.JSONDecodeError:
            return 0, None


class StoreClient:
    """The FHIRClient interface over a :class:`FHIRStore`, with no network."""

    def __init__(self, store: FHIRStore):
        self.store = store

    def get(self, query: str) -> list[dict]:
        status, body = self.store.answer(query)
        if status == 404:
            return []
        if status != 200:
            raise FHIRResponseError(f"the fixture store cannot answer {query.split('?')[0]}")
        return self.collect(body, query) if body["resourceType"] == "Bundle" else [body]

    def collect(self, bundle: dict, _label: str) -> list[dict]:
        out = list(bundle_resources(bundle))
        link = next((li["url"] for li in bundle.get("link", ()) if li.get("relation") == "next"), None)
        while link:
            _status, page = self.store.answer(link.removeprefix(self.store.base_url))
            out.extend(bundle_resources(page))
            link = next((li["url"] for li in page.get("link", ()) if li.get("relation") == "next"), None)
        return out

    def close(self) -> None:
        pass


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *_args) -> None:  # request lines carry patient ids; a replay tool keeps quiet
        pass


class ServedStore:
    """A :class:`FHIRStore` served over HTTP on loopback for the life of a ``with`` block."""

    def __init__(self, resources: Iterable[dict]):
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/fhir"
        self.store = FHIRStore(resources, self.base_url)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.users = 0  # runs reading from it now (the viewer keeps the count; it never stops one in use)

    def _app(self, environ, start_response):
        return self.store.wsgi(environ, start_response)

    def __enter__(self) -> ServedStore:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _reference(value: object) -> str:
    """A Reference's ``reference``, or "" when the JSON holds something else there (a pasted Bundle may)."""
    ref = value.get("reference") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) else ""


def _matches(resource: dict, name: str, value: str) -> bool:
    """Whether ``resource`` matches one search parameter; values of the wrong JSON type never match (and never
    fail: a Bundle pasted into the viewer or given to ``cds replay`` may hold anything)."""
    if name in _REFERENCE_PARAMS:
        wanted = value.rstrip("/").split("/")[-1]
        return bool(wanted) and any(
            _reference(resource.get(f)).rstrip("/").split("/")[-1] == wanted for f in _REFERENCE_PARAMS[name]
        )
    if name == "_id":
        return resource.get("id") in value.split(",")
    if name == "status":
        return resource.get("status") in value.split(",")
    if name == "practitioner":
        return _reference(resource.get("practitioner")).split("/")[-1] == value.split("/")[-1]
    if name == "code":  # a comma is "or", as in FHIR search
        concept = resource.get("code")
        codings = _list(concept.get("coding")) if isinstance(concept, dict) else []
        wanted = [v.rpartition("|") for v in value.split(",")]
        return any(
            c.get("code") == code and (not system or c.get("system") == system)
            for system, _, code in wanted
            for c in codings
            if isinstance(c, dict)
        )
    return False


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def _whole(value: str | None, default: int) -> int | None:
    """A search parameter's whole number (``default`` when absent), None when it is not one."""
    if value is None:
        return default
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None
