"""Medicare Physician Fee Schedule payment-policy indicators, per release, and the importer for the CMS file.

CMS publishes the indicators (global days, co-surgery, team surgery, assistant at surgery, ...) in the PFS
relative value file, PPRRVU*.csv inside the RVUyyX.zip of each release
(https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files). The file opens with
notice lines (title, copyrights, ``RELEASED mm/dd/yyyy``), then a header written over five rows (``CO-`` above
``SURG``), then one row per code and modifier; 2026 added a column. Columns are therefore found by name, never by
position. One release is kept per data file (``cds/policies/fee-schedule/RVUyyX.json``, schema
``fee-schedule``); the release in force on the evaluation's "as of" date is the one the rules read.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType

from cds import schemas
from cds.errors import InvalidRequest, SchemaViolation

DATA_DIR = Path(__file__).resolve().parent / "policies" / "fee-schedule"
CMS_URL = "https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files"
# The neurostimulator codes the rules talk about: the array (64580 and its siblings), trials, revisions, generators.
FAMILY = ("64555", "64575", "64580", "64581", "64582", "64585", "64590", "64595", "64596", "64597")

# Indicator field -> the column's name as CMS writes it (header rows joined top to bottom).
COLUMNS = {
    "status_code": "STATUS CODE",
    "glob_days": "GLOB DAYS",
    "mult_proc": "MULT PROC",
    "bilat_surg": "BILAT SURG",
    "asst_surg": "ASST SURG",
    "co_surg": "CO- SURG",
    "team_surg": "TEAM SURG",
}
INDICATOR_FIELDS = tuple(COLUMNS)
_MONTHS = {"JANUARY": 1, "APRIL": 4, "JULY": 7, "OCTOBER": 10}
_RELEASE_LETTER = {1: "A", 4: "B", 7: "C", 10: "D"}  # CMS names the quarterly releases RVUyyA .. RVUyyD
_TITLE = re.compile(r"(\d{4})\s+National Physician Fee Schedule Relative Value File\s+(\w+)\s+Release", re.I)
_RELEASED = re.compile(r"RELEASED\s+(\d{1,2})/(\d{1,2})/(\d{4})", re.I)
_HEADER_ROWS = 5


class MPFSFileError(InvalidRequest):
    """The file is not a CMS PPRRVU relative value file (the message names what is missing)."""


@dataclass(frozen=True)
class Indicators:
    """One code's indicators in one release, as strings exactly as the file has them (``"090"``, ``"0"``)."""

    code: str
    release: str
    released: str
    effective: str
    status_code: str | None = None
    glob_days: str | None = None
    mult_proc: str | None = None
    bilat_surg: str | None = None
    asst_surg: str | None = None
    co_surg: str | None = None
    team_surg: str | None = None
    source: str = ""

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def global_days(self) -> int | None:
        """The global period in days after the procedure (``010`` -> 10, ``090`` -> 90); None for XXX, ZZZ..."""
        return int(self.glob_days) if self.glob_days and self.glob_days.isdigit() else None


@dataclass(frozen=True)
class Release:
    """One CMS release of the relative value file, reduced to the codes kept."""

    release: str  # RVU25A
    title: str
    released: date
    effective: date
    file: str
    source: MappingProxyType  # url, kind, title, quote, retrieved, read_from
    codes: MappingProxyType  # code -> {field: value}
    # each code's indicators as made (release data: the same for every call; only codes the release has are kept)
    _indicators: dict[str, Indicators] = field(default_factory=dict, init=False, repr=False, compare=False)

    def indicators(self, code: str) -> Indicators | None:
        """One code's indicators, made once per release (release data): the co-surgery, assistant and laterality
        rules read them on every call."""
        found = self._indicators.get(code)
        if found is not None:
            return found
        values = self.codes.get(code)
        if values is None:
            return None
        found = self._indicators[code] = Indicators(
            code=code,
            release=self.release,
            released=self.released.isoformat(),
            effective=self.effective.isoformat(),
            source=self.citation,
            **{f: values.get(f) for f in INDICATOR_FIELDS},
        )
        return found

    @property
    def citation(self) -> str:
        where = f"; read from {self.source['read_from']}" if self.source.get("read_from") else ""
        return (
            f"CMS PFS relative value file {self.file} ({self.release}, released {self.released.isoformat()}), "
            f"{self.source['url']}{where}"
        )

    def to_json(self) -> dict:
        return {
            "release": self.release,
            "title": self.title,
            "released": self.released.isoformat(),
            "effective": self.effective.isoformat(),
            "file": self.file,
            "source": dict(self.source),
            "codes": {code: dict(values) for code, values in sorted(self.codes.items())},
        }


