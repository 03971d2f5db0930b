"""The webhook dispatcher: outbox messages to signed HTTP deliveries, at least once.

Each round (:meth:`Dispatcher.run_once`):

1. **Fan-out**, in one transaction: the oldest undispatched outbox messages become one
   delivery per matching active subscription (topic, jurisdiction, alert kind, minimum
   severity) and are marked dispatched. On PostgreSQL the messages are locked ``FOR
   UPDATE SKIP LOCKED``, on SQLite the write transaction holds the database's write lock:
   either way a message is fanned out once however many dispatchers run, and a crash
   rolls the whole fan-out back.
2. **Claim**, in one statement: due pending deliveries get this round's claim token and
   a lease (``next_attempt_at`` moved to now + lease). Several dispatchers never claim the
   same delivery (``SKIP LOCKED`` on PostgreSQL; SQLite's single writer); one that dies
   after claiming leaves its deliveries to be claimed again when the lease runs out.
3. **Post**, outside any transaction: JSON bodies with ``Idempotency-Key`` (one per message
   and subscription: the same on every retry), ``X-GiamSat-Timestamp`` (Unix seconds) and
   ``X-GiamSat-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` under the
   subscription's secret.
4. **Record**, in one transaction: every attempt goes to the delivery log; a 2xx answer
   marks the delivery delivered; anything else (no answer, timeout, any other status)
   schedules a retry after an exponential backoff with jitter, or dead-letters it after the
   last attempt. A record only applies if the claim token still matches, so a dispatcher
   that outlived its lease cannot overwrite the newer claimant's result.

A crash between 3 and 4 means the receiver may get a delivery twice: receivers
deduplicate by ``Idempotency-Key`` (``docs/integrator.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from giamsat import __version__
from giamsat.settings import Settings
from serving.audit import canonical_json
from serving.db import Store
from serving.tables import outbox, webhook_attempts, webhook_deliveries, webhook_subscriptions
from serving.webhooks import (
    SecretKeyError,
    Subscription,
    idempotency_key,
    list_subscriptions,
    mark_dispatched,
    message_of_row,
    open_secret,
    secret_key,
)

__all__ = [
    "Claim",
    "DeliveryPolicy",
    "Dispatcher",
    "Outcome",
    "Round",
    "backoff_seconds",
    "sign",
]

log = logging.getLogger("giamsat.dispatcher")
TIMESTAMP_HEADER = "X-GiamSat-Timestamp"
SIGNATURE_HEADER = "X-GiamSat-Signature"
#: longest error text kept in the log (a receiver's whole HTML error page is not useful).
ERROR_CHARS = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the dispatcher tries (the ``GIAMSAT_DISPATCH_*`` settings)."""

    max_attempts: int = 12
    backoff_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0
    jitter: float = 0.5
    lease_seconds: float = 60.0
    timeout_seconds: float = 10.0
    batch: int = 100
    concurrency: int = 8
    poll_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("the lease must exceed the timeout")
        if self.max_attempts < 1 or self.batch < 1 or self.concurrency < 1:
            raise ValueError("max_attempts, batch and concurrency must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            max_attempts=settings.dispatch_max_attempts,
            backoff_seconds=settings.dispatch_backoff_seconds,
            backoff_max_seconds=settings.dispatch_backoff_max_seconds,
            jitter=settings.dispatch_jitter,
            lease_seconds=settings.dispatch_lease_seconds,
            timeout_seconds=settings.dispatch_timeout_seconds,
            batch=settings.dispatch_batch,
            concurrency=settings.dispatch_concurrency,
            poll_seconds=settings.dispatch_poll_seconds,
        )


