"""Dossier-level integrity: the quality floor on injected anomalies, behaviour on edited
dossiers, no look-ahead, persistence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from features import schema as s
from models.dataset import closed_table
from models.integrity import IntegrityModel, combine
from models.tails import TailTable
from tests.models.conftest import ModelLog

#: every dossier-level type of the simulator.
INTEGRITY_TYPES = (
    "excess_supplements",
    "rework_loop",
    "idle_then_rush",
    "clock_reset",
    "backdated",
    "skipped_step",
    "out_of_order",
    "ping_pong",
    "off_route_transfer",
    "forced_in_person",
)
FLOOR = 0.8


@dataclass(frozen=True)
class Fitted:
    log: ModelLog
    model: IntegrityModel
    table: pd.DataFrame  # every dossier's features at the end of the log
    scores: pd.DataFrame
    until: pd.Timestamp


@pytest.fixture(scope="module")
def fitted(model_log: ModelLog) -> Fitted:
    events = model_log.events
    until = events[s.TIMESTAMP].quantile(0.6)
    known = events[events[s.TIMESTAMP] < until]
    model = IntegrityModel().fit(closed_table(known, model_log.ref, until), known)
    table = closed_table(events, model_log.ref)
    return Fitted(model_log, model, table, model.score_samples(table, events), until)


def _types(log: ModelLog, index: pd.Index) -> pd.Series:
    kinds = log.labels["anomaly_type"].reindex(index)
    return kinds.astype(object).where(kinds.notna(), None)


@pytest.mark.parametrize("kind", INTEGRITY_TYPES)
def test_average_precision_floor_per_type(fitted: Fitted, kind: str) -> None:
    types = _types(fitted.log, fitted.scores.index)
    chosen = types.isna() | (types == kind)
    y = (types[chosen] == kind).to_numpy(bool)
    assert y.sum() >= 30, f"too few {kind} dossiers to measure"
    ap = average_precision_score(y, fitted.scores["integrity_score"][chosen])
    assert ap >= FLOOR, f"{kind}: average precision {ap:.3f} < {FLOOR}"


def test_alert_budget_is_kept_and_scores_are_probabilities(fitted: Fitted) -> None:
    score = fitted.scores["integrity_score"]
    assert score.between(0, 1).all()
    started = fitted.table["started_at"] < fitted.until
    share = float((score[started] >= fitted.model.threshold_).mean())
    assert share <= fitted.model.alert_share * 1.5 + 0.005
    assert fitted.model.threshold_ >= 0.5


def test_reasons_name_the_breach(fitted: Fitted) -> None:
    types = _types(fitted.log, fitted.scores.index)
    skipped = fitted.scores[types == "skipped_step"]
    assert (skipped["integrity_pattern"] == "skipped_step").mean() > 0.9
    text = skipped["integrity_reasons"].iloc[0]
    assert "mandatory step" in text and "p=" in text
    quiet = fitted.scores[fitted.scores["integrity_score"] < 0.5]
    assert (quiet["integrity_reasons"] == "").mean() > 0.5


def _clean_dossier(fitted: Fitted) -> tuple[str, pd.DataFrame]:
    """A clean, finished dossier of the most common procedure that appraises its
    dossiers, scoring low."""
    types = _types(fitted.log, fitted.scores.index)
    table, scores = fitted.table, fitted.scores
    events = fitted.log.events
    appraised = events.loc[events[s.ACTIVITY] == s.APPRAISED, s.DOSSIER_ID].unique()
    with_appraisal = table.index.isin(appraised)
    share = pd.Series(with_appraisal).groupby(table[s.PROCEDURE_CODE].to_numpy()).mean()
    counts = table[s.PROCEDURE_CODE].value_counts()
    common = next(code for code in counts.index if share[code] > 0.9)
    ok = (
        types.isna()
        & (table[s.PROCEDURE_CODE] == common)
        & table["finished"].astype(bool)
        & with_appraisal
        & (scores["integrity_score"] < 0.2)
    )
    dossier = str(table.index[ok.to_numpy(bool)][0])
    return dossier, events[events[s.DOSSIER_ID] == dossier].reset_index(drop=True)


def _score(fitted: Fitted, events: pd.DataFrame) -> float:
    table = closed_table(events, fitted.log.ref)
    return float(fitted.model.score_samples(table, events)["integrity_score"].iloc[0])


def test_clean_dossier_of_a_normal_procedure_stays_below_threshold(fitted: Fitted) -> None:
    _, events = _clean_dossier(fitted)
    assert _score(fitted, events) < fitted.model.threshold_
    types = _types(fitted.log, fitted.scores.index)
    clean = fitted.scores["integrity_score"][types.isna()]
    assert float((clean >= fitted.model.threshold_).mean()) < 0.02


def test_removing_the_appraisal_raises_the_score(fitted: Fitted) -> None:
    _, events = _clean_dossier(fitted)
    before = _score(fitted, events)
    edited = events[events[s.ACTIVITY] != s.APPRAISED].reset_index(drop=True)
    after = _score(fitted, edited)
    assert after > before
    assert after >= fitted.model.threshold_


def test_recording_days_late_raises_the_score(fitted: Fitted) -> None:
    _, events = _clean_dossier(fitted)
    before = _score(fitted, events)
    edited = events.copy()
    row = int(np.flatnonzero(edited[s.ACTIVITY].to_numpy() == s.APPRAISED)[0])
    edited.loc[row, s.RECORDED_AT] = edited.loc[row, s.TIMESTAMP] + pd.Timedelta(days=4)
    after = _score(fitted, edited)
    assert after > before
    assert after >= fitted.model.threshold_


def test_scores_as_of_a_time_ignore_later_events(fitted: Fitted) -> None:
    events, ref = fitted.log.events, fitted.log.ref
    cut = events[s.TIMESTAMP].quantile(0.8)
    known = events[events[s.TIMESTAMP] <= cut]
    alone = fitted.model.score_samples(closed_table(known, ref, cut), known)
    full = fitted.model.score_samples(
        closed_table(events, ref, cut), events[events[s.TIMESTAMP] <= cut]
    )
    pd.testing.assert_frame_equal(alone, full.loc[alone.index])


def test_round_trip_gives_identical_scores(fitted: Fitted) -> None:
    import json

    data = json.loads(json.dumps(fitted.model.to_dict()))
    again = IntegrityModel.from_dict(data)
    part = fitted.table.iloc[:3000]
    events = fitted.log.events[fitted.log.events[s.DOSSIER_ID].isin(part.index)]
    pd.testing.assert_frame_equal(
        fitted.model.score_samples(part, events), again.score_samples(part, events)
    )


def test_unfitted_model_says_so() -> None:
    with pytest.raises(AttributeError, match="not fitted"):
        IntegrityModel().score_samples(pd.DataFrame(), pd.DataFrame())


def test_tail_table_counts_at_least_as_large() -> None:
    x = np.r_[np.zeros(900), np.arange(1, 101, dtype=float)]
    table = TailTable(min_group=10).fit(x, np.full(len(x), "a"))
    p = table.p_values(np.array([0.0, 1.0, 50.0, 100.0, 1000.0]), np.full(5, "a"))
    assert p[0] == 1.0  # no evidence says nothing
    assert p[1] == pytest.approx(101 / 1001)
    assert p[1] > p[2] > p[3] > p[4]
    assert p[4] == pytest.approx(1 / 1001)
    unknown = table.p_values(np.array([1.0]), np.array(["new procedure"]))
    assert unknown[0] == pytest.approx(101 / 1001)  # pooled


def test_combine_is_about_a_bonferroni_bound_and_keeps_order_beyond_it() -> None:
    inf = np.inf
    p = np.array([[inf, inf], [0.01, inf], [0.01, 0.001], [0.6, inf], [0.9, inf]])
    score = combine(p)
    assert score[0] == 0.0  # no evidence at all
    np.testing.assert_allclose(score[1:3], [0.98, 0.998], atol=2e-4)
    assert score[2] > score[1] > score[3] > score[4] > 0  # ordered where the bound is 1
