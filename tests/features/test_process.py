"""The normal process learned from history, and its conformance features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.process import NormalProcess, NotFittedError, process_features
from features.registry import feature_registry


def _log(n: int = 40, gap_hours: float = 2.0, activities: tuple[str, ...] = ("A", "B", "C")):
    rows = []
    start = pd.Timestamp("2024-01-01T08:00:00+07:00")
    for d in range(n):
        for k, act in enumerate(activities):
            when = start + pd.Timedelta(days=d) + pd.Timedelta(hours=gap_hours * k)
            rows.append((f"c{d:03d}", f"e{d}-{k}", act, when))
    frame = pd.DataFrame(rows, columns=[s.DOSSIER_ID, s.EVENT_ID, s.ACTIVITY, s.TIMESTAMP])
    return s.sort_events(s.coerce_events(frame))


def test_fit_learns_smoothed_transitions() -> None:
    process = NormalProcess(alpha=1.0).fit(_log())
    assert list(process.activities_) == ["A", "B", "C"]
    start, end = 3, 4
    assert process.counts_[start, 0] == 40 and process.counts_[2, end] == 40
    rows = process.probabilities_[:4].sum(axis=1)
    np.testing.assert_allclose(rows, 1.0)
    assert process.probabilities_[0, 1] == pytest.approx(41 / 44)
    assert process.timing_.loc[(0, 1), "count"] == 40
    assert process.get_params()["alpha"] == 1.0


def test_unfitted_process_is_refused() -> None:
    with pytest.raises(NotFittedError):
        process_features(_log(1), NormalProcess())


def test_deviant_dossiers_score_as_deviant() -> None:
    process = NormalProcess().fit(_log())
    normal = process_features(_log(1), process).iloc[0]
    skipped = process_features(_log(1, activities=("A", "C")), process).iloc[0]
    unknown = process_features(_log(1, activities=("A", "X", "B", "C")), process).iloc[0]
    late = process_features(_log(1, gap_hours=30.0), process).iloc[0]
    repeat = process_features(_log(1, activities=("A", "B", "B", "C")), process).iloc[0]
    assert normal["rare_transitions"] == 0 and normal["timing_outliers"] == 0
    assert skipped["unseen_transitions"] == 1
    assert skipped["process_loglik_mean"] < normal["process_loglik_mean"]
    assert unknown["unseen_activities"] == 1 and unknown["unseen_transitions"] == 2
    assert late["timing_outliers"] == 2 and late["timing_z_max"] > 3
    assert repeat["repeated_activities"] == 1
    feature_registry().check(process_features(_log(3), process))


def test_features_use_only_the_dossier_events_up_to_the_cut() -> None:
    train = _log()
    process = NormalProcess().fit(train)
    log = _log(5)
    cut = pd.Timestamp("2024-01-01T11:00:00+07:00")
    alone = process_features(log[log[s.DOSSIER_ID] == "c000"], process, as_of=cut)
    together = process_features(log, process, as_of=cut)
    pd.testing.assert_frame_equal(alone, together.loc[alone.index])
    assert len(together) == 1  # the other dossiers had not started
