"""Scorecards per agency, procedure or officer, and time series, from the dashboard facts.

Every figure aggregates ``dossier_facts`` (:mod:`serving.facts`) over a period of local
calendar days (``since`` to ``until``, both included, in the service's time zone), within
what the user may see (:func:`serving.users.restrict` on the dossier's jurisdiction):

- dossiers **received** in the period (by their first event) give the intake figures:
  received, the online rate, the online payment rate and digitised records;
- dossiers **closed** in the period (first terminal event: result returned, rejected,
  withdrawn) give the outcome figures: closed, on time as reported and on the honest
  clock, late, median duration / statutory time, supplement requests, waste days,
  satisfaction.

Each is one aggregate query over an index range of the facts (received day, closed day),
grouped by the scorecard's key; the median (PostgreSQL: ``percentile_cont``; SQLite has
none, so the ratios of the period's closed dossiers are read and their median taken in
numpy; the same linear-interpolation median). The formulas are in ``docs/inspector.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from serving.bulk import dialect_of
from serving.errors import StoreError
from serving.tables import alerts, dossier_facts
from serving.users import User, restrict

__all__ = [
    "GROUPS",
    "FactFilters",
    "InvalidPeriodError",
    "Period",
    "Scorecard",
    "SeriesPoint",
    "day_number",
    "scorecards",
    "series",
]

F = dossier_facts.c
GroupBy = Literal["agency", "procedure", "officer", "jurisdiction"]
GROUPS: dict[str, sa.Column[Any]] = {
    "agency": F.agency_id,
    "procedure": F.procedure_code,
    "officer": F.officer_id,
    "jurisdiction": F.jurisdiction,
}
Interval = Literal["day", "week", "month"]
#: the longest period one query may cover (ten years of days).
MAX_PERIOD_DAYS = 3_660
#: a rating at or above this (of 5) counts as satisfied.
SATISFIED_RATING = 4.0


class InvalidPeriodError(StoreError, ValueError):
    """A period that is empty, reversed or too long; ``field`` names the bound."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def day_number(day: date) -> int:
    """``YYYYMMDD`` as the facts store days."""
    return day.year * 10_000 + day.month * 100 + day.day


