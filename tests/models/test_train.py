"""The training pipeline, its measures, the baselines and the report: plumbing and hand
checked figures, on a two-month simulated province with few boosting rounds (quality is
tests/models/test_delay.py's job)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features import schema as s
from models.baselines import LogisticDelay, NaiveRemaining, ProcedureRate
from models.evaluate import lead_distribution, reliability, warnings, waste_quality
from models.train import DENSE_EVENTS, TrainingResult, evaluate, grid_cuts, train
from tests.models.conftest import ModelLog, simulated_model_log

FAST = {"rounds": 40, "quantile_rounds": 30}
#: what MLflow accepts as a metric name.
METRIC_NAME = re.compile(r"^[A-Za-z0-9_\-. /]+$")


@pytest.fixture(scope="module")
def log() -> ModelLog:
    return simulated_model_log(months=2, seed=5)


@pytest.fixture(scope="module")
def result(log: ModelLog, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    said: list[str] = []
    out = train(
        log.events,
        log.ref,
        delay_params=FAST,
        waste_params={"rounds": 30},
        labels=log.labels,
        report_dir=tmp_path_factory.mktemp("report"),
        progress=said.append,
    )
    assert said, "progress was never reported"
    return out


def test_train_gives_models_split_flat_metrics_and_tables(result: TrainingResult) -> None:
    assert result.delay.rounds == FAST["rounds"]
    assert result.split.calibrate_from < result.split.test_from
    for name, value in result.metrics.items():
        assert METRIC_NAME.match(name), name
        assert isinstance(value, float), name
    for name in (
        "delay_auc_half",
        "logistic_auc_half",
        "procedure_rate_auc_half",
        "delay_ap_half",
        "delay_brier_half",
        "delay_false_alarm_share",
        "delay_warned_2d_share",
        "delay_warned_2d_share_over_2d",
        "remaining_mae",
        "naive_remaining_mae",
        "remaining_p90_coverage",
        "waste_days_total",
        "waste_ap",
    ):
        assert np.isfinite(result.metrics[name]), name
    for name in (
        "auc_by_position",
        "lead_time",
        "calibration",
        "remaining_by_position",
        "waste_by_agency",
        "roc_half",
        "pr_half",
    ):
        assert len(result.tables[name]), name
    assert set(result.tables["auc_by_position"].columns) >= {
        "events",
        "rows",
        "delay",
        "logistic",
        "procedure_rate",
    }
    assert result.metrics["delay_threshold"] == result.delay.threshold_
    assert 0 < result.metrics["delay_auc_half"] <= 1


def test_the_report_holds_the_figures_and_readable_plots(result: TrainingResult) -> None:
    import matplotlib.image as mpimg

    assert result.report is not None
    text = (result.report / "report.md").read_text()
    assert f"{result.metrics['delay_auc_half']:.4f}" in text
    assert "cannot be warned 2 days ahead" in text
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text)
    assert len(images) == 6
    for name in images:
        pixels = mpimg.imread(result.report / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name
        assert pixels[..., :3].std() > 0.05, f"{name} looks blank"


def test_evaluate_on_the_same_split_reproduces_the_training_figures(
    log: ModelLog, result: TrainingResult
) -> None:
    """What ``giamsat promote`` relies on: the same models on the same split and events
    give the same figures, so a champion and a challenger are compared on equal terms.
    Without labels there is no waste AP, and nothing else changes."""
    metrics, tables, report = evaluate(
        result.delay, result.waste, log.events, log.ref, result.split
    )
    assert report is None
    labelled = {
        k for k in result.metrics if k.startswith("waste_ap") or k == "waste_labelled_share"
    }
    assert labelled and not labelled & set(metrics)
    assert metrics == {k: v for k, v in result.metrics.items() if k not in labelled}
    pd.testing.assert_frame_equal(tables["auc_by_position"], result.tables["auc_by_position"])
    pd.testing.assert_frame_equal(tables["lead_time"], result.tables["lead_time"])


def test_grid_cuts_are_event_times_and_fractions_before_the_last_event(log: ModelLog) -> None:
    ids = pd.Index(log.events[s.DOSSIER_ID].drop_duplicates().iloc[:300])
    cuts = grid_cuts(log.events, log.ref, ids, max_events=3, fractions=(0.5,))
    mine = log.events[log.events[s.DOSSIER_ID].isin(ids)]
    last = mine.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].max()
    assert set(cuts.index) <= set(ids)
    assert (cuts < last.reindex(cuts.index).to_numpy()).all()
    times = set(zip(mine[s.DOSSIER_ID], mine[s.TIMESTAMP], strict=True))
    by_event = [(d, t) in times for d, t in cuts.items()]
    counts = pd.Series(by_event, index=cuts.index).groupby(level=0).sum()
    assert counts.max() <= 3 and counts.min() >= 1
    assert 0 < (~np.array(by_event)).sum() <= len(ids)  # at most one half-time cut each
    assert DENSE_EVENTS >= 10


def _table(rows: list[tuple[str, int, float, int, float]]) -> pd.DataFrame:
    """A dense-cut table: dossier, hour of the cut, remaining days, late, statutory."""
    index = pd.MultiIndex.from_arrays(
        [
            [r[0] for r in rows],
            pd.DatetimeIndex(
                [
                    pd.Timestamp("2025-01-06 08:00", tz="UTC") + pd.Timedelta(hours=r[1])
                    for r in rows
                ]
            ),
        ],
        names=[s.DOSSIER_ID, "cut"],
    )
    return pd.DataFrame(
        {
            "cut": index.get_level_values("cut"),
            "remaining_honest_days": [r[2] for r in rows],
            "final_late_honest": [r[3] for r in rows],
            "statutory_days": [r[4] for r in rows],
        },
        index=index,
    )


def test_warnings_count_dossiers_at_their_first_warning() -> None:
    table = _table(
        [
            ("a", 0, 5.0, 1, 10.0),
            ("a", 1, 3.0, 1, 10.0),
            ("a", 2, 1.0, 1, 10.0),
            ("b", 0, 1.5, 1, 2.0),
            ("b", 1, 0.5, 1, 2.0),
            ("c", 0, 4.0, 1, 5.0),
            ("d", 0, 6.0, 0, 8.0),
            ("d", 1, 2.0, 0, 8.0),
            ("e", 0, 6.0, 0, 8.0),
        ]
    )
    risk = np.array([0.1, 0.6, 0.9, 0.7, 0.8, 0.2, 0.1, 0.5, 0.3])
    metrics, per = warnings(table, risk, 0.5)
    assert metrics["delay_false_alarm_share"] == 0.5  # d warned, e not
    assert metrics["delay_warned_share"] == pytest.approx(2 / 3)  # a and b, not c
    assert metrics["delay_warned_2d_share"] == pytest.approx(1 / 3)  # a at 3 days
    assert metrics["delay_warned_2d_share_over_2d"] == 0.5  # of a and c (b: 2 days only)
    assert per.loc["a", "lead_days"] == 3.0 and np.isnan(per.loc["c", "lead_days"])
    lead = lead_distribution(per).set_index("lead")
    assert lead.loc["3-5", "late_dossiers"] == 1 and lead.loc["1-2", "late_dossiers"] == 1
    assert lead.loc["not warned", "statutory_over_2d"] == 1
    assert lead["late_dossiers"].sum() == 3


def test_reliability_bins_average_what_falls_in_them() -> None:
    p = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1])
    bins = reliability(y, p).set_index("bin")
    assert list(bins.index) == ["0.0-0.1", "0.1-0.2", "0.9-1.0"]
    assert bins.loc["0.0-0.1", "observed"] == 0.5 and bins.loc["0.9-1.0", "rows"] == 2


def test_waste_ap_scores_injected_waste_against_normal_dossiers_only() -> None:
    index = pd.Index(["a", "b", "c", "d", "e"], name=s.DOSSIER_ID)
    waste = pd.DataFrame(
        {
            "waste_days": [3.0, 0, 1, 0, 5],
            "waste_touches": [1.0, 0, 0, 0, 2],
            "waste_score": [0.9, 0.1, 0.2, 0.3, 0.95],
        },
        index=index,
    )
    labels = pd.DataFrame(
        {"anomaly_type": ["rework_loop", None, None, "favouritism", "ping_pong"]}, index=index
    )
    m = waste_quality(waste, labels)
    assert m["waste_ap"] == 1.0  # d (another anomaly) is left out, though it outscores b, c
    assert m["waste_ap_rework_loop"] == 1.0 and m["waste_labelled_share"] == 0.5
    assert np.isnan(m["waste_ap_idle_then_rush"])
    assert m["waste_days_total"] == 9.0


def _prefixes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    procedure = rng.choice(["P1", "P2", "P3"], n, p=[0.5, 0.4, 0.1])
    late = (rng.random(n) < np.where(procedure == "P1", 0.1, 0.5)).astype(float)
    index = pd.MultiIndex.from_arrays(
        [np.arange(n) // 2, np.arange(n) % 2], names=[s.DOSSIER_ID, "cut"]
    )
    return pd.DataFrame(
        {
            s.PROCEDURE_CODE: pd.array(procedure, dtype="string"),
            "current_step": pd.array(rng.choice(["received", "assigned"], n), dtype="string"),
            "honest_clock_ratio": late * 0.5 + rng.random(n),
            "final_late_honest": late,
            "remaining_work_days": np.where(procedure == "P1", 1.0, 4.0),
        },
        index=index,
    )


def test_procedure_rate_is_the_smoothed_share_of_late_dossiers() -> None:
    table = _prefixes()
    model = ProcedureRate(smoothing=10).fit(table)
    per = table.groupby(level=0).first()
    overall = per["final_late_honest"].mean()
    p3 = per[per[s.PROCEDURE_CODE] == "P3"]["final_late_honest"]
    expected = (p3.sum() + 10 * overall) / (len(p3) + 10)
    assert model.rates_["P3"] == pytest.approx(expected)
    unseen = table.head(1).assign(**{s.PROCEDURE_CODE: pd.array(["P9"], dtype="string")})
    assert model.risk(unseen)[0] == pytest.approx(overall)


def test_baselines_follow_the_estimator_contract() -> None:
    table = _prefixes()
    for model in (ProcedureRate(), LogisticDelay(), NaiveRemaining()):
        with pytest.raises(NotFittedError):
            model.predict(table) if isinstance(model, NaiveRemaining) else model.risk(table)
        assert clone(model).get_params() == model.get_params()
        assert model.fit(table) is model
    logistic = LogisticDelay(min_frequency=5).fit(table)
    risk = logistic.risk(table)
    assert ((risk >= 0) & (risk <= 1)).all()
    late = table["final_late_honest"].to_numpy() == 1
    assert risk[late].mean() > risk[~late].mean()
    odd = table.head(3).assign(current_step=pd.array(["never seen"] * 3, dtype="string"))
    assert np.isfinite(logistic.risk(odd)).all()


def test_naive_remaining_falls_back_from_step_to_procedure_to_overall() -> None:
    table = _prefixes()
    model = NaiveRemaining().fit(table)
    probe = table.head(3).copy()
    probe[s.PROCEDURE_CODE] = pd.array(["P1", "P2", "P9"], dtype="string")
    probe["current_step"] = pd.array(["received", "nowhere", "received"], dtype="string")
    assert list(model.predict(probe)) == [1.0, 4.0, float(table["remaining_work_days"].median())]
