"""Fixtures of the service store tests: every test runs on SQLite (a file) and on
PostgreSQL (the local server; skipped with a message without one).

``store_url`` is an empty database (for the migration and CLI tests). ``store`` is a
migrated one: a copy of a SQLite file migrated once per session, or the session's
migrated PostgreSQL database with every table emptied, which keeps the suite fast.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from serving.audit import GENESIS
from serving.db import Store, create_engine
from serving.migrations import upgrade
from serving.tables import audit_head, metadata
from serving.users import User, create_user
from tests.postgres import fresh_database

PEPPER = b"test-pepper-0123456789abcdef"
T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_database("giamsat_serving") as url:
        yield url


@pytest.fixture
def migrated_cli(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CLI runner whose settings point at ``store_url``, migrated by ``giamsat db
    upgrade`` (set further ``GIAMSAT_*`` variables, then ``get_settings.cache_clear()``)."""
    from giamsat.cli import app
    from giamsat.settings import get_settings

    monkeypatch.setenv("GIAMSAT_DATABASE_URL", store_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        yield runner
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "store.db"
    upgrade(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:  # fold the WAL into the file, so a copy is complete
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> Iterator[str]:
    with fresh_database("giamsat_serving") as url:
        upgrade(url)
        yield url


def _emptied(url: str) -> str:
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        conn.execute(sa.insert(audit_head).values(id=1, seq=0, hash=GENESIS))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = _emptied(request.getfixturevalue("_postgres_migrated"))
    db = Store.from_url(url)
    yield db
    db.dispose()


def event(i: int, dossier: str = "D1", **extra: Any) -> dict[str, Any]:
    """A canonical event, ``i`` minutes after T0."""
    row: dict[str, Any] = {
        "event_id": f"E{i}",
        "dossier_id": dossier,
        "activity": "received" if i == 0 else "appraised",
        "timestamp": T0 + timedelta(minutes=i),
        "agency_id": "A1",
        "officer_id": f"O{i % 3}",
        "procedure_code": "P1",
        "jurisdiction": "J1",
        "channel": "online",
        "seq": i,
    }
    row.update(extra)
    return row


def alert_row(subject: str, jurisdiction: str = "J1", score: float = 0.9, kind: str = "delay"):
    """An alert as the scorer writes it (models.scoring's ALERT_COLUMNS)."""
    return {
        "kind": kind,
        "subject_type": "dossier",
        "subject_id": subject,
        "score": score,
        "severity": "high" if score >= 0.8 else "medium",
        "jurisdiction": jurisdiction,
        "agency_id": "A1",
        "reasons": "late risk",
    }


@pytest.fixture
def people(store: Store) -> dict[str, User]:
    """An inspector of J1, one of J2, an analyst, a dashboard and an admin."""
    with store.transaction() as session:
        return {
            "insp1": create_user(session, "insp1", "inspector", ["J1"]),
            "insp2": create_user(session, "insp2", "inspector", ["J2"]),
            "analyst": create_user(session, "analyst", "analyst"),
            "dash": create_user(session, "dash", "dashboard"),
            "admin": create_user(session, "admin", "admin"),
            "ingest": create_user(session, "ingest", "ingest"),
        }


from tests.serving.scoring import scoring_case, scoring_registry  # noqa: E402, F401 - fixtures
