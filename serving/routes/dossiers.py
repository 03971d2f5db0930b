"""``GET /v1/dossiers`` and ``GET /v1/dossiers/{dossier_id}``: dossiers, their current
scores and reasons, and their events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import MAX_OFFSET, DossierReader, Reader, SessionDep
from serving.schemas import DossierPublic, DossierSummary, EventOut, Page, error_responses
from serving.search import search_dossiers
from serving.store import dossier_events, get_dossier

router = APIRouter(prefix="/v1/dossiers", tags=["dossiers"])


@router.get("", response_model=Page[DossierSummary], responses=error_responses(401, 403, 422))
def list_dossiers(
    user: Reader,
    session: SessionDep,
    min_risk: Annotated[float | None, Query(ge=0, le=1)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[DossierSummary]:
    """The dossiers the caller may see, riskiest first (unscored last)."""
    rows, total = search_dossiers(
        session, user, min_risk=min_risk, jurisdiction=jurisdiction, limit=limit, offset=offset
    )
    items = [DossierSummary.from_row(r) for r in rows]
    return Page[DossierSummary](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{dossier_id}",
    response_model=DossierPublic,
    responses=error_responses(401, 403, 404, 422),
)
def read_dossier(user: DossierReader, session: SessionDep, dossier_id: str) -> DossierPublic:
    """One dossier: its current scores and reasons, and its events in time order. 404 for
    a dossier outside the caller's jurisdictions, as for one that does not exist."""
    row = get_dossier(session, user, dossier_id)
    found = [EventOut.model_validate(e) for e in dossier_events(session, user, dossier_id)]
    return DossierPublic(**DossierSummary.from_row(row).model_dump(), events=found)
