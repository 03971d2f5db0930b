"""Users, roles, jurisdictions and API keys; and the helper that restricts any query to
what a user may see.

An API key reads ``gs_<key_id>_<secret>``: the key id finds the row, the secret is
checked against ``HMAC-SHA256(pepper, key_id:secret)``. Only that hash is stored, so a
copy of the database gives no working key, and without the pepper (a setting, not in the
database) not even a way to test guesses offline. The key is shown once, at creation.

The service keeps the keys it verified in the last :data:`KEY_CACHE_SECONDS` seconds in
a :class:`KeyCache` (two queries a request were most of what a cheap route costs). A
revocation or deactivation in this process drops the entries at once; one made by
another process (``giamsat users revoke-key`` against the same database, another
replica) takes effect here within :data:`KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving import audit
from serving.db import Store
from serving.errors import InvalidKeyError, InvalidUserError, NotFoundError
from serving.tables import ID_LENGTH, api_keys, user_jurisdictions, users

__all__ = [
    "KEY_CACHE_SECONDS",
    "KeyCache",
    "Role",
    "User",
    "can_see",
    "create_api_key",
    "create_user",
    "deactivate_user",
    "get_user",
    "list_users",
    "restrict",
    "revoke_api_key",
    "verify_api_key",
]

KEY_PREFIX = "gs"
_KEY = re.compile(r"^gs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class Role(StrEnum):
    """What a user does: ``ingest`` sends events; ``inspector`` (and, later,
    ``investigator``) works alerts of their jurisdictions; ``analyst`` and ``dashboard``
    read scores and alerts; ``admin`` does everything, everywhere."""

    INGEST = "ingest"
    INSPECTOR = "inspector"
    INVESTIGATOR = "investigator"
    ANALYST = "analyst"
    DASHBOARD = "dashboard"
    ADMIN = "admin"


#: roles that must be given jurisdictions and see nothing outside them.
SCOPED_ROLES = frozenset({Role.INSPECTOR, Role.INVESTIGATOR})
#: roles that may move alerts through their workflow.
ALERT_WORKERS = frozenset({Role.INSPECTOR, Role.INVESTIGATOR, Role.ADMIN})


@dataclass(frozen=True)
class User:
    """A user as the service sees it (from an API key, or the system itself)."""

    id: int | None
    name: str
    role: Role
    jurisdictions: frozenset[str] = frozenset()
    active: bool = True
    #: the agency the user works for, if any (see :func:`serving.workflow.transition`).
    agency_id: str | None = None

    @property
    def sees_all(self) -> bool:
        """Admins see everything; analysts and dashboards too unless given jurisdictions."""
        if self.role == Role.ADMIN:
            return True
        return self.role in (Role.ANALYST, Role.DASHBOARD) and not self.jurisdictions


#: the scorer and other automatic actions (raises and closes alerts).
SYSTEM = User(None, "system", Role.ADMIN)

Q = TypeVar("Q", bound=sa.Select[Any])


def restrict(stmt: Q, user: User, column: sa.ColumnElement[Any]) -> Q:
    """``stmt`` restricted to rows whose ``column`` (a jurisdiction code) the user may see.

    Codes match exactly: give a provincial inspector the province's and its communes' codes.
    The ``ingest`` role sees no rows.
    """
    if user.sees_all:
        return stmt
    if user.role == Role.INGEST:
        return stmt.where(sa.false())
    return stmt.where(column.in_(sorted(user.jurisdictions)))


def can_see(user: User, jurisdiction: str | None) -> bool:
    """Whether a row of ``jurisdiction`` is visible to the user (as :func:`restrict`)."""
    if user.sees_all:
        return True
    return user.role != Role.INGEST and jurisdiction in user.jurisdictions


def _parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidUserError(f"unknown role {role!r} (roles: {known})") from None


def create_user(
    session: Session,
    name: str,
    role: str | Role,
    jurisdictions: Iterable[str] = (),
    *,
    agency_id: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> User:
    """Store a new user (audited). Inspectors and investigators need jurisdictions;
    ``agency_id`` is the agency the user works for, if any (they may not give verdicts on
    alerts about it)."""
    role = _parse_role(role)
    codes = frozenset(j.strip() for j in jurisdictions)
    agency = agency_id.strip() if agency_id is not None else None
    if agency is not None and not 0 < len(agency) <= ID_LENGTH:
        raise InvalidUserError(f"an agency id must be 1-{ID_LENGTH} characters")
    if not _NAME.match(name):
        raise InvalidUserError(
            f"user name {name!r}: 1-100 letters, digits or . _ @ -, starting with a letter or digit"
        )
    if any(not c or len(c) > ID_LENGTH for c in codes):
        raise InvalidUserError(f"jurisdiction codes must be 1-{ID_LENGTH} characters")
    if role in SCOPED_ROLES and not codes:
        raise InvalidUserError(f"a user with role {role.value} needs at least one jurisdiction")
    if session.execute(sa.select(users.c.id).where(users.c.name == name)).first():
        raise InvalidUserError(f"a user named {name!r} exists already")
    stamp = now or datetime.now(UTC)
    user_id = session.execute(
        sa.insert(users)
        .values(name=name, role=role.value, active=True, created_at=stamp, agency_id=agency)
        .returning(users.c.id)
    ).scalar_one()
    if codes:
        session.execute(
            sa.insert(user_jurisdictions),
            [{"user_id": user_id, "jurisdiction": c} for c in sorted(codes)],
        )
    audit.append(
        session,
        actor,
        "user.create",
        subject_type="user",
        subject_id=name,
        details={"role": role.value, "jurisdictions": sorted(codes), "agency_id": agency},
        now=stamp,
    )
    return User(user_id, name, role, codes, agency_id=agency)


def _load(session: Session, where: sa.ColumnElement[bool]) -> User | None:
    row = session.execute(sa.select(users).where(where)).first()
    if row is None:
        return None
    codes = session.execute(
        sa.select(user_jurisdictions.c.jurisdiction).where(user_jurisdictions.c.user_id == row.id)
    ).scalars()
    return User(row.id, row.name, Role(row.role), frozenset(codes), bool(row.active), row.agency_id)


def get_user(session: Session, name: str) -> User:
    """The user called ``name``; :class:`NotFoundError` if there is none."""
    user = _load(session, users.c.name == name)
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    names = session.execute(sa.select(users.c.name).order_by(users.c.name)).scalars().all()
    return [get_user(session, n) for n in names]


def deactivate_user(session: Session, name: str, *, actor: str = "system") -> User:
    """Switch a user off (their keys stop working at once); audited."""
    user = get_user(session, name)
    session.execute(sa.update(users).where(users.c.id == user.id).values(active=False))
    audit.append(session, actor, "user.deactivate", subject_type="user", subject_id=name)
    _forget(session, user_id=user.id)
    return User(user.id, user.name, user.role, user.jurisdictions, False, user.agency_id)


def _digest(pepper: bytes, key_id: str, secret: str) -> str:
    return hmac.new(pepper, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()


def create_api_key(
    session: Session,
    name: str,
    pepper: bytes,
    *,
    label: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> tuple[str, str]:
    """A new key for user ``name``: returns ``(key_id, key)``. Show the key once: only its
    keyed hash is stored. Audited (the key id, never the key)."""
    user = get_user(session, name)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    stamp = now or datetime.now(UTC)
    session.execute(
        sa.insert(api_keys).values(
            key_id=key_id,
            user_id=user.id,
            secret_hash=_digest(pepper, key_id, secret),
            label=label,
            created_at=stamp,
        )
    )
    audit.append(
        session,
        actor,
        "key.create",
        subject_type="user",
        subject_id=name,
        details={"key_id": key_id, "label": label},
        now=stamp,
    )
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}"


def verify_api_key(session: Session, key: str, pepper: bytes) -> User:
    """The active user a valid, unrevoked key belongs to; else :class:`InvalidKeyError`
    (one message for every failure, so a caller learns nothing about which part was wrong)."""
    match = _KEY.match(key.strip())
    if match is None:
        raise InvalidKeyError("invalid API key")
    key_id, secret = match.groups()
    row = session.execute(
        sa.select(api_keys.c.user_id, api_keys.c.secret_hash, api_keys.c.revoked_at).where(
            api_keys.c.key_id == key_id
        )
    ).first()
    expected = row.secret_hash if row is not None else _digest(pepper, key_id, "")
    given = _digest(pepper, key_id, secret)
    if row is None or not hmac.compare_digest(expected, given) or row.revoked_at is not None:
        raise InvalidKeyError("invalid API key")
    user = _load(session, users.c.id == row.user_id)
    if user is None or not user.active:
        raise InvalidKeyError("invalid API key")
    return user


def revoke_api_key(session: Session, key_id: str, *, actor: str = "system") -> None:
    """Revoke a key by its id (audited); :class:`NotFoundError` for an unknown id."""
    row = session.execute(sa.select(api_keys.c.user_id).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}")
    session.execute(
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    audit.append(session, actor, "key.revoke", subject_type="api_key", subject_id=key_id)
    _forget(session, key_id=key_id)


# --- verified keys, for a while --------------------------------------------------------

#: seconds a verified key is trusted without asking the store again: how long a key
#: revoked (or a user deactivated or changed) by another process keeps working here.
KEY_CACHE_SECONDS = 5.0
#: every cache of this process, so that a revocation here reaches them all.
_CACHES: weakref.WeakSet[KeyCache] = weakref.WeakSet()


class KeyCache:
    """API keys verified in the last ``ttl`` seconds, with their users.

    An entry is found by the key id and the key's keyed hash, so only the very key
    verified (under the same pepper) finds it; failures are never kept. A
    :func:`revoke_api_key` or :func:`deactivate_user` in this process drops the entries
    it concerns at once and again when its transaction commits; a verification that
    read the store before such a drop keeps nothing.
    """

    def __init__(
        self,
        ttl: float = KEY_CACHE_SECONDS,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[User, float]] = OrderedDict()
        self._generation = 0  # moves on every drop
        _CACHES.add(self)

    @staticmethod
    def _entry_key(key: str, pepper: bytes) -> tuple[str, str] | None:
        match = _KEY.match(key.strip())
        if match is None:
            return None
        key_id, secret = match.groups()
        return key_id, _digest(pepper, key_id, secret)

    def get(self, key: str, pepper: bytes) -> User | None:
        """The user of ``key`` if it was verified less than ``ttl`` seconds ago."""
        found = self._entry_key(key, pepper)
        if found is None:
            return None
        with self._lock:
            entry = self._entries.get(found)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._entries[found]
                return None
            return entry[0]

    def verify(self, store: Store, key: str, pepper: bytes) -> User:
        """:func:`verify_api_key` against ``store``, unless the key was verified within
        ``ttl`` seconds; a success is kept."""
        user = self.get(key, pepper)
        if user is not None:
            return user
        with self._lock:
            generation = self._generation
        with store.read() as session:
            user = verify_api_key(session, key, pepper)
        found = self._entry_key(key, pepper)
        assert found is not None  # verified
        with self._lock:
            if generation == self._generation:  # nothing dropped while the store was read
                self._entries[found] = (user, self._clock() + self.ttl)
                self._entries.move_to_end(found)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return user

    def forget(self, *, key_id: str | None = None, user_id: int | None = None) -> None:
        """Drop the entries of a key or of a user's keys."""
        with self._lock:
            self._generation += 1
            for entry_key, (user, _) in list(self._entries.items()):
                if entry_key[0] == key_id or (user_id is not None and user.id == user_id):
                    del self._entries[entry_key]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()


def _forget_everywhere(key_id: str | None = None, user_id: int | None = None) -> None:
    for cache in list(_CACHES):
        cache.forget(key_id=key_id, user_id=user_id)


def _forget(session: Session, *, key_id: str | None = None, user_id: int | None = None) -> None:
    """Drop a key's (or a user's) cache entries now, and again once ``session`` commits
    (a request verifying meanwhile reads the store before the change is visible)."""
    _forget_everywhere(key_id, user_id)

    def after_commit(_: Session) -> None:
        _forget_everywhere(key_id, user_id)

    sa.event.listen(session, "after_commit", after_commit, once=True)
