"""Webhook subscriptions and the transactional outbox (the dispatcher comes with issue 8)."""

from __future__ import annotations

import pytest

from serving import audit
from serving.db import Store
from serving.errors import InvalidSubscriptionError, NotFoundError
from serving.webhooks import (
    create_subscription,
    enqueue,
    get_subscription,
    list_subscriptions,
    mark_dispatched,
    pending_messages,
)
from serving.workflow import upsert_alerts
from tests.serving.conftest import T0, alert_row


def test_subscriptions_are_stored_and_audited_without_their_secret(store: Store) -> None:
    secret = "s3cret-shared-with-the-receiver"
    with store.transaction() as session:
        create_subscription(
            session,
            "province-inspectorate",
            "https://inspect.example/hook",
            secret,
            topics=["alert.raise", "alert.confirm"],
            jurisdictions=["J1"],
        )
        create_subscription(session, "ministry", "https://ministry.example/hook", secret)
    with store.read() as session:
        subs = list_subscriptions(session)
        one = get_subscription(session, "province-inspectorate")
        logged = audit.entries(session)
        with pytest.raises(NotFoundError):
            get_subscription(session, "nobody")
    assert [s.name for s in subs] == ["ministry", "province-inspectorate"]
    assert one.wants("alert.raise", "J1") and not one.wants("alert.raise", "J2")
    assert not one.wants("alert.close", "J1") and subs[0].wants("alert.close", None)
    assert [e.action for e in logged] == ["webhook.create", "webhook.create"]
    assert secret not in str([e.details for e in logged])


@pytest.mark.parametrize(
    ("url", "secret", "says"),
    [("ftp://x", "0123456789abcdef", "http"), ("https://x", "short", "16+")],
)
def test_bad_subscriptions_are_refused(store: Store, url: str, secret: str, says: str) -> None:
    with pytest.raises(InvalidSubscriptionError, match=says), store.transaction() as session:
        create_subscription(session, "x", url, secret)


def test_the_outbox_holds_messages_until_dispatched(store: Store) -> None:
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), alert_row("D2", "J2")], now=T0)
        enqueue(session, "test.ping", {"n": 1}, jurisdiction="J9", now=T0)
    with pytest.raises(RuntimeError), store.transaction() as session:  # rolled back: no message
        enqueue(session, "test.lost", {"n": 2})
        raise RuntimeError("the change failed")
    with store.read() as session:
        pending = pending_messages(session)
    assert [(m.topic, m.jurisdiction) for m in pending] == [
        ("alert.raise", "J1"),
        ("alert.raise", "J2"),
        ("test.ping", "J9"),
    ]
    assert pending[0].payload["subject_id"] == "D1" and pending[0].created_at == T0
    with store.transaction() as session:
        assert mark_dispatched(session, [pending[0].id, pending[1].id]) == 2
        assert mark_dispatched(session, [pending[0].id]) == 0
    with store.read() as session:
        assert [m.topic for m in pending_messages(session)] == ["test.ping"]
