"""SLA escalation: an alert not acknowledged within its severity's SLA escalates to the
next level of government (commune -> province -> ministry).

The SLA clock of an alert starts when it is opened (raised, or reopened) and restarts at
each escalation (by the SLA or by a person), so an alert left alone climbs one level per
SLA period. At the top level it stays where it is and is counted as overdue. An
escalation is an ordinary workflow transition (:func:`serving.workflow.transition`) by
the actor ``system:sla``: alert history, audit entry and outbox message in the caller's
transaction. A second run at the same ``now`` finds nothing due (each clock restarted at
``now``), so running the job twice does no harm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from giamsat.settings import Settings
from serving.alerts import LEVELS, Action, Alert, Status
from serving.errors import AlertConflictError
from serving.tables import alert_history, alerts
from serving.users import Role, User
from serving.workflow import transition

__all__ = [
    "SLA_ACTOR",
    "Overdue",
    "escalate_overdue",
    "overdue_alerts",
    "overdue_at_top",
    "slas_of",
]

#: who escalates alerts past their SLA (in the alert history and the audit log).
SLA_ACTOR = User(None, "system:sla", Role.ADMIN)


@dataclass(frozen=True)
class Overdue:
    """An open alert past its SLA: since when its clock runs, and at which level it is."""

    alert_id: str
    severity: str
    level: str
    version: int
    clock_start: datetime


def slas_of(settings: Settings) -> dict[str, timedelta]:
    """The SLA of each severity, from the settings."""
    return {
        "high": timedelta(hours=settings.alert_sla_high_hours),
        "medium": timedelta(hours=settings.alert_sla_medium_hours),
        "low": timedelta(hours=settings.alert_sla_low_hours),
    }


def overdue_alerts(
    session: Session, *, now: datetime, slas: Mapping[str, timedelta]
) -> list[Overdue]:
    """Open (unacknowledged) alerts whose SLA clock has run longer than their severity's
    SLA at ``now``, by alert id. Severities without an SLA never fall due."""
    if not slas:
        return []
    # the clock starts at opened_at or later, so opened_at <= now - sla is necessary
    due = sa.or_(
        *(
            sa.and_(alerts.c.severity == severity, alerts.c.opened_at <= now - limit)
            for severity, limit in sorted(slas.items())
        )
    )
    stmt = (
        sa.select(
            alerts.c.alert_id,
            alerts.c.severity,
            alerts.c.level,
            alerts.c.version,
            alerts.c.opened_at,
        )
        .where(alerts.c.status == Status.OPEN.value, due)
        .order_by(alerts.c.alert_id)
    )
    candidates = session.execute(stmt).all()
    last_escalation: dict[str, datetime] = {}
    ids = [c.alert_id for c in candidates]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        latest = (
            sa.select(alert_history.c.alert_id, sa.func.max(alert_history.c.at).label("at"))
            .where(
                alert_history.c.alert_id.in_(chunk),
                alert_history.c.action == Action.ESCALATE.value,
            )
            .group_by(alert_history.c.alert_id)
        )
        last_escalation.update({r.alert_id: r.at for r in session.execute(latest)})
    found = []
    for c in candidates:
        escalated = last_escalation.get(c.alert_id)
        start = max(c.opened_at, escalated) if escalated is not None else c.opened_at
        if now - start >= slas[c.severity]:
            found.append(Overdue(c.alert_id, c.severity, c.level, c.version, start))
    return found


def overdue_at_top(session: Session, *, now: datetime, slas: Mapping[str, timedelta]) -> int:
    """How many open alerts are past their SLA at the top level (nowhere left to go)."""
    return sum(o.level == LEVELS[-1] for o in overdue_alerts(session, now=now, slas=slas))


def escalate_overdue(
    session: Session, *, now: datetime, slas: Mapping[str, timedelta]
) -> list[Alert]:
    """Escalate by one level every open alert past its SLA at ``now`` (see the module);
    returns the escalated alerts. Alerts already at the top level are left as they are
    (:func:`overdue_alerts` counts them). An alert someone acted on meanwhile (a changed
    version) is skipped: it is no longer the one found overdue."""
    done = []
    for item in overdue_alerts(session, now=now, slas=slas):
        if item.level == LEVELS[-1]:
            continue
        hours = slas[item.severity] / timedelta(hours=1)
        reason = f"not acknowledged within the {item.severity} SLA ({hours:g} h)"
        try:
            after = transition(
                session,
                item.alert_id,
                Action.ESCALATE,
                SLA_ACTOR,
                expected_version=item.version,
                reason=reason,
                now=now,
            )
        except AlertConflictError:
            continue
        done.append(after)
    return done
