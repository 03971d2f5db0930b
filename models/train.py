"""The training pipeline the CLI calls: a temporal split, the delay and waste models fitted
on the training period (the delay model calibrated on the next one), and their evaluation
on the test period against the baselines (:mod:`models.baselines`).

Periods split dossiers by start time (:func:`models.dataset.temporal_split`). Each period
only keeps dossiers settled before the next one starts (:meth:`models.dataset.Split.settled`),
the labels a live system training at that time would know. The calibration and test
periods are cut on a dense grid (every event up to :data:`DENSE_EVENTS` and every tenth
of the statutory time), because the warning threshold is chosen there and a live system
re-scores open dossiers at every event and periodically: on sparse cuts a threshold meant
for 10 % false alarms gave 13.6 % on the dense cuts of the test period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.dossiers import dossier_descriptors, dossier_features
from features.engine import Reference
from models import evaluate as measures
from models.baselines import LogisticDelay, NaiveRemaining, ProcedureRate
from models.dataset import Split, closed_table, cut_table, half_time_cuts, temporal_split
from models.delay import LABEL, DelayModel, dossier_weights
from models.waste import WasteModel, waste_by

__all__ = [
    "DENSE_EVENTS",
    "DENSE_FRACTIONS",
    "TrainingResult",
    "evaluate",
    "grid_cuts",
    "half_table",
    "period_table",
    "train",
]

Progress = Callable[[str], None]
#: the dense grid of the calibration and test periods.
DENSE_EVENTS = 40
DENSE_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(1, 10))
#: the training grid (as models.dataset.prefix_table's defaults).
TRAIN_EVENTS = 10
TRAIN_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass
class TrainingResult:
    """What :func:`train` gives the CLI: models, split, flat metrics, tables, report."""

    delay: DelayModel
    waste: WasteModel
    split: Split
    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    report: Path | None


def _quiet(_: str) -> None:
    return None


def _starts(events: pd.DataFrame) -> pd.Series:
    return dossier_descriptors(events)["started_at"]


def grid_cuts(
    events: pd.DataFrame,
    ref: Reference,
    dossiers: pd.Index,
    *,
    max_events: int,
    fractions: Sequence[float],
) -> pd.Series:
    """Cuts of ``dossiers`` (dossier_id -> instant): the times of their first
    ``max_events`` events but the last, and the instants when each of ``fractions`` of
    their statutory time has passed since their first event, if before their last event
    (the cuts of :func:`models.dataset.prefix_table`, for a subset of dossiers)."""
    mine = events[events[s.DOSSIER_ID].isin(dossiers)]
    mine = s.sort_events(mine)
    times = mine[s.TIMESTAMP]
    group = mine.groupby(s.DOSSIER_ID, sort=False, observed=True)
    position = group.cumcount().to_numpy()
    size = group[s.TIMESTAMP].transform("size").to_numpy()
    keep = np.flatnonzero((position < max_events) & (position < size - 1))
    by_event = times.iloc[keep].dt.tz_convert("UTC")
    parts = [by_event.set_axis(pd.Index(mine[s.DOSSIER_ID].iloc[keep], name=s.DOSSIER_ID))]
    if fractions:
        full = dossier_features(mine, ref.calendar, catalogue=ref.catalogue, agencies=ref.agencies)
        desc = dossier_descriptors(mine)
        last = group[s.TIMESTAMP].max()
        statutory = full["statutory_days"]
        known = statutory.index[statutory.notna() & (statutory > 0)]
        start = pd.DatetimeIndex(desc.loc[known, "started_at"])
        for fraction in fractions:
            when = ref.calendar.add_working_days(start, statutory[known].to_numpy() * fraction)
            cut = pd.Series(pd.DatetimeIndex(when).tz_convert("UTC"), index=known)
            parts.append(cut[cut < last.reindex(known).dt.tz_convert("UTC")])
    cuts = pd.concat(parts)
    return cuts.dt.tz_convert(times.dt.tz).rename("cut")


def period_table(
    events: pd.DataFrame,
    ref: Reference,
    split: Split,
    period: int,
    *,
    dense: bool = False,
    starts: pd.Series | None = None,
) -> pd.DataFrame:
    """Settled prefixes of one period (0 train, 1 calibrate, 2 test) on the training grid,
    or the dense grid. Features read every event of the log (backlogs, recent outcomes),
    each prefix only up to its cut."""
    starts = _starts(events) if starts is None else starts
    ids = starts.index[split.period(starts) == period]
    max_events, fractions = (
        (DENSE_EVENTS, DENSE_FRACTIONS) if dense else (TRAIN_EVENTS, TRAIN_FRACTIONS)
    )
    cuts = grid_cuts(events, ref, ids, max_events=max_events, fractions=fractions)
    return split.settled(cut_table(events, ref, cuts), period)


def half_table(
    events: pd.DataFrame, ref: Reference, split: Split, starts: pd.Series | None = None
) -> pd.DataFrame:
    """Settled test-period dossiers as of half of their statutory time (those still open)."""
    starts = _starts(events) if starts is None else starts
    ids = starts.index[split.period(starts) == 2]
    mine = events[events[s.DOSSIER_ID].isin(ids)]
    return split.settled(cut_table(events, ref, half_time_cuts(mine, ref)), 2)


def train(
    events: pd.DataFrame,
    ref: Reference,
    *,
    delay_params: dict[str, Any] | None = None,
    waste_params: dict[str, Any] | None = None,
    labels: pd.DataFrame | None = None,
    report_dir: Path | None = None,
    progress: Progress | None = None,
) -> TrainingResult:
    """Split ``events`` in time, fit the delay model on settled training prefixes
    (calibrated on the calibration period's dense cuts) and the waste model on the
    training period's finished dossiers, then :func:`evaluate` both on the test period.
    ``labels`` (index dossier_id, column anomaly_type) adds the waste AP."""
    say = progress or _quiet
    starts = _starts(events)
    split = temporal_split(starts)
    say(
        f"split: training before {split.calibrate_from:%Y-%m-%d}, calibration before "
        f"{split.test_from:%Y-%m-%d}, test after"
    )
    say("training prefixes")
    table = period_table(events, ref, split, 0, starts=starts)
    say(f"calibration prefixes (dense cuts); {len(table):,} training rows")
    calibration = period_table(events, ref, split, 1, dense=True, starts=starts)
    say(f"fitting the delay model on {len(table):,} rows, calibrating on {len(calibration):,}")
    delay = DelayModel(**(delay_params or {})).fit(table, calibration)
    del calibration
    say("fitting the waste model on the training period's finished dossiers")
    closed = closed_table(events, ref, as_of=split.calibrate_from)
    closed = closed[(split.period(closed["started_at"]) == 0) & closed["finished"].to_numpy()]
    waste = WasteModel(**(waste_params or {})).fit(closed)
    del closed
    metrics, tables, report = _evaluate(
        delay, waste, events, ref, split, table, starts, labels, report_dir, say
    )
    return TrainingResult(delay, waste, split, metrics, tables, report)


def evaluate(
    delay: DelayModel,
    waste: WasteModel,
    events: pd.DataFrame,
    ref: Reference,
    split: Split,
    *,
    labels: pd.DataFrame | None = None,
    report_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, float], dict[str, pd.DataFrame], Path | None]:
    """Metrics, tables and (with ``report_dir``) the report of fitted models on the test
    period of ``split``; the baselines are fitted on its training period. Deterministic:
    two models evaluated on the same events and split are compared on the same rows."""
    say = progress or _quiet
    starts = _starts(events)
    say("training prefixes for the baselines")
    table = period_table(events, ref, split, 0, starts=starts)
    return _evaluate(delay, waste, events, ref, split, table, starts, labels, report_dir, say)


def _evaluate(
    delay: DelayModel,
    waste: WasteModel,
    events: pd.DataFrame,
    ref: Reference,
    split: Split,
    train_table: pd.DataFrame,
    starts: pd.Series,
    labels: pd.DataFrame | None,
    report_dir: Path | None,
    say: Progress,
) -> tuple[dict[str, float], dict[str, pd.DataFrame], Path | None]:
    say("fitting the baselines on the training period")
    weight = dossier_weights(train_table) if getattr(delay, "weigh_dossiers", False) else None
    rate = ProcedureRate().fit(train_table)
    logistic = LogisticDelay().fit(train_table, sample_weight=weight)
    naive = NaiveRemaining().fit(train_table)
    del train_table

    def scores(part: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            "delay": delay.risk(part),
            "procedure_rate": rate.risk(part),
            "logistic": logistic.risk(part),
        }

    say("scoring the test period at half of the statutory time")
    half = half_table(events, ref, split, starts)
    at_half = scores(half)
    metrics = measures.scored_at_half(half, at_half)
    tables = measures.curves(half, at_half)
    del half

    say("scoring the test period on dense cuts")
    dense = period_table(events, ref, split, 2, dense=True, starts=starts)
    y = dense[LABEL].to_numpy(dtype=np.float64)
    on_dense = scores(dense)
    for name, score in on_dense.items():
        metrics[f"{name}_auc_dense"] = measures.auc(y, score)
        metrics[f"{name}_brier_dense"] = float(np.mean((score - y) ** 2)) if len(y) else np.nan
    positions = measures.by_position(dense, on_dense)
    tables["auc_by_position"] = positions
    for name in on_dense:
        known = positions[name].notna()
        weights = positions.loc[known, "rows"]
        metrics[f"{name}_auc_by_position"] = (
            float(np.average(positions.loc[known, name], weights=weights))
            if known.any()
            else np.nan
        )
    tables["calibration"] = measures.reliability(y, on_dense["delay"])
    warned, per = measures.warnings(dense, on_dense["delay"], delay.threshold_)
    metrics.update(warned)
    tables["lead_time"] = measures.lead_distribution(per)
    p50, p90 = delay.remaining(dense)
    remaining, tables["remaining_by_position"] = measures.remaining_errors(
        dense, p50, p90, naive.predict(dense)
    )
    metrics.update(remaining)
    del dense, on_dense, per

    say("waste of the test period's finished dossiers")
    closed = closed_table(events, ref)
    closed = closed[(split.period(closed["started_at"]) == 2) & closed["finished"].to_numpy()]
    wasted = waste.transform(closed)
    metrics.update(measures.waste_quality(wasted, labels))
    tables["waste_by_agency"] = waste_by(closed, wasted, "first_agency").reset_index()
    metrics = {k: float(v) for k, v in metrics.items()}
    report = None
    if report_dir is not None:
        from models.report import write_report

        say(f"writing the report to {report_dir}")
        report = write_report(metrics, tables, Path(report_dir))
    return metrics, tables, report
