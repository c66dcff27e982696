"""`cds mpfs import`: the CMS relative value file fills the 64580 payment indicators the cards rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds import mpfs

CDS = str(Path(sys.executable).with_name("cds"))
SAMPLE = Path(__file__).parent / "data" / "PPRRVU-sample.csv"


def test_shipped_data_says_the_indicators_are_not_loaded():
    shipped = mpfs.load_indicators()
    assert not shipped.loaded
    assert shipped.co_surg is None and shipped.asst_surg is None
    assert "not loaded" in shipped.source


def test_reads_the_row_without_modifier():
    indicators = mpfs.read_pprrvu(SAMPLE)
    assert (indicators.global_days, indicators.mult_proc, indicators.bilat_surg) == ("XXX", "8", "7")
    assert (indicators.asst_surg, indicators.co_surg, indicators.team_surg) == ("6", "5", "4")
    assert indicators.file == SAMPLE.name and indicators.loaded


def test_cli_import_writes_the_data_file(tmp_path):
    out = tmp_path / "mpfs.json"
    result = subprocess.run([CDS, "mpfs", "import", str(SAMPLE), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "co-surgeon 5" in result.stdout
    data = json.loads(out.read_text())
    assert data["co_surg"] == "5" and data["code"] == "64580"
    assert mpfs.load_indicators(out).co_surg == "5"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("just,some,csv\n1,2,3\n", "no header row"),
        ('"HCPCS","MOD","GLOB DAYS"\n"64580","","090"\n', "header lacks"),
        (SAMPLE.read_text().replace('"64580",""', '"64581",""'), "no row for HCPCS 64580"),
    ],
)
def test_cli_rejects_files_that_are_not_pprrvu(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = subprocess.run(
        [CDS, "mpfs", "import", str(bad), "--out", str(tmp_path / "o.json")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_missing_file_is_a_clear_error(tmp_path):
    result = subprocess.run([CDS, "mpfs", "import", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert result.returncode == 2 and "cannot read" in result.stderr
