"""``POST /v1/events``: live event ingestion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request

from features.pseudonym import is_pseudonym, pseudonym
from features.schema import APPLICANT_ID, SUBMITTER_ID
from giamsat.settings import Settings
from serving.deps import IngestUser, SettingsDep, TransactionDep
from serving.errors import InvalidEventError
from serving.handlers import ApiError
from serving.schemas import EVENT_EXAMPLE, EventIn, IngestOut, error_responses
from serving.store import add_events

router = APIRouter(prefix="/v1", tags=["events"])
_UNSEEN: Any = object()
#: bytes one event may take on average before a batch is refused unread (413).
BYTES_PER_EVENT = 8192

DESCRIPTION = """\
A JSON array of canonical events (at most `max_batch_events`, 500 by default).

- **Atomic per batch**: every event is checked before anything is written; one invalid
  event rejects the whole batch (422, naming its `index`, `field` and `event_id`) and
  nothing of it is stored.
- **Idempotent on `event_id`**: events already stored are skipped and counted as
  `duplicate`, so a batch can be re-sent after a timeout without creating duplicates.
- `applicant_id` and `submitter_id` are pseudonymised (keyed hash) before storage.
- 413 for a batch over the limit, 415 for a body that is not `application/json`, 400 for
  malformed JSON.
"""


def _pseudonym_of(raw: str, key: bytes, key_id: str) -> str | None:
    if not raw:
        return None
    return raw if is_pseudonym(raw) else pseudonym(raw, key, key_id)


def _pseudonymised(batch: list[Any], settings: Settings) -> list[Any]:
    """``batch`` (parsed from this request's body, so changed in place) with applicants
    and submitters pseudonymised, each distinct value hashed once (a dossier's events
    repeat its applicant)."""
    key = settings.pseudonym_key.get_secret_value().encode()
    key_id = settings.pseudonym_key_id
    done: dict[str, str | None] = {}
    for record in batch:
        if not isinstance(record, dict):
            continue
        for field in (APPLICANT_ID, SUBMITTER_ID):
            value = record.get(field)
            if isinstance(value, str):
                out = done.get(value, _UNSEEN)
                if out is _UNSEEN:
                    out = done[value] = _pseudonym_of(value.strip(), key, key_id)
                record[field] = out
    return batch


async def read_batch(request: Request, settings: SettingsDep) -> list[Any]:
    """The request's events, pseudonymised; after the key is checked (a dependency declared
    after the user's), so a caller without a key learns nothing from the body's fate."""
    limit = settings.max_batch_events
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(415, f"send the events as application/json, not {kind or 'nothing'}")
    most = limit * BYTES_PER_EVENT
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > most:
        raise ApiError(413, f"body over {most} bytes: send at most {limit} events per request")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise ApiError(413, f"body over {most} bytes: send at most {limit} events per request")
    try:
        batch = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}", field="body") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply", field="body") from None
    if not isinstance(batch, list):
        raise ApiError(422, "expected a JSON array of events", field="body")
    if len(batch) > limit:
        raise ApiError(413, f"{len(batch)} events: send at most {limit} per request")
    if b"\\u" in body:  # only escapes can carry a NUL or a lone surrogate into a string
        _refuse_unstorable_text(batch)
    return _pseudonymised(batch, settings)


def _unstorable(value: Any) -> str | None:
    """Why ``value`` (or a string within it) cannot be stored as text, if it cannot:
    PostgreSQL's text holds no NUL, and no encoding holds a lone surrogate."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = _unstorable(key) or _unstorable(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable(item)
            if problem:
                return problem
    return None


def _refuse_unstorable_text(batch: list[Any]) -> None:
    """422 naming the first event, and its field, with text that cannot be stored."""
    for index, record in enumerate(batch):
        if not isinstance(record, Mapping):
            continue
        for key, value in record.items():
            problem = _unstorable(key) or _unstorable(value)
            if problem:
                # neither the key nor the id may go into the answer if it is the bad text
                field = "*" if _unstorable(key) else key
                event_id = record.get("event_id")
                if not isinstance(event_id, str) or _unstorable(event_id):
                    event_id = None
                raise InvalidEventError(problem, index=index, field=field, event_id=event_id)


EventBatch = Annotated[list[Any], Depends(read_batch)]


@router.post(
    "/events",
    response_model=IngestOut,
    summary="Ingest a batch of events",
    description=DESCRIPTION,
    responses=error_responses(400, 401, 403, 413, 415, 422),
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
def post_events(
    request: Request,
    user: IngestUser,
    batch: EventBatch,
    session: TransactionDep,
    background: BackgroundTasks,
) -> IngestOut:
    result = add_events(session, batch)
    request.app.state.metrics.ingested(result.new, result.duplicate)
    if result.new:  # after the commit (background tasks run once the answer is sent)
        background.add_task(request.app.state.live.wake)
    return IngestOut(new=result.new, duplicate=result.duplicate)
