"""Which draft orders are ours: ServiceRequests for CPT 64580. Every other draft order is left alone."""

from __future__ import annotations

from collections.abc import Iterable

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
PROCEDURE_CODE = "64580"


def has_code(concept: object, system: str, code: str) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(
        isinstance(c, dict) and c.get("system") == system and c.get("code") == code for c in concept.get("coding") or ()
    )


def in_scope(draft_orders: Iterable[dict]) -> list[dict]:
    """The draft ServiceRequests whose code carries CPT 64580, in the order the EHR sent them."""
    return [
        r
        for r in draft_orders
        if r.get("resourceType") == "ServiceRequest" and has_code(r.get("code"), CPT_SYSTEM, PROCEDURE_CODE)
    ]
