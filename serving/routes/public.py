"""``/v1/public``: what anyone may ask without a key (rate-limited per client address, no
personal data): a dossier's status by its code and receipt check value, and agencies'
on-time figures. ``/v1/receipts/{dossier_id}`` gives a processing system the check value
to print on the receipt."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.exceptions import HTTPException

from serving.deps import IngestUser, SessionDep, SettingsDep
from serving.handlers import ApiError
from serving.routes.dashboard import period_of
from serving.schemas import (
    PublicAgenciesOut,
    PublicAgencyOut,
    PublicDossierOut,
    ReceiptOut,
    error_responses,
)
from serving.scorecards import FactFilters, Scorecard, scorecards
from serving.transparency import (
    RateLimiter,
    ReceiptUnavailableError,
    check_value,
    format_check,
    lookup,
    receipt_key,
)
from serving.users import SYSTEM

#: the public figures' period when none is given: the last 365 days.
PUBLIC_DAYS = 365


def limiter_of(request: Request) -> RateLimiter:
    """The app's limiter (made on first use from the settings)."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "public_limiter", None)
    if limiter is None:
        settings = state.settings
        limiter = RateLimiter(settings.public_rate_per_minute, settings.public_rate_burst)
        state.public_limiter = limiter
    return limiter


def client_address(request: Request, trust_forwarded: bool) -> str:
    """The client's address: the socket's, or (behind a trusted proxy) the first
    X-Forwarded-For entry."""
    if trust_forwarded:
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:100]
    return request.client.host if request.client is not None else "unknown"


async def rate_limited(request: Request) -> None:
    """429 with Retry-After once the client's bucket is empty."""
    settings = request.app.state.settings
    wait = limiter_of(request).take(client_address(request, settings.public_trust_forwarded))
    if wait is not None:
        after = RateLimiter.retry_after(wait)
        raise HTTPException(
            429,
            f"too many requests from this address (at most {settings.public_rate_per_minute:g} "
            f"a minute); retry in {after} s",
            headers={"Retry-After": after},
        )


router = APIRouter(prefix="/v1/public", tags=["public"], dependencies=[Depends(rate_limited)])
receipts = APIRouter(prefix="/v1/receipts", tags=["public"])

Code = Annotated[str, Path(min_length=1, max_length=200, description="the dossier's code")]


@router.get(
    "/dossiers/{dossier_id}",
    response_model=PublicDossierOut,
    responses=error_responses(404, 422, 429, 503),
)
def public_dossier(
    session: SessionDep,
    settings: SettingsDep,
    dossier_id: Code,
    check: Annotated[
        str, Query(min_length=1, max_length=64, description="the check value on the receipt")
    ],
) -> PublicDossierOut:
    """A dossier's stage, deadline, forecast end and outcome, given its code and the check
    value printed on its receipt. A wrong check value and an unknown code both answer 404."""
    if "\x00" in dossier_id or "\x00" in check:
        raise ApiError(422, "NUL characters are not allowed", field="check")
    try:
        found = lookup(session, settings, dossier_id, check)
    except ReceiptUnavailableError as exc:
        raise ApiError(503, str(exc)) from None
    return PublicDossierOut(**found)


def _public(card: Scorecard) -> PublicAgencyOut:
    return PublicAgencyOut(
        agency_id=card.key,
        received=card.received,
        closed=card.closed,
        on_time_rate_reported=card.on_time_rate_reported,
        on_time_rate_honest=card.on_time_rate_honest,
        late_honest=card.late_honest,
        late_reported=card.late_reported,
        median_duration_ratio=card.median_duration_ratio,
        online_rate=card.service_index()["online_rate"],
    )


Since = Annotated[date | None, Query(description="first local day (default: a year ago)")]
Until = Annotated[date | None, Query(description="last local day, included (default: today)")]


@router.get("/agencies", response_model=PublicAgenciesOut, responses=error_responses(422, 429))
def public_agencies(
    session: SessionDep, settings: SettingsDep, since: Since = None, until: Until = None
) -> PublicAgenciesOut:
    """Every agency's on-time figures over the period (by receiving agency)."""
    period = period_of(since, until, settings.timezone, PUBLIC_DAYS)
    cards = scorecards(session, SYSTEM, "agency", period, tz=settings.timezone, alerts=False)
    return PublicAgenciesOut(
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        items=[_public(c) for c in cards if c.key is not None],
    )


@router.get(
    "/agencies/{agency_id}",
    response_model=PublicAgencyOut,
    responses=error_responses(404, 422, 429),
)
def public_agency(
    session: SessionDep,
    settings: SettingsDep,
    agency_id: Annotated[str, Path(min_length=1, max_length=200)],
    since: Since = None,
    until: Until = None,
) -> PublicAgencyOut:
    """One agency's on-time figures over the period; 404 if it received and closed nothing."""
    if "\x00" in agency_id:
        raise ApiError(422, "agency_id: NUL characters are not allowed", field="agency_id")
    period = period_of(since, until, settings.timezone, PUBLIC_DAYS)
    cards = scorecards(
        session, SYSTEM, "agency", period, FactFilters(agency_id=agency_id),
        tz=settings.timezone, alerts=False,
    )  # fmt: skip
    if not cards:
        raise ApiError(404, f"no dossier of agency {agency_id!r} in the period")
    return _public(cards[0])


@receipts.get(
    "/{dossier_id}", response_model=ReceiptOut, responses=error_responses(401, 403, 422, 503)
)
def receipt_check(user: IngestUser, settings: SettingsDep, dossier_id: Code) -> ReceiptOut:
    """The check value to print on a dossier's receipt (processing systems, admins): it
    depends only on the code, so it can be printed before the dossier's events arrive."""
    try:
        key = receipt_key(settings)
    except ReceiptUnavailableError as exc:
        raise ApiError(503, str(exc)) from None
    value = check_value(key, dossier_id, settings.receipt_check_length)
    return ReceiptOut(dossier_id=dossier_id, check=value, printed=format_check(value))
