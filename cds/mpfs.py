"""Medicare Physician Fee Schedule payment-policy indicators for 64580, and the importer for the CMS file.

The values for 64580 were not found when the domain facts were gathered, so none is shipped: the data file says
"not loaded" and cards say so. ``cds mpfs import FILE`` reads the official CMS PFS relative value file
(PPRRVU*.csv, https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files): a few
lines of notes, then a header row (``HCPCS``, ``MOD``, ... ``GLOB DAYS`` ... ``MULT PROC``, ``BILAT SURG``,
``ASST SURG``, ``CO SURG`` or ``CO- SURG``, ``TEAM SURG`` ...), then one row per code and modifier.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cds.errors import InvalidRequest

DATA_FILE = Path(__file__).resolve().parent / "policies" / "fee-schedule" / "mpfs-64580.json"
CODE = "64580"
_FIELDS = {
    "GLOBDAYS": "global_days",
    "MULTPROC": "mult_proc",
    "BILATSURG": "bilat_surg",
    "ASSTSURG": "asst_surg",
    "COSURG": "co_surg",
    "TEAMSURG": "team_surg",
}


@dataclass(frozen=True)
class Indicators:
    code: str = CODE
    global_days: str | None = None
    mult_proc: str | None = None
    bilat_surg: str | None = None
    asst_surg: str | None = None
    co_surg: str | None = None
    team_surg: str | None = None
    source: str = "not loaded: run `cds mpfs import PPRRVU.csv`"
    file: str | None = None
    imported: str | None = None

    @property
    def loaded(self) -> bool:
        return self.co_surg is not None


class MPFSFileError(InvalidRequest):
    """The file is not a CMS PPRRVU relative value file, or lacks the code."""


def load_indicators(path: Path = DATA_FILE) -> Indicators:
    if not path.exists():
        return Indicators()
    data = json.loads(path.read_text(encoding="utf-8"))
    return Indicators(**{k: v for k, v in data.items() if k in Indicators.__dataclass_fields__})


def _key(name: str) -> str:
    return re.sub(r"[^A-Z]", "", name.upper())


def read_pprrvu(path: Path, code: str = CODE) -> Indicators:
    """The indicators for ``code`` (no modifier) from a CMS PPRRVU CSV file."""
    with path.open(newline="", encoding="latin-1") as handle:
        rows = csv.reader(handle)
        header = None
        for row in rows:
            keys = [_key(c) for c in row]
            if "HCPCS" in keys and "GLOBDAYS" in keys:
                header = keys
                break
        if header is None:
            raise MPFSFileError(f"{path.name}: no header row with HCPCS and GLOB DAYS; is this a PPRRVU file?")
        missing = [name for name in (*_FIELDS, "MOD") if name not in header]
        if missing:
            raise MPFSFileError(f"{path.name}: header lacks {', '.join(missing)}")
        at = {name: header.index(name) for name in (*_FIELDS, "HCPCS", "MOD")}
        for row in rows:
            if len(row) <= max(at.values()):
                continue
            if row[at["HCPCS"]].strip() == code and not row[at["MOD"]].strip():
                values = {field: row[at[name]].strip() or None for name, field in _FIELDS.items()}
                return Indicators(
                    code=code,
                    source="CMS PFS relative value file, " + CMS_URL,
                    file=path.name,
                    imported=datetime.now(UTC).date().isoformat(),
                    **values,
                )
    raise MPFSFileError(f"{path.name}: no row for HCPCS {code} without a modifier")


CMS_URL = "https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files"


def save_indicators(indicators: Indicators, path: Path = DATA_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(indicators), indent=2) + "\n", encoding="utf-8")
