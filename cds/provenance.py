"""Where a policy fact is written: sources with kind, title, a verbatim quote and the day someone read them.

A fact is primary when any of its sources is (CMS, a Medicare contractor, the payer, a peer-reviewed paper, the
device maker) and its quoted passage states the fact: a primary document cited only for context (``"context":
true``) does not count. A fact whose sources are all secondary may inform, never warn on its own. AI-generated answer
sites are not sources at all: the schema and :func:`refused` keep them out of the data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

KINDS = ("cms", "mac", "payer", "peer-reviewed", "device-maker", "secondary")
_AI_WORDS = re.compile(r"ai[-_ ]generated|ai[-_ ]answer", re.IGNORECASE)
UNVERIFIED = "unverified summary"
BACKGROUND = "background"
# what a source is to its fact, in the order sources are listed: it states the fact (a primary document's passage
# saying it), it is background (a primary document that does not say it), or it is a secondary summary
ROLES = ("states", "background", "secondary")
_CITE_LABEL = {"states": "", "background": BACKGROUND, "secondary": UNVERIFIED}
REVIEW_AFTER_DAYS = 365


@dataclass(frozen=True)
class Source:
    url: str
    kind: str
    title: str
    quote: str
    retrieved: str
    section: str = ""
    context: bool = False  # cited for background: the passage does not itself state the fact

    @property
    def primary(self) -> bool:
        """A primary document (CMS, a contractor, the payer...), whatever this passage says."""
        return self.kind != "secondary"

    @property
    def role(self) -> str:
        """One of :data:`ROLES`."""
        return "secondary" if not self.primary else "background" if self.context else "states"

    @property
    def states(self) -> bool:
        """A primary document whose quoted passage states the fact: what makes a fact primary."""
        return self.primary and not self.context

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").removeprefix("www.")

    def due_for_review(self, today: date) -> bool:
        """Read more than a year ago: the payer may have changed the text since."""
        return (today - date.fromisoformat(self.retrieved)).days > REVIEW_AFTER_DAYS

    def cite(self) -> str:
        """``url (title)``, ``url (unverified summary: title)`` for a secondary source, ``url (background: title)``
        for a primary one cited for context."""
        label = _CITE_LABEL[self.role]
        return f"{self.url} ({label + ': ' if label else ''}{self.title})"

    def to_json(self) -> dict:
        item = {
            "url": self.url,
            "kind": self.kind,
            "title": self.title,
            "quote": self.quote,
            "retrieved": self.retrieved,
        }
        return item | ({"section": self.section} if self.section else {}) | ({"context": True} if self.context else {})


def parse(raw: list[dict]) -> tuple[Source, ...]:
    """Sources from policy data (already schema-valid), primary ones first."""
    found = [
        Source(
            s["url"], s["kind"], s["title"], s["quote"], s["retrieved"], s.get("section", ""), s.get("context", False)
        )
        for s in raw
    ]
    return tuple(sorted(found, key=lambda s: not s.primary))


def confidence(sources: tuple[Source, ...]) -> str:
    return "primary" if any(s.states for s in sources) else "secondary"


def quoted(sources: tuple[Source, ...], pattern: re.Pattern[str], stating: bool = True) -> bool:
    """Whether a source that states the fact quotes ``pattern`` (a window, a threshold) in its own words; with
    ``stating=False`` any source, background and summaries included (wording that repeats a text's own)."""
    return any((s.states or not stating) and pattern.search(s.quote) for s in sources)


UNSOURCED = "no source"
NO_SOURCE = "no source: "  # how a criterion with no source is cited, before where it was seen instead


def seen_only(citation_text: str) -> str | None:
    """Where a criterion with no source was seen instead (an AI answer page: a lead, never a source), or None."""
    return citation_text.removeprefix(NO_SOURCE) if citation_text.startswith(NO_SOURCE) else None


def unstated_because(roles: Iterable[str]) -> str:
    """Why no source states a fact, from the roles of its sources: "" (one states it), ``BACKGROUND`` (the primary
    documents cited do not state it for this payer), ``UNVERIFIED`` (only summaries were read) or ``UNSOURCED``
    (no source at all: "not established")."""
    found = set(roles)
    if "states" in found:
        return ""
    return BACKGROUND if "background" in found else UNVERIFIED if found else UNSOURCED


def citation(sources: tuple[Source, ...]) -> str:
    return "; ".join(s.cite() for s in sources)


_CITED = re.compile(r"(https?://\S+) \(((?:" + UNVERIFIED + "|" + BACKGROUND + r"): )?(.*?)\)(?=; https?://|$)")


_ROLE_OF_LABEL = {f"{label}: " if label else None: role for role, label in _CITE_LABEL.items()}


@functools.lru_cache(maxsize=1024)
def _cited(citation_text: str) -> tuple[tuple[str, str, str, str], ...]:
    found: dict[str, tuple[str, str, str, str]] = {}
    for match in _CITED.finditer(citation_text):
        url, label, title = match.groups()
        host = (urlsplit(url).hostname or "").removeprefix("www.")
        found.setdefault(url, (url, title, host, _ROLE_OF_LABEL[label]))
    return tuple(sorted(found.values(), key=lambda s: ROLES.index(s[3])))


def cited(citation_text: str) -> list[dict]:
    """The sources a :func:`citation` names, each once, in :data:`ROLES` order:
    ``{"url", "title", "host", "role", "primary", "context"}``.

    The inverse of :func:`citation`, for readers that get only the text (a card's criteria extension); the
    parse is kept per citation text (policy data, a few hundred strings)."""
    return [
        {"url": url, "title": title, "host": host, "role": role, "primary": role != "secondary",
         "context": role == "background"}
        for url, title, host, role in _cited(citation_text or "")
    ]  # fmt: skip


def refused(url: str, title: str = "") -> bool:
    """An AI-generated answer page: by its host, or by a URL or title that says it is AI-generated."""
    return bool(_ai_host().match(url.strip())) or bool(_AI_WORDS.search(url + " " + title))


@functools.cache
def _ai_host() -> re.Pattern[str]:
    """The refused hosts live once, in schemas/policy.schema.json#/$defs/aiHost; the loader reuses the pattern."""
    from cds import schemas

    return re.compile(schemas.schema("policy")["$defs"]["aiHost"]["pattern"], re.IGNORECASE)
