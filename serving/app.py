"""The HTTP service: ``create_app()`` builds the FastAPI app over the service store.

Nothing happens at import. ``create_app`` takes the settings (default
:func:`giamsat.settings.get_settings`) and a store (default: one over
``settings.database_url``); at start-up the app refuses to serve a database that is not
at the latest schema revision (run ``giamsat db upgrade``), then loads the model bundle
the alias ``GIAMSAT_MODEL_ALIAS`` points at and checks the alias every
``GIAMSAT_MODEL_RELOAD_SECONDS`` (:mod:`serving.models`); it starts without a model, and
says so in ``/readyz``. Run it with ``giamsat serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from giamsat import __version__
from giamsat.settings import Settings, get_settings
from serving import handlers
from serving.db import Store
from serving.live import LiveScoring
from serving.metrics import Metrics
from serving.middleware import RequestContext
from serving.models import ModelHolder, ModelUnavailableError
from serving.readiness import check_schema
from serving.routes import (
    admin,
    alerts,
    audit,
    dashboard,
    dossiers,
    events,
    health,
    public,
    score,
    sla,
    stream,
    subscriptions,
)
from serving.webhooks import RedeliveryError, SubscriptionFieldError

DESCRIPTION = """\
GiamSat's service: event ingestion, dossiers and their risk scores, the alert inbox and
its audited workflow.

**Authentication**: every `/v1` route needs an API key, as `Authorization: Bearer <key>`
or `X-API-Key: <key>` (`giamsat users create` prints one). Inspectors see only their
jurisdictions: anything outside them answers 404, as if it did not exist.

**Errors** are JSON `{"detail": "...", "field": "..."}` (`field` null when the error is
not about one field): 400 malformed JSON, 401 no or bad key, 403 role not allowed,
404 not found (or not yours), 409 stale version or action not allowed in the alert's
status, 413 batch too large, 415 not JSON, 422 invalid field; 503 no model is loaded
(the detail says why, e.g. none registered with the alias yet).
"""


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The app. A store passed in stays the caller's (not disposed at shutdown)."""
    settings = settings or get_settings()
    owned = store is None
    the_store = store if store is not None else Store.from_url(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema(the_store)  # refuse to start on an un-migrated database
        models: ModelHolder = app.state.models
        await models.reload_async()  # no model is not fatal: readiness says why
        timer = asyncio.create_task(models.run()) if models.interval > 0 else None
        if settings.rescore_on_ingest:  # what ingestion marks (and what a crash left)
            app.state.live.start()
        worker = _start_dispatcher(the_store, settings)
        try:
            yield
        finally:
            if worker is not None:
                await anyio.to_thread.run_sync(_stop_dispatcher, *worker)
            await anyio.to_thread.run_sync(app.state.live.stop)
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            if owned:
                the_store.dispose()

    app = FastAPI(
        title="GiamSat",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.metrics = Metrics()
    app.state.models = ModelHolder(settings, app.state.metrics)
    app.state.live = LiveScoring(the_store, settings, app.state.models, app.state.metrics)
    app.state.streams = stream.Streams()
    handlers.install(app)
    app.add_exception_handler(ModelUnavailableError, _model_unavailable)
    app.add_exception_handler(SubscriptionFieldError, _subscription_field)
    app.add_exception_handler(RedeliveryError, _redelivery)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    # the stream before the alerts: /v1/alerts/{alert_id} would take /v1/alerts/stream
    routers = (events, score, dossiers, stream, alerts, sla, audit, admin, health, subscriptions)
    for module in routers:
        app.include_router(module.router)
    for extra in (dashboard.router, public.router, public.receipts):  # issue 8 items 3-5
        app.include_router(extra)
    return app


async def _model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    models: ModelHolder = request.app.state.models
    headers = {"Retry-After": str(max(1, round(models.interval)))} if models.interval else None
    return handlers.error(503, str(exc), headers=headers)


async def _subscription_field(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SubscriptionFieldError)
    return handlers.error(422, str(exc), exc.field)


async def _redelivery(request: Request, exc: Exception) -> JSONResponse:
    return handlers.error(409, str(exc))


def _start_dispatcher(store: Store, settings: Settings) -> tuple[Any, Any, Any] | None:
    """The webhook dispatcher in a thread of this process, when
    ``GIAMSAT_DISPATCHER_IN_SERVE`` says so (``giamsat dispatch`` runs it on its own)."""
    if not settings.dispatcher_in_serve:
        return None
    from serving.dispatcher import Dispatcher, start_in_thread

    dispatcher = Dispatcher.from_settings(store, settings)
    thread, stop = start_in_thread(dispatcher)
    return dispatcher, thread, stop


def _stop_dispatcher(dispatcher: Any, thread: Any, stop: Any) -> None:
    stop.set()
    thread.join()
    dispatcher.close()
