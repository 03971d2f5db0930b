"""The control-flow integrity detector: behaviour on a small synthetic log (each kind of
departure from a fixed route raises the dossier's score; an open prefix is not blamed for
what has not happened yet; the state survives JSON), and its quality on the labelled BPIC
2015 logs against the baselines of the data README (realdata, skipped without the logs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from models.anomaly_metrics import average_precision, best_f1, per_type_table
from models.integrity_flow import FlowDetector
from tests.conftest import real_data_dir

ROUTE = (s.RECEIVED, s.ASSIGNED, s.APPRAISED, s.SITE_INSPECTED, s.APPROVED, s.RESULT_RETURNED)
START = pd.Timestamp("2025-03-03 08:00", tz=s.DEFAULT_TZ)


def _dossier(rng: np.random.Generator, name: str) -> list[tuple[str, str, pd.Timestamp]]:
    hours = np.cumsum(rng.uniform(2.0, 30.0, len(ROUTE)))
    start = START + pd.Timedelta(days=int(rng.integers(0, 60)))
    return [
        (name, a, start + pd.Timedelta(hours=float(h))) for a, h in zip(ROUTE, hours, strict=True)
    ]


def _between(rows: list, k: int) -> pd.Timestamp:
    """A time between the events at positions ``k - 1`` and ``k`` (as the labelled logs'
    moved and repeated events get)."""
    before, after = rows[k - 1][2], rows[k][2]
    return before + (after - before) / 2


def _frame(rows: list[tuple[str, str, pd.Timestamp]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP])
    frame[s.EVENT_ID] = [f"e{i}" for i in range(len(frame))]
    return s.sort_events(s.coerce_events(frame))


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, dict[str, str]]:
    """300 dossiers of one route with timing noise, and four that depart from it."""
    rng = np.random.default_rng(7)
    rows = [r for d in range(300) for r in _dossier(rng, f"clean-{d:03d}")]
    odd = {}
    skipped = [r for r in _dossier(rng, "skipped") if r[1] != s.APPRAISED]
    odd["skipped"] = "missing"
    early = _dossier(rng, "early")  # approval moved before the appraisal
    approved = early.pop(4)
    early.insert(2, (approved[0], approved[1], _between(early, 2)))
    odd["early"] = "order"
    repeated = _dossier(rng, "repeated")  # appraisal done twice
    repeated.insert(3, ("repeated", s.APPRAISED, _between(repeated, 3)))
    odd["repeated"] = "repeat"
    inserted = _dossier(rng, "inserted")  # a step the route never has
    inserted.insert(3, ("inserted", s.PAUSED, _between(inserted, 3)))
    odd["inserted"] = "foreign"
    return _frame(rows + skipped + early + repeated + inserted), odd


@pytest.fixture(scope="module")
def fitted(synthetic: tuple[pd.DataFrame, dict[str, str]]) -> FlowDetector:
    return FlowDetector().fit(synthetic[0])


def test_each_departure_from_the_route_raises_the_score(
    synthetic: tuple[pd.DataFrame, dict[str, str]], fitted: FlowDetector
) -> None:
    events, odd = synthetic
    scores = fitted.score_samples(events)
    assert scores["flow_score"].between(0, 1).all()
    clean = scores.loc[scores.index.str.startswith("clean"), "flow_score"]
    for dossier, family in odd.items():
        row = scores.loc[dossier]
        assert row["flow_score"] > clean.median(), dossier
        assert row["flow_score"] > clean.quantile(0.95), dossier
        assert row["flow_family"] == family, (dossier, row["flow_reason"])
        assert isinstance(row["flow_reason"], str) and row["flow_reason"]
    reason = scores["flow_reason"].astype(str)
    assert "'appraised' is missing" in reason["skipped"]
    assert "'appraised' was done 2 times" in reason["repeated"]
    assert "'approved'" in reason["early"]


def test_leave_one_out_scores_rank_the_same_departures_first(
    synthetic: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    events, odd = synthetic
    scores = FlowDetector().fit_score_samples(events)["flow_score"]
    assert set(odd) <= set(scores.nlargest(10).index)


def test_an_open_prefix_of_a_clean_dossier_is_not_flagged(
    synthetic: tuple[pd.DataFrame, dict[str, str]], fitted: FlowDetector
) -> None:
    events, _ = synthetic
    scores = fitted.score_samples(events)
    clean = scores.loc[scores.index.str.startswith("clean"), "flow_score"]
    typical = clean[clean <= clean.median()].index[:5]
    for dossier in typical:
        mine = events[events[s.DOSSIER_ID] == dossier]
        for cut in range(1, len(ROUTE)):
            prefix = fitted.score_samples(mine.iloc[:cut]).iloc[0]
            assert prefix["flow_missing"] < 0.1, (dossier, cut)
            assert prefix["flow_score"] <= clean.quantile(0.75) + 0.01, (dossier, cut)


def test_a_step_never_seen_in_fitting_is_named_as_foreign(fitted: FlowDetector) -> None:
    rng = np.random.default_rng(11)
    rows = _dossier(rng, "new")
    rows.insert(2, ("new", "teleported", _between(rows, 2)))
    scores = fitted.score_samples(_frame(rows)).iloc[0]
    assert scores["flow_family"] == "foreign"
    assert scores["flow_score"] > 0.99
    assert "an activity never seen" in str(scores["flow_reason"])


def test_state_round_trips_through_json(
    synthetic: tuple[pd.DataFrame, dict[str, str]], fitted: FlowDetector
) -> None:
    events, _ = synthetic
    again = FlowDetector.from_dict(json.loads(json.dumps(fitted.to_dict())))
    pd.testing.assert_frame_equal(again.score_samples(events), fitted.score_samples(events))
    assert again.get_params() == fitted.get_params()


def test_unfitted_detector_refuses_to_score(
    synthetic: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FlowDetector().score_samples(synthetic[0])


# --- the labelled BPIC 2015 logs ----------------------------------------------------------

#: measured with the default settings (one set for both logs): best F1 0.689 / 0.664, AP
#: 0.733 / 0.702. The issue's AP target (>= 0.70 on both) is reached; its best-F1 target
#: (>= 0.75) is NOT: these floors sit just under what is measured, so a regression shows.
FLOW_FLOOR = {"1": (0.67, 0.72), "2": (0.65, 0.69)}
#: the data README's baseline figures (best F1, AP).
README = {
    "1": {
        "bigram": (0.513, 0.432),
        "variant_rarity": (0.458, 0.297),
        "count_forest": (0.454, 0.325),
    },
    "2": {
        "bigram": (0.524, 0.419),
        "variant_rarity": (0.455, 0.294),
        "count_forest": (0.457, 0.297),
    },
}


def _labelled(log: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from bench.integrity_real import log_paths
    from models.labelled import load_labelled

    events_path, labels_path = log_paths(real_data_dir(), log)
    if not events_path.exists() or not labels_path.exists():
        pytest.skip(
            f"labelled log {events_path.name} not found in {Path(events_path).parent}: set "
            "GIAMSAT_DATA_DIR to the folder holding bpic15_labelled/ to run this test"
        )
    return load_labelled(events_path, labels_path)


@pytest.mark.realdata
@pytest.mark.parametrize("log", ["1", "2"])
def test_flow_detector_on_labelled_bpic15(log: str) -> None:
    events, labels = _labelled(log)
    score = FlowDetector().fit_score_samples(events)["flow_score"].reindex(labels.index)
    y = labels["is_anomalous"]
    f1, ap = best_f1(y, score), average_precision(y, score)
    floor_f1, floor_ap = FLOW_FLOOR[log]
    assert f1 >= floor_f1 and ap >= floor_ap, (f1, ap)
    # well above the best baseline of the README on both measures
    assert f1 >= README[log]["bigram"][0] + 0.1 and ap >= README[log]["bigram"][1] + 0.2
    recall = per_type_table(labels, score)["recall"].to_dict()
    assert recall["Rework"] > 0.9 and recall["SkipSequence"] > 0.6


@pytest.mark.realdata
@pytest.mark.parametrize("log", ["1", "2"])
def test_baselines_match_the_readme(log: str) -> None:
    from bench.integrity_real import METHODS

    events, labels = _labelled(log)
    y = labels["is_anomalous"]
    for name, (f1, ap) in README[log].items():
        score = METHODS[name](events).reindex(labels.index)
        assert best_f1(y, score) == pytest.approx(f1, abs=0.02), name
        assert average_precision(y, score) == pytest.approx(ap, abs=0.03), name
