"""POST /cds-services/{id}/feedback: a 200 means the feedback is committed, and survives a restart."""

from __future__ import annotations

import uuid

import orjson
import pytest
from sqlalchemy import create_engine

from cds.feedback import FeedbackStore

from .support import ORDER_SIGN

URL = f"/cds-services/{ORDER_SIGN}/feedback"


def accepted(card: str, suggestion: str = "sugg-1", when: str = "2026-11-27T10:15:00Z") -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}], "outcomeTimestamp": when}


def overridden(card: str, **reason) -> dict:
    return {"card": card, "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": "2026-11-27T10:16:00Z"}


def post(client, items):
    return client.post(URL, data=orjson.dumps({"feedback": items}), content_type="application/json")


def store(app) -> FeedbackStore:
    return app.extensions["cds.feedback"]


def test_accepted_feedback_is_stored(app, client):
    card = str(uuid.uuid4())
    response = post(client, [accepted(card)])
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "stored": 1}
    [row] = store(app).for_card(card)
    assert row["outcome"] == "accepted"
    assert orjson.loads(row["accepted_suggestions"]) == ["sugg-1"]
    assert row["service_id"] == ORDER_SIGN


def test_feedback_survives_a_restart_on_the_same_database(make_app):
    card = str(uuid.uuid4())
    first = make_app()
    assert post(first.test_client(), [accepted(card)]).status_code == 200
    first.extensions["cds.engine"].dispose()
    second = make_app()
    [row] = store(second).for_card(card)
    assert row["card_uuid"] == card


def test_override_reason_in_the_2_0_shape_and_the_legacy_sandbox_shape(app, client):
    card = str(uuid.uuid4())
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
    card = str(uuid.uuid4())
    items = [accepted(card)]
    assert post(client, items).get_json()["stored"] == 1
    assert post(client, items).get_json() == {"received": 1, "stored": 0}
    assert len(store(app).for_card(card)) == 1


def test_repeated_feedback_at_a_new_time_is_kept(app, client):
    card = str(uuid.uuid4())
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
    good = accepted(str(uuid.uuid4()))
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
    response = post(client, [accepted(str(uuid.uuid4()))])
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_health_endpoints(app, client, tmp_path):
    assert client.get("/healthz").get_json() == {"status": "pass"}
    assert client.get("/readyz").status_code == 200
    app.extensions["cds.engine"] = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"
