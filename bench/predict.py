"""Per-call latency of the delay model: the native LightGBM Booster that serving calls,
against MLflow's pyfunc wrapper of the same registered bundle.

    python -m bench.predict            # a 2-month simulated province, a small model

Trains a bundle, registers it in a throw-away MLflow SQLite store, loads it back both
ways, and times one-row calls (median of many) and a batch of all open dossiers.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from features.calendar import WorkingCalendar
from features.engine import Reference
from giamsat.settings import Settings
from models import registry
from models.bundle import ModelBundle
from models.dataset import closed_table, open_table, prefix_table, temporal_split
from models.delay import DelayModel
from models.lifecycle import waste_threshold
from models.waste import WasteModel
from simulator import SimulationConfig, simulate_log
from simulator.run import default_catalogue


def _median_seconds(call: Callable[[], object], repeat: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(months: int, rounds: int, repeat: int) -> None:
    sim = simulate_log(SimulationConfig(months=months, seed=4))
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    agencies = sim.agencies[["agency_id", "unit_type"]].astype("string")
    ref = Reference(calendar, default_catalogue(), agencies)
    table = prefix_table(sim.events, ref)
    split = temporal_split(table.groupby(level=0)["started_at"].first())
    delay = DelayModel(rounds=rounds, quantile_rounds=rounds).fit(
        split.settled(table, 0), split.settled(table, 1)
    )
    closed = closed_table(sim.events, ref)
    waste = WasteModel(rounds=rounds).fit(closed[split.period(closed["started_at"]) == 0])
    bundle = ModelBundle(delay, waste, split, waste_threshold(waste, sim.events, ref, split, 0.01))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db",
            mlflow_artifact_root=f"{tmp}/artifacts",
            model_cache=Path(tmp) / "cache",
        )
        registry.log_training(settings, bundle, params={"rounds": rounds})
        native = registry.load_bundle(settings).bundle
        import mlflow

        with registry.tracking(settings):
            pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
        as_of = pd.Timestamp(split.test_from)
        opened = open_table(sim.events[sim.events["timestamp"] <= as_of], ref, as_of)
        X = native.delay.matrix_.array(opened)
        one_x, one_table = X[:1], opened.iloc[:1]
        booster = native.delay.booster_
        t_booster = _median_seconds(lambda: booster.predict(one_x, raw_score=True), repeat)
        t_risk = _median_seconds(lambda: native.delay.risk(one_table), repeat)
        t_pyfunc = _median_seconds(lambda: pyfunc.predict(one_table), repeat)
        t_frame = _median_seconds(
            lambda: booster.predict(native.delay.matrix_.transform(one_table), raw_score=True),
            repeat,
        )
        started = time.perf_counter()
        booster.predict(X, raw_score=True)
        batch = time.perf_counter() - started
    trees = booster.num_trees()
    print(f"delay model: {trees} trees, {X.shape[1]} features; {len(X):,} open dossiers")
    print(f"{'call':<44}{'median per call':>18}")
    print(f"{'native Booster.predict, 1 row (numpy)':<44}{t_booster * 1e6:>15,.0f} us")
    print(f"{'DelayModel.risk (table -> risk), 1 row':<44}{t_risk * 1e6:>15,.0f} us")
    print(f"{'MLflow pyfunc predict, 1 row':<44}{t_pyfunc * 1e6:>15,.0f} us")
    print(f"{'Booster.predict from a DataFrame, 1 row':<44}{t_frame * 1e6:>15,.0f} us")
    print(f"pyfunc overhead over the native path: {(t_pyfunc - t_risk) * 1e3:.2f} ms per call")
    print(f"native batch: {len(X) / batch:,.0f} rows/s on one thread")


def main(
    months: Annotated[int, typer.Option(help="months of the simulated province")] = 2,
    rounds: Annotated[int, typer.Option(help="boosting rounds")] = 200,
    repeat: Annotated[int, typer.Option(help="timed calls per case")] = 200,
) -> None:
    """Native Booster vs MLflow pyfunc latency of the delay model."""
    run(months, rounds, repeat)


if __name__ == "__main__":
    typer.run(main)
