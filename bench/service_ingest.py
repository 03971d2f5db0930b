"""Store ingestion throughput: batches of canonical events written as the ingestion API
writes them (one transaction per batch, idempotent on ``event_id``), into a fresh SQLite
file and a fresh PostgreSQL database (skipped with a message when none is reachable).

    python -m bench.service_ingest                 # 60 batches of 500
    python -m bench.service_ingest --batches 200 --size 500

Issue 7's target is 20,000 events/s in batches of 500 on either backend; this measures
the store alone (no HTTP: ``bench.service_load`` has the API), new events and a re-sent
tail (duplicates), and splits a batch's time into this process's Python (validation, the
payload), the SQL statements and the commit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.features import load_note

TARGET = 20_000


def _batch(k: int, n: int) -> list[dict[str, Any]]:
    t0 = datetime(2025, 7, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"e{k}_{i}",
            "dossier_id": f"d{(k * n + i) // 8}",
            "activity": "received",
            "timestamp": t0 + timedelta(minutes=k * n + i),
            "agency_id": "01.STP",
            "officer_id": f"o{i % 30}",
            "jurisdiction": f"01{i % 5:03d}",
            "procedure_code": "1.001193",
            "channel": "online",
            "applicant_id": f"k1:{i:012x}",
            "recorded_at": t0 + timedelta(minutes=k * n + i, seconds=30),
        }
        for i in range(n)
    ]


@dataclass
class Figures:
    backend: str
    new: float  # events/s, new events
    again: float  # events/s, a re-sent third (all duplicates)
    python_ms: float  # a batch's validation and payload, in this process
    sql_ms: float  # its statements (the database's work and the round trips)
    commit_ms: float  # its commit (the WAL flush: synchronous_commit stays on)


def run(url: str, batches: int, size: int) -> Figures:
    import sqlalchemy as sa

    from serving import store as st
    from serving.db import Store
    from serving.migrations import upgrade

    upgrade(url)
    db = Store.from_url(url)
    in_sql = [0.0]

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, many):
        conn.info["t"] = time.perf_counter()

    @sa.event.listens_for(db.engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, parameters, context, many):
        in_sql[0] += time.perf_counter() - conn.info["t"]

    work = [_batch(k, size) for k in range(batches)]
    python = commit = 0.0
    started = time.perf_counter()
    for b in work:
        with db.transaction() as session:
            session.connection()  # BEGIN outside the batch's own time
            before, t0 = in_sql[0], time.perf_counter()
            st.add_events(session, b)
            t1 = time.perf_counter()
            python += t1 - t0 - (in_sql[0] - before)
        commit += time.perf_counter() - t1
    total = time.perf_counter() - started
    sql = in_sql[0]
    tail = work[: max(1, batches // 3)]
    started = time.perf_counter()
    for b in tail:
        with db.transaction() as session:
            st.add_events(session, b)
    again = len(tail) * size / (time.perf_counter() - started)
    db.dispose()
    per = 1000 / batches
    return Figures(db.dialect, batches * size / total, again, python * per, sql * per, commit * per)


def print_table(results: list[Figures], batches: int, size: int) -> None:
    print(f"\nstore ingestion, {batches} batches of {size} (one transaction each); {load_note()}")
    header = (f"{'backend':<12}{'new ev/s':>10}{'re-sent ev/s':>14}{'python ms':>11}{'SQL ms':>8}"
              f"{'commit ms':>11}  target {TARGET:,} new events/s")  # fmt: skip
    print(header + "\n" + "-" * len(header))
    for r in results:
        met = "met" if r.new >= TARGET else "MISSED"
        print(f"{r.backend:<12}{r.new:>10,.0f}{r.again:>14,.0f}{r.python_ms:>11.2f}{r.sql_ms:>8.2f}"
              f"{r.commit_ms:>11.2f}  {met}")  # fmt: skip
    print(
        "(ms per batch: python = validation and payload in this process, SQL = the "
        "statements' round trips, commit = the durable commit)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args(argv)
    print(load_note())
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results.append(run(f"sqlite:///{folder}/bench.db", args.batches, args.size))
    import pytest

    from tests.postgres import fresh_database

    try:
        with fresh_database("bench") as url:
            results.append(run(url, args.batches, args.size))
    except pytest.skip.Exception as why:
        print(f"postgresql: skipped ({why})")
    print_table(results, args.batches, args.size)


if __name__ == "__main__":
    main()
