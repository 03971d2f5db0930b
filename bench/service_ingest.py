"""Store ingestion throughput: batches of canonical events written as the ingestion API
writes them (one transaction per batch, idempotent on ``event_id``), into a fresh SQLite
file and a fresh PostgreSQL database (skipped with a message when none is reachable).

    python -m bench.service_ingest                 # 60 batches of 500
    python -m bench.service_ingest --batches 200 --size 500

Issue 7's target is 20,000 events/s in batches of 500 on either backend; this measures
the store alone (no HTTP), new events and a re-sent tail (duplicates).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.features import load_note


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


def run(url: str, batches: int, size: int) -> None:
    from serving import store as st
    from serving.db import Store
    from serving.migrations import upgrade

    upgrade(url)
    db = Store.from_url(url)
    work = [_batch(k, size) for k in range(batches)]
    started = time.perf_counter()
    for b in work:
        with db.transaction() as session:
            st.add_events(session, b)
    new = batches * size / (time.perf_counter() - started)
    tail = work[: max(1, batches // 3)]
    started = time.perf_counter()
    for b in tail:
        with db.transaction() as session:
            st.add_events(session, b)
    again = len(tail) * size / (time.perf_counter() - started)
    print(f"{db.dialect:>10}: {new:8,.0f} new events/s, {again:8,.0f} re-sent events/s "
          f"({batches} batches of {size})", flush=True)  # fmt: skip
    db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args(argv)
    print(load_note())
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/bench.db", args.batches, args.size)
    import pytest

    from tests.postgres import fresh_database

    try:
        with fresh_database("bench") as url:
            run(url, args.batches, args.size)
    except pytest.skip.Exception as why:
        print(f"postgresql: skipped ({why})")


if __name__ == "__main__":
    main()
