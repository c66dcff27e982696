// The CPT 64580 card viewer. Everything from a card or a record is put on the page as text nodes: no HTML or
// script that a card carries can ever run (the markdown renderer below builds elements, never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let services = {};
let last = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- safe markdown: paragraphs, lists, tables, **bold**, *italic*, `code`, backslash escapes ----------------
function inline(text) {
  const out = [];
  let buffer = "";
  const flush = () => { if (buffer) { out.push(document.createTextNode(buffer)); buffer = ""; } };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length) { buffer += text[++i]; continue; }
    const marker = text.startsWith("**", i) ? "**" : (c === "*" || c === "`") ? c : null;
    if (marker) {
      const end = findClose(text, i + marker.length, marker);
      if (end > i) {
        flush();
        const inner = text.slice(i + marker.length, end);
        const tag = marker === "**" ? "strong" : marker === "`" ? "code" : "em";
        out.push(el(tag, {}, marker === "`" ? inner : inline(inner)));
        i = end + marker.length - 1;
        continue;
      }
    }
    buffer += c;
  }
  flush();
  return out;
}

function findClose(text, from, marker) {
  for (let j = from; j < text.length; j++) {
    if (text[j] === "\\") { j++; continue; }
    if (text.startsWith(marker, j)) return j;
  }
  return -1;
}

function cells(line) {
  const parts = [];
  let current = "";
  for (let i = 1; i < line.length; i++) {
    if (line[i] === "\\" && i + 1 < line.length) { current += line[i] + line[i + 1]; i++; continue; }
    if (line[i] === "|") { parts.push(current.trim()); current = ""; continue; }
    current += line[i];
  }
  return parts;
}

function markdown(text) {
  const container = el("div", { class: "detail" });
  const lines = String(text || "").split("\n");
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    if (line.startsWith("|")) {
      const table = el("table");
      const rows = [];
      while (i < lines.length && lines[i].startsWith("|")) rows.push(lines[i++]);
      rows.forEach((row, n) => {
        if (n === 1 && /^\|[\s\-|:]+\|?$/.test(row)) return;
        table.append(el("tr", {}, cells(row).map((cell) => el(n === 0 ? "th" : "td", {}, inline(cell)))));
      });
      container.append(table);
    } else if (line.startsWith("- ")) {
      const list = el("ul");
      while (i < lines.length && lines[i].startsWith("- ")) list.append(el("li", {}, inline(lines[i++].slice(2))));
      container.append(list);
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !lines[i].startsWith("- ") && !lines[i].startsWith("|")) para.push(lines[i++]);
      container.append(el("p", {}, inline(para.join(" "))));
    }
  }
  return container;
}

// ---- talking to the service --------------------------------------------------------------------------------
async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

function serviceBase() { return ($("url").value || "").replace(/\/$/, ""); }

async function postFeedback(card, item) {
  const hook = $("hook").value;
  const id = services[hook] || "cpt64580-order-sign";
  const payload = { feedback: [{ card: card.uuid, outcomeTimestamp: new Date().toISOString(), ...item }] };
  return api(`${serviceBase()}/cds-services/${id}/feedback`, { method: "POST", body: JSON.stringify(payload) });
}

