"""The API's list queries: the alert inbox with every filter, keyset pages and a bounded
total, dossier pages with a total, and the alert counts the metrics report.

:func:`serving.alerts.list_alerts` and :func:`serving.store.list_dossiers` serve the
CLI and the scorer; these add what a paginated HTTP list needs (a ``total`` and the
inbox's filters) without changing them. Both restrict every query to what the user may
see (:func:`serving.users.restrict`).

The inbox must answer in milliseconds over a million alerts, so no query sorts or counts
every match:

- A page is one short index range scan per value of the equality filters (each status;
  with a jurisdiction or agency, each (code, status); for an inspector, each of their
  codes and statuses), each in the inbox's order (score DESC, alert_id) and cut at
  ``offset + limit + 1`` rows, then merged (revision 0003's indexes). The union of each
  scan's first rows holds the first rows of the whole list, so the page is exact. The
  scans are one statement of constant size whatever their number: a LATERAL join on
  PostgreSQL, a correlated ``IN`` per row of a JSON list on SQLite.
- The next page can start where this one ended (``cursor``: the last row's score and
  id), which costs the same at page 1,000 as at page 1; ``offset`` costs its rows.
- ``total`` counts at most :data:`COUNT_CAP` matches and says whether it stopped there.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from serving.alerts import Alert, Status, alert_of_row
from serving.bulk import dialect_of
from serving.errors import StoreError
from serving.store import dossier_query
from serving.tables import alerts, users
from serving.users import Role, User, restrict

__all__ = [
    "COUNT_CAP",
    "AlertCursor",
    "AlertFilters",
    "AlertPage",
    "InvalidCursorError",
    "alert_counts",
    "search_alerts",
    "search_dossiers",
]

#: the inbox's ``total`` counts at most this many matches (an exact count of a million
#: rows takes longer than the whole page may); above it, ``total_exact`` is false.
COUNT_CAP = 10_000
#: most index scans one inbox query is split into (an inspector's codes x statuses);
#: past it the query runs whole and the database sorts its matches.
MAX_SCANS = 100
_ALERT_ID_LENGTH: int = getattr(alerts.c.alert_id.type, "length", None) or 32


class InvalidCursorError(StoreError, ValueError):
    """A ``cursor`` that is not one this service gave out."""


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


@dataclass(frozen=True)
class AlertCursor:
    """Where an inbox page ended: the next page starts after this (score, alert_id)."""

    score: float
    alert_id: str

    def encode(self) -> str:
        text = json.dumps([self.score, self.alert_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> AlertCursor:
        """The cursor ``encode`` gave; :class:`InvalidCursorError` for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            score, alert_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError, RecursionError):
            raise InvalidCursorError("not a cursor this service gave out") from None
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
            or not isinstance(alert_id, str)
            or not 0 < len(alert_id) <= _ALERT_ID_LENGTH
            or "\x00" in alert_id
        ):
            raise InvalidCursorError("not a cursor this service gave out")
        return cls(float(score), alert_id)


@dataclass(frozen=True)
class AlertPage:
    """One inbox page: the alerts, how many match (at most :data:`COUNT_CAP`, exactly
    when ``total_exact``), and the cursor of the next page (None on the last one)."""

    alerts: list[Alert]
    total: int
    total_exact: bool
    next_cursor: str | None


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


@dataclass(frozen=True)
class _Split:
    """How an inbox query splits into index range scans: one per (value of ``lead``,
    status), disjoint and together exactly what was asked for; ``lead`` None: one per
    status. ``restricted``: each scan still needs the user's restriction (not when the
    values are the user's own codes)."""

    lead: sa.Column[Any] | None
    values: list[str]
    statuses: list[str]
    restricted: bool


def _split(user: User, filters: AlertFilters) -> _Split | None:
    """The scans of the inbox query (the most selective equality filter leads), or None
    past :data:`MAX_SCANS`: one query."""
    statuses = sorted(s.value for s in (filters.status or tuple(Status)))
    scoped = not user.sees_all and user.role != Role.INGEST
    if filters.jurisdiction is not None:
        lead, values = alerts.c.jurisdiction, [filters.jurisdiction]
    elif filters.agency_id is not None:
        lead, values = alerts.c.agency_id, [filters.agency_id]
    elif scoped:
        lead, values = alerts.c.jurisdiction, sorted(user.jurisdictions)
    else:  # ix_alerts_inbox, or the severity or kind one with those filters
        return _Split(None, [], statuses, restricted=True)
    if len(values) * len(statuses) > MAX_SCANS:
        return None
    own_codes = scoped and filters.jurisdiction is None and filters.agency_id is None
    return _Split(lead, values, statuses, restricted=not own_codes)


