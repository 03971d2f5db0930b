"""``/v1/dashboard``: dossiers by risk (a page or CSV), scorecards per agency, procedure,
officer or jurisdiction, time series, and the transfer graph (dashboards, analysts,
admins; inspectors within their jurisdictions). The figures are defined in
:mod:`serving.scorecards` and ``docs/inspector.md``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from serving.dashboard import DossierQuery, csv_rows, search_risk, transfer_graph
from serving.deps import MAX_OFFSET, Reader, SessionDep, SettingsDep, StoreDep
from serving.handlers import ApiError
from serving.schemas import (
    RiskDossierOut,
    RiskPageOut,
    ScorecardOut,
    ScorecardsOut,
    SeriesOut,
    SeriesPointOut,
    ServiceIndexOut,
    TransferEdgeOut,
    TransferGraphOut,
    TransferNodeOut,
    error_responses,
)
from serving.scorecards import FactFilters, InvalidPeriodError, Period, scorecards, series

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

#: the period when none is given: the 30 days up to today.
DEFAULT_DAYS = 30
Id = Annotated[str | None, Query(max_length=200)]
Since = Annotated[date | None, Query(description="first local day (default: 30 days ago)")]
Until = Annotated[date | None, Query(description="last local day, included (default: today)")]
Score = Annotated[float | None, Query(ge=0, le=1)]


def period_of(since: date | None, until: date | None, tz: str, days: int = DEFAULT_DAYS) -> Period:
    """The period asked for (422 naming the bound when it cannot be one)."""
    last = until or datetime.now(ZoneInfo(tz)).date()
    first = since or last - timedelta(days=days - 1)
    try:
        return Period(first, last)
    except InvalidPeriodError as exc:
        raise ApiError(422, f"{exc.field}: {exc}", field=exc.field) from None


def _filters(agency: str | None, procedure: str | None, jurisdiction: str | None,
             officer: str | None = None) -> FactFilters:  # fmt: skip
    return FactFilters(agency, procedure, jurisdiction, officer)


ScoreName = Annotated[
    Literal["risk", "delay", "waste", "integrity"], Query(description="the score to rank by")
]
Status = Annotated[Literal["open", "closed"] | None, Query()]


async def risk_query(
    settings: SettingsDep,
    score: ScoreName = "risk",
    min_score: Score = None,
    max_score: Score = None,
    since: Annotated[date | None, Query(description="received on or after (local day)")] = None,
    until: Annotated[date | None, Query(description="received on or before (local day)")] = None,
    status: Status = None,
    agency: Id = None,
    procedure: Id = None,
    jurisdiction: Id = None,
    officer: Id = None,
) -> DossierQuery:
    """The risk list's filters, shared by its page and its CSV export."""
    if min_score is not None and max_score is not None and min_score > max_score:
        raise ApiError(422, "min_score: above max_score", field="min_score")
    period = None if since is None and until is None else period_of(since, until, settings.timezone)
    filters = _filters(agency, procedure, jurisdiction, officer)
    return DossierQuery(score, min_score, max_score, period, status, filters)


RiskQuery = Annotated[DossierQuery, Depends(risk_query)]


@router.get("/dossiers", response_model=RiskPageOut, responses=error_responses(401, 403, 422))
def risk_dossiers(
    user: Reader,
    session: SessionDep,
    query: RiskQuery,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> RiskPageOut:
    """Dossiers by a score (highest first, unscored last), filtered by score range,
    reception period, status, agency, procedure, jurisdiction and officer."""
    rows, total, exact = search_risk(session, user, query, limit=limit, offset=offset)
    items = [RiskDossierOut(**r) for r in rows]
    return RiskPageOut(items=items, total=total, total_exact=exact, limit=limit, offset=offset)


@router.get(
    "/dossiers.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 422)},
)
def risk_dossiers_csv(user: Reader, store: StoreDep, query: RiskQuery) -> StreamingResponse:
    """Every dossier the same filters select, as CSV (UTF-8, a header line, ids in order;
    times ISO 8601 in UTC; flags 0/1; empty = unknown), streamed."""
    headers = {"Content-Disposition": 'attachment; filename="giamsat-dossiers.csv"'}
    return StreamingResponse(
        csv_rows(store, user, query), media_type="text/csv; charset=utf-8", headers=headers
    )


@router.get("/scorecards", response_model=ScorecardsOut, responses=error_responses(401, 403, 422))
def read_scorecards(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    by: Annotated[Literal["agency", "procedure", "officer", "jurisdiction"], Query()] = "agency",
    since: Since = None,
    until: Until = None,
    agency: Id = None,
    procedure: Id = None,
    jurisdiction: Id = None,
    officer: Id = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ScorecardsOut:
    """One scorecard per agency (receiving agency), procedure, main officer or
    jurisdiction with dossiers received or closed in the period, by key; the service-index
    figures of Decision 766/QĐ-TTg on each."""
    period = period_of(since, until, settings.timezone)
    filters = _filters(agency, procedure, jurisdiction, officer)
    cards = scorecards(session, user, by, period, filters, tz=settings.timezone)
    page = cards[offset : offset + limit]
    return ScorecardsOut(
        by=by,
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        total=len(cards),
        items=[ScorecardOut.of(c) for c in page],
    )


@router.get("/series", response_model=SeriesOut, responses=error_responses(401, 403, 422))
def read_series(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
    since: Since = None,
    until: Until = None,
    agency: Id = None,
    procedure: Id = None,
    jurisdiction: Id = None,
    officer: Id = None,
) -> SeriesOut:
    """The scorecard's additive figures per day, week (from Monday) or month: received by
    the day received, the rest by the day closed; buckets with nothing are left out."""
    period = period_of(since, until, settings.timezone)
    filters = _filters(agency, procedure, jurisdiction, officer)
    points = series(session, user, period, interval, filters)
    return SeriesOut(
        interval=interval,
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        points=[
            SeriesPointOut(
                start=p.start.isoformat(),
                received=p.card.received,
                closed=p.card.closed,
                on_time_rate_reported=p.card.on_time_rate_reported,
                on_time_rate_honest=p.card.on_time_rate_honest,
                late_honest=p.card.late_honest,
                late_reported=p.card.late_reported,
                waste_days=p.card.waste_days,
                supplement_rate=p.card.supplement_rate,
                rating_mean=p.card.rating_mean,
                service_index=ServiceIndexOut(**p.card.service_index()),
            )
            for p in points
        ],
    )


@router.get("/transfers", response_model=TransferGraphOut, responses=error_responses(401, 403, 422))
def read_transfers(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    since: Since = None,
    until: Until = None,
    agency: Annotated[
        str | None, Query(max_length=200, description="edges into or out of it")
    ] = None,  # fmt: skip
    procedure: Id = None,
    jurisdiction: Id = None,
    min_transfers: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> TransferGraphOut:
    """Handovers between agencies made in the period: nodes (agencies: sent, received,
    mean holding time) and directed edges (volume, still held, holding times in working
    days)."""
    period = period_of(since, until, settings.timezone)
    filters = _filters(agency, procedure, jurisdiction)
    graph = transfer_graph(session, user, period, filters, min_transfers=min_transfers)
    return TransferGraphOut(
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        nodes=[TransferNodeOut(**n) for n in graph.nodes],
        edges=[TransferEdgeOut(**e) for e in graph.edges],
    )