// ---- rendering -----------------------------------------------------------------------------------------------
function renderCard(card) {
  const feedback = el("div", { class: "feedback", role: "status" });
  const topic = (card.source && card.source.topic && card.source.topic.code) || "";
  const node = el("article", { class: `card ${card.indicator}`, "data-topic": topic, "aria-label": card.summary },
    el("div", { class: "summary" }, el("span", { class: "icon" }, card.indicator), el("span", { class: "summary-text" }, card.summary)),
    el("div", { class: "source" }, `${(card.source && card.source.label) || ""} · ${topic}`),
    markdown(card.detail),
  );
  const links = (card.links || []).filter((l) => /^https?:\/\//.test(l.url));
  if (links.length) {
    node.append(el("div", { class: "links" }, links.map((l) => el("a", { href: l.url, target: "_blank", rel: "noopener noreferrer" }, l.label))));
  }
  const actions = el("div", { class: "actions" });
  for (const suggestion of card.suggestions || []) {
    actions.append(el("button", {
      type: "button", class: "accept",
      onclick: async () => {
        node.append(el("pre", { class: "action-json" }, JSON.stringify(suggestion.actions || [], null, 2)));
        const result = await postFeedback(card, { outcome: "accepted", acceptedSuggestions: [{ id: suggestion.uuid }] });
        feedback.textContent = result.status === 200 ? `Accepted: feedback stored (${result.body.stored} new)` : `Feedback failed (${result.status})`;
      },
    }, `Accept: ${suggestion.label}`));
  }
  actions.append(el("button", { type: "button", class: "secondary dismiss", onclick: () => dismiss(card, feedback) }, "Dismiss"));
  node.append(actions, feedback);
  return node;
}

function dismiss(card, feedback) {
  const dialog = $("dismiss");
  const reasons = $("dismiss-reasons");
  reasons.replaceChildren(el("legend", {}, "Reason"));
  (card.overrideReasons || []).forEach((reason, i) => {
    const input = el("input", { type: "radio", name: "reason", value: String(i), id: `reason-${i}` });
    if (i === 0) input.checked = true;
    reasons.append(el("div", { class: "radio" }, input, el("label", { for: `reason-${i}` }, reason.display)));
  });
  $("dismiss-comment").value = "";
  dialog.showModal();
  $("dismiss-cancel").onclick = () => dialog.close("cancel");
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const chosen = reasons.querySelector("input:checked");
    const reason = chosen ? card.overrideReasons[Number(chosen.value)] : null;
    const item = { outcome: "overridden" };
    if (reason || $("dismiss-comment").value) {
      item.overrideReason = {};
      if (reason) item.overrideReason.reason = { system: reason.system, code: reason.code, display: reason.display };
      if ($("dismiss-comment").value) item.overrideReason.userComment = $("dismiss-comment").value;
    }
    const result = await postFeedback(card, item);
    feedback.textContent = result.status === 200 ? `Dismissed: feedback stored (${result.body.stored} new)` : `Feedback failed (${result.status})`;
  };
}

const WORDS = {
  covered: { covered: "Covered", "not-covered": "Not covered", conditional: "Covered only if the conditions below are met", indeterminate: "Cannot be determined" },
  "pa-needed": { "no-auth": "Not needed", "auth-needed": "Needed", satisfied: "Already satisfied", performpa: "Perform it now", conditional: "Depends on the conditions below", indeterminate: "Unknown: check with the payer" },
  "doc-needed": { clinical: "Clinical documentation", admin: "Administrative documentation", patient: "From the patient", conditional: "Depends", indeterminate: "Unknown", "no-doc": "None" },
  "doc-purpose": { withpa: "send with the prior-authorization request", withclaim: "send with the claim", withorder: "send with the order", "retain-doc": "keep in the record", OTH: "other" },
};

function renderCoverage(response) {
  const box = $("coverage");
  box.replaceChildren();
  const actions = response.systemActions || [];
  if (!actions.length) { box.append(el("p", {}, "No coverage information (order-select, or switched off by configuration).")); return; }
  for (const action of actions) {
    const ext = ((action.resource || {}).extension || []).find((e) => String(e.url).endsWith("ext-coverage-information"));
    if (!ext) continue;
    const values = {};
    for (const sub of ext.extension || []) {
      const value = Object.entries(sub).find(([k]) => k.startsWith("value"));
      (values[sub.url] = values[sub.url] || []).push(value ? value[1] : sub.extension);
    }
    const one = (k) => (values[k] || [])[0];
    const list = el("dl", { class: "coverage" },
      el("dt", {}, "Order"), el("dd", {}, `ServiceRequest/${action.resource.id}`),
      el("dt", {}, "Covered?"), el("dd", { "data-field": "covered" }, WORDS.covered[one("covered")] || one("covered")),
      el("dt", {}, "Prior authorization?"), el("dd", { "data-field": "pa-needed" }, one("pa-needed") ? (WORDS["pa-needed"][one("pa-needed")] || one("pa-needed")) : "Not applicable"),
      el("dt", {}, "Documentation needed?"), el("dd", {}, one("doc-needed") ? `${WORDS["doc-needed"][one("doc-needed")] || one("doc-needed")}${values["doc-purpose"] ? " — " + values["doc-purpose"].map((p) => WORDS["doc-purpose"][p] || p).join(", ") : ""}` : "No"),
      el("dt", {}, "Why"), el("dd", { "data-field": "why" }, el("ul", {}, why(values))),
      el("dt", {}, "Bill as"), el("dd", {}, (values.billingCode || []).map((c) => c.code).join(" + ")),
    );
    box.append(list, el("details", {}, el("summary", {}, "The raw system action"), el("pre", {}, JSON.stringify(action, null, 2))));
  }
}

