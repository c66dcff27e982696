"""Resolve each prefetch key of a service into resources: from the request where the EHR sent it, else fetched.

The CDS Hooks 2.0 rules, key by key:
- present with a resource or Bundle: use it, following the Bundle's ``next`` pages if the EHR paginated;
- present but ``null``: the EHR says there is no such data, so nothing is fetched;
- present with an OperationOutcome, or absent: fetch the same template from ``fhirServer`` with the EHR's token;
  when the server answers it with an error and the template has a plainer ``fallback`` (the Coverage search
  without ``_include``), ask that instead, so an unsupported ``_include`` never costs a 412.
A required key that can be neither read nor fetched makes the call fail with 412 (:class:`DataUnobtainable`);
an optional key that fails is logged and left empty. Missing clinical data in a readable record is not an error.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import quote

from cds.config import Settings
from cds.errors import DataUnobtainable, FHIRError, FHIRNotAllowed, FHIRTimeout, FHIRTooLarge
from cds.fhirclient import Deadline, FHIRClient, bundle_resources, next_link
from cds.hooks import HookRequest
from cds.services import CdsService, PrefetchTemplate

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\{\{([A-Za-z.]+)\}\}")

# How each key's data came to us, for the audit trail and for testers.
FROM_PREFETCH, FROM_NULL, FETCHED, SKIPPED, FAILED, LATE = "prefetch", "null", "fetched", "skipped", "failed", "late"
DEFERRED = "deferred"  # not sent; fetched later only if the record needs it


@dataclass(frozen=True)
class ResolvedData:
    """Resources per prefetch key, and where each key's data came from."""

    resources: dict[str, list[dict]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def all(self) -> list[dict]:
        return [resource for items in self.resources.values() for resource in items]

    @property
    def late(self) -> frozenset[str]:
        """Keys the FHIR server did not answer before the hook deadline: the answer is partial for them."""
        return frozenset(k for k, v in self.origin.items() if v == LATE)


def render(template: str, tokens: dict[str, str]) -> str | None:
    """Substitute the tokens (URL-encoded); None when the call lacks a token the template needs."""
    missing = False

    def substitute(match: re.Match) -> str:
        nonlocal missing
        value = tokens.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return quote(value, safe="/")

    query = _TOKEN.sub(substitute, template)
    return None if missing else query


@functools.cache
def _tokens_of(template: str) -> frozenset[str]:
    """The tokens a prefetch template names (the service's own templates: a few, made once). A call's query is
    rendered only when it is fetched; with the prefetch sent, what matters is whether a token is missing."""
    return frozenset(match.group(1) for match in _TOKEN.finditer(template))


ClientFactory = Callable[[str, "str | None", Settings, Deadline], FHIRClient]


def resolve(
    service: CdsService,
    request: HookRequest,
    settings: Settings,
    client_factory: ClientFactory = FHIRClient,
    deadline: Deadline | None = None,
) -> ResolvedData:
    tokens = request.tokens()
    deadline = deadline or Deadline(settings.hook_deadline)
    resources: dict[str, list[dict]] = {}
    origin: dict[str, str] = {}
    to_fetch: list[tuple[PrefetchTemplate, str]] = []
    to_page: list[tuple[PrefetchTemplate, dict]] = []

    for template in service.prefetch:
        present = template.key in request.prefetch
        value = request.prefetch.get(template.key)
        sent = present and value is not None and value.get("resourceType") != "OperationOutcome"
        # A token the call has no value for (render()'s missing) only stops a fetch: what the EHR sent is used,
        # since it may know what we cannot work out (Epic fills userPractitionerId for a PractitionerRole userId).
        if not sent and not tokens.keys() >= _tokens_of(template.query):
            origin[template.key] = SKIPPED
            resources[template.key] = []
        elif present and value is None:
            origin[template.key] = FROM_NULL
            resources[template.key] = []
        elif not sent:
            if template.deferred:
                origin[template.key] = DEFERRED
                resources[template.key] = []
            else:
                to_fetch.append((template, render(template.query, tokens) or ""))
        elif value.get("resourceType") == "Bundle" and next_link(value) is not None:
            to_page.append((template, value))
        else:
            origin[template.key] = FROM_PREFETCH
            resources[template.key] = bundle_resources(value) if value["resourceType"] == "Bundle" else [value]

    if to_fetch or to_page:
        _fetch_all(request, settings, client_factory, deadline, to_fetch, to_page, resources, origin)
    return ResolvedData(resources, origin)


def fetch_situational(
    request: HookRequest,
    settings: Settings,
    queries: list[str],
    client_factory: ClientFactory = FHIRClient,
    deadline: Deadline | None = None,
) -> list[dict]:
    """Best effort: what the rules need only for this record (surgeons' roles, pain scores). Never fails."""
    if not queries or not request.fhir_server:
        return []
    token = request.fhir_authorization.access_token if request.fhir_authorization else None
    deadline = deadline or Deadline(settings.hook_deadline)
    try:
        client = client_factory(request.fhir_server, token, settings, deadline)
    except FHIRError as exc:
        log.warning("situational data not fetched: %s", exc.diagnostics)
        return []
    found: list[dict] = []
    pool = ThreadPoolExecutor(max_workers=max(1, min(settings.fhir_max_parallel, len(queries))))
    try:
        for query, future in [(q, pool.submit(client.get, q)) for q in queries]:
            kind = query.split("?")[0].split("/")[0]
            try:
                found.extend(_result(future, deadline, kind))
            except FHIRError as exc:
                log.warning("situational %s query failed: %s", kind, exc.diagnostics)
    finally:
        _release(pool, client)
    return found


# What a fetch may run past the deadline before the call stops waiting for it: a name lookup (getaddrinfo) runs
# before any socket exists, so neither the timeouts nor the watchdog can cut it short.
_GRACE = 0.25


def _result(future: Future, deadline: Deadline, what: str) -> list[dict]:
    try:
        return future.result(timeout=deadline.remaining(_GRACE))  # one end for all: stuck fetches do not add up
    except FutureTimeout:
        raise FHIRTimeout(f"the {what} query did not finish before the hook deadline") from None


def _release(pool: ThreadPoolExecutor, client: FHIRClient) -> None:
    """Stop waiting: a fetch stuck where no timeout reaches it ends on its own, the call does not wait for it."""
    pool.shutdown(wait=False, cancel_futures=True)
    client.close()


def _get(client: FHIRClient, template: PrefetchTemplate, query: str, tokens: dict[str, str]) -> list[dict]:
    try:
        return client.get(query)
    except (FHIRTimeout, FHIRNotAllowed, FHIRTooLarge):
        raise  # no time left, a server we may not call, or too much: a plainer query would fare no better
    except FHIRError as exc:
        plain = render(template.fallback, tokens) if template.fallback else None
        if plain is None:
            raise
        log.info(
            "prefetch key %s: the server refused the search (%s); asking without it", template.key, exc.diagnostics
        )
        return client.get(plain)


def _fetch_all(request, settings, client_factory, deadline, to_fetch, to_page, resources, origin) -> None:
    """Fetch what prefetch lacked. Slowness (the deadline) gives a partial answer; any other failure a 412."""
    failures: list[tuple[PrefetchTemplate, FHIRError]] = []
    if not request.fhir_server:
        failures = [(t, FHIRError("the request has no fhirServer to fetch it from")) for t, _ in [*to_fetch, *to_page]]
    else:
        token = request.fhir_authorization.access_token if request.fhir_authorization else None
        try:
            client = client_factory(request.fhir_server, token, settings, deadline)
        except FHIRError as exc:
            failures = [(t, exc) for t, _ in [*to_fetch, *to_page]]
        else:
            tokens = request.tokens()
            jobs: list[tuple[PrefetchTemplate, Callable[[], list[dict]]]] = [
                (t, lambda t=t, q=q: _get(client, t, q, tokens)) for t, q in to_fetch
            ] + [(t, lambda b=b, k=t.key: client.collect(b, k)) for t, b in to_page]
            workers = max(1, min(settings.fhir_max_parallel, len(jobs)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir")
            try:
                futures = [(t, pool.submit(job)) for t, job in jobs]
                for template, future in futures:
                    try:
                        resources[template.key] = _result(future, deadline, template.key)
                        origin[template.key] = FETCHED
                    except FHIRError as exc:  # kept without its traceback: its frames would hold this one,
                        failures.append((template, exc.with_traceback(None)))  # and a failed body, in a cycle
            finally:
                _release(pool, client)

    required = []
    for template, exc in failures:
        origin[template.key] = LATE if isinstance(exc, FHIRTimeout) else FAILED
        resources[template.key] = []
        log.warning("prefetch key %s unobtainable: %s", template.key, exc.diagnostics)
        if template.required or isinstance(exc, FHIRTooLarge):  # too much data is a 412 for any key
            required.append((template, exc))
    if any(not isinstance(exc, FHIRTimeout) for _, exc in required):
        raise DataUnobtainable([(t.key, exc.diagnostics) for t, exc in required])
