"""The tamper-evident audit log: every alert transition and administrative action, in a
hash chain.

Entry ``n`` stores ``hash = sha256(canonical JSON of {seq, at, actor, action, subject,
details, prev_hash})`` where ``prev_hash`` is the hash of entry ``n - 1`` (64 zeros for
the first). Editing an entry breaks its own hash; deleting one leaves a gap in the
sequence (or, at the tail, a head row ahead of the last entry); renumbering shows as an
entry whose hash verifies only at its old place in the chain. Appenders lock the one
``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions
already hold the database's write lock, :mod:`serving.db`), and ``seq`` is the primary
key, so the chain can never fork.

The head hash printed by ``giamsat audit verify`` can be kept elsewhere (a ticket, a
signed mail) to anchor the chain: without an outside copy, someone who can rewrite the
whole table can rebuild a consistent chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.tables import audit_head, audit_log

__all__ = [
    "GENESIS",
    "AuditAction",
    "AuditEntry",
    "ChainReport",
    "append",
    "append_many",
    "canonical_json",
    "entries",
    "verify",
]

GENESIS = "0" * 64
HEAD_ID = 1
Problem = Literal["edited", "deleted", "reordered"]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is, no NaN: one text per value, on every platform."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_default,
    )


def _hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str | None,
    subject_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "details": details,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditAction:
    """What to record: who did what to which subject, with details (JSON-serialisable)."""

    actor: str
    action: str
    subject_type: str | None = None
    subject_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """A stored entry of the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject_type: str | None
    subject_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


def _lock_head(session: Session) -> tuple[int, str]:
    stmt = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
    row = session.execute(stmt.with_for_update()).first()
    if row is None:  # a database built without the migration's seed row
        session.execute(sa.insert(audit_head).values(id=HEAD_ID, seq=0, hash=GENESIS))
        row = session.execute(stmt.with_for_update()).one()
    return int(row.seq), str(row.hash)


def append_many(
    session: Session, actions: Sequence[AuditAction], *, now: datetime | None = None
) -> list[AuditEntry]:
    """Append ``actions`` to the chain, in order, inside the caller's transaction."""
    if not actions:
        return []
    at = (now or datetime.now(UTC)).astimezone(UTC)
    seq, prev = _lock_head(session)
    out = []
    for item in actions:
        seq += 1
        details = canonical_json(dict(item.details))
        digest = _hash(
            seq, at, item.actor, item.action, item.subject_type, item.subject_id, details, prev
        )
        out.append(
            AuditEntry(
                seq,
                at,
                item.actor,
                item.action,
                item.subject_type,
                item.subject_id,
                json.loads(details),
                prev,
                digest,
            )
        )
        prev = digest
    session.execute(
        sa.insert(audit_log),
        [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject_type": e.subject_type,
                "subject_id": e.subject_id,
                "details": canonical_json(e.details),
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in out
        ],
    )
    session.execute(
        sa.update(audit_head).where(audit_head.c.id == HEAD_ID).values(seq=seq, hash=prev)
    )
    return out


def append(
    session: Session,
    actor: str,
    action: str,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry (see :func:`append_many`)."""
    item = AuditAction(actor, action, subject_type, subject_id, dict(details or {}))
    return append_many(session, [item], now=now)[0]


def entries(
    session: Session, *, subject_id: str | None = None, after: int = 0, limit: int = 1000
) -> list[AuditEntry]:
    """Entries with ``seq > after`` in order, optionally about one subject."""
    stmt = sa.select(audit_log).where(audit_log.c.seq > after)
    if subject_id is not None:
        stmt = stmt.where(audit_log.c.subject_id == subject_id)
    rows = session.execute(stmt.order_by(audit_log.c.seq).limit(limit))
    return [_entry(r) for r in rows]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        int(row.seq),
        row.at,
        row.actor,
        row.action,
        row.subject_type,
        row.subject_id,
        json.loads(row.details),
        row.prev_hash,
        row.hash,
    )


@dataclass(frozen=True)
class ChainReport:
    """The verdict of :func:`verify`: ``ok``, or the first broken entry and why."""

    entries: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: Problem | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _chain_positions(links: Iterable[tuple[str, str]]) -> dict[str, int]:
    """hash -> place in the chain walked from the genesis by prev_hash links."""
    following = {prev: digest for prev, digest in links}
    positions: dict[str, int] = {}
    current, place = GENESIS, 0
    while current in following and following[current] not in positions:
        current = following[current]
        place += 1
        positions[current] = place
    return positions


def verify(session: Session) -> ChainReport:
    """Walk the chain; report the first entry that was edited, deleted or renumbered."""
    head = session.execute(sa.select(audit_head).where(audit_head.c.id == HEAD_ID)).first()
    head_seq, head_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS)
    links = [
        (r[0], r[1]) for r in session.execute(sa.select(audit_log.c.prev_hash, audit_log.c.hash))
    ]
    positions = _chain_positions(links)
    count, prev, expected = 0, GENESIS, 1

    def broken(seq: int, problem: Problem, message: str) -> ChainReport:
        return ChainReport(count, head_seq, head_hash, seq, problem, message)

    rows = session.execute(
        sa.select(audit_log).order_by(audit_log.c.seq), execution_options={"yield_per": 2000}
    )
    for row in rows:
        seq = int(row.seq)
        if seq != expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            return broken(expected, "deleted", f"entry {missing} missing (next is {seq})")
        content = (row.at, row.actor, row.action, row.subject_type, row.subject_id, row.details)
        if _hash(seq, *content, row.prev_hash) != row.hash:
            place = positions.get(row.hash)
            if (
                place is not None
                and place != seq
                and _hash(place, *content, row.prev_hash) == (row.hash)
            ):
                return broken(seq, "reordered", f"entry {seq} was entry {place} of the chain")
            return broken(seq, "edited", f"entry {seq} does not match its hash (edited)")
        if row.prev_hash != prev:
            return broken(
                seq - 1,
                "edited",
                f"entry {seq - 1} was rewritten: entry {seq} no longer links to it",
            )
        count, prev, expected = count + 1, row.hash, expected + 1
    last = expected - 1
    if head_seq > last:
        missing = f"{expected}" if head_seq == expected else f"{expected} to {head_seq}"
        return broken(expected, "deleted", f"entry {missing} missing at the end of the log")
    if head_seq < last or head_hash != prev:
        return broken(last, "edited", f"entry {last} is not the chain head recorded in audit_head")
    return ChainReport(count, head_seq, head_hash)