// The reasons the payer's answer carries, then the policy it was judged by (a covered answer often has no reason).
function why(values) {
  const items = (values.reason || []).map((r) => r.text || (r.coding || []).map((c) => c.code).join(", "));
  for (const detail of values.detail || []) {
    const parts = {};
    for (const sub of detail || []) parts[sub.url] = sub.valueString || (sub.valueCodeableConcept || {}).text || sub.valueCode || "";
    if (parts.code || parts.value) items.push(`${parts.code ? parts.code + ": " : ""}${parts.value || ""}${parts.qualification ? " — " + parts.qualification : ""}`);
  }
  if (!items.length) items.push("No conditions: the payer's criteria that apply are met (see Criteria below).");
  return items.map((text) => el("li", {}, text));
}

function showResource(reference, resources) {
  $("resource-title").textContent = reference;
  $("resource-json").textContent = JSON.stringify(resources[reference] || { note: "not in the data sent with this case" }, null, 2);
  $("resource").showModal();
}

function sourceLinks(text, citations, confidence) {
  const links = citations[text] || [];
  if (!links.length) return el("span", { class: "no-source" }, text || "no source given");
  const shown = links.map((s) => el("li", {},
    s.primary ? null : el("span", { class: "badge secondary" }, "unverified"), s.primary ? null : " ",
    s.context ? el("span", { class: "badge secondary" }, "background") : null, s.context ? " " : null,
    el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer", title: `${s.title} (${s.url})` }, shortLabel(s))));
  const more = shown.splice(3);
  return el("div", {}, el("ul", { class: "source-links" }, shown),
    more.length ? el("details", {}, el("summary", {}, `${more.length} more`), el("ul", { class: "source-links" }, more)) : null,
    confidence === "secondary" ? el("div", { class: "verify" }, "unverified summary: verify") : null);
}

function shortLabel(source) {
  const title = source.title.length > 44 ? source.title.slice(0, 42).trimEnd() + "…" : source.title;
  return `${source.host}: ${title}`;
}

function renderCriteria(response, resources, citations) {
  const body = $("criteria").querySelector("tbody");
  body.replaceChildren();
  const policies = new Set();
  const seen = new Set();
  for (const card of response.cards || []) {
    const ext = card.extension || {};
    const associated = (ext["davinci-crd.associated-resource"] || [{}])[0] || {};
    const order = associated.reference || associated.display || "";  // an order sent without an id is named
    if (seen.has(order)) continue;
    seen.add(order);
    for (const c of ext["cds64580.criteria"] || []) {
      if (c.policy) policies.add(c.policy);
      body.append(el("tr", { "data-criterion": c.id },
        el("td", {}, c.id),
        el("td", { class: `status-${c.status}` }, c.status),
        el("td", {}, c.reason || ""),
        el("td", { class: "sources-cell" }, sourceLinks(c.source, citations, c.confidence)),
        el("td", {}, (c.evidence || []).map((ref) => el("button", { type: "button", class: "link-button", onclick: () => showResource(ref, resources) }, ref))),
      ));
    }
  }
  $("criteria-policy").textContent = policies.size ? `Judged by ${[...policies].join(", ")}.` : "";
}

const LANES = ["diagnosis", "physical-therapy", "medication", "trial", "pain-score", "psych"];
const LANE_NAMES = { diagnosis: "Pain diagnosis", "physical-therapy": "Physical therapy", medication: "Medication", trial: "Stimulation trial", "pain-score": "Pain scores", psych: "Psych evaluation" };
const COLORS = { diagnosis: "#7b3f99", "physical-therapy": "#1d6b2c", medication: "#2f6fb5", trial: "#d98e04", "pain-score": "#c0282d", psych: "#5a6b7d" };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderTimeline(timeline) {
  const box = $("timeline");
  box.replaceChildren();
  const events = timeline.events || [];
  const dates = events.flatMap((e) => [e.start, e.end]).filter(Boolean).concat(timeline.order_date ? [timeline.order_date] : []);
  if (!dates.length) { box.append(el("p", {}, "No dated evidence for CPT 64580 in this record.")); return; }
  const day = (d) => new Date(d + "T00:00:00Z").getTime() / 86400000;
  const lo = Math.min(...dates.map(day)) - 15, hi = Math.max(...dates.map(day)) + 15;
  const left = 150, width = 1000, laneHeight = 34, top = 20;
  const x = (d) => left + ((day(d) - lo) / (hi - lo)) * width;
  const height = top + LANES.length * laneHeight + 40;
  const root = svg("svg", { width: left + width + 20, height, viewBox: `0 0 ${left + width + 20} ${height}`, role: "img", "aria-label": "Timeline of the patient's evidence" });
  root.append(svg("title", {}, "Timeline of the patient's evidence for CPT 64580"));
  LANES.forEach((lane, i) => {
    const y = top + i * laneHeight;
    root.append(svg("text", { x: 4, y: y + 20 }, LANE_NAMES[lane]));
    root.append(svg("line", { x1: left, x2: left + width, y1: y + 16, y2: y + 16, stroke: "#e1e5ea" }));
  });
  const axisY = top + LANES.length * laneHeight + 8;
  const first = new Date(lo * 86400000), end = new Date(hi * 86400000);
  for (let d = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 1)); d < end; d.setUTCMonth(d.getUTCMonth() + 1)) {
    const iso = d.toISOString().slice(0, 10);
    const xx = x(iso);
    root.append(svg("line", { x1: xx, x2: xx, y1: top, y2: axisY, stroke: "#f0f2f4" }));
    if (d.getUTCMonth() % 3 === 0) root.append(svg("text", { x: xx - 18, y: axisY + 14 }, iso.slice(0, 7)));
  }
  let lastLabel = { x: -Infinity, below: true };
  for (const e of events) {
    const lane = LANES.indexOf(e.kind);
    if (lane < 0) continue;
    const y = top + lane * laneHeight + 16;
    const group = svg("g", { "data-kind": e.kind });
    group.append(svg("title", {}, `${e.label}: ${e.start}${e.end ? " to " + e.end : ""} (${e.reference})`));
    if (e.end) {
      group.append(svg("rect", { x: x(e.start), y: y - 6, width: Math.max(3, x(e.end) - x(e.start)), height: 12, fill: COLORS[e.kind], rx: 3 }));
    } else {
      group.append(svg("circle", { cx: x(e.start), cy: y, r: 5, fill: COLORS[e.kind] }));
    }
    if (e.kind === "pain-score") {
      const label = String(e.value);
      const at = x(e.start) - 3 * label.length;
      const below = at - lastLabel.x < 7 * label.length + 4 ? !lastLabel.below : false;
      group.append(svg("text", { x: at, y: below ? y + 17 : y - 9 }, label));
      lastLabel = { x: at, below };
    }
    root.append(group);
  }
  if (timeline.order_date) {
    const xx = x(timeline.order_date);
    root.append(svg("line", { x1: xx, x2: xx, y1: top - 6, y2: axisY, stroke: "#12355b", "stroke-width": 2, "stroke-dasharray": "4 3", "data-kind": "order" }));
    const label = `order ${timeline.order_date}`;
    root.append(svg("text", { x: xx > left + width - 110 ? xx - 110 : xx + 4, y: top - 8 }, label));
  }
  box.append(root);
}

