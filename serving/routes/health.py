"""``/healthz`` (the process answers), ``/readyz`` (the store is reachable and migrated)
and ``/metrics`` (Prometheus text): no key, for load balancers and scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from serving.deps import StoreDep
from serving.metrics import CONTENT_TYPE, Metrics
from serving.readiness import schema_problem
from serving.schemas import Health
from serving.search import alert_counts

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (nothing else is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(store: StoreDep) -> Response:
    """Ready to serve: the store answers and its schema is the latest (503 otherwise)."""
    revision, problem = schema_problem(store)
    if problem is not None:
        body = Health(status="not ready", detail=problem, schema_revision=revision)
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Health(status="ready", schema_revision=revision).model_dump())


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, store: StoreDep) -> Response:
    """Requests by route and status, latency, ingested events, alerts by kind and status."""
    registry: Metrics = request.app.state.metrics
    try:
        with store.read() as session:
            counts = alert_counts(session)
    except SQLAlchemyError:  # the store is down: still report the process's own counters
        counts = []
    return Response(registry.render(counts), media_type=CONTENT_TYPE)
