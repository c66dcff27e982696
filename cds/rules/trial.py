"""The percutaneous stimulation trial, its length and the pain relief it brought; psychological evaluation."""

from __future__ import annotations

import re
from statistics import fmean

from cds import codes, provenance
from cds.records import Event
from cds.rules import pathways, therapy
from cds.rules.context import Criterion, Evaluation
from cds.rules.dates import shifted
from cds.rules.findings import Evidence, Finding, Status

_OTHER_SYSTEMS = {"64581": "a sacral nerve array", "64582": "a hypoglossal nerve system", "64590": "a generator alone"}


_PERMANENT = re.compile(r"\bpermanent\b", re.IGNORECASE)
_NOT_PERMANENT = re.compile(r"\btrial\b|non-?\s?permanent|temporary|before permanent|prior to permanent", re.IGNORECASE)


def _permanent_64555(e: Event) -> bool:
    """A 64555 the record calls permanent (and not a trial, or 'before permanent')."""
    return bool(_PERMANENT.search(e.display)) and not _NOT_PERMANENT.search(e.display)


LATERALITY = frozenset({"7771000", "24028007", "51440002"})  # SNOMED CT left, right, both


def same_site(a: frozenset, b: frozenset) -> bool:
    """Two coded body sites are one target unless their structures, or their sides, differ (uncoded: unknown)."""
    structures_a = {c for _s, c in a if c not in LATERALITY}
    structures_b = {c for _s, c in b if c not in LATERALITY}
    sides_a = {c for _s, c in a if c in LATERALITY}
    sides_b = {c for _s, c in b if c in LATERALITY}
    if structures_a and structures_b and not structures_a & structures_b:
        return False
    return not (sides_a and sides_b and not sides_a & sides_b)


def prior_system(ev: Evaluation) -> Event | None:
    """The earlier neuromuscular or peripheral array this order revises or replaces, if any.

    An earlier 64580 or 64575, a percutaneous integrated system (64596/64597) or a 64555 documented as permanent,
    placed before the order, not removed since (64585), and on the same body site when both are coded. Sacral
    (64581), hypoglossal (64582-64584) and gastric systems never count, nor does a generator (64590) alone.
    """
    record, order_date = ev.record, ev.order_date
    prior = [e for e in record.procedure_events(codes.PRIOR_IMPLANT) if e.start and e.start < order_date]
    prior += [
        e
        for e in record.procedure_events(codes.STIMULATION_TRIAL)
        if e.start and e.start < order_date and _permanent_64555(e)
    ]
    removals = [e for e in record.procedure_events(codes.ARRAY_REMOVAL) if e.start and e.start < order_date]

    kept = [
        p
        for p in prior
        if same_site(ev.order.sites, p.sites)
        and not any(r.start > p.start and same_site(r.sites, p.sites) for r in removals)
    ]
    return max(kept, key=lambda e: e.start) if kept else None


def _other_systems(ev: Evaluation) -> tuple[str, ...]:
    return tuple(
        f"CPT {e.code} on {e.start.isoformat()} ({_OTHER_SYSTEMS[e.code]}) does not make this a revision"
        for e in ev.record.procedure_events(codes.NEUROSTIMULATOR_FAMILY)
        if e.code in _OTHER_SYSTEMS and e.start and e.start < ev.order_date
    )


