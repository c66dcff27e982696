"""The percutaneous stimulation trial, its length and the pain relief it brought; psychological evaluation."""

from __future__ import annotations

from datetime import timedelta
from statistics import fmean

from cds import codes
from cds.rules.context import Criterion, Evaluation
from cds.rules.findings import Evidence, Finding, Status


def stimulation_trial(ev: Evaluation, c: Criterion) -> Finding:
    record, order_date = ev.record, ev.order_date
    prior = [e for e in record.procedure_events(codes.PRIOR_IMPLANT) if e.start and e.start < order_date]
    if prior:
        last = max(prior, key=lambda e: e.start)
        return Finding(
            c.id,
            Status.NOT_APPLICABLE,
            f"revision or replacement: CPT {last.code} on {last.start.isoformat()}, no new trial required",
            (Evidence(last.reference, last.start),),
        )
    lookback = int(c.param("lookback_months", 12))
    found = ev.window(record.procedure_events(codes.STIMULATION_TRIAL), lookback)
    recent = found.recent
    if not recent:
        if found.dated:
            return Finding(c.id, Status.NOT_MET, f"no stimulation trial in the last {lookback} months")
        return Finding(c.id, Status.NOT_MET, "no percutaneous stimulation trial (CPT 64555/64596/64597) documented")
    trial = max(recent, key=lambda e: e.start)
    start = trial.start
    end = trial.end if trial.end and trial.end > start else None
    evidence = [Evidence(trial.reference, start, f"CPT {trial.code}")]

    min_days = c.param("min_days")
    if min_days is not None:
        if end is None:
            return Finding(
                c.id, Status.UNKNOWN, f"trial length not documented (policy asks >= {min_days} days)", tuple(evidence)
            )
        if (end - start).days + 1 < int(min_days):
            return Finding(
                c.id,
                Status.NOT_MET,
                f"trial lasted {(end - start).days + 1} days; the policy asks for at least {min_days}",
                tuple(evidence),
            )

    scores = record.pain_scores()
    baseline_since = start - timedelta(days=int(c.param("baseline_days", 90)))
    trial_end = end or start + timedelta(days=int(c.param("default_trial_days", 30)))
    before = [s for s in scores if baseline_since <= s.start < start]
    during = [s for s in scores if start < s.start <= trial_end]
    if not before or not during:
        missing = "a baseline score before" if not before else "a score during"
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"trial documented but {missing} it is missing (LOINC 72514-3); relief cannot be computed",
            tuple(evidence + [Evidence(s.reference, s.start) for s in before + during]),
        )
    baseline = before[-1]
    mean_during = fmean(s.value for s in during)
    evidence += [Evidence(baseline.reference, baseline.start, f"baseline {baseline.value:g}")]
    evidence += [Evidence(s.reference, s.start, f"during trial {s.value:g}") for s in during]
    if baseline.value <= 0:
        return Finding(c.id, Status.UNKNOWN, "baseline pain score is 0; relief cannot be computed", tuple(evidence))
    percent = round((baseline.value - mean_during) / baseline.value * 100, 1)
    wanted = float(c.param("min_reduction_percent", 50))
    described = f"pain {baseline.value:g} before, {mean_during:.1f} on average during the trial: {percent:g}% relief"
    if percent >= wanted:
        return Finding(c.id, Status.MET, described, tuple(evidence))
    return Finding(c.id, Status.NOT_MET, f"{described}; the policy asks for >= {wanted:g}%", tuple(evidence))


def psych_evaluation(ev: Evaluation, c: Criterion) -> Finding:
    return _documented(ev, c, codes.PSYCH_EVALUATION, "psychological evaluation")


def _documented(ev: Evaluation, c: Criterion, value_set: codes.ValueSet, what: str) -> Finding:
    """A procedure documented before the order (within ``lookback_months`` when the policy sets one)."""
    lookback = c.param("lookback_months")
    found = ev.window(ev.record.procedure_events(value_set), lookback)
    if found.recent:
        last = found.last(found.recent)
        return Finding(
            c.id,
            Status.MET,
            f"{what} on {last.start.isoformat()} (CPT {last.code})",
            (Evidence(last.reference, last.start),),
        )
    if found.dated:
        last = found.last(found.dated)
        return Finding(
            c.id,
            Status.NOT_MET,
            f"last {what} {last.start.isoformat()} is older than {lookback} months",
            (Evidence(last.reference, last.start),),
        )
    if found.undated:
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{what} documented without a date",
            tuple(Evidence(e.reference) for e in found.undated),
        )
    window = f" in the last {lookback} months" if lookback is not None else ""
    return Finding(c.id, Status.NOT_MET, f"no {what}{window} documented")


def objective_pathology(ev: Evaluation, c: Criterion) -> Finding:
    return _documented(ev, c, codes.EMG_NCS, "EMG or nerve conduction study")


def diagnostic_block(ev: Evaluation, c: Criterion) -> Finding:
    return _documented(ev, c, codes.NERVE_BLOCK, "diagnostic nerve block")
