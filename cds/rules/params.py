"""Criterion parameters: which criteria a policy evaluates, with what thresholds, and where each comes from.

The payer policy files (``cds/policies/*.json``) supply these through :mod:`cds.policies`, the one place that turns
policy data into rule sets; this module (the pure core) never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cds.mpfs import FeeSchedule

TITLES = {
    "indication": "Qualifying diagnosis",
    "substance-use": "No active substance use",
    "chronicity": "Pain of long enough duration",
    "physical-therapy": "Physical therapy tried",
    "medication-trial": "Medication management tried",
    "stimulation-trial": "Percutaneous stimulation trial with pain relief",
    "psych-evaluation": "Psychological evaluation",
    "objective-pathology": "Objective pathology (EMG/NCS)",
    "diagnostic-block": "Diagnostic nerve block",
    "co-surgeon-modifier": "Co-surgeon modifier",
    "assistant-surgeon": "Assistant at surgery",
    "global-period": "Global surgical period",
    "not-surgical-candidate": "Not a candidate for spine surgery",
    "multifidus-dysfunction": "Imaging or physiological evidence of multifidus dysfunction",
    "phrenic-nerve": "Intact phrenic nerve and diaphragm",
    "laterality": "Side of the body (RT/LT)",
}


# How each surgeon bills: the claim, not the documentation (one billing card; never a reason coverage is conditional).
BILLING = ("co-surgeon-modifier", "assistant-surgeon", "global-period", "laterality")


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    source: str
    confidence: str = "primary"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    sources: tuple = ()  # cds.provenance.Source objects, primary first (the citation above is made from them)
    borrowed_from: str | None = None  # the pathway this criterion was written for, when applied to another

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class RuleSet:
    """The criteria one policy version evaluates for CPT 64580, and the Medicare fee schedule's releases."""

    policy: str
    criteria: tuple[Criterion, ...]
    fee_schedule: FeeSchedule
    pathway: str = "pain"  # the indication pathway these criteria are for (cds.rules.pathways)

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)
