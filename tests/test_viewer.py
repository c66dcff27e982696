"""The card viewer in a real headless Chromium: run a case, read the cards, give feedback, timeline, policies.

Needs Debian's chromium (`.ci/run` installs it); skipped with a reason where it is missing. Screenshots are saved
under var/test-artifacts/.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cds import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('viewer') / 'cds.sqlite3'}",
            "VIEWER": True,
            "LOG_LEVEL": "WARNING",
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, errors


def run_case(page, base: str, case: str) -> None:
    page.goto(f"{base}/viewer/")
    page.wait_for_selector("body[data-ready='true']")
    page.select_option("#case", case)
    page.click("#send")
    page.wait_for_selector(".card")


def test_a_fixture_shows_its_cards_criteria_and_coverage(site, page):
    _app, base = site
    run_case(page, base, "co-surgeons-without-62")
    cards = page.locator(".card")
    assert cards.count() == 3
    first = cards.nth(0)
    assert "warning" in first.get_attribute("class")
    assert (
        first.locator(".summary-text").inner_text()
        == "Medicare does not pay co-surgeons on CPT 64580: bill the second surgeon as assistant at surgery (80/82)"
    )
    assert page.locator("#criteria tr[data-criterion='co-surgeon-modifier'] td").nth(1).inner_text() == "not-met"
    assert page.locator("#criteria tr[data-criterion='physical-therapy'] td").nth(1).inner_text() == "met"
    assert page.locator("#coverage [data-field='covered']").inner_text() == "Covered"
    page.locator("#coverage summary").click()
    assert "ext-coverage-information" in page.locator("#coverage pre").inner_text()
    assert "expected outcome passed" in page.locator("#status").inner_text()


def test_evidence_opens_the_resource_json(site, page):
    _app, base = site
    run_case(page, base, "medicare-all-criteria-met")
    page.locator("#criteria tr[data-criterion='stimulation-trial'] button").first.click()
    shown = json.loads(page.locator("#resource-json").inner_text())
    assert shown["resourceType"] == "Procedure"


def feedback_rows(app, card_uuid: str) -> list[dict]:
    return app.extensions["cds.feedback"].for_card(card_uuid)


def card_uuid(page, index: int) -> str:
    raw = json.loads(page.locator("#raw-response").text_content())
    return raw["cards"][index]["uuid"]


def test_accepting_a_suggestion_shows_the_action_and_stores_feedback(site, page):
    app, base = site
    run_case(page, base, "co-surgeons-without-62")
    page.locator(".card").nth(0).locator("button.accept").first.click()
    page.wait_for_selector(".card >> nth=0 >> .action-json")
    action = json.loads(page.locator(".card").nth(0).locator(".action-json").inner_text())
    assert action[0]["type"] == "create" and action[0]["resource"]["resourceType"] == "Task"
    assert "modifier 80" in action[0]["resource"]["description"]
    page.locator(".card").nth(0).locator(".feedback", has_text="stored").wait_for()
    [row] = feedback_rows(app, card_uuid(page, 0))
    assert row["outcome"] == "accepted"


def test_dismissing_asks_for_a_reason_and_stores_feedback(site, page):
    app, base = site
    run_case(page, base, "medicare-no-physical-therapy")
    raw = json.loads(page.locator("#raw-response").text_content())
    index = next(i for i, c in enumerate(raw["cards"]) if c["summary"].startswith("Documentation"))
    documentation = page.locator(".card").nth(index)
    documentation.locator("button.dismiss").click()
    page.locator("#dismiss label", has_text="The payer confirmed").click()
    page.fill("#dismiss-comment", "confirmed by phone")
    page.click("#dismiss-ok")
    # a locator, not wait_for_function: the viewer's CSP forbids the eval a string predicate needs
    page.locator(".card").nth(index).locator(".feedback", has_text="Dismissed").wait_for()
    [row] = feedback_rows(app, card_uuid(page, index))
    assert row["outcome"] == "overridden" and row["override_reason_code"] == "payer-confirmed"
    assert row["user_comment"] == "confirmed by phone"


def test_the_timeline_draws_the_evidence(site, page):
    _app, base = site
    run_case(page, base, "medicare-all-criteria-met")
    svg = page.locator("#timeline svg")
    for kind in ("diagnosis", "physical-therapy", "medication", "trial", "pain-score", "psych"):
        assert svg.locator(f"g[data-kind='{kind}']").count() >= 1, kind
    assert svg.locator("[data-kind='order']").count() == 1
    assert svg.locator("g[data-kind='pain-score'] text").all_text_contents() == ["8", "3", "4"]


def test_the_policy_page_lists_every_plan(site, page):
    _app, base = site
    page.goto(f"{base}/viewer/#policies")
    page.wait_for_selector("#policies tbody tr")
    assert page.locator("#policies tbody tr").count() == 10
    cigna = page.locator("#policies tr[data-plan='cigna']")
    assert "not-medically-necessary" in cigna.inner_text()
    assert (
        "lookback months 12"
        in page.locator("#policies tr[data-plan='aetna'] li[data-criterion='physical-therapy']").inner_text()
    )
    sources = page.locator("#policies tr[data-plan='aetna'] td.sources")
    sources.locator("summary").click()
    badges = sources.locator(".badge").all_inner_texts()
    assert badges[0] == "cms" and "unverified summary" in badges, "primary first, secondary labelled"
    kinds = [b for b in badges if b != "background"]  # a background source has its kind's badge and this one
    assert "background" in badges, "the restorative criteria cite a trial and a guideline as background"
    assert "read 2026-11-27" in sources.inner_text() and sources.locator("blockquote").count() == len(kinds)
    page.screenshot(path=str(ARTIFACTS / "policies-sources.png"), full_page=True)


def test_html_and_script_in_a_card_are_shown_as_text(site, page):
    _app, base = site
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Organization", "id": "o1", "name": hostile}},
            {
                "resource": {
                    "resourceType": "Coverage",
                    "id": "c1",
                    "status": "active",
                    "beneficiary": {"reference": "Patient/p1"},
                    "payor": [{"reference": "Organization/o1"}],
                }
            },
        ],
    }
    page.goto(f"{base}/viewer/")
    page.fill("#pasted", json.dumps(bundle))
    page.click("#send")
    page.wait_for_selector(".card")
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".card img").count() == 0 and page.locator(".card script").count() == 0
    payer_card = page.locator(".card[data-topic='insurance']")
    assert "<script>" in payer_card.locator(".summary-text").inner_text()
    assert "<script>" in payer_card.locator(".detail").inner_text()


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_the_landing_page_explains_itself_and_dates_default_sensibly(site, page):
    _app, base = site
    page.goto(f"{base}/viewer/")
    page.wait_for_selector("body[data-ready='true']")
    assert "See what an EHR shows when a CPT 64580 order is signed" in page.locator("#intro").inner_text()
    today = page.evaluate("new Date().toISOString().slice(0, 10)")
    assert page.input_value("#as-of") == today, "As of starts at today"
    page.select_option("#case", "medicare-all-criteria-met")
    assert page.input_value("#as-of") == "2026-06-15", "a case brings its own date"


def test_criteria_fit_the_page_with_short_source_links_primary_first(site, page):
    _app, base = site
    run_case(page, base, "co-surgeons-without-62")
    table = page.locator("#criteria")
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth"), "the criteria table fits its section"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    row = page.locator("#criteria tr[data-criterion='co-surgeon-modifier']")
    links = row.locator(".source-links a")
    labels = links.all_inner_texts()
    assert labels and all(len(label) <= 64 for label in labels), labels
    assert labels[0].startswith("cms.gov: "), "the primary source (CMS fee schedule) comes first"
    assert all(not label.startswith("http") for label in labels), "a label, never a raw URL"
    assert "G90.522" in page.locator("#criteria tr[data-criterion='indication'] td").nth(2).inner_text()
    assert "Judged by medicare-ffs@" in page.locator("#criteria-policy").inner_text()
    why = page.locator("#coverage [data-field='why']").inner_text()
    assert "Payer policy applied" in why, "a covered answer still says why"


def test_pain_score_labels_never_overlap(site, page):
    _app, base = site
    run_case(page, base, "medicare-all-criteria-met")
    labels = page.locator("#timeline g[data-kind='pain-score'] text")
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    assert len(boxes) == 3
    assert not any(boxes_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), boxes


def test_the_dismiss_dialog_puts_labels_beside_radios_and_one_primary_button(site, page):
    _app, base = site
    run_case(page, base, "medicare-no-physical-therapy")
    documentation = page.locator(".card", has=page.locator(".summary-text", has_text="Documentation"))
    documentation.locator("button.dismiss").click()
    radio = page.locator("#dismiss input[type='radio']").first.bounding_box()
    label = page.locator("#dismiss .radio label").first.bounding_box()
    assert label["x"] > radio["x"] and abs((label["y"] + label["height"] / 2) - (radio["y"] + radio["height"] / 2)) < 8
    background = "b => getComputedStyle(b).backgroundColor"
    assert page.locator("#dismiss-cancel").evaluate(background) != page.locator("#dismiss-ok").evaluate(background)
    page.screenshot(path=str(ARTIFACTS / "dismiss-dialog.png"))
    page.click("#dismiss-cancel")


def test_a_refused_request_is_shown_as_a_readable_error(site, page):
    _app, base = site
    page.goto(f"{base}/viewer/")
    page.wait_for_selector("body[data-ready='true']")
    page.fill("#pasted", json.dumps({"hook": "order-sign", "hookInstance": "not-a-uuid", "context": {}}))
    page.click("#send")
    outcome = page.locator("#cards .outcome")
    outcome.wait_for()
    text = outcome.inner_text()
    assert "The service refused the request (HTTP 400)" in text and "hookInstance" in text
    assert not outcome.locator("pre").is_visible(), "the raw body is one click away, not the message"


@pytest.mark.parametrize("width", [1280, 800])
def test_nothing_overflows_the_page(site, browser, width):
    _app, base = site
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    run_case(page, base, "medicare-all-criteria-met")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    upload = page.locator("#upload").bounding_box()
    assert upload["x"] + upload["width"] <= width
    criteria = page.locator("#criteria")
    assert criteria.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"run-{width}px.png"), full_page=True)
    page.goto(f"{base}/viewer/#policies")
    page.wait_for_selector("#policies tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.locator("#policies").evaluate("t => t.scrollWidth <= t.parentElement.clientWidth"), "no hidden columns"
    page.screenshot(path=str(ARTIFACTS / f"policies-{width}px.png"), full_page=True)
    context.close()


def test_keyboard_and_narrow_screens(site, browser):
    _app, base = site
    context = browser.new_context(viewport={"width": 800, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/viewer/")
    page.wait_for_selector("body[data-ready='true']")
    page.focus("#case")
    page.keyboard.press("ArrowDown")
    page.focus("#send")
    page.keyboard.press("Enter")
    page.wait_for_selector(".card")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 800, "no horizontal scrolling of the page itself at 800 px"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-800px.png"), full_page=True)
    context.close()


def test_the_viewer_is_off_by_default(client):
    assert client.get("/viewer/").status_code == 404


def test_the_dtr_form_turns_missing_documentation_into_a_met_criterion(site, page):
    """Open the payer's questionnaire from a case missing physical therapy, answer it, and see the criterion met."""
    _app, base = site
    run_case(page, base, "medicare-no-physical-therapy")
    assert page.locator("#criteria tr[data-criterion='physical-therapy'] td").nth(1).inner_text() != "met"
    page.click("#dtr-open")
    page.wait_for_selector("#dtr fieldset[data-link='physical-therapy']")
    psych = page.locator("#dtr fieldset[data-link='psych-evaluation']")
    assert psych.locator("input[type='checkbox']").is_checked(), "what the record shows is prefilled"
    assert "from Procedure/" in psych.locator(".prefill").first.inner_text()
    therapy = page.locator("#dtr fieldset[data-link='physical-therapy']")
    assert not therapy.locator("input[type='checkbox']").is_checked()
    therapy.locator("input[type='checkbox']").check()
    therapy.locator("input[type='date']").nth(0).fill("2026-01-05")
    therapy.locator("input[type='date']").nth(1).fill("2026-02-20")
    page.screenshot(path=str(ARTIFACTS / "dtr-form.png"), full_page=True)
    page.click("#dtr-save")
    page.locator("#status", has_text="re-run with the questionnaire").wait_for()
    row = page.locator("#criteria tr[data-criterion='physical-therapy'] td")
    assert row.nth(1).inner_text() == "met"
    assert "attested by the viewer's user" in row.nth(2).inner_text()
    response = json.loads(page.locator("#dtr-json").text_content())
    assert response["resourceType"] == "QuestionnaireResponse" and response["status"] == "completed"


