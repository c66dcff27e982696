"""One hook call from request body to response body, with no Flask in sight (the CLI replays through here).

parse the request -> pick the 64580 orders -> resolve prefetch -> run the rules -> cards and systemActions.
A call whose draft orders hold no CPT 64580 order is answered at once with no cards and fetches nothing:
we read a patient's record only to answer about this procedure.
"""

from __future__ import annotations

from cds import hooks, orders, prefetch
from cds.config import Settings
from cds.errors import UnknownService
from cds.fhirclient import FHIRClient
from cds.services import SERVICES, CdsService


def service(service_id: str) -> CdsService:
    try:
        return SERVICES[service_id]
    except KeyError:
        raise UnknownService(
            f"no CDS service '{service_id[:64]}'; GET /cds-services lists the services",
            expression=("id",),
        ) from None


def invoke(
    service_id: str,
    body: object,
    settings: Settings,
    client_factory: prefetch.ClientFactory = FHIRClient,
) -> dict:
    svc = service(service_id)
    request = hooks.parse(svc, body)
    ours = orders.in_scope(request.context.draft_orders)
    if not ours:
        return {"cards": []}
    prefetch.resolve(svc, request, settings, client_factory)
    # The rules core (issue 3) and payer policies (issue 4) turn the resolved data into cards here.
    return {"cards": []}
