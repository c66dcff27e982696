"""The README is a front page and docs/ holds the rest: every link resolves and every command line still parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cds.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_a_short_front_page_that_links_every_doc():
    text = README.read_text()
    assert len(text.splitlines()) <= 120, "the long sections belong in docs/"
    assert "make run" in text and "make test" in text
    linked = {m for m in LINK.findall(text) if m.startswith("docs/")}
    assert linked == {f"docs/{d.name}" for d in DOCS}, (
        "every doc is reachable from the README, and only docs that exist"
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    text = page.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading for #{anchor}"


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            match = re.match(r"\s*\.venv/bin/cds (.+)", line)
            if match:
                command = match.group(1).split(" #")[0].split(" >")[0].strip()
                found.append((page.name, command))
    return found


COMMANDS = _command_lines()


def test_the_docs_show_the_commands_people_use():
    assert {"replay", "policies", "mpfs"} <= {command.split()[0] for _, command in COMMANDS}


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}: {c[:40]}" for p, c in COMMANDS])
def test_every_documented_cds_command_parses(page, command):
    """A renamed or removed option fails here, not in the hands of someone following the docs."""
    args = shlex.split(command.replace("CASE", "fhir_fixtures/no-coverage"))
    build_parser().parse_args(args)


def test_the_number_of_shipped_cases_the_docs_give_is_the_number_shipped():
    """The replay doc said 62 cases and "62 passed" when 67 were shipped."""
    shipped = len([p for p in (ROOT / "fhir_fixtures").iterdir() if (p / "case.json").is_file()])
    text = (ROOT / "docs" / "testing-and-replay.md").read_text()
    said = [int(n) for n in re.findall(r"(\d+) shipped cases|\"(\d+) passed, 0 failed\"", text) for n in n if n]
    assert said and set(said) == {shipped}, (said, shipped)
