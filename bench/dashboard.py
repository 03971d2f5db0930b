"""Dashboard and public query latency on a province-year (issue 8: p95 under 200 ms).

    python -m bench.dashboard                          # both backends, one province-year
    python -m bench.dashboard --backend sqlite --months 3 --repeat 20

Simulates a province (``--months`` of the default province: ~10,000 dossiers and ~80,000
events a month), loads its events through the store's ingestion (``serving.store.add_events``)
into a fresh database (a SQLite temp file; a new PostgreSQL database on the test server),
computes and stores the dashboard facts with ``serving.facts`` (the code the scoring runs
call), and then times each dashboard query as its route calls it, in this process, with
a session per call, over the whole period (the worst case) as an admin (who sees every
jurisdiction) and as an inspector of ten communes. Prints p50/p95/max per query.

No model is trained: the dossiers' risk scores are drawn at random (seeded) and one alert
is raised per dossier the simulator labels anomalous, so the list and alert queries read
realistic volumes; waste days stay missing (a sum over NULLs costs what one over numbers
does). The figures measure the queries, not the models.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from bench.features import load_note
from bench.service_load import fresh_url

TARGET_MS = 200.0
TZ = "Asia/Ho_Chi_Minh"


def _simulate(months: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    from features.calendar import WorkingCalendar
    from features.engine import Reference
    from simulator.config import SimulationConfig
    from simulator.run import default_catalogue, simulate_log

    log = simulate_log(SimulationConfig(months=months, seed=seed))
    calendar = WorkingCalendar.for_country("VN", tz=TZ)
    agencies = log.agencies[["agency_id", "unit_type"]].astype("string")
    return log.events, log.labels_dossiers, Reference(calendar, default_catalogue(), agencies)


def _load(url: str, events: pd.DataFrame, labels: pd.DataFrame, ref: Any, seed: int) -> Any:
    from giamsat.demo_service import records
    from serving.db import Store
    from serving.facts import facts_of, upsert_facts
    from serving.migrations import upgrade
    from serving.rescoring import stored_events
    from serving.store import add_events, upsert_scores
    from serving.workflow import upsert_alerts

    upgrade(url)
    store = Store.from_url(url)
    rows = records(events)
    started = time.perf_counter()
    for start in range(0, len(rows), 5_000):
        with store.transaction() as session:
            add_events(session, rows[start : start + 5_000])
    print(f"  ingested {len(rows):,} events in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    with store.read() as session:
        known = stored_events(session, tz=TZ)
    as_of = pd.Timestamp(known["timestamp"].max())
    facts = facts_of(known, ref, as_of)
    rng = np.random.default_rng(seed)
    ids = facts.dossiers["dossier_id"].to_numpy()
    risk = rng.beta(1.2, 6.0, len(ids))
    scores = pd.DataFrame(
        {
            "dossier_id": ids,
            "status": np.where(facts.dossiers["closed_day"].isna(), "open", "closed"),
            "first_agency": facts.dossiers["agency_id"].to_numpy(),
            "procedure_code": facts.dossiers["procedure_code"].to_numpy(),
            "jurisdiction": facts.dossiers["jurisdiction"].to_numpy(),
            "risk_score": risk,
            "delay_risk": risk,
            "waste_score": rng.beta(1.0, 8.0, len(ids)),
            "integrity_score": rng.beta(1.0, 9.0, len(ids)),
            "reasons": "bench",
        }
    )
    bad = labels[labels["anomaly_type"].notna() & (labels["anomaly_type"] != "")]
    by_id = facts.dossiers.set_index("dossier_id")
    kinds = {"excess_supplements": "waste", "rework_loop": "waste", "ping_pong": "waste",
             "idle_then_rush": "waste", "forced_in_person": "waste"}  # fmt: skip
    alerts = [
        {
            "kind": kinds.get(str(kind), "integrity"),
            "subject_type": "dossier",
            "subject_id": str(d),
            "score": 0.9,
            "severity": "high",
            "jurisdiction": by_id.at[str(d), "jurisdiction"],
            "agency_id": by_id.at[str(d), "agency_id"],
            "reasons": f"bench: {kind}",
        }
        for d, kind in zip(bad["dossier_id"], bad["anomaly_type"], strict=True)
        if str(d) in by_id.index
    ]
    with store.transaction() as session:
        upsert_scores(session, scores, as_of=as_of.to_pydatetime(), model_version="bench")
        upsert_facts(session, facts)
        upsert_alerts(session, alerts, now=as_of.to_pydatetime())
    print(
        f"  facts of {len(ids):,} dossiers and {len(facts.transfers):,} handovers, "
        f"{len(alerts):,} alerts in {time.perf_counter() - started:.0f} s"
    )
    return store


def _queries(
    store: Any, since: date, until: date, codes: list[str]
) -> dict[str, Callable[[], Any]]:
    from pydantic import SecretStr

    from giamsat.settings import Settings
    from serving.dashboard import DossierQuery, search_risk, transfer_graph
    from serving.scorecards import FactFilters, Period, scorecards, series
    from serving.tables import dossier_facts
    from serving.transparency import check_value, lookup
    from serving.users import SYSTEM, Role, User

    period = Period(since, until)
    month = Period(until.replace(day=1), until)
    inspector = User(2, "inspector", Role.INSPECTOR, frozenset(codes))
    secret = SecretStr("bench-receipt-secret-0123")
    settings = Settings(_env_file=None, receipt_secret=secret)  # type: ignore[call-arg]
    with store.read() as session:
        busiest = session.execute(
            dossier_facts.select().with_only_columns(dossier_facts.c.agency_id).limit(1)
        ).scalar_one()
        some = session.execute(
            dossier_facts.select().with_only_columns(dossier_facts.c.dossier_id).limit(1)
        ).scalar_one()
    check = check_value(b"bench-receipt-secret-0123", some)

    def run(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with store.read() as session:
                return fn(session)

        return call

    return {
        "scorecards by agency, year": run(lambda s: scorecards(s, SYSTEM, "agency", period, tz=TZ)),
        "scorecards by agency, month": run(lambda s: scorecards(s, SYSTEM, "agency", month, tz=TZ)),
        "scorecards by procedure, year": run(
            lambda s: scorecards(s, SYSTEM, "procedure", period, tz=TZ)
        ),
        "scorecards by officer, year": run(
            lambda s: scorecards(s, SYSTEM, "officer", period, tz=TZ)
        ),
        "scorecards one agency, year": run(
            lambda s: scorecards(s, SYSTEM, "officer", period, FactFilters(busiest), tz=TZ)
        ),
        "scorecards by agency, inspector": run(
            lambda s: scorecards(s, inspector, "agency", period, tz=TZ)
        ),
        "series daily, year": run(lambda s: series(s, SYSTEM, period, "day")),
        "series monthly, year": run(lambda s: series(s, SYSTEM, period, "month")),
        "transfer graph, year": run(lambda s: transfer_graph(s, SYSTEM, period)),
        "risk list page 1": run(
            lambda s: search_risk(s, SYSTEM, DossierQuery(), limit=50, offset=0)
        ),
        "risk list, agency + month": run(
            lambda s: search_risk(
                s,
                SYSTEM,
                DossierQuery(period=month, filters=FactFilters(busiest)),
                limit=50,
                offset=0,
            )  # fmt: skip
        ),
        "risk list, score 0.2-0.4": run(
            lambda s: search_risk(
                s, SYSTEM, DossierQuery(min_score=0.2, max_score=0.4), limit=50, offset=0
            )
        ),
        "risk list, inspector": run(
            lambda s: search_risk(s, inspector, DossierQuery(), limit=50, offset=0)
        ),
        "public agencies, year": run(
            lambda s: scorecards(s, SYSTEM, "agency", period, tz=TZ, alerts=False)
        ),
        "public dossier lookup": run(lambda s: lookup(s, settings, some, check)),
    }


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm: plans, caches
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench(backend: str, months: int, repeat: int, seed: int) -> None:
    print(f"\n== {backend}: {months} month(s) of one province ==")
    events, labels, ref = _simulate(months, seed)
    stamps = events["timestamp"]
    since = stamps.min().tz_convert(TZ).date()
    until = stamps.max().tz_convert(TZ).date()
    print(f"  {events['dossier_id'].nunique():,} dossiers, {len(events):,} events, "
          f"{since} to {until}")  # fmt: skip
    codes = sorted(set(events["jurisdiction"].astype(str)))[1:11]
    with fresh_url(backend) as url:
        store = _load(url, events, labels, ref, seed)
        try:
            print(f"  {'query':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            worst = 0.0
            for name, fn in _queries(store, since, until, codes).items():
                ms = _time(fn, repeat)
                p95 = _p(ms, 95)
                worst = max(worst, p95)
                flag = "" if p95 < TARGET_MS else "  over target"
                print(f"  {name:34} {statistics.median(ms):8.1f} {p95:8.1f} {max(ms):8.1f}{flag}")
            verdict = "under" if worst < TARGET_MS else "OVER"
            print(f"  worst p95 {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
        finally:
            store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(load_note())
    print(f"started {datetime.now(UTC).isoformat(timespec='seconds')}")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        bench(backend, args.months, args.repeat, args.seed)


if __name__ == "__main__":
    main()