def stimulation_trial(ev: Evaluation, c: Criterion) -> Finding:
    record = ev.record
    if ev.pathway.id == pathways.RESTORATIVE:
        return _restorative_trial(c)
    if ev.pathway.phrenic:
        return Finding(
            c.id,
            Status.NOT_APPLICABLE,
            "diaphragm pacing has no percutaneous trial; NCD 160.19 asks for an intact phrenic nerve and diaphragm",
        )
    if ev.pathway.id == pathways.NEUROMUSCULAR:
        return Finding(
            c.id,
            Status.NOT_APPLICABLE,
            "the policy's trial measures pain relief; for spasm or atrophy no source read says what a trial must "
            "show: verify with the payer",
        )
    revised = prior_system(ev)
    if revised is not None:
        what = "a permanent 64555" if revised.code == "64555" else f"CPT {revised.code}"
        found = f"revision or replacement of {what} placed on {revised.start.isoformat()} ({revised.reference}), not removed since"
        evidence = (Evidence(revised.reference, revised.start),)
        if provenance.quoted(c.sources, _NO_TRIAL_FOR_REVISION):
            return Finding(c.id, Status.NOT_APPLICABLE, f"{found}: the policy requires no new trial", evidence)
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{found}: whether a new trial is needed is not stated in the payer's own text: verify",
            evidence,
            explained=True,
        )
    lookback = therapy.lookback(c, 12)
    trials = [e for e in record.procedure_events(codes.STIMULATION_TRIAL) if not _permanent_64555(e)]
    found = ev.window(trials, lookback)
    recent = found.recent
    if not recent:
        notes = _other_systems(ev)
        if found.dated:
            return Finding(c.id, Status.NOT_MET, f"no stimulation trial in the last {lookback} months", notes=notes)
        return Finding(c.id, Status.NOT_MET, "no percutaneous stimulation trial (CPT 64555) documented", notes=notes)
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
    baseline_since = shifted(start, -int(c.param("baseline_days", 90)))
    trial_end = end or shifted(start, int(c.param("default_trial_days", 30)))
    before = [s for s in scores if baseline_since <= s.start < start]
    during = [s for s in scores if start < s.start <= trial_end]
    off_scale = _off_scale([s for s in record.off_scale_pain() if baseline_since <= s.start <= trial_end])
    if not before or not during:
        missing = "a baseline score before" if not before else "a score during"
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"trial documented but {missing} it is missing (LOINC 72514-3 or 38208-5); relief cannot be computed",
            tuple(evidence + [Evidence(s.reference, s.start) for s in before + during]),
            notes=off_scale,
        )
    baseline = before[-1]
    mean_during = fmean(s.value for s in during)
    evidence += [Evidence(baseline.reference, baseline.start, f"baseline {baseline.value:g}")]
    evidence += [Evidence(s.reference, s.start, f"during trial {s.value:g}") for s in during]
    if baseline.value <= 0:
        reason = "baseline pain score is 0; relief cannot be computed"
        return Finding(c.id, Status.UNKNOWN, reason, tuple(evidence), notes=off_scale)
    percent = round((baseline.value - mean_during) / baseline.value * 100, 1)
    wanted = float(c.param("min_reduction_percent", 50))
    described = f"pain {baseline.value:g} before, {mean_during:.1f} on average during the trial: {percent:g}% relief"
    if percent >= wanted:
        return Finding(c.id, Status.MET, described, tuple(evidence), notes=off_scale)
    if not _states_percent(c, wanted):  # the number comes from a summary or another plan's policy: it informs
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"{described}; >= {wanted:g}% is read only in a secondary summary, not in the payer's own text: verify",
            tuple(evidence),
            notes=off_scale,
        )
    return Finding(
        c.id, Status.NOT_MET, f"{described}; the policy asks for >= {wanted:g}%", tuple(evidence), notes=off_scale
    )


_OFF_SCALE_NAMED = 3


def _off_scale(readings: list) -> tuple[str, ...]:
    """Notes naming the trial's pain readings off the 0-10 scale: the first few, then how many more (a note a
    reading, unbounded, made a card as long as the record)."""
    notes = tuple(
        f"{s.reference}: pain {s.value:g} is off the 0-10 scale, not used; correct the entry"
        for s in readings[:_OFF_SCALE_NAMED]
    )
    rest = len(readings) - _OFF_SCALE_NAMED
    if rest <= 0:
        return notes
    are = "readings are" if rest > 1 else "reading is"
    return (*notes, f"{rest} more pain {are} off the 0-10 scale around the trial, not used")


# MP-623: "(revision or replacement of the pulse generator, electrodes or receiver does not require a trial)"
_NO_TRIAL_FOR_REVISION = re.compile(r"revision[^.;]*(does not|doesn't) require a trial", re.IGNORECASE)


def _states_percent(c: Criterion, percent: float) -> bool:
    """Whether a primary source of ``c`` quotes the relief threshold itself ("50%", "50 percent")."""
    pattern = re.compile(rf"(?<![\d.]){re.escape(f'{percent:g}')}\s*(%|percent)", re.IGNORECASE)
    return provenance.quoted(c.sources, pattern)


def _restorative_trial(c: Criterion) -> Finding:
    """Restorative stimulation: never ``not-met`` for a missing 64555. Only MP-623 says what stands in for the trial
    (intra-operative multifidus contraction); no primary text read says either way whether one is trialled. Where
    the policy text is not confirmed as the payer's own (secondary confidence), the trial is not waived on its word:
    it stays unknown, saying what the text accepts."""
    if c.param("intraoperative_contraction"):
        accepts = "accepts intra-operative multifidus contraction instead of a percutaneous trial"
        if c.confidence == "primary":
            return Finding(
                c.id,
                Status.NOT_APPLICABLE,
                f"restorative stimulation: the policy {accepts}; document the contraction in the operative note",
            )
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"restorative stimulation: the policy text read {accepts}, but it is not confirmed as this payer's own: "
            "verify with the payer, and document the contraction in the operative note",
        )
    return Finding(
        c.id,
        Status.UNKNOWN,
        "restorative stimulation: this policy does not say whether a percutaneous trial is needed or what it "
        "accepts instead (for example intra-operative multifidus contraction): verify with the payer",
    )


