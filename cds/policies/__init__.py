"""Payer policies as data: load, validate and query the policy files in this folder.

Each ``*.json`` here is one payer family (``schemas/policy.schema.json``): plans with match rules and dated
versions. Files are validated once, at start-up; a bad file raises :class:`PolicyError` naming the file and the
field, and the service does not start. ``cds policies check [DIR]`` runs the same validation for analysts.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType

from cds import mpfs, provenance, schemas
from cds.errors import SchemaViolation
from cds.provenance import Source
from cds.rules.params import BILLING, TITLES, Criterion, RuleSet

POLICY_DIR = Path(__file__).resolve().parent
GROUPS = ("pain", "neuromuscular")  # the pathways every version states a coverage stance for
PATHWAYS = ("pain", "restorative", "neuromuscular")
# Where the criteria of a derived pathway come from, when the policy itself does not state that pathway. A trial's
# eligibility list and a society guideline are background to a payer's requirement: these criteria never warn.
RESTORATIVE_SOURCES = (
    Source(
        "https://pmc.ncbi.nlm.nih.gov/articles/PMC8456956/",
        "peer-reviewed",
        "Long-Term Outcomes of Restorative Neurostimulation in Patients With Refractory Chronic Low Back Pain "
        "Secondary to Multifidus Dysfunction: Four-Year Results of the ReActiv8-A Clinical Trial (Neuromodulation)",
        "Eligible patients had disabling CLBP (low back pain Numeric Rating Scale [NRS] \u22656; Oswestry Disability "
        "Index [ODI] \u226525), no indications for spine surgery or spinal cord stimulation, and failed conventional "
        "management including at least physical therapy and medications for low back pain.",
        "2026-11-27",
        "Materials and Methods",
        context=True,
    ),
    Source(
        "https://scholars.duke.edu/publication/1696141",
        "peer-reviewed",
        "ISASS 2025 guideline update: restorative neurostimulation (Lorio et al., Int J Spine Surg)",
        "As of October 2024, the introduction of the \u2026 ICD-10-CM code M62.85 provides formal classification of "
        "this disease entity",
        "2026-11-27",
        context=True,
    ),
    Source(  # FDA's indication for use states all three; FDA's own copy was not found, so this one is secondary
        "https://vdocuments.net/summary-of-safety-and-effectiveness-data-ssed-2020-06-22-draft-reactiv8-fda.html",
        "secondary",
        "Summary of Safety and Effectiveness Data, ReActiv8 System (PMA P190021, approved June 16, 2020): a copy "
        "headed 'DRAFT' on vdocuments.net, not FDA's own file",
        "as an aid in the management of intractable chronic low back pain associated with multifidus muscle "
        "dysfunction, as evidenced by imaging or physiological testing in adults who have failed therapy including "
        "pain medications and physical therapy and are not candidates for spine surgery.",
        "2026-11-28",
        "Indications for use",
    ),
)
PHRENIC_SOURCES = (
    Source(
        "https://www.cms.gov/medicare-coverage-database/view/ncd.aspx?NCDId=244&ncdver=1",
        "cms",
        "NCD 160.19 Phrenic Nerve Stimulator",
        "an implanted phrenic nerve stimulator can be effective only if the patient has an intact phrenic nerve "
        "and diaphragm.",
        "2026-11-27",
    ),
)


@dataclass(frozen=True)
class Fact:
    """One sourced statement of a policy version: what ``cds policies sources`` lists and the viewer shows."""

    plan: str
    version: str
    field: str
    sources: tuple[Source, ...]


class PolicyError(ValueError):
    """A policy file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Statement:
    """A sourced statement: a stance, a document to send, or a note."""

    value: str
    text: str
    sources: tuple[Source, ...]
    purpose: str | None = None
    unverified: str = ""  # no acceptable source: where it was seen instead
    pathways: tuple[str, ...] = ()  # the indication pathways it is written for; empty: every pathway

    def holds_on(self, pathway: str) -> bool:
        return not self.pathways or pathway in self.pathways

    @property
    def confidence(self) -> str:
        return provenance.confidence(self.sources)

    @property
    def source(self) -> str:
        return provenance.citation(self.sources)

    @property
    def unstated_because(self) -> str:
        return provenance.unstated_because(s.role for s in self.sources)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(s.url for s in self.sources)