// What an EHR would show for a refused call: each issue in words, where it is, and the raw body one click away.
function renderOutcome(status, response) {
  const issues = (response && response.resourceType === "OperationOutcome" && response.issue) || [];
  return el("div", { class: "outcome", role: "alert" },
    el("p", {}, el("strong", {}, `The service refused the request (HTTP ${status}).`),
      issues.length ? " What it said:" : " It gave no OperationOutcome."),
    el("ul", {}, issues.map((i) => el("li", {},
      el("span", { class: "issue-code" }, `${i.severity || "error"} · ${i.code || "?"}`), " ",
      i.diagnostics || (i.details && i.details.text) || "",
      (i.expression || []).length ? el("span", { class: "where" }, ` (at ${i.expression.join(", ")})`) : null))),
    el("details", {}, el("summary", {}, "The response body"), el("pre", {}, JSON.stringify(response, null, 2))));
}

// ---- the run page ---------------------------------------------------------------------------------------------
async function send(event) {
  event.preventDefault();
  $("status").textContent = "Sending…";
  const payload = { hook: $("hook").value, payer: $("payer").value, as_of: $("as-of").value, url: serviceBase() };
  if ($("case").value) {
    payload.case = $("case").value;
    if ($("fhir").checked) payload.fhir = true;
  } else {
    let parsed;
    try { parsed = JSON.parse($("pasted").value); } catch (e) { $("status").textContent = "The pasted text is not JSON."; return; }
    if (parsed && parsed.hook && parsed.context) payload.request = parsed; else payload.bundle = parsed;
  }
  lastPayload = payload;
  $("dtr").hidden = true;
  await runWith(payload);
}

