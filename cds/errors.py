"""One exception tree for the service; each class knows its HTTP status and FHIR issue type.

    CDSError                         base: status, issue code, diagnostics, expression
    ├── InvalidRequest          400  the body cannot be used as sent
    │   ├── MalformedJSON       400  not JSON, not UTF-8, or not an object
    │   └── SchemaViolation     400  valid JSON that breaks a schema or a CDS Hooks rule
    ├── UnknownService          404  no service with that id (or no such route)
    ├── UnknownCard             404  feedback for a card this service never issued
    ├── Forbidden               403  switched off in this configuration (the viewer with JWT checks on)
    ├── MethodNotAllowed        405  right path, wrong verb
    ├── DataUnobtainable        412  required data neither prefetched nor fetchable
    ├── PayloadTooLarge         413  body over the configured limit
    ├── UnsupportedMediaType    415  not application/json
    ├── ServiceUnavailable      503  a dependency (the database) is down
    └── FHIRError                    a call to the EHR's FHIR server failed (wrapped into DataUnobtainable)
        ├── FHIRNotAllowed           base URL or link outside the allow-list
        ├── FHIRTimeout              connect/read timeout or the hook deadline passed
        ├── FHIRUnavailable          connection refused, DNS failure, 5xx, 429
        ├── FHIRAuthError            401 / 403
        └── FHIRResponseError        malformed JSON, wrong resource, paging loop, too large, redirect
            └── FHIRTooLarge         more resources than a prefetch may carry

Every non-2xx answer is a FHIR OperationOutcome built by :func:`operation_outcome`. Messages name the
offending field (``expression``) but never carry patient data or tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson


class CDSError(Exception):
    """Base of every error the service raises on purpose."""

    status: int = 500
    issue_code: str = "exception"

    def __init__(self, diagnostics: str, *, expression: Sequence[str] = (), issue_code: str | None = None):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = tuple(expression)
        if issue_code is not None:
            self.issue_code = issue_code

    def issues(self) -> list[dict]:
        """The OperationOutcome issues for this error (subclasses with several problems override)."""
        return [_issue(self.issue_code, self.diagnostics, self.expression)]

    def to_operation_outcome(self) -> dict:
        return operation_outcome(self.issues())


class InvalidRequest(CDSError):
    status = 400
    issue_code = "invalid"


class MalformedJSON(InvalidRequest):
    issue_code = "structure"


class SchemaViolation(InvalidRequest):
    """A schema or protocol rule is broken; may carry several problems, each with its own field."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        # problems: (expression, message) pairs, most relevant first
        first_expr, first_msg = problems[0]
        super().__init__(first_msg, expression=(first_expr,) if first_expr else ())
        self.problems = list(problems)

    def issues(self) -> list[dict]:
        return [_issue(self.issue_code, msg, (expr,) if expr else ()) for expr, msg in self.problems]


class NotFound(CDSError):
    status = 404
    issue_code = "not-found"


class UnknownService(CDSError):
    status = 404
    issue_code = "not-found"


class Forbidden(CDSError):
    """A part of the service that is switched off in this configuration (the viewer while JWT checks are on)."""

    status = 403
    issue_code = "forbidden"


class UnknownCard(CDSError):
    """Feedback for a card uuid this service never issued."""

    status = 404
    issue_code = "not-found"


class MethodNotAllowed(CDSError):
    status = 405
    issue_code = "not-supported"


class DataUnobtainable(CDSError):
    """412: what the rules need was neither in prefetch nor readable from the FHIR server."""

    status = 412
    issue_code = "incomplete"

    def __init__(self, missing: Sequence[tuple[str, str]]):
        # missing: (prefetch key, why) pairs
        keys = ", ".join(key for key, _ in missing)
        super().__init__(f"Required data could not be obtained: {keys}", expression=())
        self.missing = list(missing)

    def issues(self) -> list[dict]:
        return [
            _issue(
                self.issue_code,
                f"prefetch '{key}' was not provided and could not be fetched: {why}",
                (f"prefetch.{key}",),
            )
            for key, why in self.missing
        ]


class PayloadTooLarge(CDSError):
    status = 413
    issue_code = "too-costly"


class UnsupportedMediaType(CDSError):
    status = 415
    issue_code = "not-supported"


class ServiceUnavailable(CDSError):
    status = 503
    issue_code = "transient"


class FHIRError(CDSError):
    """A failed call to the EHR's FHIR server; callers turn it into :class:`DataUnobtainable`."""

    status = 412
    issue_code = "incomplete"


class FHIRNotAllowed(FHIRError):
    issue_code = "security"


class FHIRTimeout(FHIRError):
    issue_code = "timeout"


class FHIRUnavailable(FHIRError):
    issue_code = "transient"


class FHIRAuthError(FHIRError):
    issue_code = "security"


class FHIRResponseError(FHIRError):
    issue_code = "structure"


class FHIRTooLarge(FHIRResponseError):
    """The server sent more resources than a prefetch may carry: a 412 whichever key ran into it (an optional key
    read as empty could turn a criterion not-met)."""

    issue_code = "too-costly"


def _issue(code: str, diagnostics: str, expression: Iterable[str]) -> dict:
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    expression = [e for e in expression if e]
    if expression:
        issue["expression"] = expression
    return issue


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


def refused_by_parser(status: int, phrase: str) -> bytes:
    """The OperationOutcome for a request the HTTP server refused before the app saw it (a URL or header line too
    long, a malformed request line): the status and its standard phrase only, never the caller's input back."""
    issue = _PARSER_ISSUES.get(status, "structure" if status < 500 else "exception")
    return orjson.dumps(operation_outcome([_issue(issue, f"HTTP {status} {phrase.lower()}", ())]))


_PARSER_ISSUES = {403: "forbidden", 413: "too-costly", 414: "too-costly", 431: "too-costly", 501: "not-supported"}


INTERNAL_ERROR = operation_outcome(
    [_issue("exception", "The service failed unexpectedly; the error was logged. Please retry.", ())]
)