@dataclass(frozen=True)
class FeeSchedule:
    """Every shipped release, oldest first: the one in force on a date answers for that date."""

    releases: tuple[Release, ...]
    annual: bool = True  # CMS's schedule is annual; a what-if schedule from single() answers for any later date

    def release_at(self, as_of: date) -> Release | None:
        """The latest release of ``as_of``'s calendar year that took effect by then: the fee schedule is annual,
        so a 2026 release never answers for 2027."""
        in_force = [
            r for r in self.releases if r.effective <= as_of and (not self.annual or r.effective.year == as_of.year)
        ]
        return in_force[-1] if in_force else None

    def indicators(self, code: str, as_of: date) -> Indicators | None:
        release = self.release_at(as_of)
        return release.indicators(code) if release else None

    def explain_missing(self, code: str, as_of: date) -> str:
        """Why there are no indicators for ``code`` on ``as_of``, in words."""
        release = self.release_at(as_of)
        if release is not None:
            return f"CPT {code} is not in the fee-schedule data kept for {release.release} (in force on {as_of})."
        if not self.releases:
            return "No Medicare fee-schedule release is shipped with this service."
        first, last = self.releases[0], self.releases[-1]
        if as_of < first.effective:
            return (
                f"No Medicare fee-schedule release shipped with this service is in force on {as_of}: the earliest is "
                f"{first.release}, in force from {first.effective}."
            )
        return (
            f"No Medicare fee-schedule release for {as_of.year} is shipped with this service: the latest is "
            f"{last.release} ({last.effective.year})."
        )


def from_json(data: dict, name: str = "fee schedule") -> Release:
    try:
        schemas.validate("fee-schedule", data)
    except SchemaViolation as exc:
        raise MPFSFileError(f"{name}: {exc.problems[0][1]}") from None
    return Release(
        release=data["release"],
        title=data["title"],
        released=date.fromisoformat(data["released"]),
        effective=date.fromisoformat(data["effective"]),
        file=data["file"],
        source=MappingProxyType(dict(data["source"])),
        codes=MappingProxyType({c: MappingProxyType(dict(v)) for c, v in data["codes"].items()}),
    )


def load(directory: Path = DATA_DIR) -> FeeSchedule:
    """The releases in ``directory`` (the package's own by default), validated; cached per folder."""
    return _load(_resolved(directory))


@functools.lru_cache(maxsize=64)
def _resolved(directory: str | Path) -> Path:
    return Path(directory).resolve()


@functools.cache
def _load(directory: Path) -> FeeSchedule:
    releases = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MPFSFileError(f"{path.name}: not readable JSON ({exc})") from None
        releases.append(from_json(data, path.name))
    releases.sort(key=lambda r: r.effective)
    return FeeSchedule(tuple(releases))


def single(values: dict[str, str], effective: date = date(2000, 1, 1), code: str = "64580") -> FeeSchedule:
    """A one-release schedule holding ``values`` for ``code``: what a test or a what-if evaluation needs."""
    codes = MappingProxyType({code: MappingProxyType(dict(values))})  # a copy: indicators are made once per release
    source = MappingProxyType({"url": CMS_URL})
    return FeeSchedule((Release("TEST", "test values", effective, effective, "none", source, codes),), annual=False)


# ---- reading the CMS file -------------------------------------------------------------------------------------


def _clean(cell: str) -> str:
    return " ".join(cell.split())


def _key(name: str) -> str:
    """Compare names by letters only: ``CO- SURG``, ``CO SURG`` and ``co-surg`` are one column."""
    return re.sub(r"[^A-Z]", "", name.upper())


def _header(rows: list[list[str]], at: int) -> list[str]:
    """Column names from the header block ending at row ``at`` (the row whose first cell is HCPCS).

    The rows above belong to the header while they have text beyond the third cell (notices only use the third).
    """
    start = at
    while start > 0 and at - start < _HEADER_ROWS - 1 and any(_clean(c) for c in rows[start - 1][3:]):
        start -= 1
    width = max(len(r) for r in rows[start : at + 1])
    names = []
    for column in range(width):
        parts = [_clean(r[column]) for r in rows[start : at + 1] if column < len(r)]
        names.append(" ".join(p for p in parts if p))
    return names


def read_pprrvu(
    path: Path, codes: Iterable[str] = FAMILY, *, read_from: str | None = None, retrieved: date | None = None
) -> Release:
    """The release in a CMS PPRRVU CSV file, keeping the rows (without a modifier) of ``codes``."""
    wanted = set(codes)
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig") if _is_utf8(raw) else raw.decode("latin-1")
    try:
        return _read(path, csv.reader(io.StringIO(text, newline="")), wanted, read_from, retrieved)
    except csv.Error as exc:
        raise MPFSFileError(f"{path.name}: not a readable CSV file ({exc})") from None