def _date_of(number: int) -> date:
    return date(number // 10_000, number // 100 % 100, number % 100)


@dataclass(frozen=True)
class Period:
    """Local calendar days ``since`` to ``until``, both included."""

    since: date
    until: date

    def __post_init__(self) -> None:
        if self.since > self.until:
            raise InvalidPeriodError(
                f"since ({self.since}) is after until ({self.until})", field="since"
            )
        if (self.until - self.since).days >= MAX_PERIOD_DAYS:
            raise InvalidPeriodError(
                f"a period covers at most {MAX_PERIOD_DAYS} days", field="until"
            )

    @property
    def days(self) -> tuple[int, int]:
        return day_number(self.since), day_number(self.until)

    def instants(self, tz: str) -> tuple[datetime, datetime]:
        """The period as [start, end) instants in ``tz``."""
        zone = ZoneInfo(tz)
        start = datetime.combine(self.since, time(), zone)
        return start, datetime.combine(self.until + timedelta(days=1), time(), zone)


@dataclass(frozen=True)
class FactFilters:
    """Narrow the dossiers counted (all None: everything the user may see)."""

    agency_id: str | None = None
    procedure_code: str | None = None
    jurisdiction: str | None = None
    officer_id: str | None = None

    def apply(
        self,
        stmt: sa.Select[Any],
        user: User,
        *,
        agency: sa.ColumnElement[Any] = F.agency_id,
        procedure: sa.ColumnElement[Any] = F.procedure_code,
        jurisdiction: sa.ColumnElement[Any] = F.jurisdiction,
    ) -> sa.Select[Any]:
        """``stmt`` kept to these filters and to what ``user`` may see; the columns default
        to the facts' (a query led by the dossiers table passes its own)."""
        for column, value in (
            (agency, self.agency_id),
            (procedure, self.procedure_code),
            (jurisdiction, self.jurisdiction),
            (F.officer_id, self.officer_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        return restrict(stmt, user, jurisdiction)


def _rate(part: float | None, whole: float | None) -> float | None:
    return None if not whole else float(part or 0) / float(whole)


@dataclass
class Scorecard:
    """The figures of one agency, procedure, officer or jurisdiction over a period
    (``key`` None: dossiers without one). Rates are shares in [0, 1], None when nothing
    was counted."""

    key: str | None
    received: int = 0
    received_online: int = 0
    received_channel_known: int = 0
    paid: int = 0
    paid_online: int = 0
    paid_channel_known: int = 0
    digitised: int = 0
    digitised_known: int = 0
    closed: int = 0
    deadline_known: int = 0
    late_honest: int = 0
    late_reported: int = 0
    with_supplements: int = 0
    supplement_requests: int = 0
    waste_days: float = 0.0
    waste_scored: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    satisfied: int = 0
    median_duration_ratio: float | None = None
    #: alerts opened in the period, by kind then status.
    alerts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def on_time_rate_reported(self) -> float | None:
        return _rate(self.deadline_known - self.late_reported, self.deadline_known)

    @property
    def on_time_rate_honest(self) -> float | None:
        return _rate(self.deadline_known - self.late_honest, self.deadline_known)

    @property
    def on_time_gap(self) -> float | None:
        """Reported minus honest on-time rate: how much the reported figure flatters."""
        rep, hon = self.on_time_rate_reported, self.on_time_rate_honest
        return None if rep is None or hon is None else rep - hon

    @property
    def supplement_rate(self) -> float | None:
        return _rate(self.with_supplements, self.closed)

    @property
    def rating_mean(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None

    def service_index(self) -> dict[str, float | None]:
        """The progress indicators of Decision 766/QĐ-TTg computable from the log (shares)."""
        return {
            "on_time_rate": self.on_time_rate_reported,
            "on_time_rate_honest": self.on_time_rate_honest,
            "online_rate": _rate(self.received_online, self.received_channel_known),
            "online_payment_rate": _rate(self.paid_online, self.paid_channel_known),
            "digitised_rate": _rate(self.digitised, self.digitised_known),
            "satisfaction_rate": _rate(self.satisfied, self.ratings),
        }


def _n(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(column), 0)


def _received_stmt(key: sa.ColumnElement[Any], period: Period) -> sa.Select[Any]:
    first, last = period.days
    return (
        sa.select(
            key.label("key"),
            sa.func.count().label("received"),
            _n(F.online).label("received_online"),
            sa.func.count(F.online).label("received_channel_known"),
            _n(F.paid).label("paid"),
            _n(F.paid_online).label("paid_online"),
            sa.func.count(F.paid_online).label("paid_channel_known"),
            _n(F.digitised).label("digitised"),
            sa.func.count(F.digitised).label("digitised_known"),
        )
        .where(F.received_day.between(first, last))
        .group_by(key)
    )


def _closed_stmt(key: sa.ColumnElement[Any], period: Period, *, median: bool) -> sa.Select[Any]:
    """The outcome figures; ``median``: with the median ratio (PostgreSQL only)."""
    first, last = period.days
    columns: list[Any] = [
        key.label("key"),
        sa.func.count().label("closed"),
        sa.func.count(F.late_honest).label("deadline_known"),
        _n(F.late_honest).label("late_honest"),
        _n(F.late_reported).label("late_reported"),
        _n(sa.case((F.supplement_requests > 0, 1), else_=0)).label("with_supplements"),
        _n(F.supplement_requests).label("supplement_requests"),
        _n(F.waste_days).label("waste_days"),
        sa.func.count(F.waste_days).label("waste_scored"),
        sa.func.count(F.rating).label("ratings"),
        _n(F.rating).label("rating_sum"),
        _n(sa.case((F.rating >= SATISFIED_RATING, 1), else_=0)).label("satisfied"),
    ]
    if median:
        middle = sa.func.percentile_cont(0.5).within_group(F.duration_ratio)
        columns.append(middle.label("median_duration_ratio"))
    return sa.select(*columns).where(F.closed_day.between(first, last)).group_by(key)


def _medians(
    session: Session, key: sa.ColumnElement[Any], period: Period, where: Any
) -> dict[str | None, float]:
    """SQLite: the median duration ratio per key, from the ratios themselves."""
    first, last = period.days
    stmt = where(
        sa.select(key, F.duration_ratio).where(
            F.closed_day.between(first, last), F.duration_ratio.is_not(None)
        )
    )
    values: dict[str | None, list[float]] = defaultdict(list)
    for k, ratio in session.execute(stmt):
        values[k].append(ratio)
    return {k: float(np.median(v)) for k, v in values.items()}


def scorecards(
    session: Session,
    user: User,
    by: GroupBy,
    period: Period,
    filters: FactFilters | None = None,
    *,
    tz: str,
    alerts: bool = True,
) -> list[Scorecard]:
    """One scorecard per ``by`` key with any dossier received or closed in the period
    (sorted by key, None last), with the alerts opened in the period unless ``alerts`` is
    false."""
    key = GROUPS[by]
    dialect = dialect_of(session)
    filters = filters or FactFilters()

    def where(stmt: sa.Select[Any]) -> sa.Select[Any]:
        return filters.apply(stmt, user)

    cards: dict[str | None, Scorecard] = {}

    def card(k: str | None) -> Scorecard:
        if k not in cards:
            cards[k] = Scorecard(k)
        return cards[k]

    for row in session.execute(where(_received_stmt(key, period))).mappings():
        _fill(card(row["key"]), row)
    closed = _closed_stmt(key, period, median=dialect == "postgresql")
    for row in session.execute(where(closed)).mappings():
        _fill(card(row["key"]), row)
    if dialect != "postgresql":
        for k, median in _medians(session, key, period, where).items():
            card(k).median_duration_ratio = median
    counts = _alert_counts(session, user, by, period, filters, tz) if alerts else ()
    for k, kind, status, n in counts:
        card(k).alerts.setdefault(kind, {})[status] = n
    return sorted(cards.values(), key=lambda c: (c.key is None, c.key or ""))


def _narrowed(filters: FactFilters) -> bool:
    return any(v is not None for v in vars(filters).values())


def _fill(card: Scorecard, row: RowMapping) -> None:
    for name, value in row.items():
        if name == "key" or value is None:
            continue
        current = getattr(card, name)
        setattr(card, name, type(current)(value) if current is not None else float(value))


def _alert_counts(
    session: Session,
    user: User,
    by: GroupBy,
    period: Period,
    filters: FactFilters,
    tz: str,
) -> Iterable[tuple[str | None, str, str, int]]:
    """``(key, kind, status, n)`` of the alerts opened in the period that the user may see.

    By agency: the alert's agency (dossier and entity alerts alike). Otherwise the
    dossier alerts by their dossier's procedure, officer or jurisdiction, and (by
    officer) the alerts about the officer."""
    start, end = period.instants(tz)
    opened = alerts.c.opened_at.between(start, end - timedelta(microseconds=1))
    a = alerts.c
    if by == "agency" and filters.procedure_code is None and filters.officer_id is None:
        stmt = sa.select(a.agency_id, a.kind, a.status, sa.func.count()).where(opened)
        for column, value in (
            (a.agency_id, filters.agency_id),
            (a.jurisdiction, filters.jurisdiction),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        stmt = restrict(stmt, user, a.jurisdiction).group_by(a.agency_id, a.kind, a.status)
        return [(k, kind, status, int(n)) for k, kind, status, n in session.execute(stmt)]
    key = GROUPS[by]
    joined = sa.join(
        alerts, dossier_facts, sa.and_(a.subject_type == "dossier", a.subject_id == F.dossier_id)
    )
    stmt = sa.select(key, a.kind, a.status, sa.func.count()).select_from(joined).where(opened)
    stmt = filters.apply(stmt, user).group_by(key, a.kind, a.status)
    out = [(k, kind, status, int(n)) for k, kind, status, n in session.execute(stmt)]
    if by == "officer" and not _narrowed(FactFilters(filters.agency_id, filters.procedure_code)):
        own = sa.select(a.subject_id, a.kind, a.status, sa.func.count()).where(
            opened, a.subject_type == "officer"
        )
        if filters.officer_id is not None:
            own = own.where(a.subject_id == filters.officer_id)
        if filters.jurisdiction is not None:
            own = own.where(a.jurisdiction == filters.jurisdiction)
        own = restrict(own, user, a.jurisdiction).group_by(a.subject_id, a.kind, a.status)
        merged: dict[tuple[str | None, str, str], int] = defaultdict(int)
        for k, kind, status, n in [*out, *session.execute(own)]:
            merged[(k, kind, status)] += int(n)
        out = [(k, kind, status, n) for (k, kind, status), n in merged.items()]
    return out


# --- time series --------------------------------------------------------------------------


@dataclass
class SeriesPoint:
    """One day, week (from Monday) or month of a time series."""

    start: date
    card: Scorecard


def _bucket(day: date, interval: Interval) -> date:
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def series(
    session: Session,
    user: User,
    period: Period,
    interval: Interval,
    filters: FactFilters | None = None,
) -> list[SeriesPoint]:
    """The additive scorecard figures (counts, rates, waste days; no median) of the
    dossiers the filters select, per day, week or month of the period, oldest first; a
    bucket with nothing received or closed is left out."""
    filters = filters or FactFilters()
    points: dict[date, Scorecard] = {}
    received = _received_stmt(F.received_day, period)
    closed = _closed_stmt(F.closed_day, period, median=False)
    for stmt in (received, closed):
        for row in session.execute(filters.apply(stmt, user)).mappings():
            start = _bucket(_date_of(int(row["key"])), interval)
            card = points.setdefault(start, Scorecard(start.isoformat()))
            _add(card, row)
    return [SeriesPoint(k, points[k]) for k in sorted(points)]


def _add(card: Scorecard, row: RowMapping) -> None:
    for name, value in row.items():
        if name == "key" or value is None:
            continue
        current = getattr(card, name)
        setattr(card, name, current + type(current)(value))
