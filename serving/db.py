"""Engines and transactions of the service store: SQLite by default, PostgreSQL by URL.

SQLite connections run in WAL mode with foreign keys on and a busy timeout; write
transactions start with ``BEGIN IMMEDIATE``, so two writers queue instead of failing
half-way with a stale snapshot. Reads start deferred and never block writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session

#: how long a SQLite writer waits for the lock before failing (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: connections kept open, and opened on demand beyond them: together 40, the threads
#: (AnyIO's default limit) that run one process's sync routes, each holding at most one
#: session at a time, so no request waits for a connection while a thread is free. (The
#: default 5 + 10 made the 16th of 32 concurrent requests wait for the pool.)
POOL_SIZE = 10
POOL_OVERFLOW = 30
_BEGIN = "giamsat_begin"


class StoreBusyError(TimeoutError):
    """A SQLite write waited longer than the busy timeout for its turn."""


def normalise_url(url: str | URL) -> URL:
    """``url`` with the driver GiamSat ships (pg8000) when a PostgreSQL URL names none."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+pg8000")
    return parsed


def create_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created when missing."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
        return sa.create_engine(parsed, **kwargs)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # a file has a queue pool; :memory: one connection per thread, with no such sizes
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    engine = sa.create_engine(parsed, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # the driver's own transaction handling is off: "begin" below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe in WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Store:
    """The database of the service: an engine and its transactions.

    ``with store.transaction() as session:`` commits at the end of the block, or rolls
    everything back if it raises. Store functions never commit themselves, so one
    request's changes (an alert transition, its history, its audit entry, its outbox
    message) land together or not at all.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{_BEGIN: "IMMEDIATE"})
        # SQLite takes one writer at a time; this process's writers queue here, handed
        # the turn at once, instead of in SQLite's busy handler, which polls with sleeps
        # of up to 100 ms (32 concurrent ingestion requests left the database idle
        # between them and ran past the busy timeout). Other processes still meet the
        # busy timeout.
        self._write_turn = threading.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str | URL, **kwargs: Any) -> Store:
        return cls(create_engine(url, **kwargs))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction (serialised with other writers on SQLite)."""
        turn = self._write_turn
        if turn is not None and not turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise StoreBusyError(
                f"another write held the store for {SQLITE_BUSY_TIMEOUT_MS // 1000} s; retry"
            )
        try:
            with Session(self._writer, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            if turn is not None:
                turn.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only snapshot (rolled back at the end)."""
        with Session(self.engine) as session:
            yield session
            session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
