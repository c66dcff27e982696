"""What every criterion is evaluated against: the record, one 64580 order, the policy and the "as of" date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds.records import Order, PatientRecord
from cds.rules.params import Criterion, RuleSet


@dataclass(frozen=True)
class Evaluation:
    record: PatientRecord
    order: Order
    ruleset: RuleSet
    as_of: date

    @property
    def order_date(self) -> date:
        """The day the order is placed: its authoredOn when it has one, else the evaluation date."""
        return self.order.authored or self.as_of


__all__ = ["Criterion", "Evaluation"]
