"""The API's list queries: the alert inbox with every filter and a total, dossier pages
with a total, and the alert counts the metrics report.

:func:`serving.alerts.list_alerts` and :func:`serving.store.list_dossiers` serve the
CLI and the scorer; these add what a paginated HTTP list needs (a ``total`` and the
inbox's filters) without changing them. Both restrict every query to what the user may
see (:func:`serving.users.restrict`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.alerts import Alert, Status, alert_of_row, select_alerts
from serving.store import dossier_query
from serving.tables import alerts
from serving.users import User, restrict

__all__ = ["AlertFilters", "alert_counts", "search_alerts", "search_dossiers"]


@dataclass(frozen=True)
class AlertFilters:
    """The inbox's filters; ``since`` and ``until`` bound when the alert was opened."""

    kind: str | None = None
    severity: str | None = None
    status: tuple[Status, ...] = ()
    agency_id: str | None = None
    jurisdiction: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _count(session: Session, stmt: sa.Select[Any]) -> int:
    counted = sa.select(sa.func.count()).select_from(stmt.subquery())
    return int(session.execute(counted).scalar_one())


def _alert_conditions(filters: AlertFilters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.kind is not None:
        conditions.append(alerts.c.kind == filters.kind)
    if filters.severity is not None:
        conditions.append(alerts.c.severity == filters.severity)
    if filters.status:
        conditions.append(alerts.c.status.in_(sorted(s.value for s in filters.status)))
    if filters.agency_id is not None:
        conditions.append(alerts.c.agency_id == filters.agency_id)
    if filters.jurisdiction is not None:
        conditions.append(alerts.c.jurisdiction == filters.jurisdiction)
    if filters.since is not None:
        conditions.append(alerts.c.opened_at >= filters.since)
    if filters.until is not None:
        conditions.append(alerts.c.opened_at < filters.until)
    return conditions


def search_alerts(
    session: Session, user: User, filters: AlertFilters, *, limit: int, offset: int
) -> tuple[list[Alert], int]:
    """The alerts the user may see that match ``filters``, highest score first, and how
    many match in all. The total counts the alerts table alone: the assignee's name the
    page joins in changes no count, and the join made every count visit every row."""
    conditions = _alert_conditions(filters)
    counted = restrict(sa.select(alerts.c.alert_id).where(*conditions), user, alerts.c.jurisdiction)
    total = _count(session, counted)
    stmt = restrict(select_alerts().where(*conditions), user, alerts.c.jurisdiction)
    page = stmt.order_by(alerts.c.score.desc(), alerts.c.alert_id).limit(limit).offset(offset)
    return [alert_of_row(r) for r in session.execute(page)], total


def search_dossiers(
    session: Session,
    user: User,
    *,
    min_risk: float | None = None,
    jurisdiction: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Dossiers the user may see, riskiest first (unscored last), and how many match."""
    stmt = dossier_query(user, min_risk=min_risk, jurisdiction=jurisdiction)
    total = _count(session, stmt)
    rows = session.execute(stmt.limit(limit).offset(offset)).mappings()
    return [dict(r) for r in rows], total


def alert_counts(session: Session) -> Iterable[tuple[str, str, int]]:
    """``(kind, status, count)`` of every stored alert (for the metrics)."""
    stmt = (
        sa.select(alerts.c.kind, alerts.c.status, sa.func.count())
        .group_by(alerts.c.kind, alerts.c.status)
        .order_by(alerts.c.kind, alerts.c.status)
    )
    return [(str(k), str(s), int(n)) for k, s, n in session.execute(stmt)]
