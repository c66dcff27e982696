"""POST /cds-services/{id}/feedback: a 200 means the feedback is committed, and survives a restart."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import create_engine

from cds.feedback import FeedbackStore

from .support import ORDER_SIGN, full_prefetch, hook_request
from .test_trust import clients_file  # noqa: F401  (a fixture)

URL = f"/cds-services/{ORDER_SIGN}/feedback"


def accepted(card: str, suggestion: str = "sugg-1", when: str = "2026-11-27T10:15:00Z") -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}], "outcomeTimestamp": when}


def overridden(card: str, **reason) -> dict:
    return {"card": card, "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": "2026-11-27T10:16:00Z"}


def issued(client) -> str:
    """The uuid of a card the service really issued (feedback for any other card is refused)."""
    response = client.post(
        f"/cds-services/{ORDER_SIGN}",
        data=orjson.dumps(hook_request(prefetch=full_prefetch())),
        content_type="application/json",
    )
    return response.get_json()["cards"][0]["uuid"]


def post(client, items):
    return client.post(URL, data=orjson.dumps({"feedback": items}), content_type="application/json")


def store(app) -> FeedbackStore:
    return app.extensions["cds.feedback"]


def test_accepted_feedback_is_stored(app, client):
    card = issued(client)
    response = post(client, [accepted(card)])
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "stored": 1}
    [row] = store(app).for_card(card)
    assert row["outcome"] == "accepted"
    assert orjson.loads(row["accepted_suggestions"]) == ["sugg-1"]
    assert row["service_id"] == ORDER_SIGN


def test_feedback_survives_a_restart_on_the_same_database(make_app):
    first = make_app()
    card = issued(first.test_client())
    assert post(first.test_client(), [accepted(card)]).status_code == 200
    first.extensions["cds.engine"].dispose()
    second = make_app()
    [row] = store(second).for_card(card)
    assert row["card_uuid"] == card


def test_override_reason_in_the_2_0_shape_and_the_legacy_sandbox_shape(app, client):
    card = issued(client)
    items = [
        overridden(
            card,
            reason={"system": "http://example.org/override", "code": "already-done", "display": "Done"},
            userComment="PT notes are in the paper chart",
        ),
        {
            **overridden(card, system="http://example.org/override", code="patient-declined"),
            "outcomeTimestamp": "2026-11-27T11:00:00Z",
        },
    ]
    assert post(client, items).get_json() == {"received": 2, "stored": 2}
    rows = store(app).for_card(card)
    assert [r["override_reason_code"] for r in rows] == ["already-done", "patient-declined"]
    assert rows[0]["user_comment"] == "PT notes are in the paper chart"


def test_a_retried_post_is_not_stored_twice(app, client):
    card = issued(client)
    items = [accepted(card)]
    assert post(client, items).get_json()["stored"] == 1
    assert post(client, items).get_json() == {"received": 1, "stored": 0}
    assert len(store(app).for_card(card)) == 1


def test_repeated_feedback_at_a_new_time_is_kept(app, client):
    card = issued(client)
    post(client, [accepted(card)])
    post(client, [accepted(card, when="2026-11-27T12:00:00+01:00")])
    assert len(store(app).for_card(card)) == 2


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-27T10:00:00Z"}, "acceptedSuggestions"),
        ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-11-27T10:00:00Z"}, "outcome"),
        ({"card": "c", "outcome": "overridden"}, "outcomeTimestamp"),
        ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "outcomeTimestamp"),
        ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-13-45T10:00:00Z"}, "outcomeTimestamp"),
        ({"outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"}, "card"),
    ],
    ids=[
        "accepted-without-suggestions",
        "bad-outcome",
        "no-timestamp",
        "timestamp-text",
        "timestamp-impossible",
        "no-card",
    ],
)
def test_invalid_feedback_is_400_and_nothing_is_stored(app, client, item, field):
    good = accepted(issued(client))
    response = post(client, [good, item])
    assert response.status_code == 400
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert any(field in e for issue in body["issue"] for e in issue.get("expression", ()))
    assert store(app).for_card(good["card"]) == []


def test_empty_feedback_list_is_400(client):
    assert post(client, []).status_code == 400


def test_database_down_is_503_not_a_false_200(app, client, tmp_path):
    unreachable = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}")
    app.extensions["cds.feedback"] = FeedbackStore(unreachable)
    response = post(client, [accepted(issued(client))])
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_health_endpoints(app, client, tmp_path):
    assert client.get("/healthz").get_json() == {"status": "pass"}
    assert client.get("/readyz").status_code == 200
    app.extensions["cds.engine"] = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_feedback_for_a_card_never_issued_is_404_naming_it(app, client):
    real = issued(client)
    response = post(client, [accepted(real), accepted("not-a-card-of-ours")])
    assert response.status_code == 404
    body = response.get_json()
    assert "not-a-card-of-ours" in body["issue"][0]["diagnostics"] and body["issue"][0]["expression"] == [
        "feedback[1].card"
    ]
    assert store(app).for_card(real) == [], "nothing of the post is stored"


@pytest.mark.parametrize("field", ["code", "system", "display"])
def test_oversized_override_reason_fields_are_400(client, field):
    reason = {"system": "http://example.org/o", "code": "c", "display": "d"} | {field: "x" * 1_000_000}
    response = post(client, [overridden(issued(client), reason=reason)])
    assert response.status_code == 400


def test_a_duplicate_is_the_same_card_outcome_and_time_whatever_the_display(app, client):
    card = issued(client)
    first = overridden(card, reason={"system": "http://example.org/o", "code": "c", "display": "one"})
    second = overridden(card, reason={"system": "http://example.org/o", "code": "c", "display": "two"})
    assert post(client, [first]).get_json()["stored"] == 1
    assert post(client, [second]).get_json()["stored"] == 0
    [row] = store(app).for_card(card)
    assert row["override_reason_display"] == "one"


def test_feedback_records_the_client_that_posted_it(make_app, clients_file):  # noqa: F811
    from .test_trust import token

    app = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file))
    client = app.test_client()
    hook = f"/cds-services/{ORDER_SIGN}"
    auth = {"Authorization": "Bearer " + token(aud=f"http://localhost{hook}")}
    card = client.post(
        hook, data=orjson.dumps(hook_request(prefetch=full_prefetch())), content_type="application/json", headers=auth
    )
    card = card.get_json()["cards"][0]["uuid"]
    auth = {"Authorization": "Bearer " + token(aud=f"http://localhost{URL}")}
    response = client.post(
        URL, data=orjson.dumps({"feedback": [accepted(card)]}), content_type="application/json", headers=auth
    )
    assert response.status_code == 200
    [row] = store(app).for_card(card)
    assert row["client"] == "https://ehr.example.org"
