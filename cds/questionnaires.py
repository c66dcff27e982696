"""Da Vinci DTR questionnaires for CPT 64580, generated from a payer policy version's documentation criteria.

One Questionnaire per policy version, never written by hand: a group per documentation criterion (``linkId`` =
the criterion id) asking whether it was done, when (where the criterion is about a period of time), the details
and a note. The group's text is the criterion as the policy states it and its code names the policy source, so
the clinician sees what the payer asks and why. Each Questionnaire is validated with ``fhir.resources`` (R4B)
before it is served. Canonical ``url`` + ``version`` are stable per policy version: the service's public base URL,
``/fhir/Questionnaire/<plan>-<effective date>``, version = the effective date.
"""

from __future__ import annotations

import re

from fhir.resources.R4B.questionnaire import Questionnaire

from cds.policies import Plan, PolicySet, Version
from cds.rules.attestation import NOT_DOCUMENTATION, PERIODIC  # billing rules left out; criteria about time
from cds.rules.attestation import questionnaire_id as _id_for
from cds.rules.params import Criterion

DETAIL_HINTS = {
    "medication-trial": "The drugs, doses and how long each was taken",
    "stimulation-trial": "The trial's dates and the pain scores before and during it (0-10)",
    "physical-therapy": "The therapy given, how often, and the outcome",
    "psych-evaluation": "Who evaluated, and the conclusion",
    "chronicity": "The diagnosis and since when the pain has lasted",
}
# "Was it done?" reads wrong where a criterion is a state rather than something done
DONE_QUESTIONS = {
    "indication": "Is a qualifying diagnosis documented?",
    "substance-use": "Is it confirmed that there is no active substance use disorder?",
    "chronicity": "Has the pain lasted as long as the policy asks?",
    "not-surgical-candidate": "Is it documented that the patient is not a candidate for spine surgery?",
}
CRITERION_SYSTEM = "urn:cds64580:criterion"
DEFAULT_BASE = "http://127.0.0.1:8080"


def questionnaire_id(plan: Plan, version: Version) -> str:
    return _id_for(plan.id, version.effective_text)


def canonical(base: str | None, plan: Plan, version: Version) -> str:
    return f"{(base or DEFAULT_BASE).rstrip('/')}/fhir/Questionnaire/{questionnaire_id(plan, version)}"


def versioned_canonical(base: str | None, route) -> str:
    """``url|version`` of the questionnaire of the policy a payer route applies (a cds.payers.Route)."""
    return f"{canonical(base, route.plan, route.version)}|{route.version.effective_text}"


def documentation_criteria(version: Version) -> list[Criterion]:
    """The criteria of every pathway of the version a clinician can document, each once, in policy order."""
    seen: dict[str, Criterion] = {}
    for criteria in [version.criteria, *version.pathways.values()]:
        for c in criteria:
            if c.id not in NOT_DOCUMENTATION and c.id not in seen:
                seen[c.id] = c
    return list(seen.values())


_BUILT: dict[tuple[int, str | None], dict] = {}  # per loaded version object (policy sets are cached per folder)


def build(plan: Plan, version: Version, base: str | None) -> dict:
    """The Questionnaire for one policy version, validated as FHIR R4 before it is returned (built once)."""
    key = (id(version), base)
    if key not in _BUILT:
        _BUILT[key] = _build(plan, version, base)
    return _BUILT[key]


def _build(plan: Plan, version: Version, base: str | None) -> dict:
    groups = [_group(c) for c in documentation_criteria(version)]
    resource = {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(plan, version),
        "url": canonical(base, plan, version),
        "version": version.effective_text,
        "name": re.sub(r"[^A-Za-z0-9]", "", f"CPT64580Documentation{plan.id.title()}")[:64],
        "title": f"CPT 64580 documentation for {plan.payer}: {version.title}",
        "status": "active",
        "subjectType": ["Patient"],
        "description": (
            f"What {plan.payer}'s policy ({version.title}, effective {version.effective_text}) asks to be documented "
            "before CPT 64580 (open implantation of a neuromuscular neurostimulator electrode array). Generated "
            "from the policy's criteria; each group names its source."
        ),
        "code": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64580"}],
        "item": groups,
    }
    Questionnaire.model_validate(resource)  # what we serve is valid FHIR R4, or the call fails loudly in tests
    return resource


_SOURCE_KIND = {  # by provenance.ROLES
    "states": "source",
    "background": "background, it does not state this requirement",
    "secondary": "unverified summary, not the payer's own text",
}


def _group(c: Criterion) -> dict:
    # the source that states the criterion; else a background document or a summary, said as such
    source = next((s for s in c.sources if s.states), c.sources[0] if c.sources else None)
    code = {"system": CRITERION_SYSTEM, "code": c.id, "display": (c.title or c.id)[:200]}
    items = [{"linkId": f"{c.id}.done", "text": DONE_QUESTIONS.get(c.id, "Was it done?"), "type": "boolean"}]
    if c.id in PERIODIC:
        items += [
            {"linkId": f"{c.id}.start", "text": "Started on", "type": "date"},
            {"linkId": f"{c.id}.end", "text": "Ended on", "type": "date"},
        ]
    items += [
        {"linkId": f"{c.id}.detail", "text": DETAIL_HINTS.get(c.id, "Details"), "type": "string"},
        {"linkId": f"{c.id}.note", "text": "Note", "type": "text"},
    ]
    text = c.title or c.id
    if source is not None:
        text += f" ({_SOURCE_KIND[source.role]}: {source.title}, {source.url})"
    elif c.source:
        text += f" ({c.source})"
    return {"linkId": c.id, "text": text, "type": "group", "code": [code], "item": items}


def find(policy_set: PolicySet, questionnaire: str) -> tuple[Plan, Version] | None:
    """The plan and version whose Questionnaire has this id or canonical (``url`` or ``url|version``)."""
    wanted, _, version_text = questionnaire.partition("|")
    for plan in policy_set.plans:
        for version in plan.versions:
            ident = questionnaire_id(plan, version)
            named = wanted == ident or wanted.rstrip("/").endswith(f"/Questionnaire/{ident}")  # any base: same id
            if named and version_text in ("", version.effective_text):
                return plan, version
    return None