async function runWith(payload) {
  const { status, body } = await api("/viewer/api/run", { method: "POST", body: JSON.stringify(payload) });
  if (status !== 200) {
    $("status").textContent = `Error ${status}: ${((body.issue || [])[0] || {}).diagnostics || "see the response"}`;
    return;
  }
  last = body;
  const response = body.response || {};
  const served = body.fhir_server ? ` · fetched from the case's FHIR server ${body.fhir_server}` : "";
  const written = (body.written || []).map((w) => ` · written ${w}`).join("");
  $("status").textContent = `HTTP ${body.status}${body.verdict !== "ran" ? ` · expected outcome ${body.verdict}` : ""}${served}${written}${(body.notes || []).map((n) => " · " + n).join("")}`;
  $("results").hidden = false;
  for (const section of $("results").children) section.hidden = false;
  $("cards").replaceChildren(...(response.cards || []).map(renderCard));
  if (body.status !== 200) $("cards").replaceChildren(renderOutcome(body.status, response));
  else if (!(response.cards || []).length) $("cards").append(el("p", {}, "No cards: no CPT 64580 order in the request."));
  renderCoverage(response);
  renderCriteria(response, body.resources || {}, body.citations || {});
  renderTimeline(body.timeline || {});
  $("raw-response").textContent = JSON.stringify(response, null, 2);
  const documentation = (response.cards || []).some((c) => String(c.summary).startsWith("Documentation"));
  $("dtr-open").hidden = !(payload.case && documentation);
}

// ---- the DTR form: the payer policy's questionnaire, prefilled, answered, counted on a re-run ------------------
let lastPayload = null;
let dtrState = null;

async function openQuestionnaire() {
  const { status, body } = await api("/viewer/api/dtr", { method: "POST", body: JSON.stringify({ case: lastPayload.case, as_of: lastPayload.as_of }) });
  if (status !== 200) { $("status").textContent = `Error ${status}: ${((body.issue || [])[0] || {}).diagnostics || ""}`; return; }
  renderQuestionnaire(body.questionnaire, body.response,
    "Answers found in the record are filled in, with the record entry beside them; complete what the record lacks.");
}

// Opened from a documentation card's link (no case): the questionnaire to complete, with nothing prefilled.
async function openBlankQuestionnaire(id) {
  const { status, body } = await api(`/fhir/Questionnaire/${encodeURIComponent(id)}`);
  if (status !== 200) { $("status").textContent = `Error ${status}: ${((body.issue || [])[0] || {}).diagnostics || "no such questionnaire"}`; return; }
  $("results").hidden = false;
  for (const section of $("results").children) if (!section.contains($("dtr"))) section.hidden = true;  // no run to show
  $("cards").replaceChildren(el("p", {}, "Opened from a card's link: no patient record is loaded here, so nothing is prefilled. Saving shows the QuestionnaireResponse to keep in the patient's chart, where the next hook call reads it."));
  renderQuestionnaire(body, { questionnaire: `${body.url}|${body.version}`, subject: null }, "Complete what applies.");
}

