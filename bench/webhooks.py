"""Webhook dispatcher figures on SQLite and PostgreSQL (skipped with a message when none is
reachable), against a loopback receiver that verifies every signature
(``tests/serving/receiver.py``: a threaded ``http.server``):

- **throughput**: deliveries/s of a backlog (alerts raised at once, fanned out to several
  subscriptions) drained by one dispatcher;
- **latency** from an alert change's commit to its delivery, p50 and p99, with the
  dispatcher running as a worker (``run``) polling every ``--poll`` seconds.

    python -m bench.webhooks
    python -m bench.webhooks --alerts 2000 --subscriptions 3 --concurrency 16

:func:`measure_latency` takes any callable that raises one alert about a given dossier in
the store; today that is :func:`serving.workflow.upsert_alerts` (``raise_with_upsert``).
Once live re-scoring on ingestion raises the alerts (``serving/live.py``), pass a
callable that posts the events which make it raise one, for the ingestion-to-webhook
latency issue 8 asks for.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

from bench.features import load_note
from serving.db import Store
from serving.dispatcher import DeliveryPolicy, Dispatcher, start_in_thread
from serving.migrations import upgrade
from serving.webhooks import create_subscription
from serving.workflow import upsert_alerts
from tests.serving.receiver import Receiver

KEY = b"bench-webhook-key-0123456789"
SECRET = "bench-secret-0123456789abcdef"
#: raises one alert about dossier ``subject`` in ``store`` (committed when it returns).
RaiseAlert = Callable[[Store, str], None]


def _alert(subject: str, jurisdiction: str) -> dict[str, object]:
    return {
        "kind": "delay",
        "subject_type": "dossier",
        "subject_id": subject,
        "score": 0.9,
        "severity": "high",
        "jurisdiction": jurisdiction,
        "agency_id": "01.STP",
        "reasons": "late risk",
    }


def raise_with_upsert(store: Store, subject: str) -> None:
    """One alert raised the way the scorer writes alerts (``upsert_alerts``)."""
    with store.transaction() as session:
        upsert_alerts(session, [_alert(subject, "01001")])


def _subscribe(store: Store, receiver: Receiver, count: int) -> None:
    with store.transaction() as session:
        for i in range(count):
            receiver.secrets[f"/s{i}"] = SECRET
            create_subscription(session, f"bench-{i}", receiver.url(f"/s{i}"), SECRET, key=KEY)


def measure_throughput(
    store: Store, receiver: Receiver, policy: DeliveryPolicy, alerts: int, subscriptions: int
) -> tuple[int, float]:
    """Deliveries made and seconds taken to drain ``alerts`` alerts to every subscription."""
    with store.transaction() as session:
        upsert_alerts(session, [_alert(f"T{i}", f"01{i % 5:03d}") for i in range(alerts)])
    dispatcher = Dispatcher(store, policy, secret_key=KEY)
    started = time.perf_counter()
    try:
        done = dispatcher.drain(timeout=600)
    finally:
        dispatcher.close()
    elapsed = time.perf_counter() - started
    got = sum(len(receiver.unique(f"/s{i}")) for i in range(subscriptions))
    assert got == alerts * subscriptions == done.delivered, (got, done)
    return done.delivered, elapsed


def measure_latency(
    store: Store,
    receiver: Receiver,
    policy: DeliveryPolicy,
    raise_alert: RaiseAlert,
    count: int,
    *,
    path: str = "/s0",
    gap_seconds: float = 0.02,
) -> list[float]:
    """Milliseconds from calling ``raise_alert`` to the receiver's having the alert's
    delivery at ``path``, for ``count`` alerts one after another, with a dispatcher
    running in a thread."""
    dispatcher = Dispatcher(store, policy, secret_key=KEY)
    thread, stop = start_in_thread(dispatcher)
    latencies = []
    try:
        for i in range(count):
            subject = f"L{i}"
            seen = len(receiver.received)
            started = time.perf_counter()
            raise_alert(store, subject)
            deadline = started + 30
            while True:
                arrived = [
                    r.arrived
                    for r in receiver.received[seen:]
                    if r.path == path and r.body["data"].get("subject_id") == subject
                ]
                if arrived:
                    latencies.append((arrived[0] - started) * 1000)
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"alert {subject} not delivered within 30 s")
                time.sleep(0.0005)
            time.sleep(gap_seconds)
    finally:
        stop.set()
        thread.join()
        dispatcher.close()
    return latencies


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def run(url: str, args: argparse.Namespace) -> None:
    upgrade(url)
    store = Store.from_url(url)
    receiver = Receiver({})
    policy = DeliveryPolicy(
        batch=args.batch,
        concurrency=args.concurrency,
        poll_seconds=args.poll,
        timeout_seconds=5,
        lease_seconds=60,
    )
    try:
        _subscribe(store, receiver, args.subscriptions)
        made, seconds = measure_throughput(store, receiver, policy, args.alerts, args.subscriptions)
        print(
            f"{store.dialect:>10}: {made / seconds:8,.0f} deliveries/s ({made:,} deliveries: "
            f"{args.alerts:,} alerts x {args.subscriptions} subscriptions in {seconds:.2f} s; "
            f"batch {policy.batch}, {policy.concurrency} posts at once)",
            flush=True,
        )
        lat = measure_latency(
            store, receiver, replace(policy, batch=100), raise_with_upsert, args.latency_alerts
        )
        print(
            f"{store.dialect:>10}: alert committed -> webhook received: "
            f"p50 {statistics.median(lat):6.1f} ms, p99 {_percentile(lat, 99):6.1f} ms, "
            f"max {max(lat):6.1f} ms ({len(lat)} alerts via upsert_alerts, dispatcher "
            f"polling every {policy.poll_seconds} s when idle)",
            flush=True,
        )
        assert receiver.refused_signatures == 0
    finally:
        receiver.stop()
        store.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000, help="alerts in the backlog")
    parser.add_argument("--subscriptions", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200, help="deliveries claimed per round")
    parser.add_argument("--concurrency", type=int, default=8, help="posts at once")
    parser.add_argument("--poll", type=float, default=0.05, help="idle wait, seconds")
    parser.add_argument("--latency-alerts", type=int, default=200)
    args = parser.parse_args(argv)
    print(load_note())
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/bench.db", args)
    import pytest

    from tests.postgres import fresh_database

    try:
        with fresh_database("bench") as url:
            run(url, args)
    except pytest.skip.Exception as why:
        print(f"postgresql: skipped ({why})")


if __name__ == "__main__":
    main()
