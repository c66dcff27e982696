"""The CDS services we publish at discovery: one on order-sign, one on order-select, both for CPT 64580.

Prefetch templates use only CDS Hooks 2.0 tokens (root-level context fields and the user tokens); the surgeons
on the order, the payer Organization and pain-score Observations are situational and fetched later. A key
is *required* when the rules cannot run without it: if it is neither prefetched nor fetchable, the call is
answered 412. Optional keys whose tokens the call does not supply are simply skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

CRD_VERSIONS = ("2.2",)

# Card types we can be asked to switch off (CRD dev-4/5), plus the card-count limit.
CONFIGURATION_OPTIONS = (
    {
        "code": "coverage-info",
        "type": "boolean",
        "name": "Coverage Information",
        "description": "Whether CPT 64580 is covered for this patient and payer, whether prior authorization "
        "is needed, and which documentation must accompany it (returned as a systemAction).",
        "default": True,
    },
    {
        "code": "appropriate-use",
        "type": "boolean",
        "name": "Documentation of medical necessity",
        "description": "Cards about conservative-therapy, indication, trial and evaluation documentation the "
        "payer's policy asks for before CPT 64580.",
        "default": True,
    },
    {
        "code": "claim",
        "type": "boolean",
        "name": "Claim guidance",
        "description": "Cards about billing the procedure, such as co-surgeon modifier 62.",
        "default": True,
    },
    {
        "code": "max-cards",
        "type": "integer",
        "name": "Maximum cards",
        "description": "The most cards returned; the most important are kept.",
        "default": 10,
    },
)


@dataclass(frozen=True)
class PrefetchTemplate:
    key: str
    query: str
    required: bool = True


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    prefetch: tuple[PrefetchTemplate, ...]
    information_only: bool = False

    def discovery(self) -> dict:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "usageRequirements": self.usage_requirements,
            "prefetch": {t.key: t.query for t in self.prefetch},
            "extension": {
                "davinci-crd.version": list(CRD_VERSIONS),
                "davinci-crd.configuration-options": [dict(o) for o in CONFIGURATION_OPTIONS],
            },
        }


PREFETCH = (
    PrefetchTemplate("patient", "Patient/{{context.patientId}}"),
    PrefetchTemplate("coverage", "Coverage?patient={{context.patientId}}&status=active"),
    PrefetchTemplate("conditions", "Condition?patient={{context.patientId}}"),
    PrefetchTemplate("procedures", "Procedure?patient={{context.patientId}}"),
    PrefetchTemplate("medicationRequests", "MedicationRequest?patient={{context.patientId}}"),
    PrefetchTemplate("medicationStatements", "MedicationStatement?patient={{context.patientId}}"),
    PrefetchTemplate("practitionerRoles", "PractitionerRole?practitioner={{userPractitionerId}}", required=False),
    PrefetchTemplate("userRole", "PractitionerRole/{{userPractitionerRoleId}}", required=False),
)

USAGE = (
    "Send the CPT 64580 order as a ServiceRequest in context.draftOrders with code "
    "http://www.ama-assn.org/go/cpt|64580, its surgeons as performer references and any modifiers as CPT "
    "codings in orderDetail. Satisfy the prefetch keys or pass fhirServer and fhirAuthorization with read "
    "access (patient/*.read or user/*.read) to Patient, Coverage, Organization, Condition, Procedure, "
    "MedicationRequest, MedicationStatement, Observation, Practitioner and PractitionerRole."
)

SERVICES: MappingProxyType[str, CdsService] = MappingProxyType(
    {
        s.id: s
        for s in (
            CdsService(
                id="cpt64580-order-sign",
                hook="order-sign",
                title="CPT 64580 neurostimulator implant: documentation, modifier and coverage check",
                description="When an order for open implantation of a neuromuscular neurostimulator electrode "
                "array (CPT 64580) is signed, checks conservative-therapy and trial documentation, the "
                "co-surgeon modifier 62, and the payer's coverage and prior-authorization requirements "
                "(Aetna, Blue Cross Blue Shield, Cigna, UnitedHealthcare, Medicare).",
                usage_requirements=USAGE,
                prefetch=PREFETCH,
            ),
            CdsService(
                id="cpt64580-order-select",
                hook="order-select",
                title="CPT 64580 neurostimulator implant: early documentation check (information only)",
                description="When CPT 64580 is selected, shows the same documentation and payer checks as "
                "information, so gaps can be closed before the order is signed. Makes no changes.",
                usage_requirements=USAGE,
                prefetch=PREFETCH,
                information_only=True,
            ),
        )
    }
)


def discovery_document() -> dict:
    return {"services": [s.discovery() for s in SERVICES.values()]}
