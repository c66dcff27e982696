"""Who operates and how each surgeon bills: the CMS indicators decide for Medicare, the payer's own policy otherwise.

Pure: the rules run on FHIR dicts with the fee schedule shipped in the package (CO- SURG 0, TEAM SURG 0, ASST
SURG 2 for 64580 in 2025 and 2026), or with a one-release schedule holding other indicator values.
"""

from __future__ import annotations

from datetime import date

import pytest

from cds import codes, mpfs
from cds.rules import Status

from .clinical import procedure, role
from .support import service_request
from .test_criteria import finding

MET, NOT_MET, UNKNOWN, NA = Status.MET, Status.NOT_MET, Status.UNKNOWN, Status.NOT_APPLICABLE
CMS = {"fee_schedule": "cms"}  # the criterion parameter Medicare's policy files carry


def surgical_order(*performers: str, modifiers: tuple[str, ...] = (), when: str | None = None) -> dict:
    order = service_request()
    order["performer"] = [{"reference": p} for p in performers]
    if modifiers:
        order["orderDetail"] = [{"coding": [{"system": codes.CPT, "code": m}]} for m in modifiers]
    if when:
        order["occurrenceDateTime"] = when
    return order


ROLES = [
    role("a", id="ra"),  # 207T00000X neurological surgery
    role("b", id="rb", specialty="207X00000X"),  # orthopaedic surgery
    role("c", id="rc"),
    role("d", "assistant-surgeon", id="rd"),
    role("e", None, id="re"),  # no role documented
    role("f", "PPRF", system=codes.V3_PARTICIPATION, id="rf"),
    role("g", None, text="Co-surgeon (vascular)", id="rg"),
    role("h", "assistant-surgeon", specialty="363A00000X", id="rh"),  # physician assistant
    role("i", "assistant-surgeon", specialty="363LA2100X", id="ri"),  # nurse practitioner, acute care
    role("j", "assistant-surgeon", specialty="364SA2100X", id="rj"),  # clinical nurse specialist
    role("k", specialty=None, id="rk"),  # a primary surgeon whose specialty is not recorded
    role("l", specialty="363LA2100X", id="rl"),  # listed as a second primary surgeon, but an NP
    role("m", "assistant-surgeon", specialty="367500000X", id="rm"),  # a nurse anesthetist
    role("n", "assistant-surgeon", specialty=None, id="rn"),  # an assistant whose profession is not recorded
]
A, B, C = "PractitionerRole/ra", "PractitionerRole/rb", "PractitionerRole/rc"


def co(*performers, modifiers=(), schedule=None, **params):
    order = surgical_order(*performers, modifiers=modifiers)
    return finding("co-surgeon-modifier", *ROLES, order=order, schedule=schedule, **params)


def permitted(**values: str) -> mpfs.FeeSchedule:
    return mpfs.single({"co_surg": "2", "team_surg": "2", "asst_surg": "2", **values})


@pytest.mark.parametrize(
    ("performers", "modifiers", "status", "fix"),
    [
        ((A,), (), NA, None),
        ((A,), ("62",), NOT_MET, ()),
        ((A, B), (), NOT_MET, ("62",)),
        ((A, B), ("62",), MET, None),
        ((A, B, C), ("62",), NOT_MET, ("66",)),
        ((A, B, C), ("66",), MET, None),
        ((A, "PractitionerRole/re"), (), UNKNOWN, None),
        ((A, "Practitioner/a"), (), NA, None),  # the same surgeon twice
        (("Practitioner/b", "Practitioner/f"), (), NOT_MET, ("62",)),  # roles found through the practitioner
        ((B, "PractitionerRole/rg"), ("62",), MET, None),  # role from text
        ((A, "PractitionerRole/rd"), (), NA, None),  # surgeon + assistant is not co-surgery
        (("Organization/o1",), ("62",), NOT_MET, ()),
    ],
)
def test_roles_and_modifiers_where_co_and_team_surgery_are_permitted(performers, modifiers, status, fix):
    result = co(*performers, modifiers=modifiers, schedule=permitted(), **CMS)
    assert result.status == status, result.reason
    assert result.order_modifiers == fix


def test_medicare_two_surgeons_are_told_co_surgeons_are_not_paid_and_offered_assistant_billing():
    result = co(A, B, **CMS)
    assert result.status == NOT_MET
    assert "Medicare does not pay co-surgeons on 64580" in result.reason
    assert result.order_modifiers is None, "nothing to take off, and never a 62 to add"
    assert [(o.surgeon, o.modifier) for o in result.options] == [(B, "80"), (B, "82")]
    assert "co-surgery indicator 0" in " ".join(result.notes) and "RVU26A" in " ".join(result.notes)
    assert any("64590" in n and "their own codes" in n for n in result.notes)


