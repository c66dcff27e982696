"""Criterion parameters: which criteria a policy evaluates, with what thresholds, and where each comes from.

Payer policy files (issue 4) supply these; :data:`DEFAULT_RULESET` is the default clinical policy built from the
domain file's facts, each with its source and confidence mark (``secondary`` = from a secondary summary, so the
card says to verify it against the current policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cds.mpfs import Indicators, load_indicators

NCD_160_7 = "http://www.automatedworldhealth.com/ncd160.7.html"
NCD_160_7_1 = "https://www.cms.gov/medicare-coverage-database/details/ncd-details.aspx?NCDId=63&ncdver=2"
NORIDIAN_PNS = "https://genhealth.ai/policy/cms/04b80f5d-peripheral-nerve-stimulation"
MEDICARE_SUMMARY = "https://neuromodulation.co/does-medicare-cover-peripheral-nerve-stimulators/"
MP_623 = "https://fl-policies.exploremyplan.com/portal/web/medical-policies/-/mp-623?print=1"
FCSO_MODIFIER_62 = "https://medicare.fcso.com/Fee_resources/0508741.asp"
PALMETTO_CO_SURG = (
    "http://www.palmettogba.com/palmetto/providers.nsf/DocsCat/Railroad%20Medicare~Articles~Modifier%20Lookup"
    "~8525746A00550AA3852575A2004FCDCE"
)
CMS_PFS_FILES = "https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files"
CMS_CH12_40_8 = "http://www.anesthesiabilling.org/2016/06/how-to-submit-claim-for-co-surgeons-and.html"
ASSISTANT_RULES = "https://www.karenzupko.com/know-co-surgeon-will-paid-assistant-surgeon-pain/"


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    source: str
    confidence: str = "primary"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class RuleSet:
    """The criteria one policy evaluates for CPT 64580, and the Medicare fee-schedule indicators."""

    policy: str
    criteria: tuple[Criterion, ...]
    mpfs: Indicators

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)


def _c(id: str, title: str, source: str, confidence: str = "primary", **params: Any) -> Criterion:
    return Criterion(id, title, source, confidence, MappingProxyType(params))


def default_ruleset(mpfs: Indicators | None = None) -> RuleSet:
    """The default clinical policy: NCD 160.7 conditions, the MAC PNS article and the Blue MP-623 policy."""
    return RuleSet(
        policy="default-clinical",
        mpfs=mpfs or load_indicators(),
        criteria=(
            _c(
                "indication",
                "Qualifying diagnosis",
                f"{NCD_160_7}; {NORIDIAN_PNS}",
                include=("indication-pain", "indication-neuromuscular"),
                exclude=("fibromyalgia", "polyneuropathy"),
            ),
            _c(
                "substance-use",
                "No active substance use",
                f"{MEDICARE_SUMMARY} (no active substance abuse)",
                "secondary",
                value_sets=("substance-use",),
            ),
            _c(
                "chronicity",
                "Pain for at least 3 months",
                f"{NORIDIAN_PNS} (chronic severe pain >= 3 months); {MP_623}",
                months=3,
            ),
            _c(
                "physical-therapy",
                "Physical therapy tried",
                f"{NORIDIAN_PNS} (appropriate attempts at physical therapy); {MP_623}",
                lookback_months=12,
            ),
            _c(
                "medication-trial",
                "Medication management tried",
                f"{NORIDIAN_PNS} (attempts at medication management); {NCD_160_7}",
                classes=("gabapentinoid", "tca", "snri", "nsaid", "muscle-relaxant"),
                min_classes=1,
            ),
            _c(
                "stimulation-trial",
                "Percutaneous stimulation trial with pain relief",
                f"{NCD_160_7_1}; {NCD_160_7} (relief with a temporarily implanted electrode); "
                f"{MEDICARE_SUMMARY} (>= 50% reduction)",
                "secondary",
                lookback_months=12,
                min_reduction_percent=50,
                baseline_days=90,
                default_trial_days=30,
            ),
            _c(
                "psych-evaluation",
                "Psychological evaluation",
                f"{NCD_160_7} (multidisciplinary screening including psychological evaluation); {MEDICARE_SUMMARY}",
                lookback_months=12,
            ),
            _c(
                "co-surgeon-modifier",
                "Co-surgeon modifier",
                f"{FCSO_MODIFIER_62}; {PALMETTO_CO_SURG}; {CMS_CH12_40_8}",
            ),
            _c("assistant-surgeon", "Assistant at surgery", f"{ASSISTANT_RULES}; {CMS_CH12_40_8}"),
        ),
    )
