"""``GET /v1/alerts/stream``: alert changes as server-sent events, for consoles.

Each event is an outbox message (the same a webhook delivers): ``id`` is its outbox id,
``event`` its topic (``alert.raise``, ``alert.confirm``...), ``data`` the JSON body a
webhook would get. The stream is scoped like every read: an inspector receives only
their jurisdictions' alerts. A client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` does it by itself) resumes right after that event, missing nothing the
outbox still holds; without one it starts with changes from now on. A comment line
(``: heartbeat``) is sent when nothing happened for ``GIAMSAT_STREAM_HEARTBEAT_SECONDS``,
so proxies keep the connection and a dead client is noticed; a disconnected client's
stream ends at once (its polling stops). A stream ends by itself after
``GIAMSAT_STREAM_MAX_SECONDS`` (an hour): the client reconnects with ``Last-Event-ID``,
and its key and jurisdictions are checked again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from serving.audit import canonical_json
from serving.db import Store
from serving.deps import Reader, SettingsDep, StoreDep
from serving.handlers import ApiError
from serving.schemas import error_responses
from serving.users import User
from serving.webhooks import (
    OutboxMessage,
    alert_changes_among,
    existing_message_ids,
    latest_message_id,
    message_ids_after,
)

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
#: messages read per poll; a full page is followed at once by the next.
PAGE = 200
#: on PostgreSQL an outbox id is taken at insert and visible at commit, so a later id can
#: commit first: a missing id is looked for again at each poll for this long (then it is
#: taken for a rolled-back transaction's), and sent when it shows up, after higher ids.
GAP_SECONDS = 30.0
MAX_GAPS = 1000


class Streams:
    """How many streams are open in this process (``app.state.streams``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.served = 0

    def opened(self) -> None:
        with self._lock:
            self.open += 1
            self.served += 1

    def closed(self) -> None:
        with self._lock:
            self.open -= 1


def _resume_point(header: str | None, query: int | None) -> int | None:
    if header is None or not header.strip():
        return query
    text = header.strip()
    if not text.isdigit() or len(text) > 18:
        raise ApiError(
            422, "Last-Event-ID: give the id of the last event received", field="Last-Event-ID"
        )
    return int(text)


def _event(message: OutboxMessage) -> bytes:
    body = canonical_json(
        {
            "id": message.id,
            "topic": message.topic,
            "jurisdiction": message.jurisdiction,
            "created_at": message.created_at,
            "data": message.payload,
        }
    )
    return f"id: {message.id}\nevent: {message.topic}\ndata: {body}\n\n".encode()


def _read(
    store: Store, user: User, after: int, gaps: list[int]
) -> tuple[list[OutboxMessage], list[int], set[int]]:
    """The caller's messages among the ids after ``after`` and the gaps, every id after
    ``after``, and the gaps that are filled now."""
    with store.read() as session:
        ids = message_ids_after(session, after, limit=PAGE)
        filled = existing_message_ids(session, gaps)
        return alert_changes_among(session, user, [*ids, *filled]), ids, filled


def _latest(store: Store) -> int:
    with store.read() as session:
        return latest_message_id(session)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "an endless stream of alert changes (server-sent events)",
        },
        **error_responses(401, 403, 422),
    },
)
async def stream_alerts(
    request: Request,
    user: Reader,
    store: StoreDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None, Header(description="resume after this event id (sent on reconnection)")
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=10**18, description="resume after this outbox id (for clients that "
              "cannot set Last-Event-ID; the header wins)"),
    ] = None,
) -> StreamingResponse:  # fmt: skip
    """Alert changes the caller may see, as server-sent events (``text/event-stream``),
    from the one after ``Last-Event-ID`` (or ``after``), else from now on."""
    start = _resume_point(last_event_id, after)
    if start is None:
        start = await anyio.to_thread.run_sync(_latest, store)
    streams: Streams = request.app.state.streams
    poll, beat = settings.stream_poll_seconds, settings.stream_heartbeat_seconds
    ends_at = time.monotonic() + settings.stream_max_seconds

    async def events() -> AsyncIterator[bytes]:
        streams.opened()
        position, quiet_since = start, time.monotonic()
        gaps: dict[int, float] = {}  # outbox id not committed yet -> when to give up on it
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:
                found, ids, filled = await anyio.to_thread.run_sync(
                    _read, store, user, position, list(gaps)
                )
                now = time.monotonic()
                for message in found:
                    yield _event(message)
                for number in [*filled, *(g for g, until in gaps.items() if until < now)]:
                    gaps.pop(number, None)
                for number in ids:
                    missing = range(position + 1, number)
                    for gap in missing[:MAX_GAPS]:
                        gaps[gap] = now + GAP_SECONDS
                    position = number
                if found:
                    quiet_since = now
                elif now - quiet_since >= beat:
                    yield b": heartbeat\n\n"
                    quiet_since = now
                if now >= ends_at:  # the client reconnects and is authenticated again
                    yield b": reconnect\n\n"
                    return
                if len(ids) < PAGE:
                    await anyio.sleep(min(poll, ends_at - now))
        finally:  # the client went away (the task is cancelled) or the server stops
            streams.closed()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
