"""Prometheus metrics: requests, hook latency per service, FHIR fetch latency and errors, cards by topic, and the
CRD metric "% of responses under 5 seconds" (CRD metrics.html, metric 6).

Per process by default; under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder and ``/metrics``
aggregates every worker (the under-5-seconds share is then derived in PromQL from the two counters).
"""

from __future__ import annotations

import contextlib
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def problem() -> str | None:
    """Why this process cannot write its metric files (every counted call would fail), or None."""
    path = multiproc_dir()
    if path and not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
        return f"{MULTIPROC_ENV}={path[:200]} is not a folder this process can create and write"
    return None


def _prepare() -> None:
    """Create the workers' shared metrics folder: before, a missing one made every hook call a 500."""
    path = multiproc_dir()
    if path:
        with contextlib.suppress(OSError):  # reported by problem(): start-up refuses, /readyz fails
            os.makedirs(path, exist_ok=True)


_prepare()

CRD_TARGET_SECONDS = 5.0
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("cds_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"])
HOOK_LATENCY = Histogram("cds_hook_latency_seconds", "Hook call latency by service", ["service"], buckets=_BUCKETS)
HOOK_RESPONSES = Counter("cds_hook_responses_total", "Hook calls answered", ["service"])
HOOK_IN_TIME = Counter("cds_hook_responses_under_5s_total", "Hook calls answered in under 5 seconds", ["service"])
FHIR_LATENCY = Histogram(
    "cds_fhir_fetch_seconds", "FHIR server request latency by resource type", ["resource"], buckets=_BUCKETS
)
FHIR_ERRORS = Counter(
    "cds_fhir_fetch_errors_total", "FHIR server failures by resource type and kind", ["resource", "kind"]
)
CARDS = Counter("cds_cards_total", "Cards returned by topic and indicator", ["topic", "indicator"])
AUDIT_QUEUE_ROWS = Gauge(  # labelled, like all below: no metric file is opened at import time
    "cds_audit_queue_rows", "Audit rows waiting for the group writer", ["log"], multiprocess_mode="livesum"
)
AUDIT_BATCH_ROWS = Histogram(
    "cds_audit_batch_rows", "Audit rows committed per transaction", ["log"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
AUDIT_ROWS_LOST = Counter("cds_audit_rows_lost_total", "Audit rows that could not be written", ["reason"])
AUDIT_REFUSALS_DROPPED = Counter(  # labelled, so that no metric file is opened at import time
    "cds_audit_refusals_dropped_total",
    "Refused (401) calls past the per-source audit rate, counted not stored",
    ["reason"],
)


def _share_in_time() -> float:
    total = sum(s.value for m in HOOK_RESPONSES.collect() for s in m.samples if s.name.endswith("_total"))
    in_time = sum(s.value for m in HOOK_IN_TIME.collect() for s in m.samples if s.name.endswith("_total"))
    return 100.0 * in_time / total if total else 100.0


if multiproc_dir() is None:
    Gauge("cds_crd_responses_under_5s_percent", "CRD metric 6: share of hook calls answered in under 5 s").set_function(
        _share_in_time
    )


_CHILDREN: dict[tuple, object] = {}  # (metric, label values) -> the labelled child ``labels()`` returns
_CHILDREN_MAX = 4096


def child(metric, *values: str):
    """``metric.labels(*values)``, the child looked up in a dict: ``labels()`` checks and converts its values and
    takes the metric's lock on every call, a dozen times a hook call. The child is the same object either way
    (prometheus_client keeps one per label values, and a forked worker's child writes to its own file); label
    values are this service's own (endpoints, statuses, services, topics), a bounded set."""
    key = (metric, *values)
    found = _CHILDREN.get(key)
    if found is None:
        found = metric.labels(*values)
        if len(_CHILDREN) >= _CHILDREN_MAX:
            _CHILDREN.clear()
        _CHILDREN[key] = found
    return found


def observe_hook(service: str, seconds: float, cards: list[dict]) -> None:
    child(HOOK_LATENCY, service).observe(seconds)
    child(HOOK_RESPONSES, service).inc()
    if seconds < CRD_TARGET_SECONDS:
        child(HOOK_IN_TIME, service).inc()
    for card in cards:
        child(CARDS, card.get("source", {}).get("topic", {}).get("code", ""), card.get("indicator", "")).inc()


def exposition() -> tuple[bytes, str]:
    if multiproc_dir() is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