def _scan_keys(
    dialect: str,
    split: _Split,
    conditions: list[sa.ColumnElement[bool]],
    user: User,
    wanted: int,
) -> sa.Subquery:
    """(alert_id, score) of the first ``wanted`` rows of every scan of ``split``."""
    order = (alerts.c.score.desc(), alerts.c.alert_id)
    base = sa.select(alerts.c.alert_id, alerts.c.score).where(*conditions)
    if split.restricted:
        base = restrict(base, user, alerts.c.jurisdiction)
    if dialect == "postgresql":
        # one LATERAL scan per row of (values x statuses): a plan of constant size, where
        # a UNION of 100 arms took PostgreSQL longer to plan than to run
        statuses = _text_array(split.statuses).table_valued("status").render_derived()
        scan = base.where(alerts.c.status == statuses.c.status)
        source: sa.FromClause = statuses
        if split.lead is not None:
            values = _text_array(split.values).table_valued("value").render_derived()
            scan = scan.where(split.lead == values.c.value)
            source = values.join(statuses, sa.true())
        each = scan.order_by(*order).limit(wanted).lateral()
        return (
            sa.select(each.c.alert_id, each.c.score)
            .select_from(source)
            .join(each, sa.true())
            .subquery()
        )
    # SQLite has no LATERAL: a correlated IN (...) per row of the JSON list of pairs does
    # the same (a UNION of 100 arms took SQLAlchemy 50 ms to build)
    leads: list[str | None] = [*split.values] or [None]
    pairs = [[v, s] for v in leads for s in split.statuses]
    listed = sa.func.json_each(sa.bindparam(None, json.dumps(pairs), type_=sa.String()))
    p = listed.table_valued("value").alias("p")
    scan = base.where(alerts.c.status == sa.func.json_extract(p.c.value, "$[1]"))
    if split.lead is not None:
        scan = scan.where(split.lead == sa.func.json_extract(p.c.value, "$[0]"))
    rowids: sa.Select[Any] = scan.with_only_columns(sa.literal_column("alerts.rowid"))
    k = alerts.alias("k")
    hit = sa.literal_column("k.rowid").in_(rowids.order_by(*order).limit(wanted))
    return sa.select(k.c.alert_id, k.c.score).select_from(p).join(k, hit).subquery()


def _text_array(values: list[str]) -> sa.Function[Any]:
    """``unnest(CAST(:values AS VARCHAR[]))`` (one parameter, however many values)."""
    array = sa.cast(sa.bindparam(None, values, type_=ARRAY(sa.String())), ARRAY(sa.String()))
    return sa.func.unnest(array)


def _after(cursor: AlertCursor) -> sa.ColumnElement[bool]:
    """Rows after ``cursor`` in the inbox's order (score DESC, alert_id); the ``<=``
    bound lets the index scan start there instead of filtering up to it."""
    score, alert_id = alerts.c.score, alerts.c.alert_id
    return sa.and_(
        score <= cursor.score,
        sa.or_(score < cursor.score, alert_id > cursor.alert_id),
    )


def search_alerts(
    session: Session,
    user: User,
    filters: AlertFilters,
    *,
    limit: int,
    offset: int = 0,
    cursor: AlertCursor | None = None,
) -> AlertPage:
    """The alerts the user may see that match ``filters``, highest score first: ``limit``
    of them after ``cursor`` (if given) and ``offset`` more, with a bounded total."""
    conditions = _alert_conditions(filters)
    visible = restrict(sa.select(alerts.c.alert_id).where(*conditions), user, alerts.c.jurisdiction)
    order = (alerts.c.score.desc(), alerts.c.alert_id)
    wanted = offset + limit + 1  # one more than the page: is there a next one?
    after = [_after(cursor)] if cursor is not None else []
    split = _split(user, filters)
    keys: sa.Subquery
    if split is None:
        keys = visible.add_columns(alerts.c.score).where(*after).subquery()
    else:
        # the equality filters the scans take over are left out of their conditions
        rest = _alert_conditions(
            AlertFilters(
                kind=filters.kind,
                severity=filters.severity,
                agency_id=None if filters.jurisdiction is None else filters.agency_id,
                since=filters.since,
                until=filters.until,
            )
        )
        keys = _scan_keys(dialect_of(session), split, [*rest, *after], user, wanted)
    top = (
        sa.select(keys.c.alert_id)
        .order_by(keys.c.score.desc(), keys.c.alert_id)
        .limit(limit + 1)
        .offset(offset)
        .subquery()
    )
    page = (
        sa.select(alerts, users.c.name.label("assignee"))
        .join(top, top.c.alert_id == alerts.c.alert_id)
        .outerjoin(users, users.c.id == alerts.c.assignee_id)
        .order_by(*order)
    )
    found = [alert_of_row(r) for r in session.execute(page)]
    more = len(found) > limit
    found = found[:limit]
    if cursor is None and offset == 0 and not more:
        total = len(found)  # the whole list is on this page
    else:
        capped = visible.limit(COUNT_CAP + 1).subquery()
        total = int(session.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one())
    last = found[-1] if more else None
    return AlertPage(
        alerts=found,
        total=min(total, COUNT_CAP),
        total_exact=total <= COUNT_CAP,
        next_cursor=AlertCursor(last.score, last.alert_id).encode() if last else None,
    )


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
