"""``POST /v1/score``: one dossier's scores and reasons from the events sent, stored nowhere;
``GET /v1/admin/rescoring``: how far the live re-scoring after ingestion has got."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from features import schema as s
from serving.deps import Reader
from serving.errors import InvalidEventError
from serving.live import LiveScoring
from serving.routes.events import EventBatch
from serving.schemas import EVENT_EXAMPLE, EventIn, error_responses
from serving.store import clean_event

router = APIRouter(prefix="/v1", tags=["scoring"])

DESCRIPTION = """\
Scores one dossier from the events in the body (a JSON array, the same events as
`POST /v1/events` takes, all of one dossier) **without storing them**: what a processing
system asks before it acts, or an analyst's what-if. The features and scores are those the
batch scorer (`giamsat score`) gives the same events, computed by the champion model
online. Recent outcomes and backlogs of the province (what the dossier is compared with)
come from the store.

- `as_of` (ISO 8601 with an offset): the time to score as of; events after it are not
  read. Default: now, or the latest event received when the service replays past events
  (`GIAMSAT_SCORING_CLOCK=events`).
- `features=true` adds the values of every feature the models read.
- 422 names the event (`index`) and `field` at fault; 503 while no model is loaded.
"""


class ReasonOut(BaseModel):
    """One feature behind the delay risk: its value, the norm it is compared with (the
    procedure's median), its weight in the score and the sentence an inspector reads."""

    feature: str
    value: float | str | None
    norm: float | None
    contribution: float
    text: str


class ExplanationOut(BaseModel):
    delay: list[ReasonOut] = Field(description="the strongest reasons for the late risk")
    waste: str = Field(description="the wasted days and touches, and what they came from")
    integrity: str = Field(description="the detectors that fired, with their evidence")
    integrity_pattern: str | None = Field(description="the strongest integrity detector")


class ScoreOut(BaseModel):
    """The dossier's row of ``scores.csv`` with its explanation."""

    model_config = ConfigDict(protected_namespaces=())

    dossier_id: str
    as_of: datetime
    model_version: str
    status: str = Field(description="open or closed (a terminal step reached)")
    procedure_code: str | None
    first_agency: str | None
    jurisdiction: str | None
    delay_risk: float | None = Field(description="probability of finishing late (open only)")
    remaining_days_p50: float | None
    remaining_days_p90: float | None
    remaining_honest_days: float | None = Field(description="working days to the deadline")
    waste_days: float | None
    waste_touches: float | None
    waste_score: float | None
    integrity_score: float | None
    risk_score: float | None
    alert: bool
    alert_kinds: list[str]
    reasons: str
    explanation: ExplanationOut
    features: dict[str, float | str | None] | None = None


_SCORE_OUT = TypeAdapter(ScoreOut)


class RescoringOut(BaseModel):
    pending: int = Field(description="dossiers waiting for re-scoring")
    batches: int
    dossiers: int = Field(description="dossiers re-scored since start-up")
    raised: int
    closed: int
    failed: int
    last_as_of: datetime | None
    last_lag_seconds: float | None = Field(
        description="from the oldest change in the last batch to its scores being written"
    )
    last_error: str | None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _plain(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return float(value)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    return str(value)


def _events(batch: list[Any], tz: str = s.DEFAULT_TZ) -> list[dict[str, Any]]:
    """The body's events, checked as ingestion checks them, in time order, their times in
    ``tz`` (the zone the batch scorer reads stored events in: hours and weekdays are
    local)."""
    zone = ZoneInfo(tz)
    if not batch:
        raise InvalidEventError("send the dossier's events (none given)", index=0, field="*",
                                event_id=None)  # fmt: skip
    rows = []
    for index, record in enumerate(batch):
        if not isinstance(record, dict):
            raise InvalidEventError(f"expected a mapping of fields, got {type(record).__name__}",
                                    index=index, field="*", event_id=None)  # fmt: skip
        row = clean_event(index, record)
        extra = row.pop("attributes", None) or {}
        row.update({k: v for k, v in extra.items() if k not in row})
        if row[s.SEQ] is None:
            row[s.SEQ] = 0
        for column in s.TIME_COLUMNS:
            if row[column] is not None:
                row[column] = row[column].astimezone(zone)
        rows.append(row)
    first = rows[0][s.DOSSIER_ID]
    for index, row in enumerate(rows):
        if row[s.DOSSIER_ID] != first:
            raise InvalidEventError(
                f"all events must be of one dossier: {first!r}, then {row[s.DOSSIER_ID]!r}",
                index=index, field=s.DOSSIER_ID, event_id=row[s.EVENT_ID],
            )  # fmt: skip
    rows.sort(key=lambda r: (r[s.TIMESTAMP], r[s.SEQ], r[s.EVENT_ID]))
    return rows


@router.post(
    "/score",
    response_model=ScoreOut,
    response_model_exclude_none=False,
    summary="Score one dossier from its events (nothing stored)",
    description=DESCRIPTION,
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": EventIn.model_json_schema()},
                    "examples": {"one event": {"value": [EVENT_EXAMPLE]}},
                }
            },
        }
    },
)
async def post_score(
    request: Request,
    user: Reader,
    batch: EventBatch,
    as_of: Annotated[
        datetime | None, Query(description="score as of this time (ISO 8601 with offset)")
    ] = None,
    features: Annotated[bool, Query(description="add every feature's value")] = False,
) -> Response:
    if as_of is not None and (as_of.tzinfo is None or as_of.utcoffset() is None):
        raise InvalidEventError("as_of needs a UTC offset", index=0, field="as_of",
                                event_id=None)  # fmt: skip
    live: LiveScoring = request.app.state.live
    tz = request.app.state.settings.timezone
    # one hand-off to a worker thread for all of it: while one request is in LightGBM
    # (which releases the GIL), the loop and the other threads go on
    body = await anyio.to_thread.run_sync(_score, live, batch, tz, as_of, features)
    return Response(body, media_type="application/json")


