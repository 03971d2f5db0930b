"""Every error as a JSON ``{"detail": ..., "field": ...}`` with the status its cause
deserves: each store error maps to one status, request errors name the field.

| cause | status |
| --- | --- |
| no, malformed, unknown, revoked key; inactive user (``InvalidKeyError``) | 401 |
| role not allowed (``PermissionDeniedError``) | 403 |
| absent, or outside the user's jurisdictions (``NotFoundError``): not told apart | 404 |
| stale ``expected_version`` (``AlertConflictError``), with ``current_version`` | 409 |
| action the alert's status does not allow (``AlertTransitionError``) | 409 |
| invalid event (``InvalidEventError``: ``index``, ``field``, ``event_id``) | 422 |
| invalid query, path or body field (FastAPI validation) | 422 |
| malformed JSON | 400 |
| batch too large | 413 |
| body not JSON | 415 |
| the database busy (SQLite locked past its timeout) or unreachable | 503, ``Retry-After`` |

A 500 stays what it is (a bug), logged with the request id; bad input never gets one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.schema import EventSchemaError
from serving.alerts import get_alert
from serving.db import Store
from serving.errors import (
    AlertConflictError,
    AlertTransitionError,
    InvalidAlertError,
    InvalidEventError,
    InvalidKeyError,
    InvalidSubscriptionError,
    InvalidUserError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from serving.middleware import request_id_of
from serving.users import SYSTEM

log = logging.getLogger("giamsat.http")


class ApiError(StarletteHTTPException):
    """An error a route raises itself (413, 415, 400), naming the field where one is."""

    def __init__(self, status_code: int, detail: str, *, field: str | None = None) -> None:
        super().__init__(status_code, detail)
        self.field = field


def error(
    status: int,
    detail: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field, **extra}, status, headers=headers)


def _loc_field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if not problems:
        return error(422, "invalid request")
    first = problems[0]
    field = _loc_field(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return error(400, f"malformed JSON: {first.get('msg', '')}".strip(), "body")
    detail = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error(422, detail, field, errors=len(problems))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    return error(exc.status_code, str(exc.detail), getattr(exc, "field", None), headers)


async def _invalid_event(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidEventError)
    return error(422, str(exc), exc.field, index=exc.index, event_id=exc.event_id)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlertConflictError)
    store: Store = request.app.state.store
    try:
        with store.read() as session:
            current: int | None = get_alert(session, SYSTEM, exc.alert_id).version
    except NotFoundError:
        current = None
    return error(
        409,
        str(exc),
        "expected_version",
        alert_id=exc.alert_id,
        expected_version=exc.expected_version,
        current_version=current,
    )


def _status(status: int, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return error(status, str(exc), field, headers)

    return handle


async def _operational(request: Request, exc: Exception) -> JSONResponse:
    """The database is busy or unreachable (a state of the service, not of the request):
    503 and a retry, logged; any other database error is a bug."""
    text = str(getattr(exc, "orig", exc)).lower()
    transient = ("database is locked", "database is busy", "could not connect",
                 "connection refused", "server closed the connection", "timeout")  # fmt: skip
    if not any(word in text for word in transient):
        return await _bug(request, exc)
    log.warning("database unavailable", extra={"request_id": request_id_of(request.scope),
                                                "error": text[:200]})  # fmt: skip
    return error(503, "the database is busy or unreachable: retry shortly", None,
                 {"Retry-After": "1"})  # fmt: skip


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_of(request.scope)
    log.exception("unhandled error", extra={"request_id": request_id})
    return error(500, f"internal error (request id {request_id})")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(InvalidEventError, _invalid_event)
    app.add_exception_handler(AlertConflictError, _conflict)
    app.add_exception_handler(InvalidKeyError, _status(401, headers={"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(PermissionDeniedError, _status(403))
    app.add_exception_handler(NotFoundError, _status(404))
    app.add_exception_handler(AlertTransitionError, _status(409))
    for invalid in (InvalidUserError, InvalidAlertError, InvalidSubscriptionError):
        app.add_exception_handler(invalid, _status(422))
    app.add_exception_handler(EventSchemaError, _status(422))
    app.add_exception_handler(StoreError, _status(400))
    app.add_exception_handler(OperationalError, _operational)
    app.add_exception_handler(Exception, _bug)
