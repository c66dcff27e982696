"""Which draft orders are ours: ServiceRequests for CPT 64580. Every other draft order is left alone."""

from __future__ import annotations

from collections.abc import Iterable

from cds.codes import THIS_PROCEDURE, codings

# CRD ext-billing-options on ServiceRequest.code: the billing codes of an order coded clinically (SNOMED, local).
# "CRD servers SHALL consider any codes provided" (billopt-3), so a CPT 64580 there makes the order ours.
BILLING_OPTIONS = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"


def in_scope(draft_orders: Iterable[dict]) -> list[dict]:
    """The draft ServiceRequests whose code, or a CRD billing option of it, carries CPT 64580, in the order the EHR
    sent them."""
    return [
        r
        for r in draft_orders
        if r.get("resourceType") == "ServiceRequest" and THIS_PROCEDURE.match_codings(order_codings(r.get("code")))
    ]


def order_codings(code: object) -> list[tuple[str | None, str | None]]:
    """The (system, code) pairs of ServiceRequest.code and of its ext-billing-options values."""
    found = codings(code)
    extensions = code.get("extension") if isinstance(code, dict) else None
    for extension in extensions if isinstance(extensions, list) else ():
        if isinstance(extension, dict) and extension.get("url") == BILLING_OPTIONS:
            found += codings(extension.get("valueCodeableConcept"))
    return found
