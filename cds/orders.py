"""Which draft orders are ours: ServiceRequests for CPT 64580. Every other draft order is left alone."""

from __future__ import annotations

from collections.abc import Iterable

from cds.codes import THIS_PROCEDURE, codings


def in_scope(draft_orders: Iterable[dict]) -> list[dict]:
    """The draft ServiceRequests whose code carries CPT 64580, in the order the EHR sent them."""
    return [
        r
        for r in draft_orders
        if r.get("resourceType") == "ServiceRequest" and THIS_PROCEDURE.match_codings(codings(r.get("code")))
    ]
