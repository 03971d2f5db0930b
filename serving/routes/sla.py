"""``POST /v1/alerts/escalate-overdue``: the SLA escalation job, for an admin or a
scheduler (the same as ``giamsat alerts escalate-overdue``)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from serving.deps import AdminUser, SettingsDep, TransactionDep
from serving.schemas import AlertPublic, EscalationOut, error_responses
from serving.sla import escalate_overdue, overdue_at_top, slas_of

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.post("/escalate-overdue", response_model=EscalationOut, responses=error_responses(401, 403))
def escalate_overdue_alerts(
    user: AdminUser, session: TransactionDep, settings: SettingsDep
) -> EscalationOut:
    """Escalate by one level every open alert not acknowledged within its severity's SLA
    (``GIAMSAT_ALERT_SLA_*_HOURS``), audited as ``system:sla``; running it again at once
    escalates nothing more. ``overdue_at_top``: overdue alerts already at the top level."""
    now = datetime.now(UTC)
    slas = slas_of(settings)
    done = escalate_overdue(session, now=now, slas=slas)
    return EscalationOut(
        at=now,
        escalated=[AlertPublic.from_alert(a) for a in done],
        overdue_at_top=overdue_at_top(session, now=now, slas=slas),
    )
