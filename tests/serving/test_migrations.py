"""The migrations build, from an empty database, exactly the schema of serving.tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serving.db import create_engine
from serving.migrations import alembic_config, current_revision, head_revision, upgrade
from serving.tables import ALERT_INBOX_INDEXES, api_keys, audit_head, metadata, users


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_metadata(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    assert current_revision(store_url) == head_revision()
    upgrade(store_url)  # a second run is a no-op
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
            head = conn.execute(sa.select(audit_head)).all()
    finally:
        engine.dispose()
    assert diff == []
    assert [(r.id, r.seq) for r in head] == [(1, 0)]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    finally:
        engine.dispose()


def test_0002_adds_the_users_agency_keeping_users_and_their_keys(store_url: str) -> None:
    upgrade(store_url, "0001")
    stamp = datetime(2025, 3, 3, tzinfo=UTC)
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, name, role, active, created_at) "
                    "VALUES (1, 'lan', 'inspector', :yes, :at)"
                ),
                {"yes": True, "at": stamp.replace(tzinfo=None)},
            )
            conn.execute(
                sa.insert(api_keys).values(
                    key_id="k1", user_id=1, secret_hash="0" * 64, created_at=stamp
                )
            )
        upgrade(store_url)
        assert current_revision(store_url) == head_revision()
        assert _diff(store_url) == []
        with engine.begin() as conn:
            assert conn.execute(sa.select(users.c.name, users.c.agency_id)).all() == [("lan", None)]
            conn.execute(sa.update(users).values(agency_id="A1"))
            assert conn.execute(sa.select(api_keys.c.key_id)).scalars().all() == ["k1"]
        command.downgrade(alembic_config(store_url), "0001")
        assert current_revision(store_url) == "0001"
        with engine.connect() as conn:
            assert conn.execute(sa.select(api_keys.c.key_id)).scalars().all() == ["k1"]
            assert "agency_id" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}
        upgrade(store_url)
        assert _diff(store_url) == []
    finally:
        engine.dispose()


def _alert_indexes(url: str) -> dict[str, str]:
    """The alerts table's indexes as the database itself defines them (SQLAlchemy's
    reflection drops DESC on SQLite, so the catalogue is read directly)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'alerts' AND sql IS NOT NULL"
                )
            else:
                rows = conn.exec_driver_sql(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'alerts' "
                    "AND indexname <> 'pk_alerts'"
                )
            return {name: " ".join(sql.replace('"', "").split()) for name, sql in rows}
    finally:
        engine.dispose()


def test_0003_indexes_the_inbox_orders_and_downgrades_to_the_single_columns(
    store_url: str,
) -> None:
    upgrade(store_url, "0002")
    before = _alert_indexes(store_url)
    assert {"ix_alerts_status", "ix_alerts_jurisdiction"} <= before.keys()
    upgrade(store_url)
    after = _alert_indexes(store_url)
    assert after.keys() == {*ALERT_INBOX_INDEXES, "ix_alerts_subject", "ix_alerts_status_opened"}
    for name, prefix in ALERT_INBOX_INDEXES.items():
        assert f"({', '.join(prefix)}, score DESC, alert_id)" in after[name], after[name]
    assert "(status, opened_at)" in after["ix_alerts_status_opened"]
    assert _diff(store_url) == []
    command.downgrade(alembic_config(store_url), "0002")
    assert _alert_indexes(store_url) == before
    upgrade(store_url)
    assert _alert_indexes(store_url) == after
