"""PostgreSQL for tests: the server on 127.0.0.1:5432 (trust auth, database ``test``), or
a skip that says how to get one. Each user gets a fresh database, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOST = os.environ.get("GIAMSAT_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("GIAMSAT_TEST_PG_PORT", "5432"))
USER = os.environ.get("GIAMSAT_TEST_PG_USER", "postgres")
ADMIN_DB = os.environ.get("GIAMSAT_TEST_PG_DATABASE", "test")


def _connect(database: str):  # type: ignore[no-untyped-def]
    import pg8000.native

    return pg8000.native.Connection(USER, host=HOST, port=PORT, database=database, timeout=5)


@contextmanager
def fresh_database(prefix: str = "giamsat") -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL (pg8000 driver)."""
    try:
        admin = _connect(ADMIN_DB)
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        pytest.skip(
            f"PostgreSQL not reachable at {USER}@{HOST}:{PORT}/{ADMIN_DB} ({exc}); start it or "
            "set GIAMSAT_TEST_PG_HOST/PORT/USER/DATABASE to run the PostgreSQL tests"
        )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.run(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+pg8000://{USER}@{HOST}:{PORT}/{name}"
    finally:
        admin.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name",
            name=name,
        )
        admin.run(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