@pytest.mark.parametrize(
    ("as_of", "surgery", "release"),
    [
        (date(2025, 12, 20), None, "RVU25D"),  # no surgery date: the release in force on the evaluation day
        (date(2025, 12, 20), "2026-01-12", "RVU26A"),  # signed in December for January: January's release
        (date(2026, 2, 1), "2025-12-01", "RVU26A"),  # a surgery day already past stands for nothing
        (date(2026, 12, 10), "2027-01-12", None),  # no 2027 release is shipped: not checked, never 2026's
    ],
)
def test_the_fee_schedule_release_is_the_one_in_force_on_the_day_of_surgery(as_of, surgery, release):
    """CMS's indicators go by date of service: a December order for January surgery was checked against the
    October release."""
    order = surgical_order(A, B, when=surgery)
    result = finding("co-surgeon-modifier", *ROLES, order=order, as_of=as_of, **CMS)
    if release is None:
        assert result.status == UNKNOWN and "could not be checked" in result.reason
    else:
        assert result.status == NOT_MET and f"Medicare fee schedule {release}:" in " ".join(result.notes)


def test_a_62_already_on_a_medicare_order_is_taken_off():
    result = co(A, B, modifiers=("62",), **CMS)
    assert result.status == NOT_MET and result.order_modifiers == ()
    assert "must come off" in result.reason


@pytest.mark.parametrize(
    ("second", "modifiers"),
    [(B, ["80", "82"]), ("PractitionerRole/rl", ["AS"]), ("PractitionerRole/rk", ["80", "82", "AS"])],
)
def test_the_assistant_modifier_offered_follows_the_second_surgeons_taxonomy(second, modifiers):
    assert [o.modifier for o in co(A, second, **CMS).options] == modifiers


def test_no_assistant_is_offered_where_the_assistant_is_not_payable_either():
    result = co(A, B, schedule=mpfs.single({"co_surg": "0", "asst_surg": "1"}), **CMS)
    assert result.status == NOT_MET and result.options == ()


def test_medicare_team_of_three_gets_no_66():
    result = co(A, B, C, **CMS)
    assert result.status == NOT_MET and result.order_modifiers is None
    assert "does not pay team surgery" in result.reason
    taken_off = co(A, B, C, modifiers=("66",), **CMS)
    assert taken_off.order_modifiers == ()


def test_co_surgery_with_documentation_asks_for_both_operative_notes():
    without = co(A, B, schedule=permitted(co_surg="1"), **CMS)
    assert without.order_modifiers == ("62",) and without.documents
    with_62 = co(A, B, modifiers=("62",), schedule=permitted(co_surg="1"), **CMS)
    assert with_62.status == MET and "operative notes" in with_62.documents[0]


def test_co_surgery_indicator_2_needs_different_specialties():
    same = co(A, C, modifiers=("62",), schedule=permitted(), **CMS)  # both 207T00000X
    assert same.status == NOT_MET and "207T00000X" in same.reason and same.documents
    different = co(A, B, modifiers=("62",), schedule=permitted(), **CMS)
    assert different.status == MET and not different.documents


def test_a_payer_with_its_own_rules_is_not_told_medicares_answer_as_its_own():
    result = co(A, B)  # the default policy does not say it follows the CMS indicators
    assert result.status == UNKNOWN and result.order_modifiers is None and not result.options
    assert "payer's own co-surgery policy decides" in result.reason
    assert any(n.startswith("For reference only") and "indicator 0" in n for n in result.notes)
    assert result.info_needed is None, "the roles are known: nothing is missing from the record"


def test_no_release_in_force_is_said_in_words():
    result = co(A, B, schedule=mpfs.single({"co_surg": "0"}, effective=date(2027, 1, 1)), **CMS)
    assert result.status == UNKNOWN
    assert result.reason == "Medicare's co-surgery rule for 64580 could not be checked for this date"
    assert "cds mpfs" not in result.reason + " ".join(result.notes)


def assistant(*performers, schedule=None, modifiers=(), **params):
    order = surgical_order(*performers, modifiers=modifiers)
    return finding("assistant-surgeon", *ROLES, order=order, schedule=schedule, **params)


