"""The webhook dispatcher against a real HTTP receiver on loopback (tests/serving/receiver.py),
on SQLite and PostgreSQL: every alert change reaches each matching subscription exactly
once after deduplication by key, across a dispatcher that dies between claiming and
recording, a receiver that is down for a while, dead-lettering and manual redelivery;
several dispatchers at once never send a delivery twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from models.scoring import alert_id
from serving import audit
from serving.alerts import Action
from serving.db import Store
from serving.dispatcher import Claim, DeliveryPolicy, Dispatcher, Outcome, backoff_seconds, sign
from serving.tables import outbox, webhook_attempts, webhook_deliveries
from serving.users import SYSTEM, User
from serving.webhooks import (
    SEVERITIES,
    OutboxMessage,
    Subscription,
    create_subscription,
    get_delivery,
    message_of_row,
    redeliver,
)
from serving.workflow import transition, upsert_alerts
from tests.serving.conftest import T0, alert_row
from tests.serving.receiver import Receiver

KEY = b"test-webhook-key-0123456789"
#: short waits, so a test's retries take milliseconds.
FAST = DeliveryPolicy(
    max_attempts=30,
    backoff_seconds=0.01,
    backoff_max_seconds=0.1,
    jitter=0.5,
    lease_seconds=1.0,
    timeout_seconds=0.5,
    batch=50,
    concurrency=4,
    poll_seconds=0.02,
)
SECRETS = {f"/{name}": f"secret-of-{name}-0123456789" for name in "abcdef"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRETS)
    yield r
    r.stop()


def subscribe(store: Store, receiver: Receiver, path: str, **filters: Any) -> Subscription:
    with store.transaction() as session:
        return create_subscription(
            session, path.strip("/"), receiver.url(path), SECRETS[path], key=KEY, **filters
        )


def dispatcher(store: Store, policy: DeliveryPolicy = FAST, **kwargs: Any) -> Dispatcher:
    return Dispatcher(store, policy, secret_key=KEY, rand=random.Random(7).random, **kwargs)


def alert_changes(store: Store) -> None:
    """Alerts of both jurisdictions, kinds and severities, then workflow changes."""
    rows = [
        alert_row("D1"),  # delay, high, J1
        alert_row("D2", "J2"),  # delay, high, J2
        alert_row("D3", score=0.6),  # delay, medium, J1
        alert_row("D4", score=0.3, kind="waste"),  # waste, "medium" (alert_row), J1
        {**alert_row("D5", score=0.2), "severity": "low"},
        alert_row("D6", "J2", score=0.55, kind="integrity"),
    ]
    with store.transaction() as session:
        upsert_alerts(session, rows, now=T0)
    with store.transaction() as session:
        transition(session, alert_id("delay", "dossier", "D1"), Action.ACKNOWLEDGE, SYSTEM)
        transition(session, alert_id("delay", "dossier", "D1"), Action.CONFIRM, SYSTEM)
        transition(session, alert_id("delay", "dossier", "D2"), Action.ESCALATE, SYSTEM)
        transition(session, alert_id("delay", "dossier", "D3"), Action.CLOSE, SYSTEM)


def messages(store: Store) -> list[OutboxMessage]:
    with store.read() as session:
        return [message_of_row(r) for r in session.execute(sa.select(outbox).order_by(outbox.c.id))]


def expected_keys(store: Store, sub: Subscription, pred: Any) -> set[str]:
    """The keys ``sub`` must receive: every message ``pred`` accepts (written out in each
    test, not computed by the code under test)."""
    return {f"gs-{m.id}-{sub.id}" for m in messages(store) if pred(m)}


def statuses(store: Store) -> dict[str, int]:
    with store.read() as session:
        rows = session.execute(
            sa.select(webhook_deliveries.c.status, sa.func.count()).group_by(
                webhook_deliveries.c.status
            )
        )
        return {status: n for status, n in rows}


def test_every_alert_change_reaches_each_matching_subscription_exactly_once(
    store: Store, receiver: Receiver
) -> None:
    everything = subscribe(store, receiver, "/a")
    j1 = subscribe(store, receiver, "/b", jurisdictions=["J1"])
    high_delay = subscribe(store, receiver, "/c", kinds=["delay"], min_severity="high")
    raises_j2 = subscribe(store, receiver, "/d", jurisdictions=["J2"], topics=["alert.raise"])
    subscribe(store, receiver, "/e", jurisdictions=["J9"])  # matches nothing
    subscribe(store, receiver, "/f", active=False)  # paused: gets nothing
    alert_changes(store)
    worker = dispatcher(store)
    try:
        done = worker.drain(timeout=20)
    finally:
        worker.close()

    def payload(m: OutboxMessage, field: str) -> Any:
        return m.payload.get(field)

    want = {
        "/a": expected_keys(store, everything, lambda m: True),
        "/b": expected_keys(store, j1, lambda m: m.jurisdiction == "J1"),
        "/c": expected_keys(
            store,
            high_delay,
            lambda m: payload(m, "kind") == "delay" and payload(m, "severity") == "high",
        ),
        "/d": expected_keys(
            store, raises_j2, lambda m: m.jurisdiction == "J2" and m.topic == "alert.raise"
        ),
    }
    assert len(messages(store)) == 10  # 6 raised, acknowledge, confirm, escalate, close
    assert len(want["/a"]) == 10 and len(want["/b"]) == 7
    assert len(want["/c"]) == 5 and len(want["/d"]) == 2
    for path, keys in want.items():
        got = receiver.keys(path)
        assert sorted(got) == sorted(keys), path  # each once: no repeat without a crash
    assert receiver.keys("/e") == [] and receiver.keys("/f") == []
    assert receiver.refused_signatures == 0
    assert done.delivered == sum(len(k) for k in want.values()) == statuses(store)["delivered"]
    body = receiver.unique("/c")[f"gs-{messages(store)[0].id}-{high_delay.id}"].body
    assert body["topic"] == "alert.raise" and body["jurisdiction"] == "J1"
    assert body["data"]["subject_id"] == "D1" and body["data"]["severity"] == "high"
    assert body["id"] == f"gs-{messages(store)[0].id}-{high_delay.id}"
    # a new change after the run goes out on the next round, to the subscriptions it matches
    with store.transaction() as session:
        transition(session, alert_id("waste", "dossier", "D4"), Action.ESCALATE, SYSTEM)
    worker = dispatcher(store)
    try:
        worker.drain(timeout=10)
    finally:
        worker.close()
    assert len(receiver.keys("/a")) == 11 and len(receiver.keys("/b")) == 8
    assert len(receiver.keys("/c")) == 5


class Died(RuntimeError):
    """The dispatcher process 'dies' (an injected crash)."""


def test_a_dispatcher_dying_between_claim_and_record_loses_nothing(
    store: Store, receiver: Receiver
) -> None:
    sub = subscribe(store, receiver, "/a")
    alert_changes(store)
    sent = 0

    def post_then_die(claim: Claim, timestamp: int) -> Outcome:
        nonlocal sent
        outcome = first._post(claim, timestamp)  # the receiver gets it...
        sent += 1
        if sent == 3:
            raise Died("killed before recording")  # ...and the record never happens
        return outcome

    first = dispatcher(store, replace(FAST, concurrency=1), send=post_then_die)
    with pytest.raises(Died):
        first.run_once()
    first.close()
    assert len(receiver.keys("/a")) == 3
    assert statuses(store) == {"pending": 10}  # claimed (leased), nothing recorded
    # a second dispatcher leaves the leased deliveries alone until the lease runs out...
    second = dispatcher(store)
    try:
        assert second.run_once().claimed == 0
        time.sleep(FAST.lease_seconds + 0.1)
        second.drain(timeout=20)
    finally:
        second.close()
    got = receiver.keys("/a")
    assert len(got) > len(set(got))  # the three sent before the crash came twice...
    assert set(got) == expected_keys(store, sub, lambda m: True)  # ...and nothing is lost
    assert statuses(store) == {"delivered": 10}


def test_a_receiver_down_for_a_while_gets_everything_when_it_comes_back(
    store: Store, receiver: Receiver
) -> None:
    sub = subscribe(store, receiver, "/a", jurisdictions=["J1", "J2"])
    alert_changes(store)
    worker = dispatcher(store)
    try:
        receiver.stop()  # refusing connections
        for _ in range(3):
            worker.run_once()
            time.sleep(0.03)
        receiver.start()
        receiver.status = 500  # up, but failing
        for _ in range(3):
            worker.run_once()
            time.sleep(0.03)
        assert receiver.keys("/a") == []
        with store.read() as session:
            errors = list(session.execute(sa.select(webhook_attempts.c.status_code)).scalars())
        assert None in errors and 500 in errors  # refused (no answer), then 500s, logged
        receiver.status = 200
        worker.drain(timeout=20)
    finally:
        worker.close()
    assert sorted(receiver.keys("/a")) == sorted(expected_keys(store, sub, lambda m: True))
    assert statuses(store) == {"delivered": 10}
    with store.read() as session:
        one = get_delivery(session, SYSTEM, sub.id, 1)
    assert one.status == "delivered" and one.attempts >= 3 and one.last_status_code == 200
    assert [a.status_code for a in one.log][-1] == 200 and len(one.log) == one.attempts
    assert one.log[0].status_code is None and "Connection" in (one.log[0].error or "")


def test_dead_letter_after_the_last_retry_then_manual_redelivery(
    store: Store, receiver: Receiver
) -> None:
    sub = subscribe(store, receiver, "/a")
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1")], now=T0)
    receiver.status = 503
    worker = dispatcher(store, replace(FAST, max_attempts=3))
    try:
        done = worker.drain(timeout=10)
        assert done.dead == 1 and statuses(store) == {"dead": 1}
        with store.read() as session:
            dead = get_delivery(session, SYSTEM, sub.id, 1)
        assert dead.attempts == 3 and [a.status_code for a in dead.log] == [503] * 3
        assert dead.next_attempt_at is None and dead.last_error == "HTTP 503 Service Unavailable"
        assert worker.run_once().claimed == 0  # dead stays dead
        receiver.status = 200
        with store.transaction() as session:
            again = redeliver(session, SYSTEM, sub.id, 1)
        assert again.status == "pending" and again.attempts == 0 and len(again.log) == 3
        worker.drain(timeout=10)
    finally:
        worker.close()
    assert receiver.keys("/a") == [dead.idempotency_key]  # same key as the dead attempts
    with store.read() as session:
        assert get_delivery(session, SYSTEM, sub.id, 1).status == "delivered"
        logged = [e.action for e in audit.entries(session)]
        assert audit.verify(session).ok
    assert logged[-1] == "webhook.redeliver"


def test_several_dispatchers_at_once_never_send_a_delivery_twice(
    store: Store, receiver: Receiver
) -> None:
    sub = subscribe(store, receiver, "/a")
    with store.transaction() as session:
        upsert_alerts(session, [alert_row(f"D{i}", f"J{i % 3}") for i in range(120)], now=T0)
    workers = [dispatcher(store, replace(FAST, batch=10, concurrency=2)) for _ in range(3)]
    failures: list[BaseException] = []

    def work(d: Dispatcher) -> None:
        try:
            d.drain(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.close()
    assert failures == []
    got = receiver.keys("/a")
    assert len(got) == len(set(got)) == 120  # no crash, so not even a repeat
    assert set(got) == expected_keys(store, sub, lambda m: True)
    with store.read() as session:
        attempts = session.execute(sa.select(sa.func.count()).select_from(webhook_attempts))
        assert attempts.scalar_one() == 120


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = DeliveryPolicy(backoff_seconds=10, backoff_max_seconds=100, jitter=0.5)
    assert [backoff_seconds(policy, n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [
        10,
        20,
        40,
        80,
        100,
        100,
    ]
    assert backoff_seconds(policy, 3, lambda: 0.0) == 20  # half of 40 is fixed
    draws = {backoff_seconds(policy, 2, random.Random(s).random) for s in range(20)}
    assert len(draws) > 10 and all(10 <= d <= 20 for d in draws)
    with pytest.raises(ValueError, match="lease"):
        DeliveryPolicy(lease_seconds=5, timeout_seconds=10)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # known answer: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'a-secret-of-16-chars'
    known = "966dfd9e7287134bae9078b9ca8cad81556798be645cd07bef60884b917d8d01"
    assert sign("a-secret-of-16-chars", 1700000000, b'{"a":1}') == f"sha256={known}"
    assert sign("a-secret-of-16-chars", 1700000001, b'{"a":1}') != f"sha256={known}"


def test_severity_order_and_matching_of_messages_without_kind() -> None:
    sub = Subscription(1, "s", "http://x", None, None, True, kinds=None, min_severity="medium")
    assert [sub.wants("alert.raise", "J1", "delay", s) for s in SEVERITIES] == [False, True, True]
    assert not sub.wants("alert.raise", "J1", "delay", None)  # says nothing: not sent
    assert Subscription(2, "t", "http://x", None, None, True).wants("test.ping", None)


def test_a_secret_that_does_not_decrypt_fails_the_attempts_without_sending(
    store: Store, receiver: Receiver
) -> None:
    subscribe(store, receiver, "/a")
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1")], now=T0)
    worker = Dispatcher(store, replace(FAST, max_attempts=2), secret_key=b"another-key-0123456789")
    try:
        worker.drain(timeout=10)
    finally:
        worker.close()
    assert receiver.received == [] and statuses(store) == {"dead": 1}
    with store.read() as session:
        dead = get_delivery(session, SYSTEM, 1, 1)
    assert "GIAMSAT_WEBHOOK_SECRET_KEY" in (dead.last_error or "")


def _dispatch_process(store: Store, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """``giamsat dispatch`` in a process of its own, over ``store``."""
    env = {
        **os.environ,
        "GIAMSAT_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
        "GIAMSAT_WEBHOOK_SECRET_KEY": KEY.decode(),
        "GIAMSAT_DISPATCH_CONCURRENCY": "1",
        "GIAMSAT_DISPATCH_LEASE_SECONDS": str(FAST.lease_seconds),
        "GIAMSAT_DISPATCH_TIMEOUT_SECONDS": str(FAST.timeout_seconds),
        "GIAMSAT_DISPATCH_BACKOFF_SECONDS": "0.01",
        "GIAMSAT_DISPATCH_POLL_SECONDS": "0.05",
    }
    # the command alone (``giamsat dispatch`` without the rest of the CLI's imports)
    run = "import typer; from giamsat.commands.service import dispatch; typer.run(dispatch)"
    command = [sys.executable, "-c", run, *args]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.slow  # a process of its own costs its imports (6-8 s a backend here)
def test_a_sigkilled_dispatch_process_loses_nothing(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    sub = subscribe(store, receiver, "/a")
    alert_changes(store)
    receiver.delay = 0.15  # a slow receiver, so the kill lands mid-batch
    worker = _dispatch_process(store, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while len(receiver.keys("/a")) < 2:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the dispatcher sent nothing"
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    assert 2 <= len(receiver.keys("/a")) < 10
    assert statuses(store).get("pending", 0) > 0  # claimed by the dead process
    receiver.delay = 0.0
    time.sleep(FAST.lease_seconds)
    restarted = dispatcher(store)
    try:
        restarted.drain(timeout=20)
    finally:
        restarted.close()
    assert set(receiver.keys("/a")) == expected_keys(store, sub, lambda m: True)
    assert statuses(store) == {"delivered": 10}


def test_giamsat_dispatch_once_delivers_and_says_what_it_did(
    store: Store, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from giamsat.cli import app
    from giamsat.settings import get_settings

    subscribe(store, receiver, "/a", jurisdictions=["J1"])
    alert_changes(store)
    monkeypatch.setenv("GIAMSAT_DATABASE_URL", store.engine.url.render_as_string(False))
    monkeypatch.setenv("GIAMSAT_WEBHOOK_SECRET_KEY", KEY.decode())
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["dispatch", "--once"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "7 deliveries created, 7 delivered, 0 to retry" in done.output
    assert len(receiver.keys("/a")) == 7


def test_giamsat_serve_runs_a_dispatcher_when_the_setting_says_so(
    store: Store, receiver: Receiver, people: dict[str, User]
) -> None:
    from tests.serving.api_helpers import api_over

    subscribe(store, receiver, "/a")
    fast = {
        "webhook_secret_key": KEY.decode(),
        "dispatcher_in_serve": True,
        "dispatch_poll_seconds": 0.02,
    }
    with api_over(store, people, **fast) as api:
        with store.transaction() as session:
            upsert_alerts(session, [alert_row("D1")], now=T0)
        deadline = time.monotonic() + 10
        while not receiver.keys("/a"):
            assert time.monotonic() < deadline, "nothing delivered from inside the service"
            time.sleep(0.02)
        threads = [t.name for t in threading.enumerate()]
        assert "webhook-dispatcher" in threads
        assert api.get("admin", "/healthz").status_code == 200
    assert "webhook-dispatcher" not in [t.name for t in threading.enumerate()]  # stopped
    assert len(receiver.keys("/a")) == 1
