"""The HTTP service: ``create_app()`` builds the FastAPI app over the service store.

Nothing happens at import. ``create_app`` takes the settings (default
:func:`giamsat.settings.get_settings`) and a store (default: one over
``settings.database_url``); at start-up the app refuses to serve a database that is not
at the latest schema revision (run ``giamsat db upgrade``). Run it with ``giamsat serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from giamsat import __version__
from giamsat.settings import Settings, get_settings
from serving import handlers
from serving.db import Store
from serving.metrics import Metrics
from serving.middleware import RequestContext
from serving.readiness import check_schema
from serving.routes import alerts, audit, dossiers, events, health, sla

DESCRIPTION = """\
GiamSat's service: event ingestion, dossiers and their risk scores, the alert inbox and
its audited workflow.

**Authentication**: every `/v1` route needs an API key, as `Authorization: Bearer <key>`
or `X-API-Key: <key>` (`giamsat users create` prints one). Inspectors see only their
jurisdictions: anything outside them answers 404, as if it did not exist.

**Errors** are JSON `{"detail": "...", "field": "..."}` (`field` null when the error is
not about one field): 400 malformed JSON, 401 no or bad key, 403 role not allowed,
404 not found (or not yours), 409 stale version or action not allowed in the alert's
status, 413 batch too large, 415 not JSON, 422 invalid field.
"""


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The app. A store passed in stays the caller's (not disposed at shutdown)."""
    settings = settings or get_settings()
    owned = store is None
    the_store = store if store is not None else Store.from_url(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema(the_store)  # refuse to start on an un-migrated database
        yield
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
    handlers.install(app)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    for module in (events, dossiers, alerts, sla, audit, health):
        app.include_router(module.router)
    return app
