"""The self-supervised re-ranker of the flow evidence: behaviour on a small synthetic log
(dossiers departing from a fixed route outrank the clean ones), determinism, the state
surviving JSON, the edits keeping time in event order, and its quality on the labelled
BPIC 2015 logs (realdata, skipped without the logs)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from models.anomaly_metrics import average_precision, best_f1
from models.integrity_selfsup import SelfSupervisedFlow
from models.trace_edits import TraceLog, edit_traces
from tests.models.test_integrity_flow import _between, _dossier, _frame, _labelled

FAST: dict[str, Any] = {"copies": 2, "folds": 3, "rounds": 60}


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, list[str]]:
    """300 dossiers of one route with timing noise (a tenth with two steps swapped), and
    four that depart from it."""
    rng = np.random.default_rng(3)
    rows = []
    for d in range(300):
        trace = _dossier(rng, f"clean-{d:03d}")
        if d % 10 == 0:  # a common variant: appraisal and inspection in either order
            (n2, a2, _), (n3, a3, t3) = trace[2], trace[3]
            trace[2], trace[3] = (n3, a3, trace[2][2]), (n2, a2, t3)
        rows += trace
    skipped = [r for r in _dossier(rng, "skipped") if r[1] != s.APPRAISED]
    early = _dossier(rng, "early")
    approved = early.pop(4)
    early.insert(1, (approved[0], approved[1], _between(early, 1)))
    repeated = _dossier(rng, "repeated")
    repeated.insert(4, ("repeated", s.ASSIGNED, _between(repeated, 4)))
    repeated.insert(5, ("repeated", s.APPRAISED, _between(repeated, 5)))
    inserted = _dossier(rng, "inserted")
    inserted.insert(3, ("inserted", s.RESULT_RETURNED, _between(inserted, 3)))
    odd = ["skipped", "early", "repeated", "inserted"]
    return _frame(rows + skipped + early + repeated + inserted), odd


@pytest.fixture(scope="module")
def scored(synthetic: tuple[pd.DataFrame, list[str]]) -> pd.DataFrame:
    return SelfSupervisedFlow(**FAST).fit_score_samples(synthetic[0])


def test_departures_from_the_route_outrank_the_clean_dossiers(
    synthetic: tuple[pd.DataFrame, list[str]], scored: pd.DataFrame
) -> None:
    _, odd = synthetic
    assert scored["selfsup_score"].between(0, 1).all()
    assert scored["selfsup_mix"].between(0, 1).all()
    assert {"flow_score", "flow_reason", "flow_order"} <= set(scored.columns)
    clean = scored.loc[scored.index.str.startswith("clean"), "selfsup_score"]
    odd_scores = scored["selfsup_score"].reindex(odd)
    assert (odd_scores > clean.quantile(0.95)).all(), odd_scores
    assert set(odd) <= set(scored["selfsup_score"].nlargest(15).index)


def test_same_input_same_scores(
    synthetic: tuple[pd.DataFrame, list[str]], scored: pd.DataFrame
) -> None:
    again = SelfSupervisedFlow(**FAST).fit_score_samples(synthetic[0])
    pd.testing.assert_frame_equal(again, scored)


def test_state_round_trips_through_json(synthetic: tuple[pd.DataFrame, list[str]]) -> None:
    events, odd = synthetic
    model = SelfSupervisedFlow(**FAST).fit(events)
    again = SelfSupervisedFlow.from_dict(json.loads(json.dumps(model.to_dict())))
    first = model.score_samples(events)
    pd.testing.assert_frame_equal(again.score_samples(events), first)
    assert again.get_params() == model.get_params()
    # new dossiers against the fitted log: the departures still stand out
    clean = first.loc[first.index.str.startswith("clean"), "selfsup_score"]
    assert (first["selfsup_score"].reindex(odd) > clean.median()).all()


def test_unfitted_model_refuses_to_score(synthetic: tuple[pd.DataFrame, list[str]]) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SelfSupervisedFlow().score_samples(synthetic[0])


def test_edits_keep_time_in_event_order() -> None:
    rng = np.random.default_rng(0)
    length = rng.integers(1, 12, 200)
    case = np.repeat(np.arange(200), length)
    time = np.sort(rng.integers(0, 10**12, len(case)))  # increasing within each trace
    log = TraceLog(case, rng.integers(0, 5, len(case)), time, 200)
    freq = np.full(6, 1 / 6)
    copies = edit_traces(log, np.repeat(np.arange(200), 3), rng, freq)
    assert copies.n == 600
    same = copies.case[1:] == copies.case[:-1]
    assert (np.diff(copies.time)[same] >= 0).all()
    assert (np.diff(copies.case) >= 0).all()
    changed = np.bincount(copies.case, minlength=600) != np.repeat(length, 3)
    assert changed.mean() > 0.4  # inserts, deletes and repeats change the length


# --- the labelled BPIC 2015 logs ----------------------------------------------------------

#: measured with the default settings (one set for both logs): selfsup_score best F1
#: 0.692 / 0.685, AP 0.717 / 0.716; selfsup_mix 0.731 / 0.703, AP 0.767 / 0.747 (the flow
#: score alone: 0.689 / 0.664, 0.733 / 0.702). The issue's AP target (>= 0.70 on both) is
#: reached; its best-F1 target (>= 0.75) is NOT. Floors sit under what is measured by
#: about the spread over seeds (0.01-0.02), so a regression shows.
SELFSUP_FLOOR = {"1": (0.67, 0.70), "2": (0.66, 0.70)}
MIX_FLOOR = {"1": (0.71, 0.75), "2": (0.68, 0.73)}


@pytest.mark.realdata
@pytest.mark.parametrize("log", ["1", "2"])
def test_selfsup_on_labelled_bpic15(log: str) -> None:
    events, labels = _labelled(log)
    out = SelfSupervisedFlow().fit_score_samples(events).reindex(labels.index)
    y = labels["is_anomalous"]
    for column, floor in (("selfsup_score", SELFSUP_FLOOR), ("selfsup_mix", MIX_FLOOR)):
        f1, ap = best_f1(y, out[column]), average_precision(y, out[column])
        assert f1 >= floor[log][0] and ap >= floor[log][1], (column, f1, ap)
