"""Webhook subscriptions and the transactional outbox.

A change that others must hear of (an alert raised, confirmed...) writes an outbox
message in the same transaction as the change itself, so a message exists exactly when
the change committed. The dispatcher (issue 8) reads pending messages, creates one
delivery per matching subscription, posts them and marks the message dispatched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving import audit
from serving.errors import InvalidSubscriptionError, NotFoundError
from serving.tables import outbox, webhook_subscriptions

__all__ = [
    "OutboxMessage",
    "Subscription",
    "create_subscription",
    "enqueue",
    "enqueue_many",
    "get_subscription",
    "list_subscriptions",
    "mark_dispatched",
    "pending_messages",
]


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    url: str
    topics: list[str] | None
    jurisdictions: list[str] | None
    active: bool

    def wants(self, topic: str, jurisdiction: str | None) -> bool:
        """Whether a message of ``topic`` about ``jurisdiction`` goes to this subscriber."""
        if not self.active or (self.topics is not None and topic not in self.topics):
            return False
        return self.jurisdictions is None or jurisdiction in self.jurisdictions


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    jurisdiction: str | None
    payload: dict[str, Any]
    created_at: datetime


def enqueue(
    session: Session,
    topic: str,
    payload: Mapping[str, Any],
    *,
    jurisdiction: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write an outbox message inside the caller's transaction."""
    enqueue_many(session, [(topic, payload, jurisdiction)], now=now)


def enqueue_many(
    session: Session,
    messages: Iterable[tuple[str, Mapping[str, Any], str | None]],
    *,
    now: datetime | None = None,
) -> None:
    """Write ``(topic, payload, jurisdiction)`` messages inside the caller's transaction."""
    stamp = now or datetime.now(UTC)
    rows = [
        {"topic": t, "payload": dict(p), "jurisdiction": j, "created_at": stamp}
        for t, p, j in messages
    ]
    if rows:
        session.execute(sa.insert(outbox), rows)


def pending_messages(session: Session, *, limit: int = 100) -> list[OutboxMessage]:
    """Messages not yet dispatched, oldest first."""
    stmt = (
        sa.select(outbox).where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.id).limit(limit)
    )
    return [
        OutboxMessage(r.id, r.topic, r.jurisdiction, r.payload, r.created_at)
        for r in session.execute(stmt)
    ]


def mark_dispatched(session: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Mark messages as handed to their deliveries; returns how many changed."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    result = session.execute(
        sa.update(outbox)
        .where(outbox.c.id.in_(wanted), outbox.c.dispatched_at.is_(None))
        .values(dispatched_at=now or datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def create_subscription(
    session: Session,
    name: str,
    url: str,
    secret: str,
    *,
    topics: Iterable[str] | None = None,
    jurisdictions: Iterable[str] | None = None,
    actor: str = "system",
) -> Subscription:
    """Store a subscription (audited, without its secret)."""
    if not url.startswith(("https://", "http://")):
        raise InvalidSubscriptionError(f"webhook url must be http(s)://..., got {url!r}")
    if len(secret) < 16:
        raise InvalidSubscriptionError("webhook secret must be 16+ characters")
    wanted_topics = sorted(set(topics)) if topics is not None else None
    wanted_places = sorted(set(jurisdictions)) if jurisdictions is not None else None
    new_id = session.execute(
        sa.insert(webhook_subscriptions)
        .values(
            name=name,
            url=url,
            secret=secret,
            topics=wanted_topics,
            jurisdictions=wanted_places,
            active=True,
            created_at=datetime.now(UTC),
        )
        .returning(webhook_subscriptions.c.id)
    ).scalar_one()
    audit.append(
        session,
        actor,
        "webhook.create",
        subject_type="webhook",
        subject_id=name,
        details={"url": url, "topics": wanted_topics, "jurisdictions": wanted_places},
    )
    return Subscription(new_id, name, url, wanted_topics, wanted_places, True)


def list_subscriptions(session: Session, *, active_only: bool = True) -> list[Subscription]:
    """Subscriptions by name."""
    stmt = sa.select(webhook_subscriptions).order_by(webhook_subscriptions.c.name)
    if active_only:
        stmt = stmt.where(webhook_subscriptions.c.active.is_(True))
    return [
        Subscription(r.id, r.name, r.url, r.topics, r.jurisdictions, bool(r.active))
        for r in session.execute(stmt)
    ]


def get_subscription(session: Session, name: str) -> Subscription:
    """One subscription by name; :class:`NotFoundError` if absent."""
    r = session.execute(
        sa.select(webhook_subscriptions).where(webhook_subscriptions.c.name == name)
    ).first()
    if r is None:
        raise NotFoundError(f"no webhook subscription {name!r}")
    return Subscription(r.id, r.name, r.url, r.topics, r.jurisdictions, bool(r.active))
