"""``/v1/alerts``: the inbox, one alert's evidence, and the workflow actions."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Query

from serving.alerts import Status, alert_history_of, get_alert
from serving.deps import MAX_OFFSET, AlertWorker, Reader, SessionDep, TransactionDep
from serving.handlers import ApiError
from serving.schemas import (
    AlertEvidence,
    AlertPageOut,
    AlertPublic,
    AlertUpdate,
    HistoryOut,
    error_responses,
)
from serving.search import AlertCursor, AlertFilters, InvalidCursorError, search_alerts
from serving.workflow import transition

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


class HumanAction(StrEnum):
    """What a person may do to an alert (closing and reopening are the scorer's)."""

    ACKNOWLEDGE = "acknowledge"
    CONFIRM = "confirm"
    DISMISS = "dismiss"
    ESCALATE = "escalate"
    REASSIGN = "reassign"


def _in_utc_range(value: datetime) -> bool:
    try:
        value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        return False
    return True


@router.get("", response_model=AlertPageOut, responses=error_responses(401, 403, 422))
def list_alerts(
    user: Reader,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[str | None, Query(max_length=10)] = None,
    status: Annotated[list[Status] | None, Query(description="repeatable")] = None,
    agency: Annotated[str | None, Query(max_length=200)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="opened at or after")] = None,
    until: Annotated[datetime | None, Query(description="opened before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> AlertPageOut:
    """The caller's inbox: alerts they may see, highest score first, with the total
    (counted up to 10,000). Page with ``cursor`` (the previous page's ``next_cursor``):
    it costs the same at any depth, where ``offset`` costs the rows it skips."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, f"{name}: give a UTC offset (e.g. +07:00 or Z)", field=name)
        if value is not None and not _in_utc_range(value):
            raise ApiError(422, f"{name}: {value.isoformat()} is out of range in UTC", field=name)
    filters = AlertFilters(
        kind=kind,
        severity=severity,
        status=tuple(status or ()),
        agency_id=agency,
        jurisdiction=jurisdiction,
        since=since,
        until=until,
    )
    try:
        after = AlertCursor.decode(cursor) if cursor is not None else None
    except InvalidCursorError as exc:
        raise ApiError(422, f"cursor: {exc}", field="cursor") from None
    page = search_alerts(session, user, filters, limit=limit, offset=offset, cursor=after)
    return AlertPageOut(
        items=[AlertPublic.from_alert(a) for a in page.alerts],
        total=page.total,
        total_exact=page.total_exact,
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{alert_id}", response_model=AlertEvidence, responses=error_responses(401, 403, 404, 422)
)
def read_alert(user: Reader, session: SessionDep, alert_id: str) -> AlertEvidence:
    """One alert with its evidence and history; 404 outside the caller's jurisdictions."""
    alert = get_alert(session, user, alert_id)
    history = [HistoryOut.model_validate(h) for h in alert_history_of(session, user, alert_id)]
    return AlertEvidence(
        **AlertPublic.from_alert(alert).model_dump(),
        reasons=alert.reasons,
        pattern=alert.pattern,
        dossiers=alert.dossiers or [],
        history=history,
    )


@router.post(
    "/{alert_id}/{action}",
    response_model=AlertPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def act_on_alert(
    user: AlertWorker,
    session: TransactionDep,
    alert_id: str,
    action: HumanAction,
    update: Annotated[AlertUpdate | None, Body()] = None,
) -> AlertPublic:
    """Acknowledge, confirm, dismiss (with a ``reason``), escalate, or reassign (to an
    ``assignee``) an alert; audited. With ``expected_version``, 409 (and the alert's
    ``current_version``) if someone acted first; 409 too for an action the alert's status
    does not allow."""
    body = update or AlertUpdate()
    for name, text in (("reason", body.reason), ("assignee", body.assignee)):
        if text is not None and "\x00" in text:  # PostgreSQL's text holds no NUL
            raise ApiError(422, f"{name}: NUL characters are not allowed", field=name)
    if action is HumanAction.DISMISS and not (body.reason and body.reason.strip()):
        raise ApiError(422, "dismissing an alert needs a reason", field="reason")
    if action is HumanAction.REASSIGN and not body.assignee:
        raise ApiError(422, "reassigning an alert needs an assignee", field="assignee")
    after = transition(
        session,
        alert_id,
        action.value,
        user,
        expected_version=body.expected_version,
        reason=body.reason,
        assignee=body.assignee,
    )
    return AlertPublic.from_alert(after)