def not_surgical_candidate(ev: Evaluation, c: Criterion) -> Finding:
    return Finding(
        c.id,
        Status.UNKNOWN,
        "the record must say the patient is not a candidate for spine surgery (the surgeon's note); this is not "
        "kept as coded data",
    )


def multifidus_dysfunction(ev: Evaluation, c: Criterion) -> Finding:
    """Imaging (lumbar MRI or CT) or physiological testing (needle EMG) behind the M62.85 diagnosis, as ReActiv8's
    indication words it. A nerve conduction study alone tests nerves, not the muscle: it does not count."""
    lookback = int(c.param("lookback_months", 24))
    tests = [*ev.record.procedure_events(codes.LUMBAR_IMAGING), *ev.record.procedure_events(codes.NEEDLE_EMG)]
    found = ev.window(tests, lookback)
    if found.recent:
        last = found.last(found.recent)
        what = "lumbar imaging" if codes.LUMBAR_IMAGING.matches(codes.CPT, last.code) else "needle EMG"
        return Finding(
            c.id,
            Status.MET,
            f"{what} on {last.start.isoformat()} (CPT {last.code}) behind the multifidus dysfunction diagnosis; its "
            "report must show the dysfunction: keep it with the record",
            (Evidence(last.reference, last.start),),
        )
    return Finding(
        c.id,
        Status.UNKNOWN,
        f"no lumbar MRI or CT, or needle EMG, in the last {lookback} months: document the imaging or testing that "
        "shows the multifidus dysfunction",
    )


def phrenic_nerve(ev: Evaluation, c: Criterion) -> Finding:
    """NCD 160.19: pacing works only with an intact phrenic nerve and diaphragm, shown by testing."""
    if not ev.pathway.phrenic:
        return Finding(c.id, Status.NOT_APPLICABLE, "not diaphragm pacing")
    found = ev.window(ev.record.procedure_events(codes.EMG_NCS), int(c.param("lookback_months", 12)))
    if found.recent:
        last = found.last(found.recent)
        return Finding(
            c.id,
            Status.UNKNOWN,
            f"nerve conduction or EMG on {last.start.isoformat()} (CPT {last.code}): check that it shows an intact "
            "phrenic nerve and a diaphragm that moves with stimulation",
            (Evidence(last.reference, last.start),),
        )
    lookback = int(c.param("lookback_months", 12))
    return Finding(  # fluoroscopy (the diaphragm moving with stimulation) also shows it, and is not read here
        c.id,
        Status.UNKNOWN,
        f"no phrenic nerve conduction study or EMG in the last {lookback} months; fluoroscopy showing the diaphragm "
        "move with stimulation also counts",
    )


def psych_evaluation(ev: Evaluation, c: Criterion) -> Finding:
    return _documented(ev, c, codes.PSYCH_EVALUATION, "psychological evaluation")


def _documented(ev: Evaluation, c: Criterion, value_set: codes.ValueSet, what: str) -> Finding:
    """A procedure documented before the order (within ``lookback_months`` when the policy sets one)."""
    lookback = therapy.lookback(c, None)
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
    """MP-623 asks for "objective evidence of pathology (e.g., electromyography)": EMG is one example, so a record
    without an EMG or nerve conduction study has not shown the evidence missing (imaging or examination findings
    may be it). That is unknown, to verify, never a warning on its own."""
    found = _documented(ev, c, codes.EMG_NCS, "EMG or nerve conduction study")
    if found.status != Status.NOT_MET:
        return found
    # "EMG being one example" is MP-623's wording: said only where a source of this policy gives it
    example = "EMG being one example" if provenance.quoted(c.sources, _EMG_EXAMPLE, stating=False) else "naming no test"
    return found.without_actions(
        status=Status.UNKNOWN,
        reason=f"{found.reason}; the policy asks for objective evidence of pathology, {example}: "
        "verify that other evidence (imaging, examination findings) is documented",
    )


_EMG_EXAMPLE = re.compile(r"e\.g\.,?\s*electromyography", re.IGNORECASE)


def diagnostic_block(ev: Evaluation, c: Criterion) -> Finding:
    return _documented(ev, c, codes.NERVE_BLOCK, "diagnostic nerve block")
