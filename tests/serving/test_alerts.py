"""Alerts: upsert with dedup, the workflow's state machine, concurrent transitions,
history, audit and outbox, verdicts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from models.scoring import alert_id
from serving import audit
from serving.alerts import Action, Status, alert_history_of, get_alert, list_alerts, verdicts
from serving.db import Store
from serving.errors import (
    AlertConflictError,
    AlertTransitionError,
    InvalidAlertError,
    NotFoundError,
    PermissionDeniedError,
)
from serving.tables import alerts
from serving.users import SYSTEM, User
from serving.webhooks import pending_messages
from serving.workflow import close_passed, transition, upsert_alerts
from tests.serving.conftest import T0, alert_row

D1 = alert_id("delay", "dossier", "D1")


@pytest.fixture
def raised(store: Store, people: dict[str, User]) -> str:
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), alert_row("D2", "J2")], now=T0)
    return D1


def test_upsert_keeps_one_alert_per_kind_and_subject(store: Store) -> None:
    frame = pd.DataFrame([alert_row("D1"), alert_row("D1", score=0.95), alert_row("D2")])
    frame["alert_id"] = [alert_id("delay", "dossier", s) for s in frame["subject_id"]]
    with store.transaction() as session:
        first = upsert_alerts(session, frame, now=T0)
    with store.transaction() as session:
        again = upsert_alerts(session, [alert_row("D1", score=0.6), alert_row("D1", kind="waste")])
    with store.read() as session:
        a = get_alert(session, SYSTEM, D1)
        count = session.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one()
    assert (first.raised, first.updated) == (2, 0)
    assert (again.raised, again.updated) == (1, 1)  # the waste alert on D1 is another alert
    assert count == 3
    assert a.score == 0.6 and a.severity == "medium" and a.status is Status.OPEN
    assert a.version == 1 and a.level == "commune" and a.opened_at == T0


def test_entity_alerts_are_one_per_pattern_and_keep_their_dossiers(store: Store) -> None:
    def entity(pattern: str, dossiers: str) -> dict[str, object]:
        return {
            **alert_row("O7", kind="integrity"),
            "subject_type": "officer",
            "alert_id": alert_id(f"integrity:{pattern}", "officer", "O7"),
            "pattern": pattern,
            "dossiers": dossiers,
        }

    with store.transaction() as session:
        first = upsert_alerts(session, [entity("backdating", "D1;D2"), entity("skip", "D3")])
        again = upsert_alerts(session, [entity("backdating", "D1;D2;D4")])
    with store.read() as session:
        found = list_alerts(session, SYSTEM, kind="integrity")
    assert (first.raised, again.updated) == (2, 1)
    assert sorted((a.pattern, tuple(a.dossiers or ())) for a in found) == [
        ("backdating", ("D1", "D2", "D4")),
        ("skip", ("D3",)),
    ]


def test_upsert_refuses_a_foreign_alert_id_or_a_bad_score(store: Store) -> None:
    with pytest.raises(InvalidAlertError, match="alert 1, field 'alert_id'"):
        with store.transaction() as session:
            upsert_alerts(session, [alert_row("D1"), {**alert_row("D2"), "alert_id": "Dxyz"}])
    with pytest.raises(InvalidAlertError, match="field 'score'"):
        with store.transaction() as session:
            upsert_alerts(session, [alert_row("D1", score=1.5)])
    with store.read() as session:
        assert list_alerts(session, SYSTEM) == []


def test_the_workflow_from_open_to_confirmed(
    store: Store, people: dict[str, User], raised: str
) -> None:
    insp = people["insp1"]
    with store.transaction() as session:
        a = transition(session, raised, "acknowledge", insp)
        a = transition(session, raised, Action.ESCALATE, insp, reason="organised")
        a = transition(session, raised, Action.CONFIRM, insp, reason="skipped appraisal")
    assert a.status is Status.CONFIRMED and a.level == "province" and a.version == 4
    assert a.assignee == "insp1" and a.decided_by == "insp1"
    assert a.verdict_reason == "skipped appraisal" and a.decided_at is not None
    with store.read() as session:
        history = alert_history_of(session, insp, raised)
        entries = audit.entries(session, subject_id=raised)
        report = audit.verify(session)
        topics = [m.topic for m in pending_messages(session)]
    assert [h["action"] for h in history] == ["raise", "acknowledge", "escalate", "confirm"]
    assert [h["to_status"] for h in history][-1] == "confirmed"
    assert history[2]["from_level"] == "commune" and history[2]["to_level"] == "province"
    assert [e.action for e in entries] == [
        "alert.raise",
        "alert.acknowledge",
        "alert.escalate",
        "alert.confirm",
    ]
    assert entries[-1].actor == "insp1" and entries[-1].details["to"] == "confirmed"
    assert report.ok
    assert topics.count("alert.raise") == 2 and topics[-1] == "alert.confirm"


@pytest.mark.parametrize(
    ("path", "action", "says"),
    [
        ([], "confirm", "cannot confirm alert .*: it is open"),
        ([], "dismiss", "cannot dismiss"),
        (["acknowledge"], "acknowledge", "it is acknowledged"),
        (["acknowledge", "confirm"], "dismiss", "it is confirmed"),
        (["acknowledge", "confirm"], "escalate", "it is confirmed"),
        (["escalate", "escalate"], "escalate", "top level"),
        (["acknowledge"], "reassign", "needs an assignee"),
        ([], "raise", "raised by upsert_alerts"),
        ([], "teleport", "unknown action"),
    ],
)
def test_illegal_transitions_are_refused(
    store: Store, people: dict[str, User], raised: str, path: list[str], action: str, says: str
) -> None:
    insp = people["insp1"]
    with store.transaction() as session:
        for step in path:
            transition(session, raised, step, insp, reason="why")
    with store.read() as session:
        before = get_alert(session, insp, raised)
    with pytest.raises(AlertTransitionError, match=says), store.transaction() as session:
        transition(session, raised, action, insp, reason="why")
    with store.read() as session:
        assert get_alert(session, insp, raised) == before


def test_dismissing_needs_a_reason(store: Store, people: dict[str, User], raised: str) -> None:
    insp = people["insp1"]
    with store.transaction() as session:
        transition(session, raised, "acknowledge", insp)
    for reason in (None, "   "):
        with pytest.raises(AlertTransitionError, match="needs a reason"):
            with store.transaction() as session:
                transition(session, raised, "dismiss", insp, reason=reason)
    with store.transaction() as session:
        a = transition(session, raised, "dismiss", insp, reason="documented pause")
    assert a.status is Status.DISMISSED and a.verdict_reason == "documented pause"


def test_who_may_act(store: Store, people: dict[str, User], raised: str) -> None:
    with pytest.raises(PermissionDeniedError, match="role dashboard"):
        with store.transaction() as session:
            transition(session, raised, "acknowledge", people["dash"])
    with pytest.raises(NotFoundError):  # J1's alert does not exist for J2's inspector
        with store.transaction() as session:
            transition(session, raised, "acknowledge", people["insp2"])
    with pytest.raises(PermissionDeniedError, match="done by the scorer"):
        with store.transaction() as session:
            transition(session, raised, "close", people["admin"])
    with pytest.raises(AlertTransitionError, match="does not cover jurisdiction 'J1'"):
        with store.transaction() as session:
            transition(session, raised, "reassign", people["admin"], assignee="insp2")
    with pytest.raises(AlertTransitionError, match="cannot work on alerts"):
        with store.transaction() as session:
            transition(session, raised, "reassign", people["admin"], assignee="analyst")
    with store.transaction() as session:
        a = transition(session, raised, "reassign", people["admin"], assignee="insp1")
    assert a.assignee == "insp1" and a.status is Status.OPEN
    with store.read() as session:
        assert [x.subject_id for x in list_alerts(session, people["insp2"])] == ["D2"]
        assert list_alerts(session, people["admin"], status=["acknowledged"]) == []
        assert len(list_alerts(session, people["admin"], status=["open"], kind="delay")) == 2
        assert [x.subject_id for x in list_alerts(session, SYSTEM, jurisdiction="J2")] == ["D2"]
        assert len(list_alerts(session, people["analyst"])) == 2
        assert list_alerts(session, people["ingest"]) == []


def test_alerts_close_when_the_risk_passes_and_reopen_when_it_returns(
    store: Store, people: dict[str, User], raised: str
) -> None:
    d2 = alert_id("delay", "dossier", "D2")
    with store.transaction() as session:
        assert close_passed(session, [d2], kinds=["delay"], now=T0 + timedelta(days=1)) == 1
    with store.read() as session:
        closed = get_alert(session, SYSTEM, raised)
    assert closed.status is Status.CLOSED and closed.closed_at == T0 + timedelta(days=1)
    with store.transaction() as session:
        back = upsert_alerts(session, [alert_row("D1", score=0.85)])
    with store.read() as session:
        again = get_alert(session, SYSTEM, raised)
        actions = [h["action"] for h in alert_history_of(session, SYSTEM, raised)]
    assert back.reopened == 1 and again.status is Status.OPEN and again.closed_at is None
    assert actions == ["raise", "close", "reopen"]


def test_a_stale_version_is_a_conflict(store: Store, people: dict[str, User], raised: str) -> None:
    with store.transaction() as session:
        transition(session, raised, "acknowledge", people["insp1"], expected_version=1)
    with pytest.raises(AlertConflictError, match="changed by someone else"):
        with store.transaction() as session:
            transition(session, raised, "escalate", people["insp1"], expected_version=1)


def test_concurrent_transitions_end_in_one_consistent_state(
    store: Store, people: dict[str, User], raised: str
) -> None:
    insp = people["insp1"]
    with store.transaction() as session:
        version = transition(session, raised, "acknowledge", insp).version
    workers = 6
    start = threading.Barrier(workers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def decide(i: int) -> None:
        action = "confirm" if i % 2 else "dismiss"
        start.wait()
        try:
            with store.transaction() as session:
                transition(session, raised, action, insp, expected_version=version, reason=f"w{i}")
            result = action
        except AlertConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [o for o in outcomes if o != "conflict"]
    assert len(outcomes) == workers and len(winners) == 1
    with store.read() as session:
        final = get_alert(session, insp, raised)
        history = alert_history_of(session, insp, raised)
        report = audit.verify(session)
    assert final.status.value == {"confirm": "confirmed", "dismiss": "dismissed"}[winners[0]]
    assert final.version == version + 1
    assert [h["action"] for h in history] == ["raise", "acknowledge", winners[0]]
    assert report.ok and report.entries == report.head_seq


def test_verdicts_are_the_decided_alerts(
    store: Store, people: dict[str, User], raised: str
) -> None:
    d2 = alert_id("delay", "dossier", "D2")
    with store.transaction() as session:
        transition(session, raised, "acknowledge", people["insp1"], now=T0)
        transition(session, raised, "confirm", people["insp1"], now=T0 + timedelta(hours=1))
        transition(session, d2, "acknowledge", people["insp2"], now=T0)
        transition(
            session, d2, "dismiss", people["insp2"], reason="no", now=T0 + timedelta(hours=2)
        )
    with store.read() as session:
        found = verdicts(session)
        later = verdicts(session, since=T0 + timedelta(hours=1))
    assert [(v.subject_id, v.verdict) for v in found] == [
        ("D1", Status.CONFIRMED),
        ("D2", Status.DISMISSED),
    ]
    assert found[1].reason == "no" and found[1].decided_by == "insp2"
    assert found[0].decided_at == T0 + timedelta(hours=1)
    assert [v.subject_id for v in later] == ["D2"]
