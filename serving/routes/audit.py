"""``GET /v1/audit/verify``: the audit chain's check (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.audit import verify
from serving.deps import AdminUser, SessionDep
from serving.schemas import ChainReportOut, error_responses

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/verify",
    response_model=ChainReportOut,
    responses=error_responses(401, 403),
)
def verify_chain(user: AdminUser, session: SessionDep) -> ChainReportOut:
    """Walk the hash chain; ``ok`` false names the first edited, deleted or moved entry."""
    return ChainReportOut.from_report(verify(session))