@dataclass(frozen=True)
class MatchRule:
    priority: int
    identifier: tuple[str, str] | None = None
    name: re.Pattern | None = None
    coverage_type: tuple[str, str, bool] | None = None
    coverage_type_if_any: tuple[tuple[str, str, bool], ...] = ()
    because: str | None = None


@dataclass(frozen=True)
class Version:
    effective: date
    effective_text: str
    effective_note: str | None
    last_reviewed: str
    title: str
    coverage: MappingProxyType  # group -> Statement
    prior_authorization: Statement
    criteria: tuple[Criterion, ...]
    documentation: tuple[Statement, ...]
    notes: tuple[Statement, ...]
    plan_id: str = ""
    pathways: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # id -> criteria
    stated_pathways: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # as written in the file

    def ruleset(self, pathway: str = "pain", fee_schedule: mpfs.FeeSchedule | None = None) -> RuleSet:
        """The criteria this version evaluates on ``pathway``, with the Medicare fee schedule."""
        return RuleSet(
            policy=f"{self.plan_id}@{self.effective_text}",
            criteria=self.pathways.get(pathway, self.criteria),
            fee_schedule=fee_schedule or mpfs.load(),
            pathway=pathway,
        )

    def stance(self, pathway: str) -> Statement:
        """The coverage stance on ``pathway``; a pathway the policy does not address says so, as unknown."""
        if pathway in self.coverage:
            return self.coverage[pathway]
        text = "This policy does not address restorative stimulation (lumbar multifidus): coverage not determined"
        return Statement("unknown", text, ())

    def facts(self) -> list[Fact]:
        """Every sourced statement of this version, in file order."""
        version = self.effective_text
        out = [Fact(self.plan_id, version, f"coverage.{g}", s.sources) for g, s in self.coverage.items() if s.sources]
        if self.prior_authorization.sources:
            out.append(Fact(self.plan_id, version, "prior_authorization", self.prior_authorization.sources))
        for pathway, criteria in self.stated_pathways.items():
            where = "criteria" if pathway == "pain" else f"pathways.{pathway}.criteria"
            out += [Fact(self.plan_id, version, f"{where}.{c.id}", c.sources) for c in criteria if c.sources]
        # a pathway the file does not state is derived in code: its criteria with sources of their own are facts too
        lent = {(c.id, c.sources) for c in self.pathways.get("pain", ())}
        for pathway in (p for p in PATHWAYS if p in self.pathways and p not in self.stated_pathways):
            out += [
                Fact(self.plan_id, version, f"pathways.{pathway}.criteria.{c.id} (derived)", c.sources)
                for c in self.pathways[pathway]
                if c.sources and (c.id, c.sources) not in lent
            ]
        out += [Fact(self.plan_id, version, f"documentation[{i}]", d.sources) for i, d in enumerate(self.documentation)]
        out += [Fact(self.plan_id, version, f"notes[{i}]", n.sources) for i, n in enumerate(self.notes)]
        return out


@dataclass(frozen=True)
class Plan:
    id: str
    payer: str
    family: str
    file: str
    default: bool
    match: tuple[MatchRule, ...]
    versions: tuple[Version, ...] = field(repr=False)

    def version_at(self, as_of: date) -> Version | None:
        """The version in force on ``as_of``: the latest that took effect on or before it."""
        in_force = [v for v in self.versions if v.effective <= as_of]
        return in_force[-1] if in_force else None

    def current(self) -> Version:
        return self.versions[-1]


@dataclass(frozen=True)
class PolicySet:
    plans: tuple[Plan, ...]
    directory: Path

    @functools.cached_property
    def default(self) -> Plan:
        return next(p for p in self.plans if p.default)

    @functools.cached_property
    def by_priority(self) -> tuple[tuple[int, Plan, MatchRule], ...]:
        """Every plan's match rules, highest priority first (in file order within a priority): routing stops at
        the first priority that matches."""
        rules = [(rule.priority, plan, rule) for plan in self.plans for rule in plan.match]
        return tuple(sorted(rules, key=lambda entry: -entry[0]))

    def plan(self, plan_id: str) -> Plan:
        return next(p for p in self.plans if p.id == plan_id)

    def facts(self) -> list[Fact]:
        return [f for plan in self.plans for version in plan.versions for f in version.facts()]


def load(directory: str | Path | None = None) -> PolicySet:
    """The policies in ``directory`` (the package's own by default), validated; cached per folder."""
    return _load(_resolved(directory or POLICY_DIR))


