"""Parse a CDS Hooks request into typed values: the hook context, the EHR's FHIR access, the CRD options.

Validation is the JSON Schema in ``schemas/hook-request.schema.json`` plus the rules a schema cannot say
(the hook must match the service, selections must name draft orders). Unknown members are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import cast

from cds import schemas
from cds.errors import SchemaViolation
from cds.services import CONFIGURATION_OPTIONS, CdsService

_USER_REFERENCE = re.compile(r"\A(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}\Z")
_OPTION_TYPES = {"boolean": bool, "integer": int}
AS_OF_EXTENSION = "cds64580.as-of"


@dataclass(frozen=True)
class FhirAuthorization:
    """The EHR's bearer token for fhirServer. Transient: never stored, logged or shown (repr hides it)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


@dataclass(frozen=True)
class HookContext:
    user_id: str | None
    patient_id: str
    encounter_id: str | None
    draft_orders: tuple[dict, ...]
    selections: tuple[str, ...] = ()

    @property
    def orders_in_focus(self) -> tuple[dict, ...]:
        """The draft orders to answer about: on order-select the selected ones ("decision support should focus on
        the selected orders"; the others are context, answered when they were selected), on order-sign all."""
        if not self.selections:
            return self.draft_orders
        selected = set(self.selections)
        return tuple(d for d in self.draft_orders if f"{d.get('resourceType')}/{d.get('id')}" in selected)


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: HookContext
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = field(default=None, repr=False)
    prefetch: Mapping[str, dict | None] = field(default_factory=dict, repr=False)
    configuration: Mapping[str, bool | int] = field(default_factory=dict)
    requested_version: str | None = None
    as_of: date | None = None

    def tokens(self) -> dict[str, str]:
        """Values for the CDS Hooks 2.0 prefetch tokens this call can supply."""
        ctx = self.context
        values = {"context.patientId": ctx.patient_id}
        if ctx.encounter_id:
            values["context.encounterId"] = ctx.encounter_id
        if ctx.user_id:
            values["context.userId"] = ctx.user_id
            kind, _, ident = ctx.user_id.partition("/")
            values[f"user{kind}Id"] = ident
        return values

    def option(self, code: str) -> bool | int:
        return self.configuration[code]


def parse(service: CdsService, body: object) -> HookRequest:
    """Validate ``body`` for ``service`` and return the typed request, or raise :class:`SchemaViolation`."""
    if isinstance(body, dict) and isinstance(body.get("hook"), str) and body["hook"] != service.hook:
        raise SchemaViolation(
            [("hook", f"service '{service.id}' answers the '{service.hook}' hook, not the hook in this request")]
        )
    schemas.validate("hook-request", body)
    body = cast(dict, body)  # the schema guarantees an object
    raw_ctx = body["context"]
    draft_orders = _draft_orders(raw_ctx["draftOrders"].get("entry", ()))
    selections = tuple(raw_ctx.get("selections", ()))
    if selections:
        _check_selections(selections, draft_orders)
    context = HookContext(
        user_id=_user_id(body),
        patient_id=raw_ctx["patientId"],
        encounter_id=raw_ctx.get("encounterId") or None,
        draft_orders=draft_orders,
        selections=selections,
    )
    auth = body.get("fhirAuthorization")
    extension = body.get("extension") or {}
    return HookRequest(
        hook=body["hook"],
        hook_instance=body["hookInstance"],
        context=context,
        fhir_server=body.get("fhirServer"),
        fhir_authorization=FhirAuthorization(**{k: auth.get(k) for k in _AUTH_FIELDS}) if auth else None,
        prefetch=MappingProxyType(dict(body.get("prefetch") or {})),
        configuration=MappingProxyType(_configuration(extension.get("davinci-crd.configuration"))),
        requested_version=_requested_version(extension.get("davinci-crd.requestedVersion")),
        as_of=_as_of(extension.get(AS_OF_EXTENSION)),
    )


ORDER_MAX_DEPTH = schemas.MAX_DEPTH // 2  # the answer writes draft orders back (updates), inside its own nesting


def _draft_orders(entries: list[dict]) -> tuple[dict, ...]:
    """The draft order resources, each shallow enough to be written back in the answer."""
    orders = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if schemas.deeper_than(resource, ORDER_MAX_DEPTH):
            where = f"context.draftOrders.entry[{i}].resource"
            raise SchemaViolation([(where, f"{where} nests deeper than {ORDER_MAX_DEPTH} levels")])
        orders.append(resource)
    return tuple(orders)


_AUTH_FIELDS = ("access_token", "token_type", "expires_in", "scope", "subject", "patient")


def _user_id(body: dict) -> str:
    """context.userId; the CDS Hooks 1.0 top-level ``user`` (still sent by the CRD reference server) as fallback."""
    user = body["context"].get("userId")
    if user is None:
        user = body.get("user")
        if isinstance(user, str) and _USER_REFERENCE.match(user):
            return user
        raise SchemaViolation([("context.userId", "context.userId is required (e.g. 'Practitioner/123')")])
    return user


def _check_selections(selections: tuple[str, ...], draft_orders: tuple[dict, ...]) -> None:
    known = {f"{r.get('resourceType')}/{r.get('id')}" for r in draft_orders}
    for i, selection in enumerate(selections):
        if selection not in known:
            raise SchemaViolation(
                [(f"context.selections[{i}]", f"context.selections[{i}] names no resource in context.draftOrders")]
            )


def _configuration(raw: object) -> dict[str, bool | int]:
    """CRD davinci-crd.configuration over the published defaults; unknown codes are ignored (dev-17)."""
    config = {o["code"]: o["default"] for o in CONFIGURATION_OPTIONS}
    if raw is None:
        return config
    where = "extension.davinci-crd.configuration"
    if not isinstance(raw, dict):
        raise SchemaViolation([(where, f"{where} must be a JSON object")])
    for option in CONFIGURATION_OPTIONS:
        code = option["code"]
        if code not in raw:
            continue
        value = raw[code]
        expected = _OPTION_TYPES[option["type"]]
        if type(value) is not expected or (expected is int and value < 0):
            raise SchemaViolation([(f"{where}.{code}", f"{where}.{code} must be a {option['type']}")])
        config[code] = value
    return config


def _as_of(raw: object) -> date | None:
    """``extension."cds64580.as-of"``: evaluate as of this date (for replaying a case; EHRs leave it out)."""
    if raw is None:
        return None
    where = f"extension.{AS_OF_EXTENSION}"
    try:  # a calendar date only: fromisoformat also reads week dates and basic forms ("2026W011xx")
        return date.fromisoformat(raw) if isinstance(raw, str) and _CALENDAR_DATE.fullmatch(raw) else _bad_date(where)
    except ValueError:
        return _bad_date(where)


_CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _bad_date(where: str) -> date:
    raise SchemaViolation([(where, f"{where} must be a date such as 2026-06-15")])


def _requested_version(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        where = "extension.davinci-crd.requestedVersion"
        raise SchemaViolation([(where, f"{where} must be a string such as '2.2'")])
    return raw
