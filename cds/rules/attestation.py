"""Attested answers (Da Vinci DTR): a completed QuestionnaireResponse to our questionnaire counts as documentation.

A criterion the record does not meet can be met by an attestation: the clinician answered ``<criterion>.done`` =
true in the questionnaire of *this* policy version, with dates (where the criterion is about time) that meet the
criterion's parameters. Dates that do not meet them give not-met, with the attested dates. A response to another
policy's (or another version's) questionnaire is not counted, and the finding says so. What the record itself
proves is never overridden by an attestation.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cds.fhirvalues import EARLIEST, as_date, as_end_date, instant
from cds.records import PatientRecord
from cds.rules import therapy, windows
from cds.rules.dates import months_before, with_leeway
from cds.rules.findings import Evidence, Finding, Status
from cds.rules.params import BILLING, Criterion

NOT_DOCUMENTATION = frozenset(BILLING)  # billing rules: nothing a clinician documents
PERIODIC = frozenset({"physical-therapy", "medication-trial", "stimulation-trial", "chronicity", "psych-evaluation"})


@functools.lru_cache(maxsize=1024)
def questionnaire_id(plan_id: str, effective_text: str) -> str:
    """The id of a policy version's questionnaire (also the last segment of its canonical url); policy data, made
    once for each version."""
    return re.sub(r"[^A-Za-z0-9\-.]", "-", f"{plan_id}-{effective_text}")[:64]


@dataclass(frozen=True)
class Attestation:
    response: str  # "QuestionnaireResponse/<id>"
    done: bool | None
    start: date | None
    end: date | None
    author: str
    authored: date | None
    unreadable: tuple[str, ...] = ()  # date answers given that are not calendar dates ("2026-02-30")
    born: date | None = None  # the patient's birth date, when the record gives it
    signed_by: date | None = None  # the last day ``authored`` may mean ("2026": 31 December)
    dated: bool = False  # the response carries an ``authored`` value, readable or not


def for_policy(record: PatientRecord, policy: str) -> tuple[dict[str, Attestation], dict[str, str]]:
    """(attestations of this policy version by criterion, the foreign canonicals answered per criterion).

    ``policy`` is the ruleset's "<plan>@<effective date>"; the newest completed response wins per criterion."""
    ours: dict[str, Attestation] = {}
    foreign: dict[str, str] = {}
    responses = [r for r in record.questionnaire_responses if r.status == "completed" and r.questionnaire]
    if not responses:  # most records: nothing attested
        return ours, foreign
    plan_id, _, effective = policy.partition("@")
    own = questionnaire_id(plan_id, effective)
    born = as_date(record.patient.birthDate) if record.patient else None
    for qr in sorted(responses, key=lambda r: instant(r.authored) or EARLIEST):
        url, _, version = (qr.questionnaire or "").partition("|")
        matches = url.rstrip("/").rsplit("/", 1)[-1] == own and version in ("", effective)
        answers = dict(qr.answers)
        criteria = {link.partition(".")[0] for link in answers}
        for criterion in criteria:
            if not matches:
                foreign[criterion] = qr.questionnaire or ""
                continue
            done = answers.get(f"{criterion}.done")
            author = qr.author.display or qr.author.reference if qr.author else None
            ours[criterion] = Attestation(
                response=f"QuestionnaireResponse/{qr.id}",
                done=done if isinstance(done, bool) else None,
                start=as_date(answers.get(f"{criterion}.start")),
                end=as_date(answers.get(f"{criterion}.end")),
                author=_short(author) or "an unnamed author",
                authored=as_date(qr.authored),
                signed_by=as_end_date(qr.authored),
                dated=qr.authored is not None,
                unreadable=tuple(
                    f"{part} date {str(value)[:40]!r}"
                    for part in ("start", "end")
                    if (value := answers.get(f"{criterion}.{part}")) is not None and as_date(value) is None
                ),
                born=born,
            )
    return ours, foreign