def backoff_seconds(policy: DeliveryPolicy, attempt: int, rand: Callable[[], float]) -> float:
    """The wait after failed attempt ``attempt`` (1-based): ``backoff * 2^(attempt-1)``
    capped at the maximum, of which the share ``jitter`` is drawn at random."""
    delay = min(policy.backoff_max_seconds, policy.backoff_seconds * 2 ** (attempt - 1))
    return delay * (1 - policy.jitter) + delay * policy.jitter * rand()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256, under
    ``secret``, of ``"<timestamp>."`` followed by the body's bytes."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class Claim:
    """A delivery this dispatcher holds until its lease ends: what to post, and where."""

    delivery_id: int
    subscription_id: int
    outbox_id: int
    token: str
    attempts: int
    url: str
    secret: str | None
    body: bytes
    key: str
    topic: str
    #: why it cannot be sent (a secret that does not decrypt), if it cannot.
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One attempt: the receiver's status (None: no answer), the error, the latency."""

    status_code: int | None
    error: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Round:
    """What one round did (and, summed, what a run did)."""

    fanned_out: int = 0
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    stale: int = 0

    def add(self, other: Round) -> None:
        for name in ("fanned_out", "claimed", "delivered", "retried", "dead", "stale"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def busy(self) -> bool:
        return bool(self.fanned_out or self.claimed)


Sender = Callable[[Claim, int], Outcome]


class Dispatcher:
    """Delivers the outbox to webhook subscribers. Thread-safe to stop; run one per
    thread or process (several share the work safely).

    ``send`` (default: an HTTP POST with :mod:`requests`) and ``clock`` / ``rand`` are
    for tests; ``worker`` names this dispatcher in logs.
    """

    def __init__(
        self,
        store: Store,
        policy: DeliveryPolicy,
        *,
        secret_key: bytes,
        send: Sender | None = None,
        clock: Callable[[], datetime] | None = None,
        rand: Callable[[], float] = random.random,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.secret_key = secret_key
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rand = rand
        self.worker = worker or f"dispatcher-{secrets.token_hex(4)}"
        self._send = send or self._post
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, **kwargs: Any) -> Dispatcher:
        return cls(
            store,
            DeliveryPolicy.from_settings(settings),
            secret_key=secret_key(settings),
            **kwargs,
        )

    # -- 1. fan-out ------------------------------------------------------------------------

    def fan_out(self, limit: int | None = None) -> int:
        """Turn up to ``limit`` undispatched messages into deliveries; returns how many
        deliveries were created."""
        with self.store.transaction() as session:
            stmt = (
                sa.select(outbox)
                .where(outbox.c.dispatched_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit or self.policy.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            messages = [message_of_row(r) for r in session.execute(stmt)]
            if not messages:
                return 0
            wanted = list_subscriptions(session, active_only=True)
            now = self.clock()
            rows = [
                {
                    "subscription_id": sub.id,
                    "outbox_id": m.id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for m in messages
                for sub in _matching(wanted, m)
            ]
            if rows:
                session.execute(sa.insert(webhook_deliveries), rows)
            mark_dispatched(session, [m.id for m in messages], now=now)
            return len(rows)

    # -- 2. claim --------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[Claim]:
        """Claim up to ``limit`` due deliveries of active subscriptions for one lease."""
        d = webhook_deliveries
        token = secrets.token_hex(16)
        with self.store.transaction() as session:
            now = self.clock()
            active = sa.select(webhook_subscriptions.c.id).where(
                webhook_subscriptions.c.active.is_(True)
            )
            due = (
                sa.select(d.c.id)
                .where(
                    d.c.status == "pending",
                    d.c.next_attempt_at <= now,
                    d.c.subscription_id.in_(active),
                )
                .order_by(d.c.next_attempt_at, d.c.id)
                .limit(limit or self.policy.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(of=d, skip_locked=True)
            lease_end = now + timedelta(seconds=self.policy.lease_seconds)
            claimed = session.execute(
                sa.update(d)
                .where(d.c.id.in_(due.scalar_subquery()))
                .values(claim_token=token, next_attempt_at=lease_end)
                .returning(d.c.id)
            ).scalars()
            ids = sorted(claimed)
            if not ids:
                return []
            return self._claims(session, ids, token)

    def _claims(self, session: Session, ids: list[int], token: str) -> list[Claim]:
        d, s = webhook_deliveries, webhook_subscriptions
        stmt = (
            sa.select(
                d.c.id,
                d.c.subscription_id,
                d.c.outbox_id,
                d.c.attempts,
                s.c.url,
                s.c.secret,
                outbox,
            )
            .join(s, s.c.id == d.c.subscription_id)
            .join(outbox, outbox.c.id == d.c.outbox_id)
            .where(d.c.id.in_(ids))
            .order_by(d.c.id)
        )
        out = []
        for row in session.execute(stmt):
            key = idempotency_key(row.outbox_id, row.subscription_id)
            body = canonical_json(
                {
                    "id": key,
                    "topic": row.topic,
                    "message_id": row.outbox_id,
                    "jurisdiction": row.jurisdiction,
                    "created_at": row.created_at,
                    "data": row.payload,
                }
            ).encode("utf-8")
            secret, problem = None, None
            try:
                secret = open_secret(row.secret, self.secret_key)
            except SecretKeyError as exc:
                problem = str(exc)
            out.append(
                Claim(
                    delivery_id=row.id,
                    subscription_id=row.subscription_id,
                    outbox_id=row.outbox_id,
                    token=token,
                    attempts=row.attempts,
                    url=row.url,
                    secret=secret,
                    body=body,
                    key=key,
                    topic=row.topic,
                    problem=problem,
                )
            )
        return out

    # -- 3. post ---------------------------------------------------------------------------

    def headers(self, claim: Claim, timestamp: int) -> dict[str, str]:
        """The headers of one attempt (signed at ``timestamp``)."""
        assert claim.secret is not None
        return {
            "Content-Type": "application/json",
            "User-Agent": f"GiamSat-Webhooks/{__version__}",
            "Idempotency-Key": claim.key,
            "X-GiamSat-Topic": claim.topic,
            "X-GiamSat-Delivery": str(claim.delivery_id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(claim.secret, timestamp, claim.body),
        }

    def _http(self) -> requests.Session:
        http: requests.Session | None = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = requests.Session()
        return http

    def _post(self, claim: Claim, timestamp: int) -> Outcome:
        started = time.perf_counter()
        try:
            answer = self._http().post(
                claim.url,
                data=claim.body,
                headers=self.headers(claim, timestamp),
                timeout=self.policy.timeout_seconds,
                allow_redirects=False,
            )
            answer.close()
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
            return Outcome(None, error, (time.perf_counter() - started) * 1000)
        latency = (time.perf_counter() - started) * 1000
        if 200 <= answer.status_code < 300:
            return Outcome(answer.status_code, None, latency)
        reason = answer.reason or "not a 2xx answer"
        return Outcome(answer.status_code, f"HTTP {answer.status_code} {reason}", latency)

    def send(self, claim: Claim) -> Outcome:
        """One attempt at ``claim`` (an error outcome if it cannot be signed)."""
        if claim.problem is not None or claim.secret is None:
            return Outcome(None, claim.problem or "no secret", 0.0)
        return self._send(claim, int(self.clock().timestamp()))

    def send_all(self, claims: list[Claim]) -> list[Outcome]:
        """Post ``claims`` (at most ``concurrency`` at once)."""
        if len(claims) <= 1 or self.policy.concurrency == 1:
            return [self.send(c) for c in claims]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="webhook")
        return list(self._pool.map(self.send, claims))

    # -- 4. record -------------------------------------------------------------------------

    def record(self, results: Iterable[tuple[Claim, Outcome]]) -> Round:
        """Log the attempts and move each delivery on (delivered, retry later, dead)."""
        done = Round()
        d = webhook_deliveries
        pairs = list(results)
        if not pairs:
            return done
        with self.store.transaction() as session:
            now = self.clock()
            session.execute(
                sa.insert(webhook_attempts),
                [
                    {
                        "delivery_id": c.delivery_id,
                        "at": now,
                        "status_code": o.status_code,
                        "error": o.error,
                        "latency_ms": o.latency_ms,
                    }
                    for c, o in pairs
                ],
            )
            for claim, outcome in pairs:
                attempts = claim.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_status_code": outcome.status_code,
                    "last_error": outcome.error,
                    "last_latency_ms": outcome.latency_ms,
                    "claim_token": None,
                }
                if outcome.ok:
                    values.update(status="delivered", delivered_at=now, next_attempt_at=None)
                elif attempts >= self.policy.max_attempts:
                    values.update(status="dead", next_attempt_at=None)
                else:
                    wait = backoff_seconds(self.policy, attempts, self.rand)
                    values["next_attempt_at"] = now + timedelta(seconds=wait)
                changed = session.execute(
                    sa.update(d)
                    .where(d.c.id == claim.delivery_id, d.c.claim_token == claim.token)
                    .values(**values)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    done.stale += 1  # the lease ran out and someone else has it now
                    continue
                if outcome.ok:
                    done.delivered += 1
                elif values.get("status") == "dead":
                    done.dead += 1
                    log.warning(
                        "webhook delivery dead-lettered",
                        extra=_log_extra(claim, outcome, attempts),
                    )
                else:
                    done.retried += 1
                    log.info("webhook delivery failed", extra=_log_extra(claim, outcome, attempts))
        return done

    # -- running ---------------------------------------------------------------------------

    def run_once(self) -> Round:
        """One round: fan out, claim, post, record."""
        done = Round(fanned_out=self.fan_out())
        claims = self.claim()
        done.claimed = len(claims)
        if claims:
            done.add(self.record(zip(claims, self.send_all(claims), strict=True)))
        return done

    def run(self, stop: threading.Event, *, on_error_wait: float = 5.0) -> Round:
        """Rounds until ``stop`` is set; idle rounds wait ``poll_seconds``. A database
        error is logged and retried after ``on_error_wait`` (the worker outlives an
        outage of the store)."""
        total = Round()
        log.info("dispatcher started", extra={"worker": self.worker})
        while not stop.is_set():
            try:
                done = self.run_once()
            except sa.exc.SQLAlchemyError:
                log.exception("dispatcher round failed", extra={"worker": self.worker})
                stop.wait(on_error_wait)
                continue
            total.add(done)
            if not done.busy:
                stop.wait(self.policy.poll_seconds)
        log.info("dispatcher stopped", extra={"worker": self.worker})
        return total

    def drain(self, timeout: float = 30.0) -> Round:
        """Rounds until nothing is pending (every delivery delivered or dead, no message
        undispatched), waiting for retries as they fall due; for tests and benchmarks.
        :class:`TimeoutError` after ``timeout`` seconds."""
        total = Round()
        deadline = time.monotonic() + timeout
        while True:
            total.add(self.run_once())
            wait = self.next_due_in()
            if wait is None:
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still pending after {timeout} s")
            if wait > 0:
                time.sleep(min(wait, self.policy.poll_seconds))

    def next_due_in(self) -> float | None:
        """Seconds until the next pending delivery falls due (0: now); None when nothing
        is pending or undispatched."""
        d = webhook_deliveries
        with self.store.read() as session:
            waiting = session.execute(
                sa.select(sa.func.count()).where(outbox.c.dispatched_at.is_(None))
            ).scalar_one()
            if waiting:
                return 0.0
            due = session.execute(
                sa.select(sa.func.min(d.c.next_attempt_at)).where(d.c.status == "pending")
            ).scalar_one()
        if due is None:
            return None
        if due.tzinfo is None:  # SQLite's aggregate bypasses the column type
            due = datetime.fromisoformat(str(due)).replace(tzinfo=UTC)
        return max(0.0, (due - self.clock()).total_seconds())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _matching(subscriptions: list[Subscription], message: Any) -> list[Subscription]:
    return [s for s in subscriptions if s.wants_message(message)]


def _log_extra(claim: Claim, outcome: Outcome, attempts: int) -> Mapping[str, Any]:
    return {
        "delivery_id": claim.delivery_id,
        "subscription_id": claim.subscription_id,
        "outbox_id": claim.outbox_id,
        "attempts": attempts,
        "status_code": outcome.status_code,
        "error": outcome.error,
    }


def start_in_thread(dispatcher: Dispatcher) -> tuple[threading.Thread, threading.Event]:
    """Run ``dispatcher`` in a daemon thread (``giamsat serve`` with
    ``GIAMSAT_DISPATCHER_IN_SERVE``); set the event and join the thread to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=dispatcher.run, args=(stop,), name="webhook-dispatcher", daemon=True
    )
    thread.start()
    return thread, stop
