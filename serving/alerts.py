"""Alerts as stored, and the queries that read them (the inbox, one alert, its history,
the verdicts). The workflow that writes them is :mod:`serving.workflow`::

    (raised) -> open -> acknowledged -> confirmed | dismissed (with a reason)
                open | acknowledged -> closed (the risk passed) -> open (it came back)
                open | acknowledged: escalate (commune -> province -> ministry), reassign
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.errors import NotFoundError
from serving.tables import alert_history, alerts, users
from serving.users import User, restrict

__all__ = [
    "LEVELS",
    "TRANSITIONS",
    "Action",
    "Alert",
    "Status",
    "Verdict",
    "alert_history_of",
    "alert_of_row",
    "get_alert",
    "select_alerts",
    "list_alerts",
    "verdicts",
]


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    CLOSED = "closed"


class Action(StrEnum):
    RAISE = "raise"
    ACKNOWLEDGE = "acknowledge"
    CONFIRM = "confirm"
    DISMISS = "dismiss"
    ESCALATE = "escalate"
    REASSIGN = "reassign"
    CLOSE = "close"
    REOPEN = "reopen"


#: who handles an alert, lowest first; escalation moves one step up.
LEVELS = ("commune", "province", "ministry")
ACTIVE = frozenset({Status.OPEN, Status.ACKNOWLEDGED})
#: action -> (statuses it applies to, status after; None = unchanged)
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status | None]] = {
    Action.ACKNOWLEDGE: (frozenset({Status.OPEN}), Status.ACKNOWLEDGED),
    Action.CONFIRM: (frozenset({Status.ACKNOWLEDGED}), Status.CONFIRMED),
    Action.DISMISS: (frozenset({Status.ACKNOWLEDGED}), Status.DISMISSED),
    Action.ESCALATE: (ACTIVE, None),
    Action.REASSIGN: (ACTIVE, None),
    Action.CLOSE: (ACTIVE, Status.CLOSED),
    Action.REOPEN: (frozenset({Status.CLOSED}), Status.OPEN),
}
#: actions only the system takes (the scorer's view of the risk, not a person's).
SYSTEM_ACTIONS = frozenset({Action.CLOSE, Action.REOPEN})


@dataclass(frozen=True)
class Alert:
    """An alert as stored."""

    alert_id: str
    kind: str
    subject_type: str
    subject_id: str
    score: float
    severity: str
    jurisdiction: str | None
    agency_id: str | None
    reasons: str
    pattern: str | None
    dossiers: list[str] | None
    status: Status
    level: str
    assignee: str | None
    version: int
    opened_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    verdict_reason: str | None
    closed_at: datetime | None


@dataclass(frozen=True)
class Verdict:
    """An inspector's decision on an alert: the label the models learn from."""

    alert_id: str
    kind: str
    subject_type: str
    subject_id: str
    pattern: str | None
    dossiers: list[str] | None
    jurisdiction: str | None
    verdict: Status  # confirmed or dismissed
    reason: str | None
    decided_by: str | None
    decided_at: datetime
    score: float


def select_alerts() -> sa.Select[Any]:
    return sa.select(alerts, users.c.name.label("assignee")).outerjoin(
        users, users.c.id == alerts.c.assignee_id
    )


def alert_of_row(row: Any) -> Alert:
    m = row._mapping
    return Alert(
        **{k: m[k] for k in Alert.__dataclass_fields__ if k != "status"},
        status=Status(m["status"]),
    )


def get_alert(session: Session, user: User, alert_id: str) -> Alert:
    """One alert; :class:`NotFoundError` if absent or outside the user's jurisdictions."""
    stmt = restrict(
        select_alerts().where(alerts.c.alert_id == alert_id), user, alerts.c.jurisdiction
    )
    row = session.execute(stmt).first()
    if row is None:
        raise NotFoundError(f"no alert {alert_id!r}")
    return alert_of_row(row)


def list_alerts(
    session: Session,
    user: User,
    *,
    status: Iterable[Status | str] | None = None,
    kind: str | None = None,
    jurisdiction: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Alert]:
    """The user's inbox: alerts they may see, highest score first."""
    stmt = select_alerts()
    if status is not None:
        stmt = stmt.where(alerts.c.status.in_([Status(s).value for s in status]))
    if kind is not None:
        stmt = stmt.where(alerts.c.kind == kind)
    if jurisdiction is not None:
        stmt = stmt.where(alerts.c.jurisdiction == jurisdiction)
    stmt = restrict(stmt, user, alerts.c.jurisdiction)
    stmt = stmt.order_by(alerts.c.score.desc(), alerts.c.alert_id).limit(limit).offset(offset)
    return [alert_of_row(r) for r in session.execute(stmt)]


def alert_history_of(session: Session, user: User, alert_id: str) -> list[dict[str, Any]]:
    """The alert's transitions, oldest first."""
    get_alert(session, user, alert_id)
    stmt = (
        sa.select(alert_history)
        .where(alert_history.c.alert_id == alert_id)
        .order_by(alert_history.c.id)
    )
    return [dict(r) for r in session.execute(stmt).mappings()]


def verdicts(
    session: Session,
    *,
    since: datetime | None = None,
    kinds: Iterable[str] | None = None,
) -> list[Verdict]:
    """Confirmed and dismissed alerts (decided after ``since``), oldest decision first:
    what ``giamsat labels export`` writes out."""
    stmt = sa.select(alerts).where(
        alerts.c.status.in_([Status.CONFIRMED.value, Status.DISMISSED.value])
    )
    if since is not None:
        stmt = stmt.where(alerts.c.decided_at > since)
    if kinds is not None:
        stmt = stmt.where(alerts.c.kind.in_(sorted(set(kinds))))
    stmt = stmt.order_by(alerts.c.decided_at, alerts.c.alert_id)
    return [
        Verdict(
            alert_id=r.alert_id,
            kind=r.kind,
            subject_type=r.subject_type,
            subject_id=r.subject_id,
            pattern=r.pattern,
            dossiers=r.dossiers,
            jurisdiction=r.jurisdiction,
            verdict=Status(r.status),
            reason=r.verdict_reason,
            decided_by=r.decided_by,
            decided_at=r.decided_at,
            score=r.score,
        )
        for r in session.execute(stmt)
    ]