@pytest.mark.parametrize(
    ("performers", "value", "status"),
    [
        ((A,), "2", NA),
        ((A, "PractitionerRole/rd"), "2", MET),
        ((A, "PractitionerRole/rd"), "1", NOT_MET),
        ((A, "PractitionerRole/rd"), "0", NOT_MET),
        ((A, "PractitionerRole/rd"), "9", NA),
        ((A, B, "PractitionerRole/rd"), "2", NOT_MET),  # not paid alongside co-surgeons
    ],
)
def test_assistant_at_surgery_follows_the_indicator(performers, value, status):
    assert assistant(*performers, schedule=mpfs.single({"asst_surg": value}), **CMS).status == status


@pytest.mark.parametrize("modifier", ["80", "82", "AS"])
def test_an_assistant_modifier_on_an_order_with_no_assistant_is_pointed_out(modifier):
    """The order is the surgeon's: billed with an assistant modifier, the surgeon's 64580 would be claimed as an
    assistant's. It passed silently ("no assistant surgeon on the order")."""
    result = assistant(A, modifiers=(modifier,), **CMS)
    assert result.status == UNKNOWN
    assert f"modifier {modifier} on the order, but no assistant at surgery" in result.reason
    assert result.headline.startswith(f"Modifier {modifier} on this CPT 64580 order")
    assert assistant(A, **CMS).status == NA


@pytest.mark.parametrize("second", ["PractitionerRole/rh", "PractitionerRole/ri", "PractitionerRole/rj"])
def test_pa_np_and_cns_assistants_bill_as_and_are_not_flagged_under_medicare(second):
    result = assistant(A, second, **CMS)
    assert result.status == MET and f"{second} bills 64580-AS" in result.reason


def test_a_physician_assistant_at_surgery_bills_80():
    result = assistant(A, "PractitionerRole/rd", **CMS)
    assert "bills 64580-80" in result.reason and any("82" in n for n in result.notes)


def test_assistant_under_a_payer_with_its_own_rules_is_unknown_with_the_cms_reference():
    result = assistant(A, "PractitionerRole/rh")
    assert result.status == UNKNOWN and any("For reference only" in n for n in result.notes)


def global_period(*resources, modifiers=(), when="2026-06-15", **params):
    order = surgical_order(A, modifiers=modifiers, when=when)
    return finding("global-period", *ROLES, *resources, order=order, **{**CMS, **params})


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ([procedure("64555", "2026-06-10", performer="Practitioner/a")], NOT_MET),  # 10-day global to 06-20
        ([procedure("64555", "2026-06-10", performer=A)], NOT_MET),  # the same surgeon through the role
        ([procedure("64555", "2026-05-20", performer="Practitioner/a")], NA),  # global ended 05-30
        ([procedure("64555", "2026-06-10", performer="Practitioner/b")], NA),  # another surgeon
        ([procedure("64555", "2026-06-10")], NA),  # performer not recorded
        ([procedure("64580", "2026-04-01", performer="Practitioner/a")], NOT_MET),  # inside 90 days
        ([procedure("64580", "2026-01-01", performer="Practitioner/a")], NA),  # 90 days ended 04-01
    ],
)
def test_global_period_of_an_earlier_procedure_by_the_same_surgeon(resources, status):
    assert global_period(*resources).status == status


def test_an_earlier_procedure_of_unknown_status_does_not_put_the_order_in_its_global_period():
    """FHIR's "unknown" status does not say the implant was done: the check is unknown, naming it, not a warning."""
    implant = procedure("64580", "2026-04-01", performer="Practitioner/a", status="unknown")
    result = global_period(implant)
    assert result.status == UNKNOWN and f"only if Procedure/{implant['id']} happened" in result.reason
    assert not result.headline and result.order_modifiers is None


def test_global_period_says_check_with_the_dates_and_accepts_a_modifier_on_the_order():
    trial = procedure("64555", "2026-06-10", performer="Practitioner/a")
    result = global_period(trial)
    assert result.reason.startswith("check modifier 58, 78 or 79")
    assert "2026-06-10" in result.reason and "2026-06-20" in result.reason and "10-day" in result.reason
    assert global_period(trial, modifiers=("58",)).status == MET


def test_an_np_listed_as_primary_is_the_one_who_bills_as_assistant():
    result = co("PractitionerRole/rl", A, **CMS)
    assert [(o.surgeon, o.modifier) for o in result.options] == [("PractitionerRole/rl", "AS")]