@functools.lru_cache(maxsize=64)
def _resolved(directory: str | Path) -> Path:
    """A folder's real path, once: every hook call asks for the same folder, and resolving it walks the disk."""
    return Path(directory).resolve()


@functools.cache
def _load(directory: Path) -> PolicySet:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PolicyError(f"{directory}: no policy files (*.json)")
    plans: list[Plan] = []
    for path in files:
        plans.extend(load_file(path))
    ids = [p.id for p in plans]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise PolicyError(f"{directory}: plan id used twice: {', '.join(duplicates)}")
    defaults = [p.id for p in plans if p.default]
    if len(defaults) != 1:
        raise PolicyError(f"{directory}: exactly one plan must be the default policy (found {len(defaults)})")
    return PolicySet(tuple(plans), directory)


def load_file(path: Path) -> list[Plan]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{path.name}: not readable JSON ({exc})") from None
    try:
        schemas.validate("policy", data)
    except SchemaViolation as exc:
        _expr, message = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise PolicyError(f"{path.name}: {message}{more}") from None
    plans = [_plan(path.name, data["family"], i, raw) for i, raw in enumerate(data["plans"])]
    for plan in plans:
        for version in plan.versions:
            for fact in version.facts():
                for source in fact.sources:
                    if provenance.refused(source.url, source.title):
                        raise PolicyError(
                            f"{path.name}: {plan.id}@{version.effective_text} {fact.field}: {source.url} is an "
                            "AI-generated answer page, never a source"
                        )
    return plans


def _plan(file: str, family: str, index: int, raw: dict) -> Plan:
    where = f"{file}: plans[{index}]"
    versions = []
    for j, v in enumerate(raw["versions"]):
        lists = {
            "criteria": v["criteria"],
            **{f"pathways.{k}": p["criteria"] for k, p in v.get("pathways", {}).items()},
        }
        for name, listed in lists.items():
            ids = [c["id"] for c in listed]
            if len(ids) != len(set(ids)):
                raise PolicyError(f"{where}.versions[{j}].{name}: a criterion is listed twice")
        try:
            versions.append(_version(raw["id"], v))
        except ValueError:
            raise PolicyError(f"{where}.versions[{j}]: effective or last_reviewed is not a real date") from None
    versions.sort(key=lambda v: v.effective)
    dates = [v.effective for v in versions]
    if len(dates) != len(set(dates)):
        raise PolicyError(f"{where}.versions: two versions take effect on the same date")
    if raw.get("default") and raw["match"]:
        raise PolicyError(f"{where}.match: the default policy matches no payer; leave match empty")
    return Plan(
        id=raw["id"],
        payer=raw["payer"],
        family=family,
        file=file,
        default=bool(raw.get("default")),
        match=tuple(_rule(f"{where}.match[{k}]", r) for k, r in enumerate(raw["match"])),
        versions=tuple(versions),
    )


def _rule(where: str, raw: dict) -> MatchRule:
    name = None
    if "name" in raw:
        try:
            name = re.compile(raw["name"], re.IGNORECASE)
        except re.error as exc:
            raise PolicyError(f"{where}.name: not a valid regular expression ({exc})") from None
    identifier = (raw["identifier"]["system"], raw["identifier"]["value"]) if "identifier" in raw else None
    default_priority = 100 if identifier else 10 if name else 5
    return MatchRule(
        raw.get("priority", default_priority),
        identifier,
        name,
        _type(raw.get("coverage_type")),
        tuple(_type(t) for t in raw.get("coverage_type_if_any", ())),
        raw.get("because"),
    )


def _type(raw: dict | None) -> tuple[str, str, bool] | None:
    return (raw["system"], raw["code"], bool(raw.get("prefix"))) if raw else None


def _statement(raw: dict, value_key: str, text_key: str) -> Statement:
    sources = provenance.parse(raw.get("sources", []))
    return Statement(
        raw.get(value_key, ""),
        raw[text_key],
        sources,
        raw.get("purpose"),
        raw.get("unverified", ""),
        tuple(raw.get("pathways", ())),
    )


def sourced_criterion(cid: str, sources: tuple[Source, ...], params: dict | None = None, title: str = "") -> Criterion:
    """A criterion whose source text and confidence come from its sources (the one place that builds them)."""
    return Criterion(
        cid,
        title or TITLES[cid],
        provenance.citation(sources),
        provenance.confidence(sources),
        MappingProxyType(params or {}),
        sources,
    )