def _read(path: Path, reader, wanted: set[str], read_from: str | None, retrieved: date | None) -> Release:
    notices: list[str] = []
    rows: list[list[str]] = []
    header_at = None
    for row in reader:
        rows.append(row)
        first = _clean(row[0]).upper() if row else ""
        if first == "HCPCS":
            header_at = len(rows) - 1
            break
        notices.append(" ".join(_clean(c) for c in row if _clean(c)))
        if len(rows) > 40:
            break
    if header_at is None:
        raise MPFSFileError(f"{path.name}: no header row starting with HCPCS; is this a CMS PPRRVU file?")
    names = _header(rows, header_at)
    index = {_key(n): i for i, n in enumerate(names) if n}
    missing = [name for name in ("HCPCS", "MOD", *COLUMNS.values()) if _key(name) not in index]
    if missing:
        raise MPFSFileError(f"{path.name}: the header has no column {', '.join(missing)}; is this a PPRRVU file?")
    year, month, title = _release_title(path, notices)
    released = _released(path, notices)
    at = {field: index[_key(name)] for field, name in COLUMNS.items()}
    hcpcs, mod = index["HCPCS"], index["MOD"]
    kept: dict[str, dict[str, str]] = {}
    for row in reader:
        if len(row) <= max(hcpcs, mod):
            continue
        code = row[hcpcs].strip()
        if code in wanted and not row[mod].strip() and code not in kept:
            kept[code] = _values(path, code, row, at)
    if not kept:
        raise MPFSFileError(f"{path.name}: none of the codes {', '.join(sorted(wanted))} is in the file")
    source = {
        "url": CMS_URL,
        "kind": "cms",
        "title": title,
        "quote": f"RELEASED {released.month:02d}/{released.day:02d}/{released.year}",
        "retrieved": (retrieved or date.today()).isoformat(),
    }
    if read_from:
        source["read_from"] = read_from
    release = f"RVU{year % 100:02d}{_RELEASE_LETTER[month]}"
    return Release(
        release=release,
        title=title,
        released=released,
        effective=date(year, month, 1),
        file=path.name,
        source=MappingProxyType(source),
        codes=MappingProxyType({c: MappingProxyType(v) for c, v in kept.items()}),
    )


def _values(path: Path, code: str, row: list[str], at: dict[str, int]) -> dict[str, str]:
    """One code's indicators, checked: a short or edited row is refused rather than kept half empty."""
    values = {f: row[i].strip() for f, i in at.items() if i < len(row) and row[i].strip()}
    missing = [COLUMNS[f] for f in COLUMNS if f not in values]
    if missing:
        raise MPFSFileError(f"{path.name}: the row for {code} has no {', '.join(missing)}; is the file complete?")
    if values["glob_days"].isdigit() and len(values["glob_days"]) < 3:
        values["glob_days"] = values["glob_days"].zfill(3)  # "90" after a spreadsheet round trip is "090"
    problems = schemas.validator("fee-schedule").iter_errors({"release": "RVU00A", "codes": {code: values}})
    bad = sorted({COLUMNS[str(e.absolute_path[-1])] for e in problems if len(e.absolute_path) == 3})
    if bad:
        raise MPFSFileError(f"{path.name}: the row for {code} has a value CMS does not use in {', '.join(bad)}")
    return values


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _release_title(path: Path, notices: list[str]) -> tuple[int, int, str]:
    for line in notices:
        found = _TITLE.search(line)
        if found and found.group(2).upper() in _MONTHS:
            return int(found.group(1)), _MONTHS[found.group(2).upper()], _clean(found.group(0))
    raise MPFSFileError(
        f"{path.name}: no release title in the notice lines (e.g. '2026 National Physician Fee Schedule Relative "
        "Value File January Release'); is this the file as CMS ships it?"
    )


def _released(path: Path, notices: list[str]) -> date:
    for line in notices:
        found = _RELEASED.search(line)
        if found:
            month, day, year = (int(g) for g in found.groups())
            try:
                return date(year, month, day)
            except ValueError:
                break
    raise MPFSFileError(f"{path.name}: no 'RELEASED mm/dd/yyyy' notice line; is this the file as CMS ships it?")


def save(release: Release, directory: Path = DATA_DIR) -> Path:
    """Write ``release`` as ``DIR/<release>.json`` (validated first) and return the path."""
    data = release.to_json()
    schemas.validate("fee-schedule", data)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{release.release}.json"
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _load.cache_clear()
    return target
