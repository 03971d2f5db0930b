"""A crash in the middle of ingestion: ``giamsat serve`` as a real process on a loopback
port, 40 batches of 200 events streamed to it over HTTP, SIGKILL after 15 batches while
the 16th is in flight, a restart, and every batch sent again (what a client does after a
timeout). Then the store holds exactly the distinct events sent (none lost, none twice),
every batch answered before the kill survived it, the dossiers agree with the events,
the seeded alerts are untouched, and the audit chain verifies. On SQLite (a WAL file)
and PostgreSQL (skipped with a message without a server). Slow: ``pytest -m slow``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from serving import audit
from serving.db import Store
from serving.migrations import upgrade
from serving.tables import alerts, dossiers, events
from serving.users import create_api_key, create_user
from tests.serving.api_helpers import seed, wire
from tests.serving.conftest import PEPPER, T0

BATCHES = 40
PER_BATCH = 200
KILL_AFTER = 15
GIAMSAT = Path(sys.executable).with_name("giamsat")


def _batch(b: int) -> list[dict[str, Any]]:
    """Batch ``b``: 200 events over 50 dossiers (dossiers span batches)."""
    out = []
    for k in range(PER_BATCH):
        i = b * PER_BATCH + k
        row = {
            "event_id": f"C{i:06d}",
            "dossier_id": f"CD{i % 400:04d}",
            "activity": "received" if i < 400 else "appraised",
            "timestamp": T0 + timedelta(minutes=i),
            "agency_id": f"A{i % 7}",
            "officer_id": f"O{i % 13}",
            "procedure_code": "P1",
            "jurisdiction": f"J{i % 3}",
            "applicant_id": f"0791{i % 997:08d}",
            "channel": "online",
            "seq": i // 400,
        }
        out.append(wire(row))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(url: str, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``giamsat serve`` on a free loopback port, ready; killed (if still alive) after."""
    port = _free_port()
    env = {
        **os.environ,
        "GIAMSAT_DATABASE_URL": url,
        "GIAMSAT_API_KEY_PEPPER": PEPPER.decode(),
        "GIAMSAT_PSEUDONYM_KEY": "crash-test-pseudonym-key",
        "GIAMSAT_ENVIRONMENT": "test",
    }
    log = (workdir / f"serve-{port}.log").open("wb")
    cmd = [str(GIAMSAT), "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"giamsat serve exited {proc.returncode}: {_tail(log)}")
            try:  # the store is ready (no model is registered here, so /readyz stays 503)
                if httpx.get(f"{base}/readyz", timeout=1).json().get("schema_revision"):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"giamsat serve not ready in 60 s: {_tail(log)}")
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()


def _tail(log: Any) -> str:
    log.flush()
    return Path(log.name).read_text(errors="replace")[-2000:]


def _snapshot(store: Store) -> dict[str, Any]:
    with store.read() as session:
        ids = list(session.execute(sa.select(events.c.event_id)).scalars())
        by_dossier = {
            r.dossier_id: (r.n, r.last)
            for r in session.execute(
                sa.select(
                    events.c.dossier_id,
                    sa.func.count().label("n"),
                    sa.func.max(events.c.timestamp).label("last"),
                ).group_by(events.c.dossier_id)
            )
        }
        rows = session.execute(sa.select(dossiers.c.dossier_id, dossiers.c.last_event_at))
        known = {r.dossier_id: r.last_event_at for r in rows}
        alert_rows = session.execute(
            sa.select(alerts.c.alert_id, alerts.c.status, alerts.c.version)
        )
        alert_state = sorted(tuple(r) for r in alert_rows)
        report = audit.verify(session)
    return {
        "ids": ids,
        "by_dossier": by_dossier,
        "dossiers": known,
        "alerts": alert_state,
        "audit": report,
    }


@pytest.mark.slow  # about 25 s a backend: two server start-ups, 16,000 events over HTTP
def test_a_killed_server_loses_and_duplicates_nothing_when_batches_are_resent(
    store_url: str, tmp_path: Path
) -> None:
    upgrade(store_url)
    store = Store.from_url(store_url)
    try:
        seed(store)  # three alerts and four events that ingestion must leave alone
        with store.transaction() as session:
            create_user(session, "feeder", "ingest")
            key = create_api_key(session, "feeder", PEPPER)[1]
        before = _snapshot(store)
        headers = {"X-API-Key": key}
        batches = [_batch(b) for b in range(BATCHES)]
        acknowledged: list[int] = []
        with (
            _server(store_url, tmp_path) as (proc, base),
            httpx.Client(base_url=base, headers=headers, timeout=30) as client,
        ):
            for b in range(KILL_AFTER):
                r = client.post("/v1/events", json=batches[b])
                assert r.status_code == 200, r.text
                acknowledged.append(b)
            in_flight: dict[str, Any] = {}

            def send() -> None:  # the 16th batch, cut off by the kill (or just answered)
                try:
                    in_flight["status"] = client.post("/v1/events", json=batches[KILL_AFTER])
                except httpx.TransportError as exc:
                    in_flight["error"] = exc

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            sender.join(timeout=30)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        # every batch answered 200 before the kill is in the store, whatever happened after
        crashed = set(_snapshot(store)["ids"])
        for b in acknowledged:
            assert {e["event_id"] for e in batches[b]} <= crashed
        new_after = 0
        with (
            _server(store_url, tmp_path) as (_, base),
            httpx.Client(base_url=base, headers=headers, timeout=30) as client,
        ):
            for b in range(BATCHES):
                r = client.post("/v1/events", json=batches[b])
                assert r.status_code == 200, r.text
                got = r.json()
                assert got["new"] + got["duplicate"] == PER_BATCH
                if b < KILL_AFTER:
                    assert got == {"new": 0, "duplicate": PER_BATCH}
                new_after += got["new"]
        after = _snapshot(store)
    finally:
        store.dispose()
    sent = {e["event_id"] for batch in batches for e in batch}
    seeded = set(before["ids"])
    assert len(after["ids"]) == len(set(after["ids"])) == len(sent) + len(seeded)
    assert set(after["ids"]) == sent | seeded
    assert new_after == len(sent) - (len(crashed) - len(seeded))
    # dossiers: one per dossier with events, its latest event time the events' latest
    assert set(after["dossiers"]) == set(after["by_dossier"])
    for dossier, (_, last) in after["by_dossier"].items():
        assert after["dossiers"][dossier] == last, dossier
    assert sum(n for n, _ in after["by_dossier"].values()) == len(after["ids"])
    assert after["alerts"] == before["alerts"]  # ingestion never touches alerts
    report = after["audit"]
    assert report.ok and report.entries == report.head_seq == before["audit"].entries
