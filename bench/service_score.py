"""``POST /v1/score`` under load, over loopback from a second process (issue 7's target:
a 15-event dossier at 1,500 req/s or more with p99 under 50 ms, one uvicorn worker).

    python -m bench.service_score                        # SQLite, then PostgreSQL
    python -m bench.service_score --backend sqlite --seconds 5
    python -m bench.service_score --no-integrity         # the bundle without integrity

Simulates a province (``--months``, ``--seed``), trains a bundle with the default model
sizes, as ``giamsat train`` does (kept in ``--bundle-dir`` and reused while the province
is the same: ``--retrain`` to train again), registers it as the champion in a temporary
MLflow store, and loads the province's events up to a cut into a fresh store (a SQLite
temp file; a new database on the PostgreSQL test server) with an analyst's key. Then
``giamsat serve`` (one uvicorn worker, its JSON request log at ``--log-level``) runs in a
subprocess and this process drives ``--connections`` keep-alive connections for
``--seconds`` at ``GET /healthz`` (the bare reference) and at ``POST /v1/score``, each
request the first 15 events of one of the open dossiers at the cut (``as_of`` the cut),
in turn. Before the clock starts, every dossier's answer is checked against the scorer
in this process (the same numbers and reasons).

The client is :func:`bench.service_load.drive` (a minimal HTTP/1.1 over asyncio streams,
bodies prepared beforehand); the table shows the CPU of the server and of the client (of
one core): the two share the machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from bench.features import load_note
from bench.service_load import (
    PEPPER,
    Result,
    _free_port,
    drive,
    fresh_url,
    request,
    subprocess_server,
)

EVENTS = 15
RATE_TARGET = 1_500
P99_TARGET_MS = 50.0
DEFAULT_BUNDLES = Path("var/bench/service_score")


# --- the province and its bundle ----------------------------------------------------------


def province(months: int, seed: int) -> tuple[pd.DataFrame, Any]:
    """The simulated events (pseudonymised under the settings' key) and reference data."""
    from features.calendar import WorkingCalendar
    from features.engine import Reference
    from simulator import SimulationConfig, simulate_log
    from simulator.run import default_catalogue

    sim = simulate_log(SimulationConfig(months=months, seed=seed))
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    agencies = sim.agencies[["agency_id", "unit_type"]].astype("string")
    return sim.events, Reference(calendar, default_catalogue(), agencies)


def bundle_for(events: pd.DataFrame, ref: Any, folder: Path, retrain: bool) -> Any:
    """The bundle trained on ``events`` with the default model sizes, from ``folder`` when
    it was trained there on the same events."""
    from bench.online_score import _bundle
    from models.bundle import ModelBundle

    hashes = pd.util.hash_pandas_object(events, index=False).to_numpy()
    stamp = hashlib.sha256(hashes.tobytes()).hexdigest()
    path = folder / stamp[:16]
    if path.exists() and not retrain:
        with contextlib.suppress(Exception):  # a bundle of an older layout: train again
            return ModelBundle.load(path)
    bundle = _bundle(events, ref)
    bundle.save(path)
    return bundle


def cut_of(events: pd.DataFrame) -> pd.Timestamp:
    """A time inside the log's last month while dossiers still arrive."""
    from features import schema as s

    starts = events.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    return pd.Timestamp(starts.quantile(0.85)).floor("h")  # type: ignore[arg-type]


def dossiers_to_score(
    events: pd.DataFrame, scorer: Any, context: Any, cut: pd.Timestamp, n: int
) -> list[list[dict[str, Any]]]:
    """Up to ``n`` open dossiers at ``cut`` with the most events, each as its first
    :data:`EVENTS` events, ready for JSON (the API's wire form)."""
    from features import schema as s
    from giamsat.demo_service import records

    known = s.sort_events(events[events[s.TIMESTAMP] <= cut])
    sizes = known.groupby(s.DOSSIER_ID, observed=True).size().sort_values(ascending=False)
    picked: list[list[dict[str, Any]]] = []
    by_dossier = {d: g for d, g in known.groupby(s.DOSSIER_ID, observed=True)}
    for dossier in sizes.index:
        part = by_dossier[dossier].head(EVENTS)
        rows = part.astype(object).where(part.notna(), None).to_dict("records")
        if scorer.features(rows, cut, context).open is not None:
            picked.append(records(part))
        if len(picked) == n:
            break
    return picked


# --- the store, the registry, the server ------------------------------------------------


def prepare_store(url: str, events: pd.DataFrame, cut: pd.Timestamp) -> str:
    """Migrate, load the events up to ``cut``; returns an analyst's API key."""
    from features import schema as s
    from giamsat.demo_service import records
    from serving.db import Store
    from serving.migrations import upgrade
    from serving.store import add_events
    from serving.users import create_api_key, create_user

    upgrade(url)
    store = Store.from_url(url)
    rows = records(events[events[s.TIMESTAMP] <= cut])
    for start in range(0, len(rows), 5000):
        with store.transaction() as session:
            add_events(session, rows[start : start + 5000])
    with store.transaction() as session:
        create_user(session, "analyst", "analyst")
        key = create_api_key(session, "analyst", PEPPER.encode())[1]
    store.dispose()
    return key


def register(bundle: Any, root: Path) -> dict[str, str]:
    """Log ``bundle`` as the champion of an MLflow store under ``root``; returns the
    service's settings for it, as environment variables."""
    from giamsat.settings import Settings
    from models import registry

    changes = {
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_root": str(root / "artifacts"),
        "model_cache": str(root / "cache"),
    }
    registry.log_training(Settings(_env_file=None, **changes), bundle, params={"bench": 1})  # type: ignore[call-arg, arg-type]
    return {f"GIAMSAT_{k.upper()}": v for k, v in changes.items()}


def serve(
    url: str, env: dict[str, str], log_level: str
) -> contextlib.AbstractContextManager[tuple[int, int]]:
    """``giamsat serve`` in a subprocess; (port, pid) once ``/readyz`` answers 200 (the
    model loaded)."""
    port = _free_port()
    env = {**env, "GIAMSAT_DATABASE_URL": url, "GIAMSAT_API_KEY_PEPPER": PEPPER,
           "GIAMSAT_SCORING_CLOCK": "events", "GIAMSAT_MODEL_RELOAD_SECONDS": "0",
           # the events loaded wait for re-scoring: the worker would score them all meanwhile
           "GIAMSAT_RESCORE_ON_INGEST": "false"}  # fmt: skip
    cmd = [sys.executable, "-c", "from giamsat.cli import app; app()", "serve",
           "--port", str(port), "--log-level", log_level]  # fmt: skip
    return subprocess_server(
        cmd, port, env, ready="/readyz", timeout=300,
        is_error=lambda line: '"level": "error"' in line or "Traceback" in line,
    )  # fmt: skip


def check_answers(port: int, key: str, bodies: list[bytes], paths: list[str], scorer: Any,
                  context: Any, cut: pd.Timestamp) -> None:  # fmt: skip
    """Every dossier's answer over HTTP is the scorer's in this process (scores, reasons)."""
    import http.client

    from serving.routes.score import _events  # the body as the route reads it

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for body, path in zip(bodies, paths, strict=True):
            conn.request("POST", path, body, {"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})  # fmt: skip
            answer = conn.getresponse()
            got = json.loads(answer.read())
            if answer.status != 200:
                raise SystemExit(f"POST /v1/score answered {answer.status}: {got}")
            want = scorer.score(_events(json.loads(body)), cut, context)
            same = got["reasons"] == want.reasons and _same(got["delay_risk"], want.delay_risk)
            if not same:
                raise SystemExit(f"{want.dossier_id}: the service answered {got['delay_risk']} "
                                 f"{got['reasons']!r}, the scorer {want.delay_risk} "
                                 f"{want.reasons!r}")  # fmt: skip
    finally:
        conn.close()


def _same(a: float | None, b: float) -> bool:
    if a is None:
        return b != b
    return abs(a - b) <= 1e-9


# --- the run ------------------------------------------------------------------------------


def run_backend(backend: str, case: dict[str, Any], args: argparse.Namespace) -> list[Result]:
    print(f"\n== {backend}: preparing ({load_note()})", flush=True)
    results: list[Result] = []
    with fresh_url(backend) as url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        key = prepare_store(url, case["events"], case["cut"])
        env = register(case["bundle"], Path(tmp))
        print(f"   store and registry ready in {time.perf_counter() - started:.0f} s", flush=True)
        with serve(url, env, args.log_level) as (port, pid):
            query = urlencode({"as_of": case["cut"].isoformat()})
            bodies = [json.dumps(b).encode() for b in case["bodies"]]
            paths = [f"/v1/score?{query}"] * len(bodies)
            check_answers(port, key, bodies, paths, case["scorer"], case["context"], case["cut"])
            print(f"   {len(bodies)} answers checked against the scorer in this process")
            raws = [request("POST", p, key, b) for p, b in zip(paths, bodies, strict=True)]
            health = request("GET", "/healthz")
            plans: list[tuple[str, Callable[[int], tuple[str, bytes]]]] = [
                ("GET /healthz", lambda i: ("healthz", health)),
                (f"POST /v1/score x{EVENTS}", lambda i: ("score", raws[i % len(raws)])),
            ]
            for name, make in plans:
                print(f"   {name}: {args.connections} connections, {args.seconds:g} s ...",
                      flush=True)  # fmt: skip
                r = asyncio.run(drive(port, pid, name, make, args.connections, args.seconds))
                print(f"     {len(r.latencies) / r.seconds:,.0f} req/s, p99 {r.pct(0.99):.1f} ms"
                      f"; {load_note()}", flush=True)  # fmt: skip
                results.append(r)
    print_table(backend, case, args, results)
    return results


def print_table(backend: str, case: dict[str, Any], args: argparse.Namespace,
                results: list[Result]) -> None:  # fmt: skip
    integrity = "with" if case["bundle"].integrity is not None else "WITHOUT"
    print(f"\n{backend}: one worker (giamsat serve, log level {args.log_level}), bundle "
          f"{integrity} integrity, {len(case['bodies'])} dossiers of {EVENTS} events; "
          f"{load_note()}")  # fmt: skip
    header = (f"{'route':<24}{'conns':>6}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
              f"{'errors':>8}{'srv CPU':>9}{'cli CPU':>9}  target")  # fmt: skip
    print(header + "\n" + "-" * (len(header) + 30))
    for r in results:
        rate = len(r.latencies) / r.seconds
        p99 = r.pct(0.99)
        if "score" in r.name:
            met = rate >= RATE_TARGET and p99 < P99_TARGET_MS
            target = (
                f"{RATE_TARGET:,} req/s, p99 < {P99_TARGET_MS:g} ms: {'met' if met else 'MISSED'}"
            )
        else:
            target = "reference"
        print(f"{r.name:<24}{r.connections:>6}{rate:>8,.0f}{r.pct(0.5):>8.1f}{r.pct(0.95):>8.1f}"
              f"{p99:>8.1f}{sum(r.errors.values()):>8}{r.server_cpu:>9.0%}{r.client_cpu:>9.0%}"
              f"  {target}")  # fmt: skip
        if r.errors:
            print(f"     errors by status: {r.errors}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--months", type=int, default=2, help="months of the province")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dossiers", type=int, default=200, help="distinct dossiers sent")
    parser.add_argument("--integrity", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the bundle's integrity model")  # fmt: skip
    parser.add_argument("--bundle-dir", type=Path, default=DEFAULT_BUNDLES)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--log-level", default="info", help="the server's (giamsat serve's)")
    args = parser.parse_args(argv)

    from dataclasses import replace

    from features.online_context import OnlineContext
    from models.online import OnlineScorer

    started = time.perf_counter()
    events, ref = province(args.months, args.seed)
    bundle = bundle_for(events, ref, args.bundle_dir, args.retrain)
    if not args.integrity:
        bundle = replace(bundle, integrity=None)
    cut = cut_of(events)
    known = events[events["timestamp"] <= cut]  # what the server's store holds
    # as the service builds it: as of the latest event stored (the events clock)
    context = OnlineContext.from_events(known, bundle.reference(), known["timestamp"].max())
    scorer = OnlineScorer(bundle, bundle.reference())
    bodies = dossiers_to_score(events, scorer, context, cut, args.dossiers)
    print(f"province of {events['dossier_id'].nunique():,} dossiers, {len(events):,} events, "
          f"bundle ready in {time.perf_counter() - started:.0f} s; cut {cut}; "
          f"{len(bodies)} open dossiers of {EVENTS} events")  # fmt: skip
    case = {"events": events, "bundle": bundle, "cut": cut, "scorer": scorer,
            "context": context, "bodies": bodies}  # fmt: skip
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    import pytest

    for backend in backends:
        try:
            run_backend(backend, case, args)
        except pytest.skip.Exception as why:
            print(f"{backend}: skipped ({why})")


if __name__ == "__main__":
    main()
