"""Time windows a policy's sources do not state: never the sole reason for a warning.

Physical therapy "in the last 12 months" and medication "in the last 24 months" are windows this service assumed
where a policy's text says only that the therapy "has been tried" (Florida Blue MP-623; the Noridian article the
default criteria follow). A card that warns because the record's therapy is 14 months old would rest on a number
no source gives. So where no primary source of the criterion states its window, a finding that is not met only
because of the window is unknown: the card names the earlier therapy and the assumed window, and asks to verify.
The same holds for a psychological evaluation or a stimulation trial older than a window no source states.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

from cds import provenance
from cds.rules import therapy
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import months_before
from cds.rules.findings import Finding, Status

# Criteria with a lookback and a mode without one (``no_window``), with the service's default lookback in months
# (None: none unless the policy sets one).
WINDOWED = {"physical-therapy": 12, "medication-trial": 24, "psych-evaluation": None, "stimulation-trial": 12}

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 9: "nine", 12: "twelve", 18: "eighteen",
          24: "twenty-four", 36: "thirty-six"}  # fmt: skip


def _phrases(months: int) -> re.Pattern:
    """How a source states a lookback: "within the past 12 months", "in the previous twelve months", "within one
    year", "12 months before the request", "the past year". A bare "12 months" is not enough ("pain for at least
    12 months" is how long the pain lasted, not when the therapy was)."""
    counts = [(str(months), "months?")] + ([(_WORDS[months], "months?")] if months in _WORDS else [])
    if months % 12 == 0:
        years = months // 12
        counts += [(str(years), "years?")] + ([(_WORDS[years], "years?")] if years in _WORDS else [])
        counts += [("a", "year")] if years == 1 else []
    span = "|".join(rf"{re.escape(n)}[\s-]*(?:calendar[\s-]+)?{unit}" for n, unit in counts)
    before = r"\b(?:within|in|during|over)\s+(?:the\s+)?(?:(?:past|last|previous|prior|preceding|most\s+recent)\s+)?"
    after = r"[\s,]+(?:prior\s+to|before|preceding)\b"
    alternatives = [rf"{before}(?:{span})\b", rf"\b(?:{span})\b{after}"]
    if months == 12:
        alternatives.append(r"\b(?:past|last|prior|previous|preceding) year\b")
    return re.compile("|".join(alternatives), re.IGNORECASE)


def stated(c: Criterion) -> bool:
    """Whether a primary source's quote of ``c`` states the window the criterion applies (or it applies none)."""
    months = therapy.lookback(c, WINDOWED[c.id])
    if months is None:
        return True
    pattern = _phrases(months)
    return provenance.quoted(c.sources, pattern)


def assumed(c: Criterion) -> int | None:
    """The window in months ``c`` applies that no primary source states (this service's assumption), or None."""
    if c.id not in WINDOWED or stated(c):
        return None
    return therapy.lookback(c, WINDOWED[c.id])


def unstated(
    finding: Finding, ev: Evaluation, c: Criterion, judge: Callable[[Evaluation, Criterion], Finding]
) -> Finding:
    """``finding``, or unknown when it is not met only because of a window no primary source states."""
    if finding.status != Status.NOT_MET or c.id not in WINDOWED or stated(c):
        return finding
    months = therapy.lookback(c, WINDOWED[c.id])
    if months is None:
        return finding
    since = months_before(ev.order_date, months)
    if any(e.date is not None and e.date >= since for e in finding.evidence):
        return finding  # therapy inside the window falls short (too short, too few classes): not the window's doing
    unbounded = judge(ev, replace(c, params=MappingProxyType({**c.params, "no_window": True})))
    if unbounded.status != Status.MET:
        return finding
    return finding.without_actions(
        status=Status.UNKNOWN,
        reason=f"{finding.reason}, but earlier: {unbounded.reason.removeprefix('tried: ')}; the policy's own text "
        f"states no time window ({months} months is this service's assumption): verify",
        evidence=unbounded.evidence,
        notes=(),
        headline="",
    )
