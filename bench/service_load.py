"""The HTTP service under load, over loopback from a second process (issue 7's targets).

    python -m bench.service_load                            # both backends, 1 M alerts
    python -m bench.service_load --backend sqlite --seconds 5 --alerts 100000

For each backend: a fresh database (a SQLite temp file; a new PostgreSQL database on the
test server), migrated, with an ingest user, an inspector (20 jurisdictions) and an admin,
and ``--alerts`` alerts bulk-loaded with direct SQL. ``uvicorn`` then serves
``serving.app:create_app`` in a subprocess (one worker, no access log) and this process
drives ``--connections`` keep-alive connections for ``--seconds`` each at ``GET /healthz``
(the bare reference), ``POST /v1/events`` (batches of 500 new events) and ``GET
/v1/alerts`` with inbox filters, as the inspector and as the admin.

The client is a minimal HTTP/1.1 over asyncio streams (bodies prepared before the clock
starts), so that it costs the shared cores less than the server; the table shows the CPU
share of both (of one core): a server near 100 % is the bottleneck, not the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bench.features import load_note

PEPPER = "bench-only-api-key-pepper"
BATCH = 500
PROVINCES = [f"{p:02d}" for p in range(1, 64)]
#: commune codes: 63 provinces x 40 communes.
JURISDICTIONS = [f"{p}{c:03d}" for p in PROVINCES for c in range(40)]
INSPECTOR_CODES = JURISDICTIONS[40:60]  # half of province 02's communes
KINDS = (("delay", 0.45), ("waste", 0.25), ("integrity", 0.30))
STATUSES = (("open", 0.30), ("acknowledged", 0.10), ("confirmed", 0.05), ("dismissed", 0.15),
            ("closed", 0.40))  # fmt: skip
EVENTS_TARGET = 20_000
P99_TARGET_MS = 50.0


# --- the database -----------------------------------------------------------------------


@contextlib.contextmanager
def fresh_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    from tests.postgres import fresh_database

    with fresh_database("bench_load") as url:
        yield url


def prepare(url: str) -> dict[str, str]:
    """Migrate, and create the three users; returns their API keys by role."""
    from serving.db import Store
    from serving.migrations import upgrade
    from serving.users import create_api_key, create_user

    upgrade(url)
    store = Store.from_url(url)
    keys: dict[str, str] = {}
    with store.transaction() as session:
        for name, role, codes in (("feeder", "ingest", []), ("inspector", "inspector",
                                  INSPECTOR_CODES), ("boss", "admin", [])):  # fmt: skip
            create_user(session, name, role, codes)
            keys[role] = create_api_key(session, name, PEPPER.encode())[1]
    store.dispose()
    return keys


def _alert_rows(n: int, seed: int = 7) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    kinds, kind_w = [k for k, _ in KINDS], [w for _, w in KINDS]
    statuses, status_w = [s for s, _ in STATUSES], [w for _, w in STATUSES]
    for i in range(n):
        kind = rng.choices(kinds, kind_w)[0]
        status = rng.choices(statuses, status_w)[0]
        score = round(0.3 + 0.7 * rng.random() ** 2, 4)
        sev = "high" if score >= 0.8 else "medium" if score >= 0.5 else "low"
        where = rng.choice(JURISDICTIONS)
        opened = t0 + timedelta(minutes=i // 2)
        decided = opened + timedelta(days=3) if status in ("confirmed", "dismissed") else None
        closed = opened + timedelta(days=5) if status == "closed" else None
        dossier = f"d{i:08d}"
        yield (f"{kind[0].upper()}{i:015x}", kind, "dossier", dossier, score, sev, where,
               f"{where[:2]}.A{rng.randrange(12):02d}", f"{kind} risk {score:.2f}: bench",
               kind, json.dumps([dossier]), status, "commune", 1, opened, opened, decided,
               closed)  # fmt: skip


ALERT_COLUMNS = ("alert_id", "kind", "subject_type", "subject_id", "score", "severity",
                 "jurisdiction", "agency_id", "reasons", "pattern", "dossiers", "status",
                 "level", "version", "opened_at", "updated_at", "decided_at",
                 "closed_at")  # fmt: skip


def _sqlite_time(t: object) -> object:
    # the text SQLAlchemy's SQLite DateTime writes (UTC, no zone; read back as UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(t, datetime) else t


def load_alerts(url: str, n: int) -> float:
    """Bulk-load ``n`` alerts with direct SQL; returns the seconds it took (with ANALYZE)."""
    started = time.perf_counter()
    chunk = 100_000
    rows = _alert_rows(n)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = (f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(ALERT_COLUMNS))})")  # fmt: skip
        with conn:
            for _ in range(0, n, chunk):
                part = [
                    tuple(_sqlite_time(v) for v in r)
                    for _, r in zip(range(chunk), rows, strict=False)
                ]
                conn.executemany(sql, part)
        conn.execute("ANALYZE")
        conn.close()
    else:
        import pg8000.native
        from sqlalchemy.engine import make_url

        u = make_url(url)
        conn = pg8000.native.Connection(u.username or "postgres", host=u.host or "127.0.0.1",
                                        port=u.port or 5432, database=u.database)  # fmt: skip
        copy = f"COPY alerts ({', '.join(ALERT_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
        for _ in range(0, n, chunk):
            text = io.StringIO()
            for r in (r for _, r in zip(range(chunk), rows, strict=False)):
                text.write(",".join(_csv(v) for v in r) + "\n")
            text.seek(0)
            conn.run(copy, stream=text)
        # as autovacuum leaves a table after a bulk insert (visibility map set): without
        # it every index-only count reads the heap, which no running store does for long
        conn.run("VACUUM ANALYZE alerts")
        conn.close()
    return time.perf_counter() - started


def _csv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and ("," in value or '"' in value):
        return '"' + value.replace('"', '""') + '"'
    return str(value)


def _shapes(codes: list[str]) -> dict[str, list[tuple[str, object]]]:
    """The inbox query shapes measured: name -> query parameters (``limit`` 50)."""
    return {
        "all": [],
        "open": [("status", "open")],
        "open+high": [("status", "open"), ("severity", "high")],
        "open+jur": [("status", "open"), ("jurisdiction", codes[0])],
        "open|ack+medium": [("status", "open"), ("status", "acknowledged"),
                            ("severity", "medium")],
        "open+kind": [("status", "open"), ("kind", "waste")],
        "open+agency": [("status", "open"), ("agency", f"{codes[0][:2]}.A03")],
        "open+week": [("status", "open"), ("since", "2025-06-01T00:00:00+07:00"),
                      ("until", "2025-06-08T00:00:00+07:00")],
    }  # fmt: skip


def _filters(pairs: list[tuple[str, object]]) -> Any:
    """The store's AlertFilters for an inbox query's parameters."""
    from serving.alerts import Status
    from serving.search import AlertFilters

    one = {k: str(v) for k, v in pairs if k != "status"}
    return AlertFilters(
        kind=one.get("kind"),
        severity=one.get("severity"),
        status=tuple(Status(str(v)) for k, v in pairs if k == "status"),
        agency_id=one.get("agency"),
        jurisdiction=one.get("jurisdiction"),
        since=datetime.fromisoformat(one["since"]) if "since" in one else None,
        until=datetime.fromisoformat(one["until"]) if "until" in one else None,
    )


def explain(url: str, repeat: int = 20) -> None:
    """Each inbox query shape as the API runs it (``search_alerts``), in this process:
    its p50 and max over ``repeat`` runs (offset 100, and the page after a cursor), and
    the plans of its statements (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE,
    the top of the plan)."""
    import sqlalchemy as sa

    from serving.db import Store
    from serving.search import AlertCursor, search_alerts
    from serving.users import get_user

    store = Store.from_url(url)
    seen: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _keep(conn, cursor, statement, parameters, context, many):
        seen.append((statement, parameters))

    prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN ANALYZE "
    print(f"   in-process search_alerts (ms: p50 / max of {repeat}; offset 100, next cursor)")
    with store.read() as session:
        for who in ("inspector", "boss"):
            user = get_user(session, who)
            codes = INSPECTOR_CODES if who == "inspector" else JURISDICTIONS
            for shape, pairs in _shapes(codes).items():
                filters = _filters(pairs)
                first = search_alerts(session, user, filters, limit=50)
                after = AlertCursor.decode(first.next_cursor) if first.next_cursor else None
                times: dict[str, list[float]] = {"offset": [], "cursor": []}
                for _ in range(repeat):
                    started = time.perf_counter()
                    search_alerts(session, user, filters, limit=50, offset=100)
                    times["offset"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    search_alerts(session, user, filters, limit=50, cursor=after)
                    times["cursor"].append(time.perf_counter() - started)
                shown = ", ".join(f"{k} {1000 * sorted(v)[len(v) // 2]:.1f} / {1000 * max(v):.1f}"
                                  for k, v in times.items())  # fmt: skip
                print(f"   {who:<9} {shape:<16} total {first.total:>6}"
                      f"{'' if first.total_exact else '+'}: {shown}", flush=True)  # fmt: skip
                seen.clear()
                search_alerts(session, user, filters, limit=50, offset=100)
                for statement, parameters in list(seen):
                    rows = session.connection().exec_driver_sql(prefix + statement, parameters)
                    lines = [" | ".join(str(v) for v in row)[:140] for row in rows]
                    if store.dialect == "postgresql":  # the top, and the scans
                        lines = lines[:3] + [x for x in lines[3:] if "Scan" in x][:3] + lines[-1:]
                    for line in lines[:8]:
                        print("        " + line)
    store.dispose()


# --- the server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def subprocess_server(
    cmd: list[str],
    port: int,
    env: dict[str, str],
    *,
    ready: str = "/healthz",
    timeout: float = 60,
    is_error: Callable[[str], bool] = lambda line: line.startswith(("sqlalchemy.", "ERROR")),
) -> Iterator[tuple[int, int]]:
    """``cmd`` (a server on ``port``) in a subprocess with ``env`` added to this one's, its
    log to a file; yields (port, pid) once ``ready`` answers 200. At the end the server is
    stopped and the log's error lines (``is_error``) counted, the last one shown."""
    log = tempfile.NamedTemporaryFile("w+", prefix="giamsat-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stderr=log, stdout=log)
    request_line = f"GET {ready} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{cmd[0]} exited with {proc.returncode}:\n{log.read()[-2000:]}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(request_line)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer {ready} within {timeout:.0f} s")
            time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        errors = [line.strip() for line in log if is_error(line)]
        if errors:
            print(f"   server log {log.name}: {len(errors)} error lines, last: {errors[-1][:300]}")
        log.close()
        if not errors:
            os.unlink(log.name)


