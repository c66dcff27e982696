"""The code sets the rules read, as data with their sources, and matching by system + code.

Every value set names where its codes come from (``../shared/domain/64580.md`` cites the primary pages).
Matching tolerates what real EHR data does: systems spelled as OIDs or with a trailing slash, ICD-10-CM codes
with or without the dot, CPT codes sent under the HCPCS system (HCPCS level I *is* CPT), and WHO ICD-10 used
for ICD-10-CM. ICD-10-CM and ATC sets match by prefix (``G56`` matches ``G56.01``); CPT sets by exact code or
inclusive range. Medications also match by ingredient name in the text, because EHRs usually code the product
(an RxNorm SCD) rather than the ingredient the classes are defined on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
NUCC = "http://nucc.org/provider-taxonomy"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# Our own code system for surgical roles on a PractitionerRole (documented in docs/cards.md).
SURGICAL_ROLE = "urn:cds64580:surgical-role"

_ALIASES = {
    CPT: (CPT, "http://ama-assn.org/go/cpt", "https://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12"),
    HCPCS: (
        HCPCS,
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",
        "urn:oid:2.16.840.1.113883.6.14",
    ),
    ICD10CM: (
        ICD10CM,
        "urn:oid:2.16.840.1.113883.6.90",
        "http://hl7.org/fhir/sid/icd-10",
        "urn:oid:2.16.840.1.113883.6.3",
    ),
    SNOMED: (SNOMED, "urn:oid:2.16.840.1.113883.6.96"),
    RXNORM: (RXNORM, "urn:oid:2.16.840.1.113883.6.88"),
    ATC: (ATC, "urn:oid:2.16.840.1.113883.6.73"),
    LOINC: (LOINC, "urn:oid:2.16.840.1.113883.6.1"),
    NUCC: (NUCC, "urn:oid:2.16.840.1.113883.6.101"),
}
_CANONICAL = {alias.lower().rstrip("/"): canonical for canonical, aliases in _ALIASES.items() for alias in aliases}
_CPT_SHAPE = re.compile(r"\A\d{4}[0-9FTU]\Z")


# The longest system and code, together, that a memo keeps: a real pair is far shorter (the longest system URL in
# use is under 60 characters, a code a few). The memos are bounded in entries; this bounds them in bytes too (codes
# of 50,000 characters kept 65,536 entries deep held 20 MB more per 10 MB hook call, to gigabytes). A memo holds
# what a large record's distinct codes need; a full one is cleared (work redone, nothing lost): about 10 value
# sets' memos and the canonical forms stay within ~25 MiB per worker whatever the calls send.
MEMO_CHARS = 128


def canonical(system: str | None, code: str | None) -> tuple[str | None, str | None]:
    """The canonical (system, code) for a coding, repairing the common spellings real data uses; anything but two
    strings is returned as given (and never reaches the memo: a dict there is unhashable)."""
    if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
        return system, code
    if len(system) + len(code) > MEMO_CHARS:
        return _canonical.__wrapped__(system, code)  # worked out, never kept (see MEMO_CHARS)
    return _canonical(system, code)


@functools.lru_cache(maxsize=16384)
def _canonical(system: str, code: str) -> tuple[str, str]:
    system = _CANONICAL.get(system.strip().lower().rstrip("/"), system)
    code = code.strip()
    if system == HCPCS and _CPT_SHAPE.match(code):
        system = CPT
    if system == ICD10CM:
        code = code.replace(".", "").upper()
    elif system == ATC:
        code = code.upper()
    return system, code


def published(system: str | None, code: str | None) -> str:
    """A code as its publisher writes it, for people to read: ICD-10-CM with its dot (G57.12), others as they are.

    Codes are compared in :func:`canonical` form (no dot); text a clinician reads uses this one.
    """
    system, code = canonical(system, code)
    if not code:
        return ""
    if system == ICD10CM and len(code) > 3 and "." not in code:
        return f"{code[:3]}.{code[3:]}"
    return code


@dataclass(frozen=True)
class Include:
    """Codes of one system: exact ``codes``, ``prefixes`` (ICD-10-CM, ATC) and inclusive ``ranges`` (CPT)."""

    system: str
    codes: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    ranges: tuple[tuple[str, str], ...] = ()
    _by_length: dict[int, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lengths: dict[int, set[str]] = {}
        for prefix in self.prefixes:
            lengths.setdefault(len(prefix), set()).add(prefix)
        object.__setattr__(self, "_by_length", {n: frozenset(p) for n, p in lengths.items()})

    def matches(self, code: str) -> bool:
        if code in self.codes or any(code[:n] in group for n, group in self._by_length.items()):
            return True
        return any(len(code) == len(lo) and lo <= code <= hi for lo, hi in self.ranges)


_MEMO_SIZE = 4096
_UNSEEN = object()  # a code not yet looked up (None is one outside the set)


@dataclass(frozen=True)
class ValueSet:
    id: str
    title: str
    source: str
    includes: tuple[Include, ...]
    names: tuple[str, ...] = ()  # ingredient names matched in text, for medications
    systems: frozenset[str] = field(init=False)
    # the includes of each system merged into one, so a code is looked up once however many sets were joined
    _by_system: dict[str, Include] = field(init=False, repr=False, compare=False)
    # codes already seen, as sent: their canonical (system, code) when in the set, else None; a fact of the code
    # system, the same for every patient and call
    _memo: dict[tuple[str, str], tuple | None] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "systems", frozenset(i.system for i in self.includes))
        merged = {}
        for system in self.systems:
            parts = [i for i in self.includes if i.system == system]
            merged[system] = Include(
                system,
                frozenset().union(*(i.codes for i in parts)),
                tuple(dict.fromkeys(p for i in parts for p in i.prefixes)),
                tuple(dict.fromkeys(r for i in parts for r in i.ranges)),
            )
        object.__setattr__(self, "_by_system", merged)

    def matches(self, system: str | None, code: str | None) -> bool:
        """A code seen before is one memo look-up here, without a call to :meth:`match_codings`."""
        try:
            found = self._memo.get((system, code), _UNSEEN)
        except TypeError:  # unhashable: see match_codings
            found = _UNSEEN
        if found is _UNSEEN:
            return self.match_codings(((system, code),)) is not None
        return found is not None

    def _member(self, system: str, code: str) -> tuple | None:
        """The canonical (system, code) of a code in the set, else None; remembered (see ``_memo``)."""
        canonical_system, canonical_code = pair = canonical(system, code)
        include = self._by_system.get(canonical_system)  # type: ignore[arg-type]
        found = pair if include is not None and canonical_code and include.matches(canonical_code) else None
        if len(system) + len(code) > MEMO_CHARS:
            return found  # never kept (see MEMO_CHARS)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[(system, code)] = found
        return found

    def match_codings(self, codings: Iterable[tuple[str | None, str | None]]) -> tuple[str, str] | None:
        """The canonical (system, code) of the first coding in the set. A code seen before is one dict look-up here,
        its canonical form included, without a call per coding."""
        memo = self._memo
        for pair in codings:
            try:  # the pair itself is the key: the memo holds only pairs of two strings, so a hit needs no check
                found = memo.get(pair, _UNSEEN)
            except TypeError:  # unhashable (a list, a dict for a code): read as the two values it holds
                found = _UNSEEN
            if found is _UNSEEN:
                system, code = pair
                if not isinstance(system, str) or not isinstance(code, str):
                    continue  # a coding whose system or code is not a string matches nothing (and never crashes)
                found = self._member(system, code)
            if found is not None:
                return found
        return None

    def match_text(self, text: str | None) -> str | None:
        if not text or not self.names:
            return None
        lowered = text.lower()
        return next((n for n in self.names if n in lowered), None)


def _icd(*codes: str) -> Include:
    """ICD-10-CM codes as prefixes, written with dots for reading and compared without them."""
    return Include(ICD10CM, prefixes=tuple(c.replace(".", "") for c in codes))


def _cpt(*codes: str, ranges: tuple[tuple[str, str], ...] = ()) -> Include:
    return Include(CPT, codes=frozenset(codes), ranges=ranges)


DOMAIN = "../shared/domain/64580.md"

THIS_PROCEDURE = ValueSet(
    "cpt-64580",
    "Open implantation of neurostimulator electrode array; neuromuscular",
    f"{DOMAIN} section 1 (CPT 64580 descriptor)",
    (_cpt("64580"),),
)

INDICATION_PAIN = ValueSet(
    "indication-pain",
    "Chronic pain, neuralgia, mononeuropathy, CRPS",
    f"{DOMAIN} section 4 (ICD-10-CM indications)",
    (
        _icd("G89.21", "G89.28", "G89.29", "G89.4", "M79.2", "G56", "G57", "G58.0", "G58.7", "G58.8", "G58.9"),
        _icd("G90.50", "G90.51", "G90.52", "G90.59", "M54.81", "G54.6", "B02.23", "B02.29", "M54.1"),
    ),
)
INDICATION_NEUROMUSCULAR = ValueSet(
    "indication-neuromuscular",
    "Muscle spasm or disuse atrophy",
    f"{DOMAIN} section 4 (M62.83x spasm, M62.5x atrophy); section 5 rule 36",
    (_icd("M62.830", "M62.831", "M62.838", "M62.5"),),
)
INDICATION_RESTORATIVE = ValueSet(
    "indication-restorative",
    "Dysfunction of the multifidus muscles, lumbar region (restorative neurostimulation)",
    "ICD-10-CM M62.85, from October 2024: ISASS 2025 guideline update (Lorio et al., Int J Spine Surg), "
    "https://scholars.duke.edu/publication/1696141; FDA product code QLK (ReActiv8, PMA P190021)",
    (_icd("M62.85"),),
)
INDICATION_PHRENIC = ValueSet(
    "indication-phrenic",
    "Respiratory insufficiency treated by diaphragm (phrenic nerve) pacing",
    "NCD 160.19 'partial or complete respiratory insufficiency' "
    "(https://www.cms.gov/medicare-coverage-database/view/ncd.aspx?NCDId=244&ncdver=1): chronic respiratory "
    "failure J96.1, dependence on a ventilator Z99.11; Blue plan MP-714 (CCHS G47.35, quadriplegia G82.5), "
    "https://al-policies.exploremyplan.com/portal/web/medical-policies/-/mp-714?print=1",
    (_icd("J96.1", "Z99.11", "G47.35", "G82.5"),),
)
NAMED_NERVE_PAIN = ValueSet(
    "named-nerve-pain",
    "Mononeuropathy of a named peripheral nerve (its stimulator is an open peripheral nerve array, 64575)",
    f"ICD-10-CM G56 (upper limb), G57 (lower limb), G58.0 (intercostal); {DOMAIN} correction 4 (64575 peripheral "
    "nerve, 64580 neuromuscular)",
    (_icd("G56", "G57", "G58.0"),),
)
SLEEP_APNEA = ValueSet(
    "obstructive-sleep-apnea",
    "Obstructive sleep apnea (hypoglossal nerve stimulation, 64582)",
    f"ICD-10-CM G47.33; {DOMAIN} section 1 (64582 hypoglossal system for OSA) and correction 4",
    (_icd("G47.33"),),
)
SACRAL_INDICATION = ValueSet(
    "sacral-neuromodulation",
    "Urinary retention, urge incontinence, overactive bladder, urinary frequency, fecal incontinence (64581)",
    f"ICD-10-CM R33, N39.41, N32.81, R35.0, R15; {DOMAIN} correction 4 (64581 sacral nerve); Cigna 0404 sacral "
    "nerve stimulation for urinary voiding dysfunction (https://payerpolicy.org/updates/cigna/"
    "cigna-mm-0404-sacral-nerve-stimulation-for-urinary-voiding-dysfu-coverage-update, secondary)",
    (_icd("R33", "N39.41", "N32.81", "R35.0", "R15"),),
)
LOW_BACK_PAIN = ValueSet("low-back-pain", "Low back pain", "ICD-10-CM M54.5 (M54.50, M54.51, M54.59)", (_icd("M54.5"),))
FIBROMYALGIA = ValueSet("fibromyalgia", "Fibromyalgia", f"{DOMAIN} section 4 exclusion flags", (_icd("M79.7"),))
POLYNEUROPATHY = ValueSet(
    "polyneuropathy", "Diffuse polyneuropathy", f"{DOMAIN} section 4 exclusion flags", (_icd("G62", "E11.42"),)
)
SUBSTANCE_USE = ValueSet(
    "substance-use",
    "Mental and behavioural disorders due to psychoactive substance use, nicotine excepted",
    f"{DOMAIN} section 4 exclusion flags; section 5 rule 11 (F10-F19 less F17: nicotine counts only where a "
    "policy names tobacco, see tobacco-use)",
    (_icd("F10", "F11", "F12", "F13", "F14", "F15", "F16", "F18", "F19"),),
)
TOBACCO_USE = ValueSet(
    "tobacco-use",
    "Nicotine dependence",
    "ICD-10-CM F17 (nicotine dependence); read only where a policy names tobacco",
    (_icd("F17"),),
)
# "In remission" forms: F1x.11 (abuse), F1x.21 (dependence), F1x.91 (use, unspecified) per the ICD-10-CM Official
# Guidelines I.C.5.b.1, and nicotine dependence F17.2x1.
REMISSION_SOURCE = (
    "CMS ICD-10-CM Official Guidelines for Coding and Reporting FY2026, I.C.5.b.1: 'in remission' codes of "
    "categories F10-F19 are -.11, -.21, -.91 (as quoted at https://icd10codingpro.com/codes/F10.23); nicotine "
    "dependence in remission F17.2x1"
)
SUBSTANCE_REMISSION = ValueSet(
    "substance-use-remission",
    "Psychoactive substance use disorder in remission",
    REMISSION_SOURCE,
    (
        _icd(*(f"F1{n}.{s}" for n in "01234568" for s in ("11", "21", "91"))),
        _icd("F19.11", "F19.21", "F19.91", "F17.201", "F17.211", "F17.221", "F17.291"),
    ),
)
PHANTOM_LIMB = ValueSet(
    "phantom-limb", "Phantom limb syndrome with pain", f"{DOMAIN} section 2 (Medicare summary)", (_icd("G54.6"),)
)
POSTHERPETIC = ValueSet("postherpetic", "Postherpetic neuralgia", f"{DOMAIN} section 3 (MP-623)", (_icd("B02.2"),))

PHYSICAL_THERAPY = ValueSet(
    "physical-therapy",
    "Physical therapy evaluation and treatment",
    f"{DOMAIN} section 4 (conservative therapy; SNOMED CT)",
    (
        _cpt("97110", "97112", "97116", "97140", "97530", ranges=(("97161", "97164"),)),
        Include(SNOMED, codes=frozenset({"91251008", "108305003"})),
    ),
)
STIMULATION_TRIAL = ValueSet(
    "stimulation-trial",
    "Percutaneous peripheral nerve stimulation trial",
    f"{DOMAIN} section 4 (PNS/PENS trial 64555); NCD 160.7.1. 64596/64597 place a permanent percutaneous "
    "integrated system: a prior system, not a trial",
    (_cpt("64555"),),
)
PRIOR_IMPLANT = ValueSet(
    "prior-implant",
    "Earlier neuromuscular or peripheral nerve array: a permanent system at the same target (revision/replacement)",
    f"{DOMAIN} section 5 rule 15 (MP-623: no trial for revision/replacement); correction 4 (code family): "
    "64580 neuromuscular, 64575 peripheral nerve, 64596/64597 percutaneous integrated systems",
    (_cpt("64580", "64575", "64596", "64597"),),
)
ARRAY_REMOVAL = ValueSet(
    "array-removal",
    "Revision or removal of a peripheral neurostimulator array",
    f"{DOMAIN} section 1 (64585 revision/removal of peripheral array)",
    (_cpt("64585"),),
)
LUMBAR_IMAGING = ValueSet(
    "lumbar-imaging",
    "MRI or CT of the lumbar spine",
    "CPT 72131-72133 (CT lumbar spine), 72148, 72149, 72158 (MRI lumbar spine) (AMA CPT code set, Radiology)",
    (_cpt("72148", "72149", "72158", ranges=(("72131", "72133"),)),),
)
PSYCH_EVALUATION = ValueSet(
    "psych-evaluation",
    "Psychological evaluation",
    f"{DOMAIN} section 4 (psych evaluation codes)",
    (_cpt("90791", "90792", "96130", "96131", "96156", ranges=(("96136", "96139"),)),),
)
EMG_NCS = ValueSet(
    "emg-ncs",
    "Electromyography or nerve conduction studies",
    f"{DOMAIN} section 4; section 5 rule 12 (95885-95887, 95907-95913); needle electromyography 95860-95872 "
    "(AMA CPT code set, Medicine: neuromuscular procedures)",
    (_cpt(ranges=(("95860", "95872"), ("95885", "95887"), ("95907", "95913"))),),
)
NEEDLE_EMG = ValueSet(
    "needle-emg",
    "Needle electromyography",
    "needle electromyography 95860-95872 and 95885-95887 (AMA CPT code set, Medicine: neuromuscular procedures); "
    "a nerve conduction study alone (95907-95913) tests nerves, not muscle",
    (_cpt(ranges=(("95860", "95872"), ("95885", "95887"))),),
)
NERVE_BLOCK = ValueSet(
    "nerve-block",
    "Diagnostic peripheral nerve block",
    f"{DOMAIN} section 4 (64400-64450); CPT 64400-64455 somatic nerve injections, including 64451 (nerves "
    "innervating the sacroiliac joint) and 64454 (genicular nerve branches)",
    (_cpt(ranges=(("64400", "64455"),)),),
)
PAIN_SCORE = ValueSet(
    "pain-score",
    "Pain severity 0-10",
    f"{DOMAIN} section 4 (LOINC 72514-3 'Pain severity - 0-10 verbal numeric rating [Score] - Reported', "
    "https://loinc.org/72514-3); LOINC 38208-5 'Pain severity - Reported' (https://loinc.org/38208-5)",
    (Include(LOINC, codes=frozenset({"72514-3", "38208-5"})),),
)

_ATC_SOURCE = f"{DOMAIN} section 4 (ATC classes, https://atcddd.fhi.no; RxNorm ingredients)"
MEDICATION_CLASSES: dict[str, ValueSet] = {
    vs.id: vs
    for vs in (
        ValueSet(
            "gabapentinoid",
            "Gabapentinoids",
            _ATC_SOURCE,
            (
                Include(ATC, prefixes=("N02BF", "N03AX12", "N03AX16")),
                Include(RXNORM, codes=frozenset({"25480", "187832"})),
            ),
            names=("gabapentin", "pregabalin"),
        ),
        ValueSet(
            "tca",
            "Tricyclic antidepressants",
            _ATC_SOURCE,
            (Include(ATC, prefixes=("N06AA",)),),
            names=("amitriptyline", "nortriptyline"),
        ),
        ValueSet(
            "snri",
            "Serotonin-norepinephrine reuptake inhibitors",
            _ATC_SOURCE,
            (Include(ATC, prefixes=("N06AX21", "N06AX16")), Include(RXNORM, codes=frozenset({"72625", "39786"}))),
            names=("duloxetine", "venlafaxine"),
        ),
        ValueSet(
            "nsaid",
            "Non-steroidal anti-inflammatory drugs",
            _ATC_SOURCE,
            (Include(ATC, prefixes=("M01A",)), Include(RXNORM, codes=frozenset({"5640", "7258"}))),
            names=("ibuprofen", "naproxen"),
        ),
        ValueSet(
            "muscle-relaxant",
            "Centrally acting muscle relaxants",
            _ATC_SOURCE,
            (Include(ATC, prefixes=("M03B",)),),
            names=("baclofen", "tizanidine"),
        ),
        ValueSet(
            "anticonvulsant",
            "Carbamazepine",
            _ATC_SOURCE,
            (Include(ATC, prefixes=("N03AF01",)),),
            names=("carbamazepine",),
        ),
        ValueSet("opioid", "Opioids", _ATC_SOURCE, (Include(ATC, prefixes=("N02A",)),)),
    )
}

NON_PHYSICIAN_ASSISTANT = ValueSet(
    "non-physician-assistant",
    "Physician assistant, nurse practitioner or clinical nurse specialist (assistant modifier AS)",
    "NUCC Health Care Provider Taxonomy, https://taxonomy.nucc.org (363A Physician Assistants, 363L Nurse "
    "Practitioners, 364S Clinical Nurse Specialists, with every specialization); modifier AS for PA, NP and CNS: "
    "https://cms.gov/data-research/monitoring-programs/medicare-fee-service-compliance-programs/medicare-fee-service/"
    "0222-non-physician-billed-without-correct-assistant-surgery-modifier-incorrect-coding",
    (Include(NUCC, prefixes=("363A", "363L", "364S")),),
)
NEUROSTIMULATOR_FAMILY = ValueSet(
    "neurostimulator-family",
    "Neurostimulator electrode, trial, revision and generator procedures (their global periods)",
    "CMS PFS relative value file (cds/policies/fee-schedule); CPT family 64555-64597",
    (_cpt("64555", "64575", "64580", "64581", "64582", "64585", "64590", "64595", "64596", "64597"),),
)

VALUE_SETS: dict[str, ValueSet] = {
    vs.id: vs
    for vs in (
        INDICATION_PAIN,
        INDICATION_NEUROMUSCULAR,
        INDICATION_RESTORATIVE,
        INDICATION_PHRENIC,
        NAMED_NERVE_PAIN,
        SLEEP_APNEA,
        SACRAL_INDICATION,
        LOW_BACK_PAIN,
        LUMBAR_IMAGING,
        FIBROMYALGIA,
        POLYNEUROPATHY,
        SUBSTANCE_USE,
        PHANTOM_LIMB,
        POSTHERPETIC,
        PHYSICAL_THERAPY,
        STIMULATION_TRIAL,
        PRIOR_IMPLANT,
        PSYCH_EVALUATION,
        EMG_NCS,
        NEEDLE_EMG,
        NERVE_BLOCK,
        PAIN_SCORE,
        NON_PHYSICIAN_ASSISTANT,
        NEUROSTIMULATOR_FAMILY,
        TOBACCO_USE,
        SUBSTANCE_REMISSION,
        ARRAY_REMOVAL,
        *MEDICATION_CLASSES.values(),
    )
}


# What the record builder keeps, by resource type: anything else of that type is never parsed.
def union(id: str, sets: tuple[ValueSet, ...]) -> ValueSet:
    """One value set matching whatever any of ``sets`` matches (one pass instead of one per set)."""
    return ValueSet(id, id, "union of " + ", ".join(vs.id for vs in sets), tuple(i for vs in sets for i in vs.includes))


CONDITION_SETS = tuple(
    VALUE_SETS[i]
    for i in (
        "indication-pain",
        "indication-neuromuscular",
        "indication-restorative",
        "indication-phrenic",
        "obstructive-sleep-apnea",
        "sacral-neuromodulation",
        "low-back-pain",
        "fibromyalgia",
        "polyneuropathy",
        "substance-use",
        "tobacco-use",
        "phantom-limb",
        "postherpetic",
    )
)
PROCEDURE_SETS = tuple(
    VALUE_SETS[i]
    for i in (
        "physical-therapy",
        "stimulation-trial",
        "prior-implant",
        "psych-evaluation",
        "emg-ncs",
        "nerve-block",
        "neurostimulator-family",
        "lumbar-imaging",
    )
)


def codings(concept: object) -> list[tuple[str | None, str | None]]:
    """(system, code) pairs of a CodeableConcept given as a dict (a list made at once: no generator resumed per
    coding of every resource a call filters); a system or code that is not a string is None (a code of 62 is no
    code: FHIR's code is a string)."""
    found = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(found, list):
        return []
    pairs = []
    for c in found:  # checked inline, without a call per member: this runs for every coding a call filters
        if isinstance(c, dict):
            system, code = c.get("system"), c.get("code")
            pairs.append((system if isinstance(system, str) else None, code if isinstance(code, str) else None))
    return pairs


def concept_text(concept: object) -> str:
    """All the human text of a CodeableConcept dict: its text and every display."""
    if not isinstance(concept, dict):
        return ""
    found = concept.get("coding")
    parts = [concept.get("text") or ""]
    parts += [c.get("display") or "" for c in (found if isinstance(found, list) else ()) if isinstance(c, dict)]
    return " ".join(p for p in parts if isinstance(p, str))


def medication_class(concept: object) -> tuple[str, str] | None:
    """(class id, how it matched) for a medication CodeableConcept dict, by code first, then by name.

    Most medications of a long record are in no class: one look-up in the union of the classes (codes, then
    one pattern of all the names) settles those before any class is tried."""
    pairs = codings(concept)
    if _ANY_MEDICATION.match_codings(pairs):
        for class_id, vs in MEDICATION_CLASSES.items():
            hit = vs.match_codings(pairs)
            if hit:
                return class_id, f"{hit[0]}|{hit[1]}"
    text = concept_text(concept)
    if text and _ANY_NAME.search(text.lower()):
        for class_id, vs in MEDICATION_CLASSES.items():
            name = vs.match_text(text)
            if name:
                return class_id, f"name '{name}'"
    return None


_ANY_MEDICATION = union("any-medication-class", tuple(MEDICATION_CLASSES.values()))
_ANY_NAME = re.compile("|".join(re.escape(n) for vs in MEDICATION_CLASSES.values() for n in vs.names) or "(?!)")


RELEVANT_CONDITION = union("relevant-condition", CONDITION_SETS)
RELEVANT_PROCEDURE = union("relevant-procedure", PROCEDURE_SETS)
