"""Findings -> CDS Hooks cards: one card per concern, each carrying every criterion and its evidence.

- documentation (``appropriate-use``): what must be documented before 64580, with a Task suggestion;
- billing (``claim``): co-surgeon / team / assistant modifiers, with a suggestion that fixes the order;
- payer (``guideline``, an External Reference card): the payer's stance in one line, with links to the policy;
  or (``insurance``) why no payer policy could be applied: no coverage, several, or an unrecognised payer;
- summary (``appropriate-use``, info, an Instructions card): every criterion and its status, met ones included.

Card and suggestion uuids are derived from the hookInstance, the order and the card kind, so a retried call (or
another instance behind the load balancer) answers with identical cards and feedback still reconciles.
Text taken from the record (codes, ids) is escaped before it enters markdown.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple
from urllib.parse import urlencode

from cds import payers, provenance, questionnaires
from cds.codes import CPT, HCPCS, canonical, codings
from cds.fhirvalues import array, as_reference, unnamed
from cds.memo import IdentityMemo
from cds.orders import Order
from cds.rules.findings import BillingOption, Finding, Status
from cds.rules.params import BILLING
from cds.rules.pathways import PAIN, Pathway
from cds.rules.surgeons import CO_SURGERY, TEAM_SURGERY

CARD_TYPES = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
CARD_TYPES_CRD_2_1 = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
OVERRIDE_REASONS = "urn:cds64580:override-reason"
SERVICE_LABEL = "CPT 64580 documentation check"
CRITERIA_EXTENSION = "cds64580.criteria"
ASSOCIATED = "davinci-crd.associated-resource"
DEFAULT_PATHWAY = Pathway(PAIN, "no indication documented")
_NAMESPACE = uuid.UUID("0f6b5d8e-6b1a-5c43-9d55-64580c0d1e64")
_NAMESPACE_BYTES = _NAMESPACE.bytes

SUMMARY_MAX = 139
_MD_SPECIAL = re.compile(r"[\\`*_\[\]<>|#]")
# each special gets a backslash; the backslash first, so the ones added are not escaped again
_MD_ESCAPES = tuple((c, "\\" + c) for c in "\\`*_[]<>|#")

# Which CRD configuration option switches each card kind off.
OPTION_FOR_KIND = {
    "payer": "coverage-info",
    "documentation": "appropriate-use",
    "billing": "claim",
    "code": "claim",
    "summary": "appropriate-use",
}


class CardContext(NamedTuple):
    """What one order's cards are about: made once an order, and read by every card of it."""

    hook_instance: str
    order: Order
    patient_id: str
    user_id: str | None
    route: payers.Route
    as_of: date
    topic_system: str = CARD_TYPES
    information_only: bool = False
    pathway: Pathway = DEFAULT_PATHWAY
    dtr_app: str | None = None  # the EHR's DTR SMART app (CDS_DTR_APP_URL)
    dtr_form: str | None = None  # the built-in questionnaire form (the viewer's /viewer/dtr), when served
    questionnaire: str | None = None  # canonical|version of this policy's documentation questionnaire
    coverage_info: bool = True  # the answer carries coverage information (not order-select, not switched off)

    @property
    def group(self) -> str:
        return self.pathway.id

    @property
    def payer(self) -> str | None:
        return self.route.payer_name if self.route.coverage_ref else None


def md(text: str) -> str:
    """Escape markdown and HTML specials in text that came from the record. One ``str.replace`` per special the
    text holds: ``str.translate`` to two-character strings took a dict lookup per character (a 200-character
    reason with a few specials cost ten times as much)."""
    if not _MD_SPECIAL.search(text):
        return text
    for special, escaped in _MD_ESCAPES:
        if special in text:
            text = text.replace(special, escaped)
    return text


@functools.lru_cache(maxsize=4096)
def _md_title(title: str) -> str:
    """:func:`md` of a criterion's title: policy data, escaped once."""
    return md(title)


def summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def _uuid(ctx: CardContext, *parts: str) -> str:
    return name_uuid(_NAMESPACE_BYTES, "|".join((ctx.hook_instance, ctx.order.id, *parts)))


def name_uuid(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` for a namespace's 16 bytes, computed straight from SHA-1 (a
    third of the cost; a call makes half a dozen): the version digit is set to 5 and the variant digit's top bits to
    RFC 4122's 10."""
    h = hashlib.sha1(namespace + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}  # a hex digit with its top two bits set to 10


def build(findings: list[Finding], ctx: CardContext) -> list[tuple[str, dict]]:
    """(kind, card) pairs, most important first."""
    criteria = [f.to_json() for f in findings]
    by_id = {f.criterion: f for f in findings}
    headers = _Headers(ctx)
    cards = [("payer", _payer(findings, ctx))]
    documentation = _documentation([f for f in findings if f.criterion not in BILLING], ctx, headers)
    if documentation:
        cards.append(("documentation", documentation))
    billing = _billing([by_id[i] for i in BILLING if i in by_id], ctx, headers)
    if billing:
        cards.append(("billing", billing))
    pointer = next((f for f in findings if f.alternative), None)
    if pointer:
        cards.append(("code", _code(pointer, ctx, headers)))
    cards.append(("summary", _summary(findings, ctx, headers)))
    order = as_reference(ctx.order.reference)
    for _kind, card in cards:
        card["extension"] = {CRITERIA_EXTENSION: criteria, ASSOCIATED: [dict(order)]}
    return cards


def _card(
    ctx: CardContext, kind: str, text: str, indicator: str, topic: str, detail: str, findings, links=True
) -> dict:
    card = {
        "uuid": _uuid(ctx, kind),
        "summary": summary(text),
        "indicator": indicator,
        "detail": detail,
        "source": {"label": ctx.payer or SERVICE_LABEL, "topic": {"system": ctx.topic_system, "code": topic}},
    }
    found = _links(findings) if links else []
    if found:
        card["links"] = found
        card["source"]["url"] = found[0]["url"]
    return card


_STATUS_TEXT = {s: s.value for s in Status}  # a status as plain text, without the enum's value descriptor


def _line(f: Finding) -> str:
    return f"- **{f.title or f.criterion}** — {_STATUS_TEXT[f.status]}: {md(f.reason)}{_finding_caveat(f)}"


def _notes(findings: list[Finding]) -> list[str]:
    """The findings' notes and the documents they ask for, once each."""
    documents = list(dict.fromkeys(d for f in findings for d in f.documents))
    return _noted(findings) + [f"- Send with the claim: {md(d)}." for d in documents]


def _noted(findings: list[Finding]) -> list[str]:
    """The findings' notes once each: one that another note already says in full (the fee-schedule indicator a
    co-surgeon note quotes and goes on from) is left out."""
    said = list(dict.fromkeys([n for f in findings for n in f.notes]))
    kept = []
    for n in said:  # loops, not a generator made and resumed for every note
        for other in said:
            if len(other) > len(n) and n in other:
                break
        else:
            kept.append(f"- {md(n)}")
    return kept


def _in_sentence(title: str) -> str:
    """A criterion title inside a sentence, in the policy's own case: only a capital that starts it is lowered
    ("Objective pathology (EMG/NCS)" -> "objective pathology (EMG/NCS)"; "NCS" and "EMG studies" stay)."""
    first = title.split(" ", 1)[0]
    if len(first) > 1 and first[1:2].isupper():
        return title
    return title[:1].lower() + title[1:]


class _Headers(dict):
    """The header of one order's cards by the policy their findings name (``headers[_policy(findings)]``): the cards
    of an order mostly name one policy, so its header is written once."""

    def __init__(self, ctx: CardContext) -> None:
        super().__init__()
        self.ctx = ctx

    def __missing__(self, policy: str) -> str:
        ctx = self.ctx
        header = self[policy] = (
            f"Order {md(ctx.order.reference)} for CPT 64580, policy **{md(policy)}**, pathway **{ctx.pathway.label}** "
            f"(from {md(ctx.pathway.why)}), evaluated as of {ctx.as_of.isoformat()}."
        )
        return header


def _policy(findings: list[Finding]) -> str:
    return findings[0].policy if findings else ""


def _documentation(findings: list[Finding], ctx: CardContext, headers: _Headers) -> dict | None:
    """What to document before signing. A criterion seen only where no source is (an AI answer page) is a lead, not
    a requirement: it is named apart, to verify with the payer, and never on the to-do list or in a task."""
    open_ = [f for f in findings if f.needs_action and not _lead(f)]
    if not open_:
        return None
    not_met = [f for f in open_ if f.status == Status.NOT_MET]
    lead = (not_met or open_)[0]
    headline = "Documentation incomplete for CPT 64580: " if not_met else "Documentation unconfirmed for CPT 64580: "
    text = headline + lead.reason + (f" (+{len(open_) - 1} more)" if len(open_) > 1 else "")
    if len(text) > SUMMARY_MAX:
        text = _fit(
            headline, [_in_sentence(f.title or f.criterion) for f in (not_met + [f for f in open_ if f not in not_met])]
        )
    met = [f.title or f.criterion for f in findings if f.status == Status.MET]
    detail = [headers[_policy(findings)], "", "**Document before signing:**", *map(_line, open_), *_notes(open_)]
    leads = [f.title or f.criterion for f in findings if f.needs_action and _lead(f)]
    if leads:
        detail += ["", f"Not on this list: {', '.join(map(_in_sentence, leads))} (seen only where no source is, "
                   "not a confirmed requirement: ask the payer)."]  # fmt: skip
    if met:
        detail += ["", f"Already documented: {', '.join(met)}."]
    card = _card(
        ctx, "documentation", text, "warning" if not_met else "info", "appropriate-use", "\n".join(detail), open_
    )
    if ctx.dtr_app and ctx.questionnaire and not ctx.information_only:
        app_context = {
            "order": None if unnamed(ctx.order.id) else ctx.order.reference,  # an order without an id: none
            "coverage": ctx.route.coverage_ref,
            "questionnaire": ctx.questionnaire,
        }
        dtr = {"label": "Complete the documentation questionnaire", "url": ctx.dtr_app, "type": "smart",
               "appContext": json.dumps({k: v for k, v in app_context.items() if v})}  # fmt: skip
        card["links"] = [dtr, *card.get("links", [])][:5]
    elif ctx.dtr_form and ctx.questionnaire and not ctx.information_only:  # no DTR app: our own form
        ident = questionnaires.questionnaire_id(ctx.route.plan, ctx.route.version)
        form = {"label": "Complete the documentation questionnaire (form)", "type": "absolute",
                "url": f"{ctx.dtr_form}?{urlencode({'questionnaire': ident})}"}  # fmt: skip
        card["links"] = [form, *card.get("links", [])][:5]
    card["overrideReasons"] = [dict(r) for r in _DOCUMENTATION_REASONS]
    if not ctx.information_only:
        _suggest(
            card,
            ctx,
            [("documentation-task", "Create a documentation task for the care team", [_task_action(open_, ctx)])],
        )
    return card


def _lead(f: Finding) -> bool:
    """Whether the finding's criterion has no source, only a place it was seen (policies: ``unverified``)."""
    return provenance.seen_only(f.source) is not None


def _fit(prefix: str, items: list[str]) -> str:
    """``prefix`` and as many items as fit in a summary, with a count of the rest."""
    for shown in range(len(items), 0, -1):
        rest = len(items) - shown
        text = prefix + ", ".join(items[:shown]) + (f" (+{rest} more)" if rest else "")
        if len(text) <= SUMMARY_MAX:
            return text
    return summary(prefix + items[0])


def _billing(findings: list[Finding], ctx: CardContext, headers: _Headers) -> dict | None:
    shown = [f for f in findings if f.status != Status.NOT_APPLICABLE]
    if not shown:
        return None
    lead = next((f for f in shown if f.status == Status.NOT_MET), None) or shown[0]
    indicator = "warning" if any(f.status == Status.NOT_MET for f in shown) else "info"
    detail = [headers[_policy(shown)], "", *map(_line, shown), *_notes(shown)]
    card = _card(ctx, "billing", _billing_summary(lead), indicator, "claim", "\n".join(detail), shown)
    card["overrideReasons"] = [dict(r) for r in _BILLING_REASONS]
    co = next((f for f in shown if f.criterion == "co-surgeon-modifier" and f.status == Status.NOT_MET), None)
    if co and not ctx.information_only:
        suggestions = _billing_suggestions(co, ctx)
        if suggestions:
            _suggest(card, ctx, suggestions)
    return card


def _code(f: Finding, ctx: CardContext, headers: _Headers) -> dict:
    """The sibling code the documentation points to: information only, the surgeon decides."""
    code, what = f.alternative  # type: ignore[misc]
    text = f"The documentation points to CPT {code} ({what}), not 64580"
    detail = "\n".join(
        [
            headers[f.policy],
            "",
            f"{md(f.reason[:1].upper() + f.reason[1:])}.",
            "",
            "CPT splits open array implantation by target: 64575 peripheral nerve, 64580 neuromuscular, 64581 "
            "sacral nerve, 64582 hypoglossal nerve. If the operation targets a muscle, document that target; the "
            "surgeon decides the code.",
        ]
    )
    return _card(ctx, "code", text, "info", "claim", detail, [f], links=False)


def _billing_suggestions(co: Finding, ctx: CardContext) -> list[tuple[str, str, list[dict]]]:
    """Fix the order's 62/66, and (where co-surgery is not paid) bill the second surgeon as assistant instead."""
    change = _modifier_action(ctx.order, co)
    found = [
        (f"assistant-{o.modifier}", o.label, [*([change] if change else []), _assistant_task(o, ctx)])
        for o in co.options
    ]
    if change and co.options:
        mods = "/".join(sorted(ctx.order.modifiers & {CO_SURGERY, TEAM_SURGERY}))
        label = f"Remove modifier {mods} only: each surgeon bills the code of their own procedure"
        found.append(("modifier", label, [change]))
    elif change:
        found.append(("modifier", change["description"], [change]))
    return found


def _billing_summary(f: Finding) -> str:
    """One line a surgeon acts on: the rule's own headline, else its reason."""
    return summary(f.headline or f"CPT 64580: {f.reason[:1].upper()}{f.reason[1:]}")


def _summary(findings: list[Finding], ctx: CardContext, headers: _Headers) -> dict:
    statuses = [f.status for f in findings]  # counted in C: a dict of counts took a hash and a store per finding
    payer = ctx.payer
    text = (
        f"CPT 64580 criteria{' for ' + payer if payer else ''}: {statuses.count(Status.MET)} met, "
        f"{statuses.count(Status.NOT_MET)} not met, {statuses.count(Status.UNKNOWN)} unknown"
    )
    rows = ["| Criterion | Status | Why |", "|---|---|---|"]
    # the status marked when a clinician's attestation (not the record) decided it
    rows += [
        f"| {_md_title(f.title or f.criterion)} | {_STATUS_TEXT[f.status]}{' (attested)' if f.attested else ''} "
        f"| {md(f.reason)} |"
        for f in findings
    ]
    # a met criterion's notes (a pain score off the scale beside a good trial) are on no other card
    noted = _noted([f for f in findings if f.status == Status.MET and f.criterion not in BILLING])
    detail = "\n".join(
        [headers[_policy(findings)], "", *rows, *(["", "**Notes on met criteria:**", *noted] if noted else [])]
    )
    return _card(ctx, "summary", text, "info", "appropriate-use", detail, findings, links=False)


_NOT_COVERED = ("not-medically-necessary", "investigational", "not-covered")
_ROUTE_PROBLEMS = {
    payers.NO_COVERAGE: ("No insurance coverage found: the payer's CPT 64580 policy cannot be checked", "warning"),
    payers.NO_ACTIVE_COVERAGE: ("The patient's coverage is not active: check insurance before CPT 64580", "warning"),
    payers.AMBIGUOUS: (
        "Several active coverages: set the order's insurance so the right payer policy applies",
        "warning",
    ),
    payers.TECHNICAL: (  # the coverage information says the same, with the 'technical' reason
        "The EHR did not return the patient's coverage in time: the payer's CPT 64580 policy was not checked",
        "info",
    ),
}


_NO_COVERAGE_SENT = {  # what the coverage information says for these (CRD special outcomes), in the card's words
    payers.NO_COVERAGE: "no payer policy was checked, and the coverage information tells the EHR 'not covered: "
    "coverage not found'.",
    payers.NO_ACTIVE_COVERAGE: "no payer policy was checked, and the coverage information tells the EHR 'not "
    "covered: no active coverage'.",
}


def _payer(findings: list[Finding], ctx: CardContext) -> dict:
    """The payer's stance for this order, or why no payer policy applies (never a silent fallback)."""
    route = ctx.route
    version = route.version
    default_note = (
        f"The default clinical criteria ({md(version.title)}) were applied instead; coverage was not determined."
    )
    if route.outcome in _ROUTE_PROBLEMS:
        text, indicator = _ROUTE_PROBLEMS[route.outcome]
        if route.not_on_surgery_day:
            text = "The patient's coverage is not in force on the day of surgery: check insurance before CPT 64580"
        why = f" ({md(route.inactive)})" if route.inactive else ""
        note = default_note
        # CRD's special outcome: the EHR reads "not-covered" with the reason (when coverage information is sent)
        if route.outcome in _NO_COVERAGE_SENT and ctx.coverage_info:
            note = note.replace("coverage was not determined.", _NO_COVERAGE_SENT[route.outcome])
        detail = "\n".join([text + why + ".", "", note])
        return _card(ctx, "payer", text, indicator, "insurance", detail, [], links=False)
    if route.unknown_because:
        text = "Payer unknown: coverage for CPT 64580 not determined"
        detail = "\n".join(
            [
                f"The payer is unknown: {md(route.unknown_because)}.",
                "",
                "An EHR can send it with the coverage prefetch (`_include=Coverage:payor`), or let this service "
                "read Organization from its FHIR server.",
                "",
                default_note,
            ]
        )
        return _card(ctx, "payer", text, "info", "insurance", detail, [], links=False)
    if not route.matched:
        name = f"Payer {route.payer_name}" if route.payer_name else "The payer"
        if route.outcome == payers.NOT_IN_FORCE:  # the payer had a policy then: this service lacks that version
            text = f"{name}: the policy version in force on this date is not on file; CPT 64580 coverage not determined"
            said = f"The version of the CPT 64580 policy of {md(name.removeprefix('Payer '))} in force on "
            said += f"{_policy_day(ctx)} is not on file with this service (only later versions are)."
        else:
            text = f"{name} is not recognised: coverage for CPT 64580 not determined"
            said = f"{md(name)} is not recognised by this service."
        detail = "\n".join([said, "", default_note])
        return _card(ctx, "payer", text, "info", "insurance", detail, [], links=False)

    head, tail, indicator, text, links = _policy_text(version, ctx.group, route.plan.payer)
    lines = [*head, *([f"Treated as {md(route.plan.payer)}: {md(route.why)}.", ""] if route.why else []), *tail]
    today = route.plan.version_at(ctx.as_of) if route.policy_day not in (None, ctx.as_of) else version
    if ctx.order.occurrence_partial or ctx.order.occurrence_unread:  # no day read: today's version, and why
        lines[2:2] = [_no_day_note(ctx), ""]
    if (window := _window_note(ctx)) is not None:
        lines[2:2] = [window, ""]
    if today is not version:  # the surgery falls under another version than the one in force today
        now = f"{md(today.title)} (effective {today.effective_text})" if today else "no version on file"
        lines[2:2] = [
            f"This is the version in force on {_surgery_day_words(ctx)}: a service is judged by the "
            f"policy in force on its date. In force today: {now}.",
            "",
        ]
    card = _card(ctx, "payer", text, indicator, "guideline", "\n".join(lines), [], links=False)
    if links:
        card["links"] = [dict(link) for link in links]
        card["source"]["url"] = links[0]["url"]
    return card


def _no_day_note(ctx: CardContext) -> str:
    """Why an order that gives a date of surgery is judged by the evaluation day: the date names no day."""
    partial, until = ctx.order.occurrence_partial, ctx.order.occurrence_until
    if until is not None:
        given = f"plans the surgery {ctx.order.window} and gives no day for it"
    elif partial:
        given = f"gives the surgery's {'month' if len(partial) == 7 else 'year'}, {partial}, not its day"
    else:
        given = "gives a date of surgery (occurrence) that names no day this service can read"
    return (
        f"The order {given}: this is the version in force on {_policy_day(ctx)}. A service is judged by the policy "
        "in force on its date: check the version in force on the day of surgery."
    )


def _surgery_day_words(ctx: CardContext) -> str:
    """The day the version applied is for: the day of surgery, or the first day of the order's window for it."""
    day = _policy_day(ctx)
    if ctx.order.occurrence_until is not None and ctx.route.policy_day == ctx.order.occurrence:
        return f"the first day of the window the order plans the surgery in, {day}"
    return f"the day of surgery, {day}"


def _window_note(ctx: CardContext) -> str | None:
    """What to say when the order plans the surgery within a window (occurrencePeriod) and a later version of the
    policy takes effect before its last day: the version applied holds only for a surgery before that."""
    order = ctx.order
    later = payers.later_in_window(ctx.route, order, ctx.as_of)
    if later is None:
        return None
    return (
        f"The order plans the surgery {order.window}: from {later.effective_text}, {md(later.title)} "
        "applies. A service is judged by the policy in force on its date: check the version in force on the day of "
        "surgery."
    )


def _policy_day(ctx: CardContext) -> str:
    """The day whose policy version the card applies (the day of surgery, or of the evaluation)."""
    return (ctx.route.policy_day or ctx.as_of).isoformat()


# What the payer card says of one policy version on one pathway: the same for every patient and call, so made once
# per (version, pathway, payer) -- policy data, never a request's.
_POLICY_TEXTS = IdentityMemo()


def _policy_text(version, group: str, payer: str) -> tuple[list[str], list[str], str, str, list[dict]]:
    return _POLICY_TEXTS.get(version, (group, payer), _make_policy_text, version, group, payer)


def _make_policy_text(version, group: str, payer: str) -> tuple[list[str], list[str], str, str, list[dict]]:
    stance = version.stance(group)
    pa = version.prior_authorization
    head = [
        f"**{md(version.title)}**, effective {version.effective_text}"
        + (f" ({md(version.effective_note)})" if version.effective_note else "")
        + f"; sources checked by this service {version.last_reviewed}.",
        "",
    ]
    tail = [
        f"- Coverage: {md(stance.text)}" + _verify(stance.unstated_because),
        f"- Prior authorization: {md(pa.text)}" + _verify(pa.unstated_because),
    ]
    documentation = [d for d in version.documentation if d.holds_on(group)]
    notes = [n for n in version.notes if n.holds_on(group)]
    tail += [f"- {_PURPOSE.get(d.value, d.value)}: {md(d.text)}" + _verify(d.unstated_because) for d in documentation]
    tail += [f"- {md(n.text)}" + _verify(n.unstated_because) for n in notes]
    # a stance read only in a summary informs; it never warns on its own
    indicator = "warning" if stance.value in _NOT_COVERED and stance.confidence == "primary" else "info"
    sources = [s for st in (stance, pa, *documentation, *notes) for s in st.sources]
    links = _source_links((s.url, s.title, s.role, _stating(s.kind, payer)) for s in sources)
    return head, tail, indicator, stance.text, links


_PURPOSE = {
    "withpa": "Send with the prior-authorization request",
    "withclaim": "Send with the claim",
    "withorder": "Send with the order",
    "retain-doc": "Keep in the record",
}


_CAVEAT = {
    "": "",
    provenance.UNVERIFIED: " *(unverified summary: verify against the payer's current text)*",
    provenance.BACKGROUND: " *(the documents cited are background, not this payer's own statement: verify)*",
    provenance.UNSOURCED: " *(no source read: verify with the payer)*",
}


def _verify(because: str) -> str:
    """The caveat of a fact no source states (:func:`provenance.unstated_because`)."""
    return _CAVEAT[because]


def _finding_caveat(f: Finding) -> str:
    if f.confidence != "secondary" or f.explained:
        return ""
    return _verify(provenance.unstated_because(role for _url, _title, role in _sources(f.source)))


def _links(findings: list[Finding]) -> list[dict]:
    """The sources behind these findings, primary first; a secondary one is labelled an unverified summary."""
    return [dict(link) for link in _links_of(tuple(f.source for f in findings))]


@functools.lru_cache(maxsize=1024)
def _links_of(citations: tuple[str, ...]) -> tuple[dict, ...]:
    """:func:`_links` of findings citing these texts: policy data, the same for every patient and call, so made
    once (the caller copies each link: a card is the caller's to change)."""
    return tuple(_source_links((*s, "Policy source") for text in citations for s in _sources(text)))


@functools.lru_cache(maxsize=1024)
def _sources(citation_text: str) -> tuple[tuple[str, str, str], ...]:
    """(url, title, role) of each source a finding's citation names (:func:`provenance.cited`), read once."""
    return tuple((s["url"], s["title"], s["role"]) for s in provenance.cited(citation_text))


_KIND_LABELS = {"cms": "CMS", "mac": "Medicare contractor", "peer-reviewed": "Peer-reviewed paper",
                "device-maker": "Device maker"}  # fmt: skip


def _stating(kind: str, payer: str) -> str:
    """How a document that states a payer card's fact is labelled: the payer's policy only if the payer wrote it
    (an ISASS paper reporting Anthem's decision is not Anthem's policy)."""
    return f"{payer} policy" if kind == "payer" else _KIND_LABELS.get(kind, "Source")


def _source_links(sources: Iterable[tuple[str, str, str, str]]) -> list[dict]:
    """Links to (url, title, role, label) sources, each url once in its strongest role, in :data:`provenance.ROLES`
    order, at most five: a document that states the fact has its own label; a background document does not itself
    state it; a summary is unverified."""
    best: dict[str, tuple[str, int, str]] = {}
    for url, title, role, stating in sources:
        rank = provenance.ROLES.index(role)
        if url not in best or rank < best[url][1]:
            best[url] = (title, rank, stating)
    ordered = sorted(best.items(), key=lambda item: item[1][1])
    labels = (None, "Background", "Unverified summary")
    return [_link(labels[rank] or stating, url, title) for url, (title, rank, stating) in ordered[:5]]


def _link(kind: str, url: str, title: str = "") -> dict:
    """``kind: a short title (host)``: what the source is, before the reader leaves for it."""
    short = title if len(title) <= 48 else title[:46].rstrip(" ,;:(") + "…"
    return {
        "label": f"{kind}: {short} ({_host(url)})" if short else f"{kind}: {_host(url)}",
        "url": url,
        "type": "absolute",
    }


def _host(url: str) -> str:
    return url.split("/")[2].removeprefix("www.")


def _reason(code: str, display: str) -> dict:
    return {"system": OVERRIDE_REASONS, "code": code, "display": display}


# policy-free, the same on every card: made once, and copied onto each card (a card is the caller's to change)
_DOCUMENTATION_REASONS = (
    _reason("documented-elsewhere", "Documentation exists outside this record"),
    _reason("clinical-exception", "Clinical exception; medical necessity will be documented"),
    _reason("payer-confirmed", "The payer confirmed the requirements are met"),
)
_BILLING_REASONS = (
    _reason("billing-handles-modifiers", "Billing staff will set the modifiers on the claim"),
    _reason("roles-incorrect", "The surgeon roles on the order are not right"),
)


def _suggest(card: dict, ctx: CardContext, suggestions: list[tuple[str, str, list[dict]]]) -> None:
    """Mutually exclusive suggestions (kind, label, actions); the first is the recommended one."""
    card["suggestions"] = [
        {"label": label, "uuid": _uuid(ctx, kind), "isRecommended": i == 0, "actions": actions}
        for i, (kind, label, actions) in enumerate(suggestions)
    ]
    card["selectionBehavior"] = "at-most-one"


def _task(ctx: CardContext, description: str, notes: list[str]) -> dict:
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "description": description,
        "focus": as_reference(ctx.order.reference),
        "for": {"reference": f"Patient/{ctx.patient_id}"},
        "authoredOn": ctx.as_of.isoformat(),
        "note": [{"text": n} for n in notes],
    }
    if ctx.user_id:
        task["requester"] = {"reference": ctx.user_id}
    return task


def _task_action(findings: list[Finding], ctx: CardContext) -> dict:
    task = _task(
        ctx,
        "Complete the documentation CPT 64580 needs before it is signed",
        [f"{f.title or f.criterion}: {f.reason}" for f in findings],
    )
    return {"type": "create", "description": "Create a Task listing the missing documentation", "resource": task}


def _assistant_task(option: BillingOption, ctx: CardContext) -> dict:
    """A billing task: the second surgeon's claim is 64580 with an assistant modifier, not 62."""
    task = _task(
        ctx,
        f"Bill CPT 64580 for {option.surgeon} as assistant at surgery with modifier {option.modifier}",
        ["Medicare does not pay co-surgeons on CPT 64580; an assistant at surgery may be paid."],
    )
    description = f"Create a billing task: {option.surgeon} bills 64580-{option.modifier}"
    return {"type": "create", "description": description, "resource": task}


def _modifier_action(order: Order, finding: Finding) -> dict | None:
    """An update of the draft order that carries exactly the 62/66 modifiers the finding asks for."""
    wanted = finding.order_modifiers
    if wanted is None:
        return None
    labels = {
        ("62",): "Add modifier 62 (co-surgeons) to the order",
        ("66",): "Set modifier 66 (team surgery) on the order",
        (): "Remove the co-surgeon/team modifier from the order",
    }
    resource = order.editable()
    details = [d for d in array(resource.get("orderDetail")) if not _is_modifier(d, (CO_SURGERY, TEAM_SURGERY))]
    details += [{"coding": [{"system": CPT, "code": m}], "text": f"CPT modifier {m}"} for m in wanted]
    if details:
        resource["orderDetail"] = details
    else:
        resource.pop("orderDetail", None)
    label = labels.get(tuple(wanted), f"Set modifier {'/'.join(wanted)} on the order")
    return {"type": "update", "description": label, "resource": resource}


def _is_modifier(detail: object, modifiers: tuple[str, ...]) -> bool:
    return any(canonical(system, code)[0] in (CPT, HCPCS) and code in modifiers for system, code in codings(detail))