def _criteria(raw: list[dict]) -> tuple[Criterion, ...]:
    out = []
    for c in raw:
        if "unverified" in c:  # seen only where no source is: evaluated, never not-met (secondary confidence)
            params = MappingProxyType(c.get("params", {}))
            citation = f"{provenance.NO_SOURCE}{c['unverified']}"
            out.append(Criterion(c["id"], c.get("title") or TITLES[c["id"]], citation, "secondary", params))
            continue
        out.append(sourced_criterion(c["id"], provenance.parse(c["sources"]), c.get("params"), c.get("title", "")))
    return tuple(out)


def _with(c: Criterion, **params) -> Criterion:
    return replace(c, params=MappingProxyType({**c.params, **params}))


def derived_restorative(pain: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
    """Restorative criteria for a policy that states none: its conservative-care and billing criteria, the FDA
    indication's own conditions, and a trial criterion that can never be ``not-met`` (the trial is percutaneous)."""
    by_id = {c.id: c for c in pain}
    out = [sourced_criterion("indication", RESTORATIVE_SOURCES, {"include": ["indication-restorative"]})]
    out += [by_id[i] for i in ("substance-use", "physical-therapy", "medication-trial") if i in by_id]
    out += [sourced_criterion(i, RESTORATIVE_SOURCES) for i in ("not-surgical-candidate", "multifidus-dysfunction")]
    if "stimulation-trial" in by_id:
        out.append(by_id["stimulation-trial"])
    return (*out, *(by_id[i] for i in BILLING if i in by_id))


def derived_neuromuscular(pain: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
    """Neuromuscular criteria for a policy that states none: the pain criteria on spasm, atrophy and diaphragm
    pacing diagnoses, with NCD 160.19's intact phrenic nerve and diaphragm for pacing. The policy wrote its
    conservative-care and trial criteria for pain: here they inform, and never fail an order (``borrowed_from``)."""
    out = []
    for c in pain:
        if c.id == "indication":
            out.append(_with(c, include=["indication-neuromuscular", "indication-phrenic"]))
            out.append(sourced_criterion("phrenic-nerve", PHRENIC_SOURCES))
        elif c.id in BILLING:  # the fee schedule's indicators are per code, whatever the indication
            out.append(c)
        else:
            out.append(replace(c, borrowed_from="pain"))
    return tuple(out)


def _pathways(raw: dict, pain: tuple[Criterion, ...]) -> tuple[MappingProxyType, MappingProxyType]:
    """(every pathway's criteria, the pathways the file states itself)."""
    stated = {"pain": pain} | {k: _criteria(p["criteria"]) for k, p in raw.get("pathways", {}).items()}
    derive = {"restorative": derived_restorative, "neuromuscular": derived_neuromuscular}
    found = {k: stated[k] if k in stated else make(pain) for k, make in derive.items()} | {"pain": pain}
    return MappingProxyType(found), MappingProxyType(stated)


def _version(plan_id: str, raw: dict) -> Version:
    criteria = _criteria(raw["criteria"])
    pathways, stated = _pathways(raw, criteria)
    parse_date(raw["last_reviewed"])
    return Version(
        effective=parse_date(raw["effective"]),
        effective_text=raw["effective"],
        effective_note=raw.get("effective_note"),
        last_reviewed=raw["last_reviewed"],
        title=raw["title"],
        coverage=MappingProxyType({g: _statement(c, "stance", "summary") for g, c in raw["coverage"].items()}),
        prior_authorization=_statement(raw["prior_authorization"], "stance", "summary"),
        criteria=criteria,
        pathways=pathways,
        stated_pathways=stated,
        documentation=tuple(_statement(d, "purpose", "item") for d in raw.get("documentation", ())),
        notes=tuple(_statement(n, "text", "text") for n in raw.get("notes", ())),
        plan_id=plan_id,
    )


def default_ruleset(fee_schedule: mpfs.FeeSchedule | None = None, pathway: str = "pain") -> RuleSet:
    """The default clinical policy's criteria (``default.json``), as the rules evaluate them."""
    return load().default.current().ruleset(pathway, fee_schedule)


def parse_date(text: str) -> date:
    """A full or partial date (YYYY, YYYY-MM) as the first day it covers."""
    parts = [int(p) for p in text.split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