def test_an_assistant_beside_two_medicare_surgeons_is_judged_by_the_assistant_indicator():
    result = assistant(A, B, "PractitionerRole/rh", **CMS)  # Medicare pays no co-surgeons on 64580
    assert result.status == MET, result.reason
    # no source read says whether Medicare pays two assistants on one operation: the note says so, not that it does
    assert any("whether Medicare pays two assistants on one operation is not stated" in n for n in result.notes)
    elsewhere = assistant(A, B, "PractitionerRole/rh", schedule=permitted(), **CMS)  # co-surgeons paid
    assert elsewhere.status == NOT_MET and "alongside co-surgeons" in elsewhere.reason


def test_with_an_assistant_on_the_order_the_second_medicare_surgeon_is_not_offered_assistant_billing_too():
    """Two surgeons billing as assistants on one operation is nowhere stated as paid: it is not suggested, and the
    finding says so instead of recommending it."""
    result = co(A, B, "PractitionerRole/rh", **CMS)
    assert result.status == NOT_MET and result.options == ()
    assert "Medicare does not pay co-surgeons on 64580" in result.reason
    assert "whether Medicare pays two assistants on one operation is not stated" in result.reason
    assert "bill the second surgeon as assistant" not in result.headline


def test_a_medicare_team_is_not_told_that_all_the_others_bill_as_assistants():
    result = co(A, B, C, **CMS)
    assert result.headline == "Medicare does not pay team surgery on CPT 64580: one surgeon bills it"
    assert "another may bill it as assistant at surgery" in result.reason
    assert "whether Medicare pays two assistants on one operation is not stated" in result.reason


def test_an_assistant_beside_co_surgeons_under_a_payer_with_its_own_rules_is_not_warned_on_medicares_rule():
    result = assistant(A, B, "PractitionerRole/rh")  # no source says this payer follows the CMS indicators
    assert result.status == UNKNOWN
    assert result.reason.startswith("the payer's own policy decides whether an assistant at surgery is paid")
    assert any("For reference only" in n for n in result.notes)
    team = assistant(A, B, C, "PractitionerRole/rh")
    assert team.status == UNKNOWN and "a surgical team" in team.reason


def test_an_assistant_who_is_not_a_physician_pa_np_or_cns_gets_no_modifier():
    result = assistant(A, "PractitionerRole/rm", **CMS)
    assert result.status == UNKNOWN and "367500000X" in result.reason


def test_an_assistant_whose_profession_is_not_recorded_is_told_the_choices():
    result = assistant(A, "PractitionerRole/rn", **CMS)
    assert result.status == MET and "64580-80, 82 or AS" in result.reason


def sided(site: dict, modifiers=(), **params):
    order = surgical_order(A, modifiers=modifiers)
    order["bodySite"] = [site]
    return finding("laterality", *ROLES, order=order, **params)


LEFT_CODED = {"coding": [{"system": "http://snomed.info/sct", "code": "7771000"}]}


@pytest.mark.parametrize(
    ("site", "modifiers", "status", "said"),
    [
        (LEFT_CODED, (), MET, "left side: 64580 has bilateral indicator 0, reported without 50, RT or LT"),
        ({"text": "Right common peroneal nerve"}, (), MET, "right side: 64580 has bilateral indicator 0"),
        ({"text": "right calf"}, ("RT",), UNKNOWN, "a Medicare contractor says no RT or LT"),
        ({"text": "left calf"}, ("RT",), NOT_MET, "names the left side but the order carries RT"),
        ({"text": "left calf"}, ("50",), NOT_MET, "carries 50"),
        ({"text": "both legs"}, (), MET, "both sides are paid as one unit"),
        ({"coding": [{"system": "http://snomed.info/sct", "code": "51440002"}]}, (), MET, "bilateral indicator 0"),
        ({"text": "both legs"}, ("50",), NOT_MET, "carries modifier 50, but 64580's bilateral indicator is 0"),
        ({"text": "lumbar multifidus"}, (), NA, "names no side"),
    ],
)
def test_laterality_from_the_body_site(site, modifiers, status, said):
    """Medicare contractors (First Coast, Noridian JE): a BILAT SURG 0 code carries no 50, RT or LT."""
    result = sided(site, modifiers, **CMS)
    assert result.status == status and said in result.reason, result.reason