def server(url: str, rescore: bool = False) -> contextlib.AbstractContextManager[tuple[int, int]]:
    """uvicorn over the app factory in a subprocess; (port, pid) once /healthz answers.

    Without ``rescore`` the live re-scoring thread is off (``GIAMSAT_RESCORE_ON_INGEST``):
    with a champion model in the registry it would re-score every dossier the ingestion
    run marked, in the same process, during the inbox runs."""
    port = _free_port()
    env = {"GIAMSAT_DATABASE_URL": url, "GIAMSAT_API_KEY_PEPPER": PEPPER,
           "GIAMSAT_RESCORE_ON_INGEST": "true" if rescore else "false"}  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return subprocess_server(cmd, port, env)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the client ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    connections: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    items: int = 0  # events sent (POST /v1/events)
    errors: dict[int, int] = field(default_factory=dict)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    by_shape: dict[str, list[float]] = field(default_factory=dict)

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies if values is None else values)
        return 1000 * data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


def request(method: str, path: str, key: str | None = None, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    if method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> int:  # fmt: skip
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def drive(port: int, pid: int, name: str, make: Callable[[int], tuple[str, bytes]],
                connections: int, seconds: float, items: int = 0) -> Result:  # fmt: skip
    """``connections`` keep-alive clients send ``make(i)`` (shape, request bytes) in turn
    for ``seconds`` after a one-second warm-up that is not counted."""
    result = Result(name, connections)
    counter = iter(range(10**12))
    stop_warm = time.perf_counter() + 1.0
    stop = stop_warm + seconds
    marks: dict[str, float] = {}

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (now := time.perf_counter()) < stop:
                shape, raw = make(next(counter))
                status = await _exchange(reader, writer, raw)
                done = time.perf_counter()
                if status >= 300:  # counted even in the warm-up: a slow start can be all errors
                    result.errors[status] = result.errors.get(status, 0) + 1
                    continue
                if now < stop_warm:
                    continue
                result.latencies.append(done - now)
                result.by_shape.setdefault(shape, []).append(done - now)
                result.items += items
        finally:
            writer.close()

    async def clock() -> None:
        await asyncio.sleep(max(0.0, stop_warm - time.perf_counter()))
        marks.update(t=time.perf_counter(), server=_cpu_of(pid), client=_own_cpu())

    await asyncio.gather(clock(), *(client() for _ in range(connections)))
    result.seconds = time.perf_counter() - marks["t"]
    result.server_cpu = (_cpu_of(pid) - marks["server"]) / result.seconds
    result.client_cpu = (_own_cpu() - marks["client"]) / result.seconds
    return result


def events_template() -> bytes:
    """One batch of 500 events as JSON, with ``@K@`` where the batch number goes."""
    t0 = datetime(2025, 7, 1, tzinfo=UTC)
    batch = [
        {
            "event_id": f"e@K@_{i}",
            "dossier_id": f"d@K@_{i // 8}",
            "activity": "received",
            "timestamp": (t0 + timedelta(minutes=i)).isoformat(),
            "agency_id": "01.STP",
            "officer_id": f"o{i % 30}",
            "jurisdiction": f"01{i % 40:03d}",
            "procedure_code": "1.001193",
            "channel": "online",
            "applicant_id": f"citizen-{i:06d}",
            "recorded_at": (t0 + timedelta(minutes=i, seconds=30)).isoformat(),
        }
        for i in range(BATCH)
    ]
    return json.dumps(batch).encode()


def _next_cursor(port: int, path: str, key: str) -> str | None:
    """The ``next_cursor`` of one inbox page (asked before the clock starts)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        body = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    cursor = body.get("next_cursor")
    return cursor if isinstance(cursor, str) else None


def alert_queries(port: int, key: str, codes: list[str]) -> list[tuple[str, bytes]]:
    """Every inbox shape at three depths: the first page, offset 100 (page 3), and the
    page after page 1's ``next_cursor``; 50 alerts a page."""
    out = []
    for shape, pairs in _shapes(codes).items():
        first = "/v1/alerts?" + urlencode([*pairs, ("limit", 50)])
        out.append((shape, request("GET", first, key)))
        out.append((shape, request("GET", first + "&offset=100", key)))
        cursor = _next_cursor(port, first, key)
        if cursor is not None:
            out.append((shape, request("GET", first + "&" + urlencode([("cursor", cursor)]), key)))
    return out


# --- the report ---------------------------------------------------------------------------


def _run_sql(url: str, sql: str) -> None:
    from serving.db import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _server_stack() -> str:
    """The event loop and HTTP parser uvicorn's ``auto`` picks here."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {loop} + {http}"


def run_backend(backend: str, connections: int, seconds: float, n_alerts: int,
                indexes: list[str], explain_queries: bool,
                rescore: bool = False) -> None:  # fmt: skip
    live = "on" if rescore else "off (--rescore turns it on)"
    print(f"\n== {backend}: preparing; live re-scoring {live} ({load_note()})", flush=True)
    with fresh_url(backend) as url:
        keys = prepare(url)
        took = load_alerts(url, n_alerts) if n_alerts else 0.0
        print(f"   {n_alerts:,} alerts loaded in {took:.1f} s", flush=True)
        for ddl in indexes:  # a candidate index, tried before it becomes a migration
            started = time.perf_counter()
            _run_sql(url, ddl)
            print(f"   {ddl} ({time.perf_counter() - started:.1f} s)", flush=True)
        if explain_queries:
            explain(url)
        with server(url, rescore) as (port, pid):
            template = events_template()

            def event_batch(i: int) -> tuple[str, bytes]:
                body = template.replace(b"@K@", b"%d" % i)  # unique events in every batch
                return "events", request("POST", "/v1/events", keys["ingest"], body)

            health = request("GET", "/healthz")
            inspector = alert_queries(port, keys["inspector"], INSPECTOR_CODES)
            admin = alert_queries(port, keys["admin"], JURISDICTIONS)
            Plan = tuple[str, Callable[[int], tuple[str, bytes]], int, int]
            plans: list[Plan] = [
                ("GET /healthz", lambda i: ("healthz", health), 0, connections),
                ("POST /v1/events x500", event_batch, BATCH, connections),
                # one connection: each query's own latency, not queued behind 31 others
                ("GET /v1/alerts inspector", lambda i: inspector[i % len(inspector)], 0, 1),
                ("GET /v1/alerts admin", lambda i: admin[i % len(admin)], 0, 1),
                ("GET /v1/alerts inspector", lambda i: inspector[i % len(inspector)], 0,
                 connections),
                ("GET /v1/alerts admin", lambda i: admin[i % len(admin)], 0, connections),
            ]  # fmt: skip
            results = []
            for name, make, items, conns in plans:
                print(f"   {name}: {conns} connections, {seconds:g} s ...", flush=True)
                r = asyncio.run(drive(port, pid, name, make, conns, seconds, items))
                print(f"     {len(r.latencies) / r.seconds:,.0f} req/s, p99 {r.pct(0.99):.1f} ms"
                      f"; {load_note()}", flush=True)  # fmt: skip
                results.append(r)
        print_table(backend, n_alerts, connections, results)


def print_table(backend: str, n_alerts: int, connections: int, results: list[Result]) -> None:
    print(f"\n{backend}: one worker ({_server_stack()}), {n_alerts:,} alerts; {load_note()}")
    header = (f"{'route':<26}{'conns':>6}{'req/s':>8}{'events/s':>10}{'p50 ms':>8}{'p95 ms':>8}"
              f"{'p99 ms':>8}{'errors':>8}{'srv CPU':>9}{'cli CPU':>9}  target")  # fmt: skip
    print(header + "\n" + "-" * (len(header) + 22))
    for r in results:
        rate = len(r.latencies) / r.seconds
        p99 = r.pct(0.99)
        if r.items:
            per_s = r.items / r.seconds
            target = f"{EVENTS_TARGET:,} events/s: {'met' if per_s >= EVENTS_TARGET else 'MISSED'}"
            events = f"{per_s:,.0f}"
        elif "alerts" in r.name:
            target = f"p99 < {P99_TARGET_MS:g} ms: {'met' if p99 < P99_TARGET_MS else 'MISSED'}"
            events = "-"
        else:
            target, events = "reference", "-"
        errors = sum(r.errors.values())
        print(f"{r.name:<26}{r.connections:>6}{rate:>8,.0f}{events:>10}{r.pct(0.5):>8.1f}"
              f"{r.pct(0.95):>8.1f}{p99:>8.1f}{errors:>8}{r.server_cpu:>9.0%}{r.client_cpu:>9.0%}"
              f"  {target}")  # fmt: skip
    inbox = [r for r in results if "alerts" in r.name]
    if inbox:
        print(f"\n{backend} inbox by query shape (ms p50 / p95 / p99; pages 1, 3 and by cursor):")
        names = [f"{r.name.split()[-1]} x{r.connections}" for r in inbox]
        print(f"{'shape':<17}" + "".join(f"{n:>24}" for n in names))
        for shape in _shapes(INSPECTOR_CODES):
            cells = []
            for r in inbox:
                v = r.by_shape.get(shape, [])
                cells.append(f"{r.pct(0.5, v):.1f} / {r.pct(0.95, v):.1f} / {r.pct(0.99, v):.1f}")
            print(f"{shape:<17}" + "".join(f"{c:>24}" for c in cells))
    for r in results:
        if r.errors:
            print(f"  {r.name} x{r.connections} errors by status: {r.errors}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--explain", action="store_true", help="print the inbox query plans")
    parser.add_argument("--rescore", action="store_true",
                        help="keep the server's live re-scoring thread on")  # fmt: skip
    parser.add_argument("--index", action="append", default=[], metavar="DDL",
                        help="CREATE INDEX ... to try before the run (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    import pytest

    for backend in backends:
        try:
            run_backend(backend, args.connections, args.seconds, args.alerts, args.index,
                        args.explain, args.rescore)  # fmt: skip
        except pytest.skip.Exception as why:
            print(f"{backend}: skipped ({why})")


if __name__ == "__main__":
    main()