def judge(
    finding: Finding, criterion: Criterion, attestation: Attestation, order_date: date, as_of: date | None = None
) -> Finding:
    """The finding once the attestation is counted (unchanged when the record already meets it or none is made).
    One authored after today (a day's leeway for time zones) is not counted, as a future-dated record is not; a
    replay evaluated as of a past date still counts an attestation made today (the viewer's DTR form)."""
    if finding.status in (Status.MET, Status.NOT_APPLICABLE) or criterion.id in NOT_DOCUMENTATION:
        return finding  # an answer cannot make a criterion that does not apply (pacing, a revision) "met"
    if attestation.done is not True:
        return finding
    today = max(as_of or date.min, datetime.now(UTC).date())
    if attestation.authored and attestation.authored > with_leeway(today):
        note = f"{attestation.response} is dated {attestation.authored.isoformat()}, after today: not counted"
        return finding._replace(notes=(*finding.notes, note))
    who = f"attested by {attestation.author}" + (
        f" on {attestation.authored.isoformat()}" if attestation.authored else ""
    )
    when = _span(attestation)
    evidence = (Evidence(attestation.response, attestation.authored, "attestation"),)
    problem = _problem(criterion, attestation, order_date, as_of or today)
    months = None if problem else _before_window(criterion, attestation, order_date)
    if months is not None and windows.assumed(criterion) is not None:  # a window no source states never warns
        reason = (
            f"{who}{': ' + when if when else ''}, before the {months}-month window this service assumes; the "
            "policy's own text states no time window: verify"
        )
        return finding.without_actions(
            status=Status.UNKNOWN, reason=reason, evidence=evidence, attested=True, headline=""
        )
    if months is not None:
        problem = f"it ended before the policy's {months}-month lookback from the order"
    if problem:
        reason = f"{who}{': ' + when if when else ''}, but {problem}"
        return finding._replace(status=Status.NOT_MET, reason=reason, evidence=evidence, attested=True)
    return finding._replace(status=Status.MET, reason=f"{who}{': ' + when if when else ''}", evidence=evidence,
                            attested=True, info_needed=None)  # fmt: skip


def _span(a: Attestation) -> str:
    if a.start and a.end:
        return f"{a.start.isoformat()} to {a.end.isoformat()}"
    return (a.start or a.end).isoformat() if (a.start or a.end) else ""


def _before_window(criterion: Criterion, a: Attestation, order_date: date) -> int | None:
    """The criterion's lookback in months when the attested therapy ended before it, else None."""
    lookback, last = therapy.lookback(criterion, None), a.end or a.start
    return lookback if lookback is not None and last and last < months_before(order_date, lookback) else None


def _problem(criterion: Criterion, a: Attestation, order_date: date, today: date) -> str | None:
    """Why the attested dates do not meet the criterion's parameters, or None when they do. One signs for what has
    happened, not what will: by the day it was signed, or, when the response has no date, by ``today``, the day of
    the evaluation (a replay's as-of date)."""
    if a.unreadable:  # a date was given but cannot be read: never judged as if it had not been given
        return f"the {' and '.join(a.unreadable)} is not a calendar date"
    if criterion.id in PERIODIC and not (a.start or a.end):
        return "no dates were given and the policy's criterion is about when"
    first, last = a.start or a.end, a.end or a.start
    if first and last and last < first:
        return "the end date is before the start date"
    if first and first > order_date:
        return f"it starts after the order ({order_date.isoformat()})"
    if last and a.signed_by and last > with_leeway(a.signed_by):
        signed = a.authored.isoformat() if a.authored == a.signed_by else f"by {a.signed_by.isoformat()}"
        return f"the dates run past the day it was signed ({signed})"
    if last and not a.signed_by and last > with_leeway(today):
        undated = "no readable date" if a.dated else "no date"
        return f"the dates run past the day of this evaluation ({today.isoformat()}), and the response has {undated}"
    if first and a.born and first < a.born:
        return f"it starts before the patient's birth date ({a.born.isoformat()})"
    months = criterion.param("months") if criterion.id == "chronicity" else None
    if months is not None and first and first > months_before(order_date, int(months)):
        return f"it began less than {months} months before the order"
    return None


def foreign_note(finding: Finding, canonical: str) -> Finding:
    note = (
        f"A completed QuestionnaireResponse answers another policy's questionnaire ({canonical}); it is not counted "
        "for this payer's policy."
    )
    return finding._replace(notes=(*finding.notes, note))


def _short(name: str | None, limit: int = 80) -> str | None:
    """An author's name as a reason quotes it: a display longer than any name is cut, not repeated on every
    attested criterion of every card (and into the audit row)."""
    return name if name is None or len(name) <= limit else name[: limit - 1] + "…"
