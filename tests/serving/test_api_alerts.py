"""The alert workflow through HTTP: each action, its checks, optimistic concurrency,
and the audit chain verifying afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from serving.db import Store
from serving.tables import audit_log
from serving.users import User
from tests.serving.api_helpers import A1, A3, Api, api_over, seed


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    seed(store)
    with api_over(store, people) as client:
        yield client


def test_an_alert_goes_through_its_workflow_and_the_audit_chain_holds(api: Api) -> None:
    ack = api.post("insp1", f"/v1/alerts/{A1}/acknowledge", json={"expected_version": 1})
    assert ack.status_code == 200, ack.text
    assert ack.json()["status"] == "acknowledged" and ack.json()["assignee"] == "insp1"
    up = api.post("insp1", f"/v1/alerts/{A1}/escalate")
    assert up.json()["level"] == "province" and up.json()["version"] == 3
    moved = api.post("admin", f"/v1/alerts/{A1}/reassign", json={"assignee": "insp1"})
    assert moved.status_code == 200 and moved.json()["version"] == 4
    done = api.post(
        "insp1", f"/v1/alerts/{A1}/confirm", json={"expected_version": 4, "reason": "seen"}
    )
    assert done.status_code == 200
    assert done.json()["status"] == "confirmed" and done.json()["decided_by"] == "insp1"
    history = api.get("insp1", f"/v1/alerts/{A1}").json()["history"]
    assert [h["action"] for h in history] == [
        "raise",
        "acknowledge",
        "escalate",
        "reassign",
        "confirm",
    ]
    assert [h["actor"] for h in history[1:]] == ["insp1", "insp1", "admin", "insp1"]
    dismissed = api.post("insp1", f"/v1/alerts/{A3}/acknowledge")
    assert dismissed.status_code == 200
    r = api.post("insp1", f"/v1/alerts/{A3}/dismiss", json={"reason": "planned rework"})
    assert r.status_code == 200 and r.json()["verdict_reason"] == "planned rework"
    report = api.get("admin", "/v1/audit/verify").json()
    with api.store.read() as session:
        actions = session.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq))
        logged = list(actions.scalars())
    assert report["ok"] and report["entries"] == len(logged) and report["broken_seq"] is None
    assert logged[-6:] == [
        "alert.acknowledge",
        "alert.escalate",
        "alert.reassign",
        "alert.confirm",
        "alert.acknowledge",
        "alert.dismiss",
    ]


def test_a_stale_version_is_409_with_the_current_version(api: Api) -> None:
    assert api.post("insp1", f"/v1/alerts/{A1}/acknowledge").status_code == 200
    r = api.post("admin", f"/v1/alerts/{A1}/escalate", json={"expected_version": 1})
    assert r.status_code == 409
    body = r.json()
    assert body["current_version"] == 2 and body["expected_version"] == 1
    assert body["field"] == "expected_version" and "changed by someone else" in body["detail"]
    assert api.get("admin", f"/v1/alerts/{A1}").json()["level"] == "commune"


def test_actions_the_status_does_not_allow_are_409(api: Api) -> None:
    r = api.post("insp1", f"/v1/alerts/{A1}/confirm")
    assert r.status_code == 409 and "it is open" in r.json()["detail"]


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("dismiss", {}, "reason"),
        ("dismiss", {"reason": "  "}, "reason"),
        ("reassign", {}, "assignee"),
        ("close", {}, "action"),
        ("raise", {}, "action"),
        ("acknowledge", {"expected_version": "two"}, "expected_version"),
        ("acknowledge", {"note": "?"}, "note"),
    ],
)
def test_incomplete_or_unknown_actions_are_422_naming_the_field(
    api: Api, action: str, body: dict[str, object], field: str
) -> None:
    r = api.post("insp1", f"/v1/alerts/{A1}/{action}", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert api.get("insp1", f"/v1/alerts/{A1}").json()["version"] == 1


def test_reassigning_to_someone_who_cannot_take_it_is_refused(api: Api) -> None:
    for who in ("insp2", "nobody", "analyst"):
        r = api.post("admin", f"/v1/alerts/{A1}/reassign", json={"assignee": who})
        assert r.status_code == 409 and who in r.json()["detail"]


def test_malformed_action_bodies_are_4xx(api: Api) -> None:
    headers = {**api.headers("insp1"), "Content-Type": "application/json"}
    r = api.client.post(f"/v1/alerts/{A1}/acknowledge", content=b"{", headers=headers)
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = api.client.post(f"/v1/alerts/{A1}/acknowledge", content=b"[1]", headers=headers)
    assert r.status_code == 422
