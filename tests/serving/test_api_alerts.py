"""The alert workflow through HTTP: each action, its checks, optimistic concurrency,
and the audit chain verifying afterwards."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from serving import search
from serving.alerts import Status
from serving.db import Store
from serving.search import AlertCursor, AlertFilters, search_alerts
from serving.tables import alerts, audit_log
from serving.users import User, create_user
from tests.serving.api_helpers import A1, A3, Api, api_over, seed
from tests.serving.conftest import T0


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


# --- the inbox: index scans, keyset pages, the capped total ----------------------------


def _many_alerts(store: Store, n: int = 240) -> list[dict[str, Any]]:
    """``n`` alerts over four jurisdictions, three agencies, every status, with tied
    scores (so the alert_id tie-break is exercised)."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        score = rng.choice([0.3, 0.55, 0.55, 0.7, 0.85, 0.85, 0.9])
        rows.append(
            {
                "alert_id": f"X{i:04d}",
                "kind": rng.choice(["delay", "waste", "integrity"]),
                "subject_type": "dossier",
                "subject_id": f"S{i}",
                "score": score,
                "severity": "high" if score >= 0.8 else "medium" if score >= 0.5 else "low",
                "jurisdiction": rng.choice(["J1", "J2", "J3", "J4"]),
                "agency_id": rng.choice(["A1", "A2", "A3"]),
                "reasons": "",
                "status": rng.choice([s.value for s in Status]),
                "level": "commune",
                "version": 1,
                "opened_at": T0 + timedelta(hours=i),
                "updated_at": T0 + timedelta(hours=i),
            }
        )
    with store.transaction() as session:
        session.execute(sa.insert(alerts), rows)
    return rows


FILTERS = [
    AlertFilters(),
    AlertFilters(status=(Status.OPEN,)),
    AlertFilters(status=(Status.OPEN, Status.ACKNOWLEDGED), severity="medium"),
    AlertFilters(status=(Status.CLOSED,), jurisdiction="J1"),
    AlertFilters(jurisdiction="J3", kind="waste"),
    AlertFilters(agency_id="A2", status=(Status.DISMISSED, Status.OPEN)),
    AlertFilters(agency_id="A1", jurisdiction="J2"),
    AlertFilters(severity="high", since=T0 + timedelta(hours=50), until=T0 + timedelta(hours=200)),
]


def _expected(rows: list[dict[str, Any]], user: User, f: AlertFilters) -> list[str]:
    def keep(r: dict[str, Any]) -> bool:
        return (
            (user.sees_all or (user.role != "ingest" and r["jurisdiction"] in user.jurisdictions))
            and (f.kind is None or r["kind"] == f.kind)
            and (f.severity is None or r["severity"] == f.severity)
            and (not f.status or r["status"] in f.status)
            and (f.agency_id is None or r["agency_id"] == f.agency_id)
            and (f.jurisdiction is None or r["jurisdiction"] == f.jurisdiction)
            and (f.since is None or r["opened_at"] >= f.since)
            and (f.until is None or r["opened_at"] < f.until)
        )

    kept = sorted((r for r in rows if keep(r)), key=lambda r: (-r["score"], r["alert_id"]))
    return [str(r["alert_id"]) for r in kept]


@pytest.mark.parametrize("max_scans", [search.MAX_SCANS, 1])  # 1: the one-query fallback
def test_inbox_pages_are_the_plain_sort_of_the_matches(
    store: Store, people: dict[str, User], monkeypatch: pytest.MonkeyPatch, max_scans: int
) -> None:
    monkeypatch.setattr(search, "MAX_SCANS", max_scans)
    rows = _many_alerts(store)
    with store.transaction() as session:
        people["insp12"] = create_user(session, "insp12", "inspector", ["J1", "J2"])
    with store.read() as session:
        for who in ("admin", "insp1", "insp12", "ingest"):
            for f in FILTERS:
                want = _expected(rows, people[who], f)
                page = search_alerts(session, people[who], f, limit=10, offset=7)
                assert [a.alert_id for a in page.alerts] == want[7:17], (who, f)
                assert (page.total, page.total_exact) == (len(want), True)
                walked, cursor = [], None  # keyset pages: every match once, in order
                while True:
                    page = search_alerts(session, people[who], f, limit=9, cursor=cursor)
                    walked += [a.alert_id for a in page.alerts]
                    if page.next_cursor is None:
                        break
                    cursor = AlertCursor.decode(page.next_cursor)
                assert walked == want, (who, f)


def test_the_inbox_total_stops_at_its_cap(
    store: Store, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "COUNT_CAP", 25)
    rows = _many_alerts(store)
    with store.read() as session:
        page = search_alerts(session, people["admin"], AlertFilters(), limit=5, offset=3)
        assert (page.total, page.total_exact) == (25, False) and len(page.alerts) == 5
        few = AlertFilters(jurisdiction="J1", status=(Status.OPEN,))
        page = search_alerts(session, people["admin"], few, limit=5, offset=1)
        assert (page.total, page.total_exact) == (len(_expected(rows, people["admin"], few)), True)


def test_the_inbox_pages_by_cursor_over_http(store: Store, people: dict[str, User]) -> None:
    _many_alerts(store, 30)
    with api_over(store, people) as api:
        first = api.get("admin", "/v1/alerts", params={"limit": 20}).json()
        assert first["total"] == 30 and first["total_exact"] is True
        rest = api.get(
            "admin", "/v1/alerts", params={"limit": 20, "cursor": first["next_cursor"]}
        ).json()
        assert rest["next_cursor"] is None and len(rest["items"]) == 10
        whole = api.get("admin", "/v1/alerts", params={"limit": 30}).json()
        assert [a["alert_id"] for a in first["items"] + rest["items"]] == [
            a["alert_id"] for a in whole["items"]
        ]
        for bad in ("nope", "W10=", AlertCursor(0.5, "x").encode()[:-2] + "!!", "bnVsbA"):
            r = api.get("admin", "/v1/alerts", params={"cursor": bad})
            assert r.status_code == 422 and r.json()["field"] == "cursor", (bad, r.text)
