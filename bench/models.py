"""Model benchmarks: training time on a simulated province-year, and batch scoring of the
dossiers open at one instant (feature step and LightGBM predict timed apart).

    python -m bench.models                    # one province, 12 months, seed 5
    python -m bench.models --months 6

LightGBM runs on one thread (models.boosting.BASE_PARAMS), so every figure is per core.
Stage times of the training come from the pipeline's own progress messages. Scoring is
timed at the start of the test period (a busy instant with a full history behind it):
``open_table`` for the features, then the model matrix (the float array serving passes
to LightGBM), the booster's raw predict, the calibrated risk, the two quantile regressors
and the explanations (SHAP contributions), and the whole batch job
(:func:`models.scoring.score_log`) for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bench.features import load_note, peak_mb
from features import schema as s
from features.calendar import WorkingCalendar
from features.engine import Reference
from models.bundle import ModelBundle
from models.dataset import open_table
from models.scoring import score_log
from models.train import train
from simulator import SimulationConfig, simulate_log
from simulator.run import default_catalogue


def _timed(call: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """The result of ``call`` and its median time over ``repeat`` runs, in seconds."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


class _Stages:
    """Progress callback that times the pipeline's stages between its messages."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = self.started
        self.stages: list[tuple[str, float]] = []
        self.current = "start"

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        self.stages.append((self.current, now - self.last))
        self.current, self.last = message, now

    def close(self) -> list[tuple[str, float]]:
        self("end")
        return [(name, seconds) for name, seconds in self.stages if name != "start"]


def simulated(months: int, seed: int) -> tuple[pd.DataFrame, Reference]:
    sim = simulate_log(SimulationConfig(provinces=1, months=months, seed=seed))
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    agencies = sim.agencies[["agency_id", "unit_type"]].astype("string")
    return sim.events, Reference(calendar, default_catalogue(), agencies)


def run(months: int, seed: int, repeat: int) -> None:
    print(load_note())
    (events, ref), seconds = _timed(lambda: simulated(months, seed))
    dossiers = events[s.DOSSIER_ID].nunique()
    print(
        f"simulated 1 province x {months} months (seed {seed}): {dossiers:,} dossiers, "
        f"{len(events):,} events in {seconds:.0f} s"
    )

    stages = _Stages()
    result, seconds = _timed(lambda: train(events, ref, progress=stages))
    print(f"\n== training: {seconds:.0f} s in all, peak memory {peak_mb():,.0f} MB ==")
    for name, took in stages.close():
        print(f"  {took:7.1f} s  {name}")
    m = result.metrics
    print(
        f"  delay AUC at half time {m['delay_auc_half']:.3f} (logistic "
        f"{m['logistic_auc_half']:.3f}, procedure rate {m['procedure_rate_auc_half']:.3f}); "
        f"false alarms {m['delay_false_alarm_share']:.1%}, warned 2 days ahead "
        f"{m['delay_warned_2d_share_over_2d']:.1%} (statutory > 2 days)"
    )

    delay, as_of = result.delay, result.split.test_from
    known = events[events[s.TIMESTAMP] <= as_of]
    opened, t_features = _timed(lambda: open_table(known, ref, as_of), repeat)
    n = len(opened)
    print(
        f"\n== scoring the {n:,} dossiers open at {as_of:%Y-%m-%d %H:%M} "
        f"({len(known):,} events known), median of {repeat} =="
    )
    X, t_matrix = _timed(lambda: delay.matrix_.array(opened), repeat)
    _, t_raw = _timed(lambda: delay.booster_.predict(X, raw_score=True), repeat)
    _, t_risk = _timed(lambda: delay.risk(opened), repeat)
    _, t_remaining = _timed(lambda: delay.remaining(opened), repeat)
    _, t_explain = _timed(lambda: delay.explain(opened, k=3), max(1, repeat // 2))
    booster = delay.booster_
    rows = [
        ("features (open_table)", t_features),
        ("model matrix (float array, category codes)", t_matrix),
        (
            f"LightGBM predict ({booster.num_feature()} features, {booster.num_trees()} trees)",
            t_raw,
        ),
        ("calibrated risk (array + predict + isotonic)", t_risk),
        ("remaining time p50 + p90 (two quantile boosters)", t_remaining),
        ("explanations (pred_contrib, top 3)", t_explain),
    ]
    for name, took in rows:
        print(f"  {took:8.3f} s  {n / took:12,.0f} dossiers/s  {name}")
    print(f"  (the feature step reads the whole history: {len(known) / t_features:,.0f} events/s)")

    big = np.tile(X, (max(1, int(np.ceil(200_000 / max(n, 1)))), 1))
    _, t_big = _timed(lambda: booster.predict(big, raw_score=True), repeat)
    print(f"  LightGBM predict on {len(big):,} rows: {len(big) / t_big:,.0f} rows/s (one core)")

    bundle = ModelBundle(result.delay, result.waste, result.split, 0.5, metrics={})
    scores, t_job = _timed(lambda: score_log(bundle, events, ref, as_of=as_of))
    print(
        f"  batch job (score_log: {len(scores.scores):,} dossiers started by then, waste "
        f"and reasons included): {t_job:.1f} s, {len(scores.scores) / t_job:,.0f} dossiers/s"
    )
    print(f"peak memory {peak_mb():,.0f} MB; {load_note()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="runs per scoring timing")
    args = parser.parse_args(argv)
    run(args.months, args.seed, args.repeat)


if __name__ == "__main__":
    main()
