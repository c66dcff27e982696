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

from cds import mpfs, schemas
from cds.errors import SchemaViolation
from cds.rules.params import BILLING, TITLES, Criterion, RuleSet

POLICY_DIR = Path(__file__).resolve().parent
GROUPS = ("pain", "neuromuscular")  # the pathways every version states a coverage stance for
PATHWAYS = ("pain", "restorative", "neuromuscular")
# Where the criteria of a derived pathway come from, when the policy itself does not state that pathway.
RESTORATIVE_SOURCE = (
    "FDA PMA P190021 (ReActiv8, product code QLK): chronic low back pain with multifidus dysfunction shown by imaging "
    "or physiological testing, after failed pain medications and physical therapy, not a candidate for spine "
    "surgery; https://www.accessdata.fda.gov/scripts/cdrh/cfdocs/cfpma/pma.cfm?id=P190021 (indication as "
    "summarised in the domain facts; label text not re-read); ISASS 2025, https://scholars.duke.edu/publication/1696141"
)
PHRENIC_SOURCE = (
    "NCD 160.19 Phrenic Nerve Stimulator: 'effective only if the patient has an intact phrenic nerve and diaphragm', "
    "https://www.cms.gov/medicare-coverage-database/view/ncd.aspx?NCDId=244&ncdver=1"
)


class PolicyError(ValueError):
    """A policy file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Statement:
    """A sourced statement: a stance, a document to send, or a note."""

    value: str
    text: str
    source: str
    urls: tuple[str, ...]
    confidence: str
    purpose: str | None = None


@dataclass(frozen=True)
class MatchRule:
    priority: int
    identifier: tuple[str, str] | None = None
    name: re.Pattern | None = None
    coverage_type: tuple[str, str, bool] | None = None


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
        return Statement("unknown", text, self.title, (), "primary")


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

    @property
    def default(self) -> Plan:
        return next(p for p in self.plans if p.default)

    def plan(self, plan_id: str) -> Plan:
        return next(p for p in self.plans if p.id == plan_id)


def load(directory: str | Path | None = None) -> PolicySet:
    """The policies in ``directory`` (the package's own by default), validated; cached per folder."""
    return _load(Path(directory or POLICY_DIR).resolve())


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
    return [_plan(path.name, data["family"], i, raw) for i, raw in enumerate(data["plans"])]


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
    ctype = raw.get("coverage_type")
    coverage_type = (ctype["system"], ctype["code"], bool(ctype.get("prefix"))) if ctype else None
    default_priority = 100 if identifier else 10 if name else 5
    return MatchRule(raw.get("priority", default_priority), identifier, name, coverage_type)


def _sources(raw) -> tuple[str, tuple[str, ...]]:
    items = raw if isinstance(raw, list) else [raw]
    return "; ".join(f"{s['url']} ({s['section']})" for s in items), tuple(s["url"] for s in items)


def _statement(raw: dict, value_key: str, text_key: str) -> Statement:
    source, urls = _sources(raw["source"])
    return Statement(raw.get(value_key, ""), raw[text_key], source, urls, raw["confidence"], raw.get("purpose"))


def _criteria(raw: list[dict]) -> tuple[Criterion, ...]:
    out = []
    for c in raw:
        source, _urls = _sources(c["source"])
        params = MappingProxyType(c.get("params", {}))
        out.append(Criterion(c["id"], c.get("title", TITLES[c["id"]]), source, c["confidence"], params))
    return tuple(out)


def _with(c: Criterion, **params) -> Criterion:
    return replace(c, params=MappingProxyType({**c.params, **params}))


def derived_restorative(pain: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
    """Restorative criteria for a policy that states none: its conservative-care and billing criteria, the FDA
    indication's own conditions, and a trial criterion that can never be ``not-met`` (the trial is percutaneous)."""
    by_id = {c.id: c for c in pain}
    label = "the policy does not state restorative criteria: " + RESTORATIVE_SOURCE
    indication = Criterion("indication", TITLES["indication"], label, "secondary")
    out = [_with(indication, include=["indication-restorative"])]
    out += [by_id[i] for i in ("substance-use", "physical-therapy", "medication-trial") if i in by_id]
    out += [Criterion(i, TITLES[i], label, "secondary") for i in ("not-surgical-candidate", "multifidus-dysfunction")]
    if "stimulation-trial" in by_id:
        out.append(by_id["stimulation-trial"])
    return (*out, *(by_id[i] for i in BILLING if i in by_id))


def derived_neuromuscular(pain: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
    """Neuromuscular criteria for a policy that states none: the pain criteria on spasm, atrophy and diaphragm
    pacing diagnoses, with NCD 160.19's intact phrenic nerve and diaphragm for pacing."""
    out = []
    for c in pain:
        if c.id == "indication":
            out.append(_with(c, include=["indication-neuromuscular", "indication-phrenic"]))
            out.append(Criterion("phrenic-nerve", TITLES["phrenic-nerve"], PHRENIC_SOURCE, "primary"))
        else:
            out.append(c)
    return tuple(out)


def _pathways(raw: dict, pain: tuple[Criterion, ...]) -> MappingProxyType:
    stated = raw.get("pathways", {})
    derive = {"restorative": derived_restorative, "neuromuscular": derived_neuromuscular}
    found = {"pain": pain}
    for pathway, make in derive.items():
        found[pathway] = _criteria(stated[pathway]["criteria"]) if pathway in stated else make(pain)
    return MappingProxyType(found)


def _version(plan_id: str, raw: dict) -> Version:
    criteria = _criteria(raw["criteria"])
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
        pathways=_pathways(raw, criteria),
        documentation=tuple(_statement(d, "purpose", "item") for d in raw.get("documentation", ())),
        notes=tuple(_statement(n, "text", "text") for n in raw.get("notes", ())),
        plan_id=plan_id,
    )


def parse_date(text: str) -> date:
    """A full or partial date (YYYY, YYYY-MM) as the first day it covers."""
    parts = [int(p) for p in text.split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
