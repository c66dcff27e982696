"""The hot path compiled with Cython (hatch_build.py, cds/compiled.py): what `make test` tests is what ships, a
compiled module answers exactly as its source does, and an edit is never hidden by an old build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from cds import compiled, fixtures, replay

ROOT = Path(__file__).resolve().parent.parent
LISTED = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"][
    "custom"
]["modules"]


def _import_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {"PYTHONPATH": str(cwd)} | env
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def _has_compiler() -> bool:
    return bool(shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]))


@pytest.mark.skipif(not _has_compiler(), reason="no C compiler: `make` leaves the hot path as pure Python")
def test_every_listed_module_runs_compiled_under_make():
    """`make` compiles the list in pyproject.toml before the tests: a failed build must not pass as pure Python."""
    assert len(LISTED) >= 20
    pure = [
        name
        for name in map(_import_name, LISTED)
        if not import_module(name).__file__.endswith(tuple(EXTENSION_SUFFIXES))
    ]
    assert not pure, f"run from source (run `make compile`): {pure}"
    assert compiled.summary() == f"compiled modules: {len(LISTED)} in use"


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    for folder in ("cds", "schemas"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_module_edited_after_it_was_compiled_runs_its_source_and_the_log_says_so(package_copy: Path):
    for path in ("cds/rules/dates.py", "cds/rules/__init__.py"):
        with (package_copy / path).open("a") as source:
            source.write("\nEDITED_AFTER_COMPILING = True\n")
    done = _python(
        "import cds, cds.rules, cds.rules.dates, cds.records\n"
        "for m in (cds.rules, cds.rules.dates, cds.records):\n"
        "    print(m.__name__, m.__file__.rsplit('.', 1)[-1], getattr(m, 'EDITED_AFTER_COMPILING', False))\n"
        "cds.create_app({'DATABASE_URL': 'sqlite://'})\n",
        package_copy,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["cds.rules py True", "cds.rules.dates py True", "cds.records so False"]
    warning = next(json.loads(line) for line in done.stderr.splitlines() if "run from source" in line)
    assert warning["level"] == "warning"
    assert warning["message"].endswith("changed since compiled (make compiles them again): cds.rules, cds.rules.dates")


def test_compiled_off_runs_every_module_from_source(package_copy: Path):
    names = [_import_name(p) for p in LISTED]
    done = _python(
        f"import importlib\nfor n in {names!r}: print(importlib.import_module(n).__file__)",
        package_copy,
        CDS_COMPILED="0",
    )
    assert done.returncode == 0, done.stderr
    assert [Path(f).suffix for f in done.stdout.split()] == [".py"] * len(names)


_REPLAY_ALL = """
import json, sys
from cds import fixtures, replay
answers = {c.name: (r.status, r.response) for c in fixtures.discover([fixtures.FIXTURE_DIR])
           for r in [replay.run(c, replay.Options())]}
json.dump(answers, sys.stdout, sort_keys=True)
"""


def test_the_compiled_hot_path_answers_every_fixture_as_its_source_does():
    """Cython translates the same source; the cards a surgeon reads must not depend on which one ran."""
    from_source = _python(_REPLAY_ALL, ROOT, CDS_COMPILED="0")
    assert from_source.returncode == 0, from_source.stderr
    cases = fixtures.discover([fixtures.FIXTURE_DIR])
    here = {case.name: (r.status, r.response) for case in cases for r in [replay.run(case, replay.Options())]}
    assert len(here) == len(cases) >= 50
    assert json.loads(json.dumps(here, sort_keys=True)) == json.loads(from_source.stdout)
