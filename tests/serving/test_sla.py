"""SLA escalation with a fixed clock: one level per SLA period, the clock restarting at
each escalation, the top level kept and counted, history, audit and outbox written, and
a second run at the same time doing nothing; through the store, the CLI and HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from giamsat.cli import app
from giamsat.settings import get_settings
from models.scoring import alert_id
from serving import audit
from serving.alerts import Status, alert_history_of, get_alert
from serving.db import Store
from serving.sla import escalate_overdue, overdue_alerts, overdue_at_top, slas_of
from serving.tables import alerts
from serving.users import SYSTEM, User
from serving.webhooks import pending_messages
from serving.workflow import close_passed, transition, upsert_alerts
from tests.serving.api_helpers import A1, A2, A3, api_over, seed, settings
from tests.serving.conftest import T0, alert_row

SLAS = {"high": timedelta(hours=24), "medium": timedelta(hours=72), "low": timedelta(hours=168)}
HIGH = alert_id("delay", "dossier", "D1")  # score 0.9
MEDIUM = alert_id("delay", "dossier", "D2")  # score 0.6


@pytest.fixture
def raised(store: Store) -> Store:
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), alert_row("D2", score=0.6)], now=T0)
    return store


def _run(store: Store, hours: float) -> list[tuple[str, str]]:
    with store.transaction() as session:
        done = escalate_overdue(session, now=T0 + timedelta(hours=hours), slas=SLAS)
    return [(a.alert_id, a.level) for a in done]


def test_an_unacknowledged_alert_climbs_one_level_per_sla_and_stays_at_the_top(
    raised: Store,
) -> None:
    assert _run(raised, 23.5) == []
    assert _run(raised, 24) == [(HIGH, "province")]
    assert _run(raised, 24) == []  # idempotent at the same time
    assert _run(raised, 47) == []  # the clock restarted at hour 24
    assert _run(raised, 48) == [(HIGH, "ministry")]
    assert _run(raised, 72) == [(MEDIUM, "province")]  # the medium SLA
    assert _run(raised, 200) == [(MEDIUM, "ministry")]  # one level per run, however late
    with raised.read() as session:
        # the medium alert's clock restarted at hour 200: it is overdue again at 272
        assert overdue_at_top(session, now=T0 + timedelta(hours=200), slas=SLAS) == 1
        assert overdue_at_top(session, now=T0 + timedelta(hours=272), slas=SLAS) == 2
        top = get_alert(session, SYSTEM, HIGH)
        history = alert_history_of(session, SYSTEM, HIGH)
    assert top.level == "ministry" and top.status is Status.OPEN and top.version == 3
    assert [(h["action"], h["actor"], h["from_level"], h["to_level"]) for h in history] == [
        ("raise", "system", None, "commune"),
        ("escalate", "system:sla", "commune", "province"),
        ("escalate", "system:sla", "province", "ministry"),
    ]
    assert history[1]["at"] == T0 + timedelta(hours=24)
    assert history[1]["reason"] == "not acknowledged within the high SLA (24 h)"


def test_each_escalation_is_audited_and_sent_in_the_same_transaction(raised: Store) -> None:
    _run(raised, 24)
    with raised.read() as session:
        logged = [e for e in audit.entries(session) if e.action == "alert.escalate"]
        sent = [m for m in pending_messages(session) if m.topic == "alert.escalate"]
        assert audit.verify(session).ok
    assert [(e.actor, e.subject_id, e.details["level"]) for e in logged] == [
        ("system:sla", HIGH, "province")
    ]
    assert [(m.payload["alert_id"], m.payload["actor"]) for m in sent] == [(HIGH, "system:sla")]
    with pytest.raises(RuntimeError), raised.transaction() as session:
        escalate_overdue(session, now=T0 + timedelta(hours=48), slas=SLAS)
        raise RuntimeError("the caller fails")
    with raised.read() as session:  # nothing of the failed run stayed
        assert get_alert(session, SYSTEM, HIGH).level == "province"
        assert len(alert_history_of(session, SYSTEM, HIGH)) == 2


def test_acknowledged_closed_and_unknown_severity_alerts_do_not_escalate(
    raised: Store, people: dict[str, User]
) -> None:
    with raised.transaction() as session:
        transition(session, HIGH, "acknowledge", people["insp1"], now=T0)
        close_passed(session, [HIGH], now=T0)  # closes the medium one
        upsert_alerts(session, [{**alert_row("D9"), "severity": "urgent"}], now=T0)
    assert _run(raised, 1000) == []
    with raised.read() as session:
        assert overdue_alerts(session, now=T0 + timedelta(hours=1000), slas=SLAS) == []


def test_a_manual_escalation_or_a_reopening_restarts_the_clock(
    raised: Store, people: dict[str, User]
) -> None:
    with raised.transaction() as session:
        transition(session, HIGH, "escalate", people["insp1"], now=T0 + timedelta(hours=20))
        close_passed(session, [HIGH], now=T0 + timedelta(hours=1))
        upsert_alerts(session, [alert_row("D2", score=0.6)], now=T0 + timedelta(hours=50))
    assert _run(raised, 43) == []
    assert _run(raised, 44) == [(HIGH, "ministry")]
    assert _run(raised, 121) == []  # reopened at hour 50: due at 122
    assert _run(raised, 122) == [(MEDIUM, "province")]


def test_an_alert_changed_meanwhile_is_skipped(
    raised: Store, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.sla as sla

    found = sla.overdue_alerts

    def then_someone_acts(session: Any, **kw: Any) -> Any:
        items = found(session, **kw)
        session.execute(sa.update(alerts).where(alerts.c.alert_id == HIGH).values(version=9))
        return items

    monkeypatch.setattr(sla, "overdue_alerts", then_someone_acts)
    assert _run(raised, 24) == []


def test_the_slas_come_from_the_settings() -> None:
    assert slas_of(settings()) == SLAS
    assert slas_of(settings(alert_sla_high_hours=2.5))["high"] == timedelta(hours=2.5)
    with pytest.raises(ValueError):
        settings(alert_sla_low_hours=0)


def test_the_cli_escalates_at_the_time_given(
    store_url: str, migrated_cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIAMSAT_ALERT_SLA_HIGH_HOURS", "10")
    get_settings.cache_clear()  # the fixture's upgrade read the settings before
    runner = migrated_cli
    store = Store.from_url(store_url)
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1")], now=T0)
    store.dispose()
    at = (T0 + timedelta(hours=10)).isoformat()
    first = runner.invoke(app, ["alerts", "escalate-overdue", "--now", at])
    assert first.exit_code == 0, first.output
    assert f"{HIGH} (high) escalated to province" in first.output
    assert "1 alerts escalated; 0 overdue at the top level" in first.output
    again = runner.invoke(app, ["alerts", "escalate-overdue", "--now", at])
    assert "0 alerts escalated" in again.output
    naive = runner.invoke(app, ["alerts", "escalate-overdue", "--now", "2025-03-04T00:00"])
    assert naive.exit_code == 2 and "UTC offset" in naive.output


def test_admins_escalate_overdue_alerts_through_http(store: Store, people: dict[str, User]) -> None:
    seed(store)  # opened in 2025: every SLA has long passed
    with api_over(store, people) as api:
        refused = api.post("insp1", "/v1/alerts/escalate-overdue")
        assert refused.status_code == 403
        done = api.post("admin", "/v1/alerts/escalate-overdue")
        assert done.status_code == 200, done.text
        body = done.json()
        assert sorted(a["alert_id"] for a in body["escalated"]) == sorted([A1, A2, A3])
        assert {a["level"] for a in body["escalated"]} == {"province"}
        assert body["overdue_at_top"] == 0
        again = api.post("admin", "/v1/alerts/escalate-overdue").json()
        assert again["escalated"] == [] and again["overdue_at_top"] == 0
        history = api.get("admin", f"/v1/alerts/{A1}").json()["history"]
        assert history[-1]["actor"] == "system:sla"