def _score(
    live: LiveScoring, batch: list[Any], tz: str, as_of: datetime | None, features: bool
) -> bytes:
    """The answer to ``POST /v1/score``, as JSON (checked against :class:`ScoreOut`)."""
    model, state = live.state()
    rows = _events(batch, tz)
    stamp = live.as_of(rows[-1][s.TIMESTAMP]) if as_of is None else as_of
    with state.lock:  # the worker changes the context; only the features read it
        feats = state.scorer.features(rows, stamp, state.context)
    result = state.scorer.scores_of([feats])[0]
    body: dict[str, Any] = {c: _number(getattr(result, c)) for c in _NUMBERS}
    body.update(
        dossier_id=result.dossier_id,
        as_of=stamp,
        model_version=model.version,
        status=result.status,
        procedure_code=result.procedure_code,
        first_agency=result.first_agency,
        jurisdiction=result.jurisdiction,
        alert=bool(result.alert),
        alert_kinds=[k for k in result.alert_kinds.split("+") if k],
        reasons=result.reasons,
        explanation={
            "delay": [r.as_dict() for r in result.delay_reasons],
            "waste": result.waste_reasons,
            "integrity": result.integrity_reasons,
            "integrity_pattern": result.integrity_pattern or None,
        },
        features=None
        if not features
        else {k: _plain(v) for k, v in (feats.open or feats.closed).items() if k != "started_at"},
    )
    # what FastAPI's response_model would do, without its second thread hand-off
    return _SCORE_OUT.dump_json(_SCORE_OUT.validate_python(body))


_NUMBERS = (
    "delay_risk",
    "remaining_days_p50",
    "remaining_days_p90",
    "remaining_honest_days",
    "waste_days",
    "waste_touches",
    "waste_score",
    "integrity_score",
    "risk_score",
)


@router.get(
    "/admin/rescoring",
    response_model=RescoringOut,
    summary="Progress of the live re-scoring after ingestion",
    responses=error_responses(401, 403),
)
def get_rescoring(request: Request, user: Reader) -> RescoringOut:
    live: LiveScoring = request.app.state.live
    p = live.progress
    return RescoringOut(
        pending=live.pending(),
        batches=p.batches,
        dossiers=p.dossiers,
        raised=p.raised,
        closed=p.closed,
        failed=p.failed,
        last_as_of=p.last_as_of,
        last_lag_seconds=p.last_lag_seconds,
        last_error=p.last_error,
    )