function renderQuestionnaire(questionnaire, response, hint) {
  dtrState = { questionnaire, response };
  const prefilled = {};
  for (const group of response.item || []) for (const item of group.item || []) if (item.answer) prefilled[item.linkId] = item.answer[0];
  $("dtr-intro").textContent = `${questionnaire.title} (version ${questionnaire.version}). ${hint}`;
  $("dtr-groups").replaceChildren(...questionnaire.item.map((group) => el("fieldset", { "data-link": group.linkId },
    el("legend", {}, group.text),
    group.item.map((item) => {
      const answer = prefilled[item.linkId];
      const source = answer && (answer.extension || []).map((e) => (e.valueReference || {}).reference).filter(Boolean).join(", ");
      const input = item.type === "boolean" ? el("input", { type: "checkbox", id: `q-${item.linkId}`, "data-type": item.type })
        : el(item.type === "text" ? "textarea" : "input", { type: item.type === "date" ? "date" : "text", id: `q-${item.linkId}`, "data-type": item.type });
      if (answer) {
        if (item.type === "boolean") input.checked = answer.valueBoolean === true;
        else input.value = answer.valueDate || answer.valueString || "";
      }
      return el("div", { class: item.type === "boolean" ? "radio" : "field" },
        item.type === "boolean" ? input : null, el("label", { for: `q-${item.linkId}` }, item.text),
        item.type === "boolean" ? null : input,
        source ? el("span", { class: "prefill" }, `from ${source}`) : null);
    }))));
  $("dtr-save").textContent = lastPayload ? "Save the answers and re-run" : "Save the answers";
  $("dtr").hidden = false;
}

async function saveQuestionnaire(event) {
  event.preventDefault();
  const groups = [];
  for (const fieldset of $("dtr-groups").querySelectorAll("fieldset")) {
    const items = [];
    for (const input of fieldset.querySelectorAll("[data-type]")) {
      const link = input.id.slice(2);
      const type = input.dataset.type;
      if (type === "boolean" && input.checked) items.push({ linkId: link, answer: [{ valueBoolean: true }] });
      else if (type === "date" && input.value) items.push({ linkId: link, answer: [{ valueDate: input.value }] });
      else if ((type === "string" || type === "text") && input.value) items.push({ linkId: link, answer: [{ valueString: input.value }] });
    }
    if (items.length) groups.push({ linkId: fieldset.dataset.link, item: items });
  }
  const response = {
    resourceType: "QuestionnaireResponse", id: `viewer-${Date.now()}`, status: "completed",
    questionnaire: dtrState.response.questionnaire, ...(dtrState.response.subject ? { subject: dtrState.response.subject } : {}),
    authored: new Date().toISOString().slice(0, 19) + "Z",
    author: { reference: "Practitioner/viewer-user", display: "the viewer's user" }, item: groups,
  };
  $("dtr-json").textContent = JSON.stringify(response, null, 2);
  if (!lastPayload) {
    $("dtr-json").parentElement.open = true;
    $("status").textContent = "Saved: the QuestionnaireResponse is below, to keep in the patient's chart.";
    return;
  }
  await runWith({ ...lastPayload, attestations: [response] });
  $("status").textContent += lastPayload.fhir ? " · re-run: the service read the answers from the case's FHIR server"
    : " · re-run with the questionnaire's answers";
}

// ---- the policy page ------------------------------------------------------------------------------------------
async function loadPolicies() {
  const { body } = await api("/viewer/api/policies");
  const tbody = $("policies").querySelector("tbody");
  const headings = [...$("policies").querySelectorAll("thead th")].map((th) => th.textContent);
  tbody.replaceChildren(...body.map((p) => labelled(headings, el("tr", { "data-plan": p.plan },
    el("td", {}, el("strong", {}, p.payer), el("br"), `${p.plan} (${p.file})`),
    el("td", {}, p.title),
    el("td", {}, `${p.effective}${p.effective_note ? " (" + p.effective_note + ")" : ""}`, el("br"), `reviewed ${p.reviewed}`, p.versions.length > 1 ? el("div", {}, `versions: ${p.versions.join(", ")}`) : null),
    el("td", { class: `stance ${p.coverage.pain.stance}` }, p.coverage.pain.stance, el("div", {}, p.coverage.pain.summary)),
    el("td", {}, p.coverage.neuromuscular.stance),
    el("td", {}, p.prior_authorization.stance, el("div", {}, p.prior_authorization.summary)),
    el("td", {}, el("ul", {}, p.criteria.map((c) => {
      const shown = Object.entries(c.params).filter(([k]) => !["include", "classes", "value_sets", "baseline_days", "default_trial_days"].includes(k));
      const params = shown.map(([k, v]) => `${k.replaceAll("_", " ")} ${Array.isArray(v) ? v.join("/") || "none" : v}`).join(", ");
      return el("li", { "data-criterion": c.id }, `${c.title}${params ? ": " + params : ""}${c.confidence === "secondary" ? " (secondary)" : ""}`);
    }))),
    el("td", { class: "sources" }, renderSources(p.sources)),
  ))));
}