def test_the_dtr_page_of_a_case_writes_to_its_fhir_server_and_the_rerun_reads_it(site, page):
    """/viewer/dtr?case=…&fhir=1: the case runs against its own FHIR server, the form opens prefilled, and the
    saved answers are created on that server, where the re-run finds them."""
    _app, base = site
    page.goto(f"{base}/viewer/dtr?case=medicare-no-physical-therapy&fhir=1")
    page.wait_for_selector("body[data-ready='true']")
    assert page.locator("#fhir").is_checked()
    assert "fetched from the case's FHIR server" in page.locator("#status").inner_text()
    therapy = page.locator("#dtr fieldset[data-link='physical-therapy']")
    assert therapy.is_visible() and not therapy.locator("input[type='checkbox']").is_checked()
    assert page.locator("#criteria tr[data-criterion='physical-therapy'] td").nth(1).inner_text() != "met"
    therapy.locator("input[type='checkbox']").check()
    therapy.locator("input[type='date']").nth(0).fill("2026-01-05")
    therapy.locator("input[type='date']").nth(1).fill("2026-02-20")
    page.click("#dtr-save")
    page.locator("#status", has_text="read the answers from the case's FHIR server").wait_for()
    assert "/QuestionnaireResponse/" in page.locator("#status").inner_text()
    row = page.locator("#criteria tr[data-criterion='physical-therapy'] td")
    assert row.nth(1).inner_text() == "met"
    assert "attested by the viewer's user" in row.nth(2).inner_text()


def test_the_card_link_opens_the_questionnaire_to_complete(site, page):
    """The documentation card's form link (no case): the questionnaire, nothing prefilled; saving shows the
    completed QuestionnaireResponse to keep in the chart."""
    _app, base = site
    page.goto(f"{base}/viewer/dtr?questionnaire=medicare-ffs-2019-12-01")
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector("#dtr fieldset[data-link='physical-therapy']")
    assert "nothing is prefilled" in page.locator("#cards").inner_text()
    assert not page.locator("#criteria").is_visible(), "no run: no empty criteria table"
    assert not page.locator("#dtr input[type='checkbox']:checked").count()
    page.locator("#dtr fieldset[data-link='physical-therapy'] input[type='checkbox']").check()
    page.click("#dtr-save")
    page.locator("#status", has_text="keep in the patient's chart").wait_for()
    response = json.loads(page.locator("#dtr-json").text_content())
    assert response["status"] == "completed" and "subject" not in response
    assert response["questionnaire"].endswith("/fhir/Questionnaire/medicare-ffs-2019-12-01|2019-12-01")
    assert response["item"][0]["linkId"] == "physical-therapy"
