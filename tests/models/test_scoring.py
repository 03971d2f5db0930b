"""Batch scoring: the scores.csv / alerts.csv contract, point in time, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from models.bundle import ModelBundle
from models.scoring import ALERT_COLUMNS, SCORE_COLUMNS, alert_id, score_log
from tests.models.conftest import SmallBundle

AS_OF = pd.Timestamp("2025-08-20 15:00", tz="Asia/Ho_Chi_Minh")


@pytest.fixture(scope="module")
def scored(small: SmallBundle):
    return score_log(small.bundle, small.log.events, small.log.ref, as_of=AS_OF)


def test_scores_follow_the_contract(scored, small: SmallBundle) -> None:
    scores = scored.scores
    assert list(scores.columns) == list(SCORE_COLUMNS)
    started = small.log.events.loc[small.log.events[s.TIMESTAMP] <= AS_OF, s.DOSSIER_ID]
    assert set(scores[s.DOSSIER_ID]) == set(started.astype(str))
    for column in ("delay_risk", "waste_score", "integrity_score", "risk_score"):
        values = scores[column].dropna()
        assert ((values >= 0) & (values <= 1)).all(), column
    closed = scores["status"] == "closed"
    assert scores.loc[closed, "delay_risk"].isna().all()
    assert scores.loc[~closed, "delay_risk"].notna().all()
    assert (
        scores.loc[~closed, "remaining_days_p90"] >= scores.loc[~closed, "remaining_days_p50"]
    ).all()
    assert scores["integrity_score"].notna().all()
    expected = scores[["delay_risk", "waste_score", "integrity_score"]].max(axis=1)
    np.testing.assert_allclose(scores["risk_score"], expected)
    assert scores.loc[scores["alert"] == 1, "reasons"].str.len().gt(0).all()


def test_alerts_follow_the_contract(scored, small: SmallBundle) -> None:
    alerts, scores = scored.alerts, scored.scores
    assert list(alerts.columns) == list(ALERT_COLUMNS)
    assert len(alerts) > 0
    assert alerts["alert_id"].is_unique
    assert set(alerts["kind"]) <= {"delay", "waste", "integrity"}
    assert "integrity" in set(alerts["kind"])
    on_dossiers = alerts[alerts["subject_type"] == "dossier"]
    flagged = set(scores.loc[scores["alert"] == 1, s.DOSSIER_ID])
    assert set(on_dossiers["subject_id"]) == flagged
    assert (on_dossiers["dossiers"] == on_dossiers["subject_id"]).all()
    integrity = on_dossiers[on_dossiers["kind"] == "integrity"]
    assert (integrity["score"] >= small.bundle.integrity.threshold_).all()
    assert (integrity["pattern"] != "").all() and integrity["reasons"].str.len().gt(0).all()
    entities = alerts[alerts["subject_type"] != "dossier"]
    known = set(scores[s.DOSSIER_ID])
    for listed in entities["dossiers"]:
        assert listed and set(listed.split(";")) <= known  # each lists its evidence
    delay = alerts[alerts["kind"] == "delay"]
    assert (delay["score"] >= small.bundle.delay_threshold).all()
    assert delay["reasons"].str.len().gt(0).all()


def test_a_dossier_closed_after_the_scoring_time_is_open_then(scored, small: SmallBundle) -> None:
    events = small.log.events
    end = (
        events[events[s.ACTIVITY].isin(s.TERMINAL_ACTIVITIES)]
        .groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP]
        .min()
    )
    start = events.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    crossing = end.index[(start.reindex(end.index) <= AS_OF) & (end > AS_OF)].astype(str)
    assert len(crossing) > 10
    status = scored.scores.set_index(s.DOSSIER_ID)["status"]
    assert (status.reindex(crossing) == "open").all()


def test_later_events_do_not_change_scores_at_a_time(scored, small: SmallBundle) -> None:
    events = small.log.events
    early = events[events[s.TIMESTAMP] <= AS_OF + pd.Timedelta(days=3)]
    again = score_log(small.bundle, early, small.log.ref, as_of=AS_OF)
    pd.testing.assert_frame_equal(again.scores, scored.scores)
    pd.testing.assert_frame_equal(again.alerts, scored.alerts)


def test_scores_survive_a_save_and_load(scored, small: SmallBundle, tmp_path) -> None:
    loaded = ModelBundle.load(small.bundle.save(tmp_path / "bundle"))
    again = score_log(loaded, small.log.events, small.log.ref, as_of=AS_OF)
    pd.testing.assert_frame_equal(again.scores, scored.scores)


def test_alert_ids_are_stable_and_distinct() -> None:
    assert alert_id("delay", "dossier", "A") == alert_id("delay", "dossier", "A")
    assert alert_id("delay", "dossier", "A") != alert_id("waste", "dossier", "A")
    assert alert_id("delay", "dossier", "A") != alert_id("delay", "dossier", "B")


def test_a_naive_scoring_time_is_refused(small: SmallBundle) -> None:
    with pytest.raises(s.EventSchemaError, match="tz-aware"):
        score_log(small.bundle, small.log.events, small.log.ref, as_of=pd.Timestamp("2025-08-01"))


def test_a_time_before_any_event_is_refused(small: SmallBundle) -> None:
    with pytest.raises(s.EventSchemaError, match="no event"):
        score_log(
            small.bundle,
            small.log.events,
            small.log.ref,
            as_of=pd.Timestamp("2020-01-01", tz="Asia/Ho_Chi_Minh"),
        )


def test_the_entity_budget_caps_entity_alerts(scored, small: SmallBundle) -> None:
    from models.scoring import EntityBudget

    tight = score_log(
        small.bundle, small.log.events, small.log.ref, as_of=AS_OF,
        entity_budget=EntityBudget(alpha=0.01, max_alerts=1),
    )  # fmt: skip
    entities = tight.alerts[tight.alerts["subject_type"] != "dossier"]
    province = entities["jurisdiction"].astype(str).str[:2]
    assert (entities.groupby([province, entities["pattern"]]).size() <= 1).all()
    before = scored.alerts[scored.alerts["subject_type"] != "dossier"]
    assert len(entities) <= len(before)
    dossiers = tight.alerts[tight.alerts["subject_type"] == "dossier"]
    pd.testing.assert_frame_equal(  # dossier alerts do not depend on the entity budget
        dossiers.reset_index(drop=True),
        scored.alerts[scored.alerts["subject_type"] == "dossier"].reset_index(drop=True),
    )