// Each cell names its column, so a narrow screen can show a plan as a stacked list instead of a wide table.
function labelled(headings, row) {
  [...row.children].forEach((cell, i) => cell.setAttribute("data-label", headings[i] || ""));
  return row;
}

// Every source of the plan's current version: primary first, a badge, the date it was read, "due for review"
// when that was more than 12 months ago, and the quote one click away.
function renderSources(sources) {
  return el("details", {}, el("summary", {}, `${sources.length} sources (${sources.filter((s) => s.primary).length} primary)`),
    el("ul", {}, sources.map((s) => el("li", { "data-kind": s.kind },
      el("span", { class: `badge ${s.primary ? "primary" : "secondary"}` }, s.primary ? s.kind : "unverified summary"), " ",
      s.context ? el("span", { class: "badge secondary" }, "background") : null, s.context ? " " : null,
      el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer" }, s.title),
      el("div", { class: "retrieved" }, `read ${s.retrieved}`, s.due_for_review ? el("strong", { class: "due" }, " · due for review") : null),
      el("blockquote", {}, s.quote),
      el("div", { class: "fields" }, s.fields.join(", "))))));
}

function route() {
  const policiesPage = location.hash === "#policies";
  $("page-run").hidden = policiesPage;
  $("page-policies").hidden = !policiesPage;
  if (policiesPage) loadPolicies();
}

// /viewer/dtr?case=<fixture>[&fhir=1] runs the case and opens its questionnaire; ?questionnaire=<id> opens one blank.
async function openDtrPage(params, asOf) {
  const name = params.get("case");
  if (name && asOf[name] !== undefined) {
    $("case").value = name;
    $("as-of").value = params.get("as_of") || asOf[name] || $("as-of").value;
    $("fhir").checked = params.get("fhir") === "1";
    lastPayload = { case: name, hook: $("hook").value, as_of: $("as-of").value, payer: "", url: null, ...($("fhir").checked ? { fhir: true } : {}) };
    await runWith(lastPayload);
    await openQuestionnaire();
  } else if (params.get("questionnaire")) {
    await openBlankQuestionnaire(params.get("questionnaire"));
  } else {
    $("status").textContent = name ? `No fixture case named ${name}.` : "Name a case (?case=…) or a questionnaire (?questionnaire=…).";
    return;
  }
  $("dtr").scrollIntoView();
}

async function start() {
  $("run-form").addEventListener("submit", send);  // before any await: a quick Enter must not submit natively
  $("dtr-form").addEventListener("submit", saveQuestionnaire);
  $("dtr-open").addEventListener("click", openQuestionnaire);
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) { $("pasted").value = await file.text(); $("case").value = ""; $("as-of").value = new Date().toISOString().slice(0, 10); }
  });
  window.addEventListener("hashchange", route);
  route();
  const discovery = await api("/cds-services");
  for (const s of (discovery.body.services || [])) services[s.hook] = s.id;
  const { body } = await api("/viewer/api/cases");
  const asOf = {};
  for (const c of body) {
    asOf[c.name] = c.as_of;
    $("case").append(el("option", { value: c.name, title: c.description }, `${c.name}${c.payer ? " — " + c.payer : ""}`));
  }
  const today = new Date().toISOString().slice(0, 10);
  $("as-of").value = today;
  $("case").addEventListener("change", () => { $("as-of").value = asOf[$("case").value] || today; });
  if (location.pathname.endsWith("/viewer/dtr")) await openDtrPage(new URLSearchParams(location.search), asOf);
  document.body.dataset.ready = "true";
}

start();
