"""The waste model: its quality floor on injected waste, behaviour on edited dossiers,
persistence and aggregation.

The floor is measured on a simulated province of its own with the anomaly rates scaled
up, so that the test period holds a few dozen dossiers of each waste type (the default
rates of ``model_log`` give about fifteen, too few for a stable average precision).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score

from features import schema as s
from features.engine import Reference
from features.entity_facts import dossier_facts
from models.dataset import closed_table, temporal_split
from models.waste import WASTE_COLUMNS, WasteModel, waste_by
from simulator import AnomalyRates, SimulationConfig
from tests.models.conftest import model_log_of

WASTE_TYPES = ("excess_supplements", "rework_loop", "ping_pong", "idle_then_rush")
FLOOR = 0.8
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class WasteCase:
    """A model fitted on the earlier dossiers, and the later ones it scores."""

    events: pd.DataFrame
    ref: Reference
    model: WasteModel
    test: pd.DataFrame  # closed table of the finished dossiers of the test period
    waste: pd.DataFrame  # model.transform(test)
    kind: pd.Series  # anomaly type of each test dossier ("" = normal)


def _simulate(config: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame, Reference]:
    log = model_log_of(config)
    return log.events, log.labels, log.ref


@pytest.fixture(scope="module")
def case() -> WasteCase:
    """Three months of one province, 10 % of dossiers with an injected anomaly."""
    config = SimulationConfig(months=3, seed=5, anomalies=AnomalyRates.scaled(0.1))
    events, labels, ref = _simulate(config)
    closed = closed_table(events, ref)
    split = temporal_split(closed["started_at"], (0.6, 0.2))
    # fit on what a live system knows at the end of the training period
    known = closed_table(events, ref, as_of=split.calibrate_from)
    train = known[known["finished"].to_numpy(bool) & (split.period(known["started_at"]) == 0)]
    test = closed[closed["finished"].to_numpy(bool) & (split.period(closed["started_at"]) == 2)]
    model = WasteModel().fit(train)
    kind = labels["anomaly_type"].reindex(test.index).fillna("").astype(str)
    return WasteCase(events, ref, model, test, model.transform(test), kind)


def _ap(case: WasteCase, positive: np.ndarray, negative: np.ndarray) -> float:
    keep = positive | negative
    assert positive.sum() >= 25, "too few injected dossiers for a stable average precision"
    return float(average_precision_score(positive[keep], case.waste["waste_score"][keep]))


@pytest.mark.parametrize("kind", WASTE_TYPES)
def test_each_waste_type_ranks_above_normal_dossiers(case: WasteCase, kind: str) -> None:
    normal = (case.kind == "").to_numpy()
    assert _ap(case, (case.kind == kind).to_numpy(), normal) >= FLOOR


def test_injected_waste_ranks_above_normal_and_most_other_dossiers(case: WasteCase) -> None:
    wasteful = case.kind.isin(WASTE_TYPES).to_numpy()
    assert _ap(case, wasteful, (case.kind == "").to_numpy()) >= FLOOR
    # detours off the route are needless transfers too, and slow dossiers do waste time:
    # against every other dossier the ranking is weaker but still far above chance
    assert _ap(case, wasteful, ~wasteful) >= 0.6


def test_scores_are_in_range_and_patterns_rank_first(case: WasteCase) -> None:
    w = case.waste
    assert list(w.columns) == list(WASTE_COLUMNS)
    assert w.index.equals(case.test.index)
    score, pattern = w["waste_score"], w["waste_pattern"] > 0
    assert ((score >= 0) & (score < 1)).all()
    assert (score[pattern] >= 0.5).all() and (score[~pattern] < 0.5).all()
    assert (w["waste_touches"] >= 0).all() and (w["waste_days"] >= 0).all()
    assert ((w["waste_share"] >= 0) & (w["waste_share"] <= 1)).all()
    # most normal dossiers waste nothing identifiable
    assert pattern[case.kind == ""].mean() < 0.01


def test_reasons_name_the_waste(case: WasteCase) -> None:
    w = case.waste
    for kind, words in (
        ("excess_supplements", "supplement rounds after the first"),
        ("rework_loop", "done again by the same unit with nothing new since"),
        ("ping_pong", "repeating a move between agencies already made"),
        ("idle_then_rush", "then every remaining step rushed through in half a day"),
    ):
        texts = case.model.reasons(w[(case.kind == kind).to_numpy()])
        assert np.mean([words in t for t in texts]) > 0.9, (kind, texts[:3])
    quiet = w[(w["waste_days"] == 0) & (w["waste_touches"] == 0)]
    assert set(case.model.reasons(quiet.head(20))) == {""}
    text = case.model.reasons(w[(case.kind == "excess_supplements").to_numpy()].head(1))[0]
    assert "working days of the applicant's time" in text


def test_save_and_load_give_identical_scores(case: WasteCase, tmp_path: Path) -> None:
    loaded = WasteModel.load(case.model.save(tmp_path / "waste"))
    pd.testing.assert_frame_equal(loaded.transform(case.test), case.waste)
    assert loaded.get_params() == case.model.get_params()


def test_unfitted_model_refuses_to_score(case: WasteCase) -> None:
    with pytest.raises(NotFittedError):
        WasteModel().transform(case.test)


def test_waste_by_sums_match_the_dossiers(case: WasteCase) -> None:
    facts = dossier_facts(case.events, case.ref.calendar).set_index(s.DOSSIER_ID)
    dossiers = case.test.assign(main_officer_id=facts["main_officer_id"].reindex(case.test.index))
    w = case.waste
    for key in ("first_agency", s.PROCEDURE_CODE, "main_officer_id"):
        by = waste_by(dossiers, w, key)
        has = dossiers[key].notna().to_numpy()
        assert by["dossiers"].sum() == has.sum()
        assert by["with_pattern"].sum() == w["waste_pattern"][has].sum()
        np.testing.assert_allclose(by["waste_days"].sum(), w["waste_days"][has].sum())
        np.testing.assert_allclose(by["waste_touches"].sum(), w["waste_touches"][has].sum())
        np.testing.assert_allclose(by["waste_share"], by["waste_days"] / by["elapsed_days"])
        assert by["waste_days"].is_monotonic_decreasing
    one = waste_by(dossiers, w, "first_agency").index[0]
    mine = (dossiers["first_agency"] == one).to_numpy()
    assert waste_by(dossiers, w, "first_agency").loc[one, "waste_days"] == pytest.approx(
        w["waste_days"][mine].sum()
    )


# --- behaviour: one dossier edited, scored alone before and after the edit -------------


def _dossier(case: WasteCase, rounds: int) -> str:
    """A normal finished test dossier with ``rounds`` supplement rounds and an appraisal."""
    t = case.test
    ok = (case.kind == "") & (t["supplement_rounds"] == rounds) & (t["rework"] == 0)
    ok &= (case.waste["waste_pattern"] == 0) & (t["transfers"] > 0)
    appraised = case.events.loc[case.events[s.ACTIVITY] == s.APPRAISED, s.DOSSIER_ID]
    ids = t.index[ok.to_numpy() & t.index.isin(appraised)]
    assert len(ids)
    return str(ids[0])


def _edited(
    case: WasteCase,
    dossier: str,
    after: str,
    added: list[tuple[str, pd.Timedelta]],
    shift: pd.Timedelta,
) -> pd.DataFrame:
    """The dossier's events with ``added`` (activity, time after the first ``after`` event)
    inserted, done by the same agency and officer, and the later events ``shift`` later."""
    mine = case.events[case.events[s.DOSSIER_ID] == dossier].reset_index(drop=True)
    mine[s.ACTIVITY] = mine[s.ACTIVITY].astype(str)
    anchor = int(np.flatnonzero(mine[s.ACTIVITY] == after)[0])
    at = mine.loc[anchor, s.TIMESTAMP]
    later = mine.index > anchor
    for column in (s.TIMESTAMP, s.RECORDED_AT):
        mine.loc[later, column] = mine.loc[later, column] + shift
    new = mine.iloc[[anchor] * len(added)].copy()
    new[s.ACTIVITY] = [activity for activity, _ in added]
    new[s.TIMESTAMP] = [at + delay for _, delay in added]
    new[s.RECORDED_AT] = new[s.TIMESTAMP]
    new[s.EVENT_ID] = [f"{dossier}-x{i}" for i in range(len(added))]
    new[s.SEQ] = mine[s.SEQ].max() + 1 + np.arange(len(added))
    return s.sort_events(pd.concat([mine, new], ignore_index=True))


def _score(case: WasteCase, events: pd.DataFrame) -> pd.Series:
    return case.model.transform(closed_table(events, case.ref)).iloc[0]


def _alone(case: WasteCase, dossier: str) -> pd.DataFrame:
    mine = case.events[case.events[s.DOSSIER_ID] == dossier].reset_index(drop=True)
    return mine.assign(**{s.ACTIVITY: mine[s.ACTIVITY].astype(str)})


def test_an_extra_supplement_round_raises_waste_days(case: WasteCase) -> None:
    dossier = _dossier(case, rounds=1)
    base = _score(case, _alone(case, dossier))
    second = [(s.SUPPLEMENT_REQUESTED, pd.Timedelta(minutes=1)), (s.SUPPLEMENT_RECEIVED, WEEK)]
    edited = _score(case, _edited(case, dossier, s.SUPPLEMENT_RECEIVED, second, WEEK))
    assert base["extra_supplement_rounds"] == 0 and edited["extra_supplement_rounds"] == 1
    assert edited["waste_days"] > base["waste_days"] + 1.0
    assert edited["waste_touches"] == base["waste_touches"] + 1
    assert edited["waste_score"] > max(base["waste_score"], 0.5)


def test_a_repeated_appraisal_without_input_raises_waste_touches(case: WasteCase) -> None:
    dossier = _dossier(case, rounds=0)
    base = _score(case, _alone(case, dossier))
    again = [(s.APPRAISED, pd.Timedelta(hours=2))]
    edited = _score(case, _edited(case, dossier, s.APPRAISED, again, pd.Timedelta(days=1)))
    assert edited["extra_rework"] == base["extra_rework"] + 1
    assert edited["waste_touches"] == base["waste_touches"] + 1
    assert edited["waste_pattern"] == 1 and edited["waste_score"] > base["waste_score"]


def test_a_reappraisal_after_the_papers_arrive_is_not_waste(case: WasteCase) -> None:
    dossier = _dossier(case, rounds=0)
    base = _score(case, _alone(case, dossier))
    round_ = [
        (s.SUPPLEMENT_REQUESTED, pd.Timedelta(minutes=1)),
        (s.SUPPLEMENT_RECEIVED, WEEK),
        (s.APPRAISED, WEEK + pd.Timedelta(hours=2)),
    ]
    events = _edited(case, dossier, s.APPRAISED, round_, WEEK + pd.Timedelta(days=1))
    table = closed_table(events, case.ref)
    assert table["rework"].iloc[0] == 1  # the step was repeated...
    edited = case.model.transform(table).iloc[0]
    assert edited["extra_rework"] == 0  # ...but after new input: needed work
    assert edited["waste_touches"] == base["waste_touches"]
    assert edited["waste_pattern"] == 0 and edited["waste_score"] < 0.5
