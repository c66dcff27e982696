"""`cds mpfs import` reads the CMS relative value file as CMS ships it; `cds mpfs show` prints the shipped values.

The samples in ``tests/data/mpfs`` copy the real header blocks and real rows of three CMS releases (see SOURCES.md
there): five header rows, notices, CRLF or LF, 31 or 32 columns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from cds import mpfs

CDS = str(Path(sys.executable).with_name("cds"))
SAMPLES = Path(__file__).parent / "data" / "mpfs"
JAN_2025 = SAMPLES / "PPRRVU25_JAN.layout-sample.csv"
OCT_2025 = SAMPLES / "PPRRVU2025_Oct.layout-sample.crlf.csv"
JAN_2026 = SAMPLES / "PPRRVU2026_Jan_nonQPP.layout-sample.csv"
SHOW_KEYS = [
    "code",
    "release",
    "released",
    "effective",
    "status_code",
    "glob_days",
    "mult_proc",
    "bilat_surg",
    "asst_surg",
    "co_surg",
    "team_surg",
    "source",
]


def cds(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CDS, *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("sample", "release", "released", "effective"),
    [
        (JAN_2025, "RVU25A", date(2024, 12, 23), date(2025, 1, 1)),
        (OCT_2025, "RVU25D", date(2025, 9, 11), date(2025, 10, 1)),
        (JAN_2026, "RVU26A", date(2025, 12, 29), date(2026, 1, 1)),
    ],
)
def test_reads_each_real_layout(sample, release, released, effective):
    found = mpfs.read_pprrvu(sample)
    assert (found.release, found.released, found.effective) == (release, released, effective)
    row = found.indicators("64580")
    values = (row.status_code, row.glob_days, row.mult_proc, row.bilat_surg, row.asst_surg, row.co_surg)
    assert values == ("A", "090", "2", "0", "2", "0") and row.team_surg == "0"
    assert found.indicators("64590").co_surg == "1"  # the generator: co-surgeons with documentation
    assert found.indicators("64582").bilat_surg == "1" and found.indicators("64555").glob_days == "010"
    assert "A0021" not in found.codes, "only the neurostimulator family is kept"


def test_columns_are_found_by_name_not_position():
    # 2026 inserts PRIC IND before ENDO BASE: a positional reader would take TEAM SURG's neighbour.
    jan = mpfs.read_pprrvu(JAN_2026).indicators("64590")
    assert (jan.asst_surg, jan.co_surg, jan.team_surg) == ("1", "1", "0")


def test_codes_can_be_chosen():
    assert set(mpfs.read_pprrvu(JAN_2025, ["64580", "64581"]).codes) == {"64580", "64581"}


def test_the_shipped_releases_are_what_the_importer_reads_from_the_samples():
    shipped = mpfs.load()
    assert [r.release for r in shipped.releases] == ["RVU25A", "RVU25D", "RVU26A"]
    samples = (SAMPLES / "PPRRVU25_JAN.family.csv", OCT_2025, SAMPLES / "PPRRVU2026_Jan_nonQPP.family.csv")
    for release, sample in zip(shipped.releases, samples, strict=True):
        imported = mpfs.read_pprrvu(sample)
        assert (release.released, release.effective) == (imported.released, imported.effective)
        for code, values in imported.codes.items():
            assert dict(release.codes[code]) == dict(values), (release.release, code)
        assert release.source["kind"] == "cms" and release.source["url"].startswith("https://www.cms.gov/")
        assert set(release.codes) == set(mpfs.FAMILY), f"{release.release} keeps the whole family"


@pytest.mark.parametrize(
    ("as_of", "release"),
    [
        (date(2025, 1, 1), "RVU25A"),
        (date(2025, 9, 30), "RVU25A"),
        (date(2025, 10, 1), "RVU25D"),
        (date(2026, 6, 1), "RVU26A"),
    ],
)
def test_the_release_in_force_answers(as_of, release):
    assert mpfs.load().indicators("64580", as_of).release == release


def test_cli_import_writes_dated_data(tmp_path):
    official = tmp_path / "PPRRVU2026_Jan_nonQPP.csv"
    shutil.copy(JAN_2026, official)
    result = cds("mpfs", "import", str(official), "--out", str(tmp_path / "out"), "--read-from", "a test copy")
    assert result.returncode == 0, result.stderr
    assert "RVU26A" in result.stdout and "CPT 64580:" in result.stdout
    data = json.loads((tmp_path / "out" / "RVU26A.json").read_text())
    assert data["file"] == "PPRRVU2026_Jan_nonQPP.csv" and data["released"] == "2025-12-29"
    assert data["codes"]["64580"]["co_surg"] == "0" and data["source"]["read_from"] == "a test copy"
    assert mpfs.load(tmp_path / "out").indicators("64580", date(2026, 2, 1)).co_surg == "0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: "just,some,csv\n1,2,3\n", "no header row starting with HCPCS"),
        (lambda t: t.replace(",CO-,", ",XX-,"), "no column CO- SURG"),
        (lambda t: t.replace("GLOB,", "GLOBE,"), "no column GLOB DAYS"),
        (lambda t: t.replace("RELEASED 12/29/2025", "RELEASE DATE UNKNOWN"), "RELEASED mm/dd/yyyy"),
        (lambda t: t.replace("January Release", "Special Release"), "no release title"),
        (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("64")), "none of the codes"),
    ],
)
def test_cli_refuses_what_is_not_a_pprrvu_file(tmp_path, change, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(change(JAN_2026.read_text()))
    result = cds("mpfs", "import", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_spreadsheet_round_trip_and_odd_characters_do_not_change_the_values(tmp_path):
    text = JAN_2025.read_text().replace(",090,", ",90,").replace("64580,,DESCRIPTOR OMITTED", "64580,,DESC\u2028RIPTOR")
    edited = tmp_path / "PPRRVU25_JAN.csv"
    edited.write_text(text, encoding="utf-8")
    row = mpfs.read_pprrvu(edited).indicators("64580")
    assert (row.glob_days, row.co_surg, row.asst_surg) == ("090", "0", "2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("64580,,DESCRIPTOR OMITTED,A,,4.19", "64580,,DESCRIPTOR OMITTED").split("\n64581")[0],
            "the row for 64580 has no",
        ),
        (lambda t: t.replace("64580,,DESCRIPTOR OMITTED", '64580,,"' + "x" * 140_000), "not a readable CSV file"),
        (lambda t: t.replace(",090,0.11", ",9O,0.11"), "a value CMS does not use in GLOB DAYS"),
    ],
)
def test_cli_refuses_damaged_rows_without_a_traceback(tmp_path, change, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(change(JAN_2025.read_text()))
    result = cds("mpfs", "import", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_out_that_is_a_file_is_a_clear_error(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    result = cds("mpfs", "import", str(JAN_2025), "--out", str(taken))
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_cli_missing_file_is_a_clear_error(tmp_path):
    result = cds("mpfs", "import", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("as_of", "release", "released"), [("2025-06-01", "RVU25A", "2024-12-23"), ("2026-06-01", "RVU26A", "2025-12-29")]
)
def test_cli_show_json_prints_the_real_indicators(as_of, release, released):
    result = cds("mpfs", "show", "64580", "--as-of", as_of, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == SHOW_KEYS
    assert (data["release"], data["released"]) == (release, released)
    assert (data["glob_days"], data["co_surg"], data["team_surg"], data["asst_surg"]) == ("090", "0", "0", "2")
    assert all(isinstance(v, str) for v in data.values()) and "cms.gov" in data["source"]


def test_a_release_never_answers_for_a_later_year():
    result = cds("mpfs", "show", "64580", "--as-of", "2027-06-01")
    assert result.returncode == 1 and "No Medicare fee-schedule release for 2027" in result.stderr
    assert mpfs.load().indicators("64580", date(2027, 1, 1)) is None


def test_cli_show_before_any_release_says_so_in_words():
    result = cds("mpfs", "show", "64580", "--as-of", "2024-06-01")
    assert result.returncode == 1
    assert "No Medicare fee-schedule release shipped with this service is in force on 2024-06-01" in result.stderr
    assert "RVU25A" in result.stderr and "Traceback" not in result.stderr
