"""Whether the service can serve: the store reachable and at the schema revision this
code expects, and a model loaded for the configured alias."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import SQLAlchemyError

from serving.db import Store
from serving.errors import StoreError
from serving.migrations import head_revision
from serving.models import ModelHolder
from serving.schemas import ModelOut, Readiness


class SchemaNotReadyError(StoreError):
    """The database is unreachable or not migrated to the latest schema."""


def schema_problem(store: Store) -> tuple[str | None, str | None]:
    """``(revision, problem)``: the database's schema revision, and what stops it from
    serving (None when it can)."""
    try:
        with store.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        return None, f"the database is unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    head = head_revision()
    if revision != head:
        return revision, (
            f"the database is at schema revision {revision or 'none'}, not {head}: "
            "run `giamsat db upgrade` first"
        )
    return revision, None


def check_schema(store: Store) -> str:
    """The revision, or :class:`SchemaNotReadyError` saying why the store cannot serve."""
    revision, problem = schema_problem(store)
    if problem is not None:
        raise SchemaNotReadyError(problem)
    assert revision is not None
    return revision


def readiness(store: Store, models: ModelHolder) -> Readiness:
    """Ready when the store can serve and a model is loaded; otherwise ``detail`` gives
    every reason (the store's first)."""
    revision, problem = schema_problem(store)
    status = models.status()
    problems = [p for p in (problem, None if status.version else status.problem) if p]
    if status.version is None and not problems:
        problems.append(f"no model with alias {status.alias} is loaded")
    return Readiness(
        status="not ready" if problems else "ready",
        detail="; ".join(problems) or None,
        schema_revision=revision,
        model=ModelOut.model_validate(status),
    )
