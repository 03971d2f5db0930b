"""``/healthz`` (the process answers), ``/readyz`` (the store is reachable and migrated,
and a model is loaded) and ``/metrics`` (Prometheus text): no key, for load balancers and
scrapers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from serving.deps import ModelsDep, StoreDep
from serving.metrics import CONTENT_TYPE, Metrics, ModelGauge
from serving.readiness import readiness
from serving.schemas import Health, Readiness
from serving.search import alert_counts

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (nothing else is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(store: StoreDep, models: ModelsDep) -> Response:
    """Ready to serve: the store answers, its schema is the latest and a model is loaded
    for the alias (503 otherwise, ``detail`` saying why). The body names the store's
    schema revision and the model served (name, alias, version, run, ``loaded_at``)."""
    body = readiness(store, models)
    status = 200 if body.status == "ready" else 503
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, store: StoreDep, models: ModelsDep) -> Response:
    """Requests by route and status, latency, ingested events, alerts by kind and status,
    the model served and its reloads."""
    registry: Metrics = request.app.state.metrics
    try:
        with store.read() as session:
            counts = alert_counts(session)
    except SQLAlchemyError:  # the store is down: still report the process's own counters
        counts = []
    status = models.status()
    age = None
    if status.loaded_at is not None:
        age = (datetime.now(status.loaded_at.tzinfo) - status.loaded_at).total_seconds()
    gauge = ModelGauge(status.name, status.alias, status.version, age)
    return Response(registry.render(counts, gauge), media_type=CONTENT_TYPE)
