"""Webhook subscriptions, the transactional outbox, and the delivery log.

A change that others must hear of (an alert raised, confirmed...) writes an outbox
message in the same transaction as the change itself, so a message exists exactly when
the change committed. The dispatcher (:mod:`serving.dispatcher`) fans each message out
to one delivery per matching subscription, posts them, and logs every attempt here.

**Who manages subscriptions.** Admins manage every subscription. Inspectors and
investigators manage their agency's subscriptions within their jurisdictions: a
subscription is theirs to see and change when it names jurisdictions and every one of
them is one of the user's (so an inspector can never subscribe to, or even see, what
another jurisdiction's inspectors receive); a subscription without jurisdictions
(receives everything) is admins' only.

**The signing secret** is shared with the receiver and the dispatcher needs it in clear
to sign, so it cannot be hashed like an API key. It is stored encrypted (Fernet: AES-128
in CBC mode with an HMAC-SHA256 tag) under a key derived from the setting
``GIAMSAT_WEBHOOK_SECRET_KEY``, which lives outside the database: a copy of the database
alone gives no secret. The API takes it write-only and never returns it; the audit log
records that it changed, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session

from giamsat.settings import PLACEHOLDER_SECRETS, InsecureSettingsError, Settings
from serving import audit
from serving.alerts import Action
from serving.errors import (
    InvalidSubscriptionError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from serving.tables import ID_LENGTH, outbox, webhook_attempts, webhook_deliveries
from serving.tables import webhook_subscriptions as subs
from serving.users import SCOPED_ROLES, Role, User, restrict

__all__ = [
    "ALERT_TOPICS",
    "alert_changes_after",
    "alert_changes_among",
    "existing_message_ids",
    "message_ids_after",
    "latest_message_id",
    "DELIVERY_STATUSES",
    "SEVERITIES",
    "Attempt",
    "Delivery",
    "OutboxMessage",
    "RedeliveryError",
    "SecretKeyError",
    "Subscription",
    "SubscriptionFieldError",
    "create_subscription",
    "delete_subscription",
    "enqueue",
    "enqueue_many",
    "get_delivery",
    "get_subscription",
    "idempotency_key",
    "list_deliveries",
    "list_subscriptions",
    "mark_dispatched",
    "may_manage",
    "message_of_row",
    "open_secret",
    "pending_messages",
    "redeliver",
    "seal_secret",
    "secret_key",
    "subscription_named",
    "update_subscription",
]

#: alert severities, lowest first (a subscription's ``min_severity`` takes this one and up).
SEVERITIES = ("low", "medium", "high")
#: the outbox topics of alert changes: ``alert.<action>`` for each workflow action.
ALERT_TOPICS = tuple(f"alert.{a.value}" for a in Action)
#: ``pending`` (waiting for its next attempt), ``delivered`` (a 2xx answer), ``dead``
#: (the last retry failed: only a manual redelivery sends it again).
DELIVERY_STATUSES = ("pending", "delivered", "dead")
SECRET_MIN, SECRET_MAX = 16, 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_SECRET = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_SEALED = "f1:"


class SecretKeyError(StoreError):
    """A stored webhook secret cannot be decrypted with ``GIAMSAT_WEBHOOK_SECRET_KEY``
    (the key changed since the secret was set: set the subscription's secret again)."""


# --- the signing secret, encrypted at rest ------------------------------------------------


def _fernet(key: bytes) -> Fernet:
    digest = hashlib.sha256(b"giamsat webhook secrets\x00" + key).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal_secret(secret: str, key: bytes) -> str:
    """``secret`` encrypted for storage under ``key`` (the setting's bytes)."""
    return _SEALED + _fernet(key).encrypt(secret.encode("ascii")).decode("ascii")


def open_secret(stored: str, key: bytes) -> str:
    """The secret :func:`seal_secret` stored; :class:`SecretKeyError` under another key."""
    if not stored.startswith(_SEALED):
        raise SecretKeyError("the stored webhook secret is not in a known format")
    try:
        return _fernet(key).decrypt(stored[len(_SEALED) :].encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretKeyError(
            "a webhook secret does not decrypt with GIAMSAT_WEBHOOK_SECRET_KEY (was the key "
            "changed? set the subscription's secret again)"
        ) from None


# --- subscriptions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A subscription as the API shows it (never its secret)."""

    id: int
    name: str
    url: str
    topics: list[str] | None
    jurisdictions: list[str] | None
    active: bool
    kinds: list[str] | None = None
    min_severity: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def wants(
        self,
        topic: str,
        jurisdiction: str | None,
        kind: str | None = None,
        severity: str | None = None,
    ) -> bool:
        """Whether a message of ``topic`` about ``jurisdiction`` (an alert of ``kind`` and
        ``severity``) goes to this subscriber. A filter the message says nothing about
        (no kind, no severity) does not match."""
        if not self.active or (self.topics is not None and topic not in self.topics):
            return False
        if self.jurisdictions is not None and jurisdiction not in self.jurisdictions:
            return False
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.min_severity is not None:
            if severity not in SEVERITIES:
                return False
            return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)
        return True

    def wants_message(self, message: OutboxMessage) -> bool:
        """:meth:`wants` for an outbox message (kind and severity read from its payload)."""
        kind, severity = message.payload.get("kind"), message.payload.get("severity")
        return self.wants(
            message.topic,
            message.jurisdiction,
            kind if isinstance(kind, str) else None,
            severity if isinstance(severity, str) else None,
        )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        name=row.name,
        url=row.url,
        topics=row.topics,
        jurisdictions=row.jurisdictions,
        active=bool(row.active),
        kinds=row.kinds,
        min_severity=row.min_severity,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SubscriptionFieldError(InvalidSubscriptionError):
    """A subscription field that cannot be stored; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _fail(field_name: str, message: str) -> SubscriptionFieldError:
    return SubscriptionFieldError(field_name, message)


def _check_url(url: str) -> str:
    if len(url) > 2000:
        raise _fail("url", "at most 2000 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("url", f"must be http(s)://host/..., got {url[:100]!r}")
    if any(c.isspace() for c in url) or "\x00" in url:
        raise _fail("url", "no spaces or control characters")
    return url


def _check_secret(secret: str) -> str:
    if not SECRET_MIN <= len(secret) <= SECRET_MAX or not _SECRET.match(secret):
        raise _fail(
            "secret",
            f"{SECRET_MIN}-{SECRET_MAX} printable ASCII characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    return secret


def _codes(values: Iterable[str] | None, field_name: str, most: int) -> list[str] | None:
    """A filter list: sorted, unique; None = everything; an empty list is refused."""
    if values is None:
        return None
    if isinstance(values, str):
        raise _fail(field_name, "give a list of values")
    found = sorted({str(v).strip() for v in values})
    if not found:
        raise _fail(field_name, "give at least one value, or null for all")
    for value in found:
        if not 0 < len(value) <= most or "\x00" in value:
            raise _fail(field_name, f"values are 1-{most} characters, got {value[:50]!r}")
    return found


def _topics(values: Iterable[str] | None) -> list[str] | None:
    found = _codes(values, "topics", 60)
    unknown = sorted(set(found or ()) - set(ALERT_TOPICS))
    if unknown:
        raise _fail("topics", f"unknown topic {unknown[0]!r} (topics: {', '.join(ALERT_TOPICS)})")
    return found


def _severity(value: str | None) -> str | None:
    if value is not None and value not in SEVERITIES:
        raise _fail("min_severity", f"{value!r} is not one of {', '.join(SEVERITIES)}")
    return value


def may_manage(user: User, jurisdictions: Iterable[str] | None) -> bool:
    """Whether ``user`` may see and change a subscription to ``jurisdictions``."""
    if user.role == Role.ADMIN:
        return True
    if user.role not in SCOPED_ROLES or jurisdictions is None:
        return False
    wanted = set(jurisdictions)
    return bool(wanted) and wanted <= user.jurisdictions


def _require_manager(user: User) -> None:
    if user.role != Role.ADMIN and user.role not in SCOPED_ROLES:
        raise PermissionDeniedError(f"role {user.role.value} may not manage webhook subscriptions")


def _check_scope(user: User, jurisdictions: list[str] | None) -> None:
    if may_manage(user, jurisdictions):
        return
    if jurisdictions is None:
        raise PermissionDeniedError(
            "only an admin may subscribe to every jurisdiction: give jurisdictions of yours"
        )
    outside = sorted(set(jurisdictions) - user.jurisdictions)
    raise PermissionDeniedError(f"jurisdiction {outside[0]!r} is not one of yours")


def _audit_details(values: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in values.items() if k != "secret"}
    if "secret" in values:
        shown["secret_changed"] = True
    return shown


def create_subscription(
    session: Session,
    name: str,
    url: str,
    secret: str,
    *,
    key: bytes,
    topics: Iterable[str] | None = None,
    jurisdictions: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    min_severity: str | None = None,
    active: bool = True,
    user: User | None = None,
    now: datetime | None = None,
) -> Subscription:
    """Store a subscription, its secret encrypted under ``key`` (audited without it).
    ``user`` (default: the system) must be allowed to manage it (see the module)."""
    from serving.users import SYSTEM

    who = user or SYSTEM
    _require_manager(who)
    if not _NAME.match(name):
        raise _fail("name", "1-100 letters, digits or . _ @ -, starting with a letter or digit")
    places = _codes(jurisdictions, "jurisdictions", ID_LENGTH)
    values: dict[str, Any] = {
        "url": _check_url(url),
        "topics": _topics(topics),
        "jurisdictions": places,
        "kinds": _codes(kinds, "kinds", 40),
        "min_severity": _severity(min_severity),
        "active": bool(active),
    }
    _check_scope(who, places)
    sealed = seal_secret(_check_secret(secret), key)
    if session.execute(sa.select(subs.c.id).where(subs.c.name == name)).first():
        raise _fail("name", f"a subscription named {name!r} exists already")
    stamp = now or datetime.now(UTC)
    new_id = session.execute(
        sa.insert(subs)
        .values(name=name, secret=sealed, created_at=stamp, updated_at=stamp, **values)
        .returning(subs.c.id)
    ).scalar_one()
    audit.append(
        session,
        who.name,
        "webhook.create",
        subject_type="webhook",
        subject_id=str(new_id),
        details={"name": name, **values},
        now=stamp,
    )
    return get_subscription(session, who, new_id)


#: the fields :func:`update_subscription` changes.
UPDATABLE = frozenset(
    {"url", "secret", "topics", "jurisdictions", "kinds", "min_severity", "active"}
)


def update_subscription(
    session: Session,
    user: User,
    subscription_id: int,
    changes: Mapping[str, Any],
    *,
    key: bytes,
    now: datetime | None = None,
) -> Subscription:
    """Change the given fields of a subscription (audited; a new secret is re-encrypted
    and recorded only as changed). The user must manage it before and after the change."""
    current = get_subscription(session, user, subscription_id)
    unknown = sorted(set(changes) - UPDATABLE)
    if unknown:
        raise _fail(unknown[0], "cannot be changed")
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "url":
            values[name] = _check_url(str(value))
        elif name == "secret":
            values[name] = seal_secret(_check_secret(str(value)), key)
        elif name == "topics":
            values[name] = _topics(value)
        elif name in ("jurisdictions", "kinds"):
            values[name] = _codes(value, name, ID_LENGTH if name == "jurisdictions" else 40)
        elif name == "min_severity":
            values[name] = _severity(value)
        else:
            values[name] = bool(value)
    if "jurisdictions" in values:
        _check_scope(user, values["jurisdictions"])
    if not values:
        return current
    stamp = now or datetime.now(UTC)
    session.execute(
        sa.update(subs).where(subs.c.id == subscription_id).values(updated_at=stamp, **values)
    )
    shown = {k: v for k, v in changes.items() if k in values}
    audit.append(
        session,
        user.name,
        "webhook.update",
        subject_type="webhook",
        subject_id=str(subscription_id),
        details={"name": current.name, **_audit_details(shown)},
        now=stamp,
    )
    return get_subscription(session, user, subscription_id)


def delete_subscription(
    session: Session, user: User, subscription_id: int, *, now: datetime | None = None
) -> Subscription:
    """Delete a subscription and its delivery log (audited); returns what was deleted."""
    current = get_subscription(session, user, subscription_id)
    session.execute(sa.delete(subs).where(subs.c.id == subscription_id))
    audit.append(
        session,
        user.name,
        "webhook.delete",
        subject_type="webhook",
        subject_id=str(subscription_id),
        details={"name": current.name, "url": current.url},
        now=now,
    )
    return current


def list_subscriptions(
    session: Session, user: User | None = None, *, active_only: bool = False
) -> list[Subscription]:
    """The subscriptions ``user`` manages (default: all), by name."""
    stmt = sa.select(subs).order_by(subs.c.name)
    if active_only:
        stmt = stmt.where(subs.c.active.is_(True))
    found = [_subscription(r) for r in session.execute(stmt)]
    if user is None:
        return found
    _require_manager(user)
    return [s for s in found if may_manage(user, s.jurisdictions)]


def get_subscription(session: Session, user: User, subscription_id: int) -> Subscription:
    """One subscription; :class:`NotFoundError` if absent or not the user's to manage."""
    _require_manager(user)
    row = session.execute(sa.select(subs).where(subs.c.id == subscription_id)).first()
    if row is None or not may_manage(user, row.jurisdictions):
        raise NotFoundError(f"no webhook subscription {subscription_id}")
    return _subscription(row)


def subscription_named(session: Session, name: str) -> Subscription:
    """One subscription by name (for the CLI and tests); :class:`NotFoundError` if absent."""
    row = session.execute(sa.select(subs).where(subs.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no webhook subscription {name!r}")
    return _subscription(row)


# --- the outbox ---------------------------------------------------------------------------


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


def message_of_row(row: Any) -> OutboxMessage:
    return OutboxMessage(row.id, row.topic, row.jurisdiction, row.payload, row.created_at)


def pending_messages(session: Session, *, limit: int = 100) -> list[OutboxMessage]:
    """Messages not yet dispatched, oldest first."""
    stmt = (
        sa.select(outbox).where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.id).limit(limit)
    )
    return [message_of_row(r) for r in session.execute(stmt)]


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


def alert_changes_after(
    session: Session, user: User, after_id: int, *, limit: int = 100
) -> list[OutboxMessage]:
    """The alert changes (``alert.*`` messages) after outbox id ``after_id`` that ``user``
    may see (by jurisdiction, as :func:`serving.users.restrict`), oldest first."""
    stmt = (
        sa.select(outbox)
        .where(outbox.c.id > after_id, outbox.c.topic.in_(ALERT_TOPICS))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return [message_of_row(r) for r in session.execute(restrict(stmt, user, outbox.c.jurisdiction))]


def message_ids_after(session: Session, after_id: int, *, limit: int = 100) -> list[int]:
    """Every outbox id after ``after_id`` (whatever its topic or jurisdiction), oldest
    first: what a reader needs to tell a gap (an id not committed yet) from a row it may
    not see."""
    stmt = sa.select(outbox.c.id).where(outbox.c.id > after_id).order_by(outbox.c.id)
    return list(session.execute(stmt.limit(limit)).scalars())


def existing_message_ids(session: Session, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are in the outbox (committed, as this session sees it)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    stmt = sa.select(outbox.c.id).where(outbox.c.id.in_(wanted))
    return set(session.execute(stmt).scalars())


def alert_changes_among(session: Session, user: User, ids: Iterable[int]) -> list[OutboxMessage]:
    """The alert changes with these outbox ids that ``user`` may see."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = sa.select(outbox).where(outbox.c.id.in_(wanted), outbox.c.topic.in_(ALERT_TOPICS))
    found = session.execute(restrict(stmt.order_by(outbox.c.id), user, outbox.c.jurisdiction))
    return [message_of_row(r) for r in found]


def latest_message_id(session: Session) -> int:
    """The newest outbox id (0 when empty): where a stream without a resume point starts."""
    newest = sa.select(sa.func.coalesce(sa.func.max(outbox.c.id), 0))
    return int(session.execute(newest).scalar_one())


# --- deliveries and their log -------------------------------------------------------------


def idempotency_key(outbox_id: int, subscription_id: int) -> str:
    """The key a receiver deduplicates by: one per message and subscription, the same on
    every retry and redelivery."""
    return f"gs-{outbox_id}-{subscription_id}"


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: int
    outbox_id: int
    topic: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    idempotency_key: str
    log: list[Attempt] = field(default_factory=list)


_DELIVERY = sa.select(webhook_deliveries, outbox.c.topic).join(
    outbox, outbox.c.id == webhook_deliveries.c.outbox_id
)


def _delivery(row: Any, log: list[Attempt] | None = None) -> Delivery:
    return Delivery(
        id=row.id,
        subscription_id=row.subscription_id,
        outbox_id=row.outbox_id,
        topic=row.topic,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        last_latency_ms=row.last_latency_ms,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        idempotency_key=idempotency_key(row.outbox_id, row.subscription_id),
        log=log or [],
    )


def list_deliveries(
    session: Session,
    user: User,
    subscription_id: int,
    *,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """A subscription's deliveries, newest first (``before_id``: the next page)."""
    get_subscription(session, user, subscription_id)
    if status is not None and status not in DELIVERY_STATUSES:
        raise _fail("status", f"{status!r} is not one of {', '.join(DELIVERY_STATUSES)}")
    stmt = _DELIVERY.where(webhook_deliveries.c.subscription_id == subscription_id)
    if status is not None:
        stmt = stmt.where(webhook_deliveries.c.status == status)
    if before_id is not None:
        stmt = stmt.where(webhook_deliveries.c.id < before_id)
    stmt = stmt.order_by(webhook_deliveries.c.id.desc()).limit(limit)
    return [_delivery(r) for r in session.execute(stmt)]


def get_delivery(session: Session, user: User, subscription_id: int, delivery_id: int) -> Delivery:
    """One delivery with its attempt log (oldest first); 404 if not the subscription's."""
    get_subscription(session, user, subscription_id)
    row = session.execute(
        _DELIVERY.where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.subscription_id == subscription_id,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no delivery {delivery_id} of webhook subscription {subscription_id}")
    log = [
        Attempt(a.at, a.status_code, a.error, a.latency_ms)
        for a in session.execute(
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == delivery_id)
            .order_by(webhook_attempts.c.id)
        )
    ]
    return _delivery(row, log)


class RedeliveryError(StoreError, ValueError):
    """A delivery that is still pending cannot be redelivered (it is queued already)."""


def redeliver(
    session: Session,
    user: User,
    subscription_id: int,
    delivery_id: int,
    *,
    now: datetime | None = None,
) -> Delivery:
    """Queue a dead (or delivered) delivery again, with a fresh round of retries and the
    same idempotency key (audited). :class:`RedeliveryError` for a pending one."""
    current = get_delivery(session, user, subscription_id, delivery_id)
    stamp = now or datetime.now(UTC)
    done = session.execute(
        sa.update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.status.in_(["dead", "delivered"]),
        )
        .values(status="pending", attempts=0, next_attempt_at=stamp, claim_token=None)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise RedeliveryError(f"delivery {delivery_id} is {current.status}: it is queued already")
    audit.append(
        session,
        user.name,
        "webhook.redeliver",
        subject_type="webhook",
        subject_id=str(subscription_id),
        details={"delivery_id": delivery_id, "outbox_id": current.outbox_id, "was": current.status},
        now=stamp,
    )
    return get_delivery(session, user, subscription_id, delivery_id)


def secret_key(settings: Settings) -> bytes:
    """The key webhook secrets are encrypted under; in production, a placeholder is
    refused (:class:`InsecureSettingsError`): webhooks need a real key, the rest of the
    service does not."""
    key = settings.webhook_secret_key.get_secret_value()
    if settings.environment == "production" and (
        key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16
    ):
        raise InsecureSettingsError(
            "GIAMSAT_WEBHOOK_SECRET_KEY must be set to a real secret (16+ characters) "
            "before webhooks are used outside development"
        )
    return key.encode()
