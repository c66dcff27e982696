"""What a criterion concludes: a status, the evidence behind it, and one line a person can act on."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import NamedTuple

MAX_CITED = 10  # evidence a criterion lists: the latest ones (a record may hold thousands of matching entries)


class Status(StrEnum):
    MET = "met"  # satisfied by the record and the order as they stand
    NOT_MET = "not-met"  # someone must act: document something or change the order
    UNKNOWN = "unknown"  # the record cannot tell (e.g. a trial without pain scores)
    NOT_APPLICABLE = "not-applicable"  # the requirement does not arise


_STATUS_TEXT = {s: s.value for s in Status}  # a member's value as a plain str, without the enum's descriptor


class Evidence(NamedTuple):
    """A record entry a finding cites (a named tuple: made many times a call, without a frozen dataclass's cost)."""

    reference: str
    date: date | None = None
    note: str = ""

    def describe(self) -> str:
        when = f" ({self.date.isoformat()})" if self.date else ""
        return f"{self.reference}{when}{': ' + self.note if self.note else ''}"


class BillingOption(NamedTuple):
    """One way to bill a surgeon on the order: who, with which modifier, and why (a card offers each; a named
    tuple, made several times a call)."""

    surgeon: str  # the performer reference on the order
    modifier: str  # 80, 82, AS
    label: str


class Finding(NamedTuple):
    """A named tuple, immutable as the frozen dataclass it was: a call makes and copies dozens, and a frozen
    dataclass set each of its 17 fields through ``object.__setattr__`` (3 µs a finding)."""

    criterion: str
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()  # further facts a reader needs (documentation, payment rules)
    order_modifiers: tuple[str, ...] | None = None  # the 62/66 modifiers the order should carry, when it must change
    options: tuple[BillingOption, ...] = ()  # other ways to bill a surgeon, offered as suggestions
    documents: tuple[str, ...] = ()  # what must go with the claim
    info_needed: str | None = None  # the CRD info-needed code when the record lacks what the finding needs
    headline: str = ""  # the card summary when this finding leads its card (else one is made from the reason)
    alternative: tuple[str, str] | None = None  # (sibling CPT code, what it is) the documentation points to
    policy: str = ""
    source: str = ""
    confidence: str = "primary"
    title: str = ""
    attested: bool = False  # judged on a clinician's attestation (a DTR QuestionnaireResponse), not the record
    explained: bool = False  # its reason already says why no source states it for the payer (no second caveat)

    def tagged(self, policy: str, source: str, confidence: str, title: str) -> Finding:
        """A copy tagged with the policy and source it was judged under (every finding of every call is): made
        from the fields in order, without ``_replace``'s keyword look-ups (a third of its cost)."""
        return Finding(*self[:_TAGS], policy, source, confidence, title, *self[_TAGS + 4 :])

    def without_actions(self, **changes) -> Finding:
        """A copy with ``changes`` that asks for nothing on its own: no modifiers to set, no billing options, no
        documents (a finding that informs, or that another settles)."""
        return self._replace(order_modifiers=None, options=(), documents=(), **changes)

    @property
    def needs_action(self) -> bool:
        return self.status in (Status.NOT_MET, Status.UNKNOWN)

    def cited(self, limit: int = MAX_CITED) -> tuple[Evidence, ...]:
        """The evidence to list: all of it, or the latest ``limit`` entries (undated ones last)."""
        if len(self.evidence) <= limit:
            return self.evidence
        return tuple(
            sorted(self.evidence, key=lambda e: (e.date is not None, e.date or date.min), reverse=True)[:limit]
        )

    def to_json(self) -> dict:
        """The ``cds64580.criteria`` entry (ARCHITECTURE.md output conventions); past :data:`MAX_CITED` pieces of
        evidence it lists the latest and says how many there are (``evidenceTotal``)."""
        # the members a reader needs, in this order, each left out when empty; "evidence" always, last when empty
        evidence = [e.reference for e in self.cited()] if self.evidence else []
        item: dict = {}
        if self.criterion:
            item["id"] = self.criterion
        item["status"] = _STATUS_TEXT[self.status]
        if evidence:
            item["evidence"] = evidence
        if len(self.evidence) > MAX_CITED:
            item["evidenceTotal"] = len(self.evidence)
        if self.policy:
            item["policy"] = self.policy
        if self.source:
            item["source"] = self.source
        if self.confidence:
            item["confidence"] = self.confidence
        if self.reason:
            item["reason"] = self.reason
        if self.attested:
            item["attested"] = True
        if not evidence:
            item["evidence"] = evidence
        return item


_TAGS = Finding._fields.index("policy")  # where the four tags begin, in this order (Finding.tagged)
if Finding._fields[_TAGS : _TAGS + 4] != ("policy", "source", "confidence", "title"):
    raise TypeError("Finding.tagged expects policy, source, confidence and title side by side")
