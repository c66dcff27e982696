"""The CDS services we publish at discovery: one on order-sign, one on order-select, both for CPT 64580.

Prefetch templates use only CDS Hooks 2.0 tokens (root-level context fields and the user tokens). They carry
everything the rules always read, so a client that sends prefetch and no ``fhirServer`` still gets a full answer:
the Coverage with its payor Organization (``_include``) and the pain-score Observations. What only some orders
need (the surgeons named on the order, a Coverage or payor the prefetch lacked) is fetched situationally. A key
is *required* when the rules cannot run without it: if it is neither prefetched nor fetchable, the call is
answered 412. Optional keys whose tokens the call does not supply are simply skipped; a *deferred* key the
client did not send is fetched only when the record needs it (pain scores, when there was a trial). A template with a
``fallback`` is retried in that plainer form when the FHIR server refuses it (a server without ``_include``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from cds import codes

# The CRD versions we answer in (two-node, as CRD 2.2 deviations.html asks). 2.0 covers 2.0.x and 2.1 clients:
# their coverage-information value sets have no 'indeterminate'.
CRD_VERSIONS = ("2.0", "2.2")


def crd_form(requested: str | None) -> str:
    """The CRD version an answer is shaped for: "2.0" or "2.2".

    A client that names 2.0 or 2.1 gets the 2.0 form, one that names 2.2 or later the 2.2 form. A client that names
    none gets the 2.0 form: ``davinci-crd.requestedVersion`` first appears in CRD 2.2 (deviations.html, dev-3, which
    makes it mandatory for a client of a service declaring several versions), so its absence means a 2.0/2.1
    client; and the 2.0 form is valid under 2.2 as well (its codes are a subset), so no client is harmed by it.
    """
    if requested is None or requested.startswith(("2.0", "2.1", "1.")):
        return "2.0"
    return "2.2"


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
    fallback: str | None = None  # asked instead when the FHIR server answers ``query`` with an error
    deferred: bool = False  # used when prefetched; otherwise fetched only if this record needs it (situational)


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


ACTIVE_COVERAGE = "Coverage?patient={{context.patientId}}&status=active"
PAIN_SCORES = "Observation?patient={{context.patientId}}&code=" + ",".join(
    f"{include.system}|{code}" for include in codes.PAIN_SCORE.includes for code in sorted(include.codes)
)

PREFETCH = (
    PrefetchTemplate("patient", "Patient/{{context.patientId}}"),
    PrefetchTemplate("coverage", ACTIVE_COVERAGE + "&_include=Coverage:payor", fallback=ACTIVE_COVERAGE),
    PrefetchTemplate("conditions", "Condition?patient={{context.patientId}}"),
    PrefetchTemplate("procedures", "Procedure?patient={{context.patientId}}"),
    PrefetchTemplate("medicationRequests", "MedicationRequest?patient={{context.patientId}}"),
    PrefetchTemplate("medicationStatements", "MedicationStatement?patient={{context.patientId}}"),
    PrefetchTemplate("painScores", PAIN_SCORES, required=False, deferred=True),  # only a trial needs them
    # clinicians' attestations in our DTR questionnaires (cds.rules.attestation)
    PrefetchTemplate(
        "questionnaireResponses", "QuestionnaireResponse?patient={{context.patientId}}&status=completed", required=False
    ),
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
