"""Open-dossier features: point-in-time correctness and training prefixes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.dossiers import dossier_features
from features.prefixes import prefix_features, training_prefixes
from features.registry import feature_registry
from tests.features.test_dossiers import calendar, vn_agencies, vn_catalogue, vn_events

T = pd.Timestamp("2025-03-05T12:00:00+07:00")


def _prefix(events: pd.DataFrame, at: pd.Timestamp = T) -> pd.DataFrame:
    return prefix_features(events, calendar(), at, catalogue=vn_catalogue(), agencies=vn_agencies())


def _future_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events after T: on open dossiers, on a finished one, and a new dossier at DESK/OFF."""
    rows = (
        events[events[s.DOSSIER_ID].isin(["D02", "D09", "D01", "D04"])]
        .groupby(s.DOSSIER_ID, observed=True)
        .tail(1)
    )
    extra = rows.copy()
    extra[s.EVENT_ID] = [f"future{i}" for i in range(len(extra))]
    extra[s.TIMESTAMP] = T + pd.Timedelta(minutes=1)
    extra[s.ACTIVITY] = pd.Categorical(["result_returned"] * len(extra))
    new = rows.iloc[[0, 0]].copy()
    new[s.DOSSIER_ID] = ["D99", "D99"]
    new[s.EVENT_ID] = ["n1", "n2"]
    new[s.TIMESTAMP] = [T + pd.Timedelta(hours=1), T + pd.Timedelta(days=1)]
    new[s.ACTIVITY] = pd.Categorical(["received", "appraised"])
    new[s.AGENCY_ID] = pd.Categorical(["DESK", "OFF"])
    out = pd.concat([events, extra, new], ignore_index=True)
    out[s.SEQ] = np.arange(len(out))
    return s.coerce_events(out)


def test_open_dossiers_at_t() -> None:
    frame = _prefix(vn_events())
    feature_registry().check(frame)
    assert "D01" not in frame.index  # finished on 4 March
    assert {"D02", "D03", "D04", "D09", "D10"} <= set(frame.index)
    assert frame.loc["D09", "current_step"] == "appraised"
    assert frame.loc["D09", "waiting_days"] == pytest.approx(3.5 / 8)  # 08:00-11:30
    assert (frame["unit_backlog"] >= 1).all()


def test_events_after_t_never_change_features_at_t() -> None:
    events = vn_events()
    before = _prefix(events)
    after = _prefix(_future_events(events))
    pd.testing.assert_frame_equal(before, after)


def test_backlog_counts_open_dossiers_at_the_same_unit() -> None:
    frame = _prefix(vn_events(), pd.Timestamp("2025-03-03T10:30:00+07:00"))
    # at the desk: D01, D02, D04, D07, D09; at the office: D05, D08, D10; D03 sent to LAND
    expected = {"D01": 5, "D02": 5, "D04": 5, "D07": 5, "D09": 5, "D05": 3, "D08": 3}
    expected |= {"D10": 3, "D03": 1}
    assert frame["unit_backlog"].to_dict() == expected


def test_prefix_equals_dossier_features_at_the_cut() -> None:
    events = vn_events()
    frame = _prefix(events)
    direct = dossier_features(
        events, calendar(), catalogue=vn_catalogue(), agencies=vn_agencies(), as_of=T
    ).loc[frame.index]
    pd.testing.assert_frame_equal(frame[direct.columns], direct)


def test_training_prefixes_equal_prefixes_computed_separately() -> None:
    events = vn_events()
    train = training_prefixes(events, calendar(), catalogue=vn_catalogue(), agencies=vn_agencies())
    feature_registry().check(train)
    assert train.index.names == [s.DOSSIER_ID, "cut"]
    assert train.index.get_level_values(s.DOSSIER_ID).nunique() == 10
    sample = train.sample(12, random_state=1)
    for (dossier, cut), row in sample.iterrows():
        alone = _prefix(events, cut).loc[dossier]
        expected = row.drop(["finished_at", "final_late_honest"])
        pd.testing.assert_series_equal(alone, expected, check_names=False)
    labels = train.xs("D10", level=s.DOSSIER_ID)
    assert (labels["final_late_honest"] == 1).all()
    assert labels["finished_at"].iloc[0] == pd.Timestamp("2025-03-11T10:00:00+07:00")


def test_training_prefixes_do_not_see_later_events_of_other_dossiers() -> None:
    events = vn_events()
    kwargs: dict[str, Any] = {"catalogue": vn_catalogue(), "agencies": vn_agencies()}
    base = training_prefixes(events, calendar(), **kwargs)
    more = training_prefixes(_future_events(events), calendar(), **kwargs)
    early = base.index.get_level_values("cut") <= T
    kept = base[early].drop(columns=["finished_at", "final_late_honest"])
    other = more.drop(columns=["finished_at", "final_late_honest"]).reindex(kept.index)
    mine = ~kept.index.get_level_values(s.DOSSIER_ID).isin(["D02", "D09", "D01", "D04"])
    pd.testing.assert_frame_equal(kept[mine], other[mine])