def test_a_side_is_never_turned_into_advice_to_add_a_side_modifier():
    """The old card said "bill CPT 64580 with modifier LT": contractors say the opposite for BILAT SURG 0."""
    for params in (CMS, {}):
        result = sided(LEFT_CODED, **params)
        assert "with modifier LT" not in result.reason + result.headline
    medicare = sided(LEFT_CODED, **CMS)
    assert any("should not be reported with a 50, RT or LT modifier" in n for n in medicare.notes)


def test_a_side_under_a_payer_with_its_own_rules_is_unknown_with_the_cms_indicator_as_reference():
    for site in ({"text": "bilateral"}, LEFT_CODED):
        result = sided(site)
        assert result.status == UNKNOWN and "payer's own rules decide" in result.reason
        assert any("bilateral-surgery indicator 0" in n for n in result.notes)
    assert sided({"text": "left calf"}, ("RT",)).status == NOT_MET  # the order contradicts itself: any payer


def test_a_contradicting_side_modifier_under_medicare_is_told_to_go_not_to_switch():
    """Medicare's BILAT SURG 0: "Side mismatch" alone implied changing RT to LT, which contractors say 64580 never
    carries; the same response told a left-sided order "no 50, RT or LT" (the truth audit, November 2026)."""
    result = sided({"text": "left calf"}, ("RT",), **CMS)
    assert result.status == NOT_MET and result.reason.endswith("a Medicare contractor says no 50, RT or LT: remove RT")
    assert result.headline.startswith("Remove RT from CPT 64580") and "LT" not in result.headline.split("names")[0]
    assert any("should not be reported with a 50, RT or LT modifier" in n for n in result.notes)


@pytest.mark.parametrize(
    ("site", "modifiers", "removed"),
    [
        ({"text": "left calf"}, ("LT", "RT"), "Remove LT/RT from CPT 64580"),  # only RT was to go; LT stayed
        ({"text": "both legs"}, ("LT",), "Remove LT from CPT 64580"),
        ({"text": "both legs"}, ("50", "LT"), "Remove 50/LT from CPT 64580"),  # said "Remove modifier 50" alone
        ({"text": "both legs"}, ("50",), "Remove modifier 50 from CPT 64580"),
    ],
)
def test_under_medicare_every_side_modifier_on_the_order_is_told_to_go(site, modifiers, removed):
    result = sided(site, modifiers, **CMS)
    assert result.status == NOT_MET and result.headline.startswith(removed), result.headline
    assert all(m in result.reason for m in modifiers), result.reason  # the reason says why each one goes


def test_both_sides_named_with_one_side_modifier_is_flagged():
    result = sided({"text": "both legs"}, ("LT",), **CMS)
    assert result.status == NOT_MET and "body site names both sides but the order carries only LT" in result.reason


def test_a_medicare_advantage_plan_is_not_told_medicares_payment_indicators_as_its_own():
    """42 CFR 422.101 binds MA plans to Medicare's coverage rules, not to its fee-schedule payment indicators, and no
    source says a plan applies CO- SURG: the plan's own policy decides, with the CMS value shown as reference."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "co-surgeons-without-62")
    answer = replay.run(case, replay.Options(payer="Humana Medicare Advantage PPO")).response
    criteria = {c["id"]: c for c in answer["cards"][0]["extension"]["cds64580.criteria"]}
    assert criteria["co-surgeon-modifier"]["policy"].startswith("medicare-advantage")
    assert "Medicare does not pay" not in criteria["co-surgeon-modifier"]["reason"]
    assert "own co-surgery policy decides" in criteria["co-surgeon-modifier"]["reason"]


def test_a_procedure_after_the_evaluation_date_opens_no_global_period():
    """Replayed as of mid-February, the 64555 trial of March 1 has not happened: no global-period warning about it
    (the same answer says no trial is documented yet)."""
    from cds import fixtures, replay

    case = fixtures.load_folder(fixtures.FIXTURE_DIR / "medicare-implant-in-trial-global-period")
    cards = replay.run(case, replay.Options(as_of="2026-02-15")).response["cards"]
    summary = next(c for c in cards if c["summary"].startswith("CPT 64580 criteria"))
    found = {c["id"]: c["status"] for c in summary["extension"]["cds64580.criteria"]}
    assert found["global-period"] == "not-applicable", found
    on_the_day = replay.run(case, replay.Options()).response["cards"]  # as of the case's own date: it warns
    summary = next(c for c in on_the_day if c["summary"].startswith("CPT 64580 criteria"))
    assert {c["id"]: c["status"] for c in summary["extension"]["cds64580.criteria"]}[
        "global-period"
    ] != "not-applicable"
