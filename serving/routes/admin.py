"""``POST /v1/admin/models/reload``: load the bundle the alias points at now, instead of
at the next timed check (admins; audited)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import AdminUser, ModelsDep, StoreDep
from serving.handlers import error
from serving.models import reload_audited
from serving.schemas import ModelOut, ModelReloadOut, error_responses

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/models/reload",
    response_model=ModelReloadOut,
    responses=error_responses(401, 403, 502, 503),
)
def reload_models(user: AdminUser, models: ModelsDep, store: StoreDep) -> Response | ModelReloadOut:
    """Ask the registry where the alias points and load that version if it is not the one
    served (``loaded``, or ``unchanged``). 502: the version could not be loaded (the one
    served before stays, named in ``version``); 503: no model is registered with the
    alias. Every call is written to the audit log as ``model.reload``."""
    outcome = reload_audited(models, store, user.name)
    status = models.status()
    if outcome.outcome == "loaded" or outcome.outcome == "unchanged":
        return ModelReloadOut(
            outcome=outcome.outcome,
            previous_version=outcome.previous_version,
            model=ModelOut.model_validate(status),
        )
    code = 503 if outcome.outcome == "no model" else 502
    detail = outcome.detail or f"no model with alias {models.alias}"
    return error(code, detail, outcome=outcome.outcome, version=status.version)
