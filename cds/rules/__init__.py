"""The pure 64580 rules core: a record, an order, a policy and a date in; findings out.

No Flask, no I/O, no clock: the same inputs always give the same findings, so cases replay exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

from cds.records import Order, PatientRecord
from cds.rules import diagnosis, surgeons, therapy, trial
from cds.rules.context import Criterion, Evaluation
from cds.rules.diagnosis import indication_group
from cds.rules.findings import Evidence, Finding, Status
from cds.rules.params import RuleSet, default_ruleset

CRITERIA: dict[str, Callable[[Evaluation, Criterion], Finding]] = {
    "indication": diagnosis.indication,
    "substance-use": diagnosis.substance_use,
    "chronicity": diagnosis.chronicity,
    "physical-therapy": therapy.physical_therapy,
    "medication-trial": therapy.medication_trial,
    "stimulation-trial": trial.stimulation_trial,
    "psych-evaluation": trial.psych_evaluation,
    "objective-pathology": trial.objective_pathology,
    "diagnostic-block": trial.diagnostic_block,
    "co-surgeon-modifier": surgeons.co_surgeon_modifier,
    "assistant-surgeon": surgeons.assistant_surgeon,
}


def evaluate(record: PatientRecord, order: Order, ruleset: RuleSet, as_of: date) -> list[Finding]:
    """Every criterion of ``ruleset`` for ``order``, in the policy's order, each tagged with its source."""
    ev = Evaluation(record, order, ruleset, as_of)
    findings = []
    for criterion in ruleset.criteria:
        finding = CRITERIA[criterion.id](ev, criterion)
        findings.append(
            replace(
                finding,
                policy=ruleset.policy,
                source=criterion.source,
                confidence=criterion.confidence,
                title=criterion.title,
            )
        )
    return findings


__all__ = ["CRITERIA", "Evidence", "Finding", "RuleSet", "Status", "default_ruleset", "evaluate", "indication_group"]
