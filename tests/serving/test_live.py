"""The service scores with the champion online: ``POST /v1/score`` gives the batch scorer's
scores and reasons for the same events, and ingestion re-scores the dossiers it touched,
raising and closing their alerts as the batch scorer would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features import schema as s
from giamsat.demo_service import records
from models.scoring import score_log
from serving.db import Store
from serving.live import LiveScoring
from serving.rescoring import pending_dossiers, rescore_all
from serving.store import add_events
from serving.tables import alerts, dossiers
from serving.users import User
from tests.serving.api_helpers import Api, api_over
from tests.serving.scoring import Registered, ScoringCase

SCORED = ("delay_risk", "remaining_days_p50", "waste_score", "integrity_score", "risk_score")


def _store_until(store: Store, case: ScoringCase, until: pd.Timestamp) -> None:
    part = case.events[case.events[s.TIMESTAMP] <= until]
    rows = records(part)
    for start in range(0, len(rows), 5000):
        with store.transaction() as session:
            add_events(session, rows[start : start + 5000])


@pytest.fixture
def live_api(
    store: Store,
    people: dict[str, User],
    scoring_case: ScoringCase,
    scoring_registry: Registered,
) -> Iterator[Api]:
    """The service over a store holding the case's events up to its cut, scoring with the
    case's bundle on the events clock; re-scoring is driven by the test (``drain``)."""
    _store_until(store, scoring_case, scoring_case.cut)
    with api_over(
        store,
        people,
        **scoring_registry.changes,
        scoring_clock="events",
        rescore_on_ingest=False,
        rescore_batch=100_000,
        model_reload_seconds=0,
    ) as api:
        yield api


def _close(mine: Any, theirs: Any) -> bool:
    if mine is None or pd.isna(mine):
        return bool(pd.isna(theirs))
    return bool(np.isclose(float(mine), float(theirs), rtol=1e-9, atol=1e-9))


def test_the_score_route_gives_the_batch_scores(live_api: Api, scoring_case: ScoringCase) -> None:
    case = scoring_case
    known = s.sort_events(case.events[case.events[s.TIMESTAMP] <= case.cut])
    batch = score_log(case.bundle, known, case.ref, as_of=case.cut).scores.set_index(s.DOSSIER_ID)
    rng = np.random.default_rng(3)
    opened = batch.index[batch["status"] == "open"]
    closed = batch.index[batch["status"] == "closed"]
    picked = [
        *rng.choice(opened, min(150, len(opened)), replace=False),
        *rng.choice(closed, 50, replace=False),
    ]
    assert len(opened) >= 50
    by_dossier = {d: g for d, g in known.groupby(s.DOSSIER_ID, observed=True)}
    for dossier in picked:
        body = records(by_dossier[dossier])
        answer = live_api.post("analyst", "/v1/score", json=body,
                               params={"as_of": case.cut.isoformat()})  # fmt: skip
        assert answer.status_code == 200, answer.text
        got, want = answer.json(), batch.loc[dossier]
        assert got["status"] == want["status"]
        for column in SCORED:
            assert _close(got[column], want[column]), (dossier, column, got[column], want[column])
        assert "+".join(got["alert_kinds"]) == want["alert_kinds"]
        assert got["reasons"] == want["reasons"]
        if want["status"] == "open" and want["delay_risk"] > 0:
            assert got["explanation"]["delay"], "an open dossier's risk comes with its reasons"


def test_the_score_route_refuses_what_it_cannot_score(
    live_api: Api, scoring_case: ScoringCase
) -> None:
    case = scoring_case
    two = case.events.drop_duplicates(s.DOSSIER_ID).head(2)
    answer = live_api.post("analyst", "/v1/score", json=records(two))
    assert answer.status_code == 422 and answer.json()["field"] == s.DOSSIER_ID
    assert live_api.post("analyst", "/v1/score", json=[]).status_code == 422
    one = records(case.events.head(1))
    bad = live_api.post("analyst", "/v1/score", json=one, params={"as_of": "2025-08-01T00:00"})
    assert bad.status_code == 422 and "offset" in bad.json()["detail"]
    assert live_api.client.post("/v1/score", json=one).status_code == 401
    assert live_api.post("ingest", "/v1/score", json=one).status_code == 403
    broken = [{**one[0], "timestamp": "yesterday"}]
    answer = live_api.post("analyst", "/v1/score", json=broken)
    assert answer.status_code == 422 and answer.json()["field"] == s.TIMESTAMP


def test_ingestion_rescores_and_alerts_as_the_batch_scorer_would(
    live_api: Api, scoring_case: ScoringCase
) -> None:
    case = scoring_case
    store, live = live_api.store, live_api.app.state.live
    assert isinstance(live, LiveScoring)
    with store.transaction() as session:  # the history, scored by the batch job
        rescore_all(session, case.bundle, case.ref, as_of=case.cut)
    recent = case.events[(case.events[s.TIMESTAMP] > case.cut)
                         & (case.events[s.TIMESTAMP] <= case.later)]  # fmt: skip
    rows = records(recent.sort_values(s.TIMESTAMP, kind="stable"))
    for start in range(0, len(rows), 500):
        answer = live_api.post("ingest", "/v1/events", json=rows[start : start + 500])
        assert answer.status_code == 200, answer.text
    touched = set(recent[s.DOSSIER_ID].astype(str))
    status = live_api.get("admin", "/v1/admin/rescoring").json()
    assert status["pending"] == len(touched)
    assert live.drain() == len(touched)
    with store.read() as session:
        assert pending_dossiers(session) == []
        stored = pd.DataFrame(session.execute(sa.select(dossiers)).mappings().all())
        raised = dict(session.execute(
            sa.select(alerts.c.alert_id, alerts.c.status).where(alerts.c.subject_type == "dossier")
        ).all())  # fmt: skip
    known = s.sort_events(case.events[case.events[s.TIMESTAMP] <= case.later])
    latest = pd.Timestamp(recent[s.TIMESTAMP].max())
    expected = score_log(case.bundle, known, case.ref, as_of=latest)
    want = expected.scores.set_index(s.DOSSIER_ID).loc[sorted(touched)]
    mine = stored.set_index(s.DOSSIER_ID).loc[sorted(touched)]
    for column in SCORED:
        for dossier in want.index:
            assert _close(mine.at[dossier, column], want.at[dossier, column]), (dossier, column)
    # the touched dossiers' alerts are what the batch scorer raises for them, no more
    found = expected.alerts[expected.alerts["subject_type"] == "dossier"]
    theirs = set(found.loc[found["subject_id"].isin(touched), "alert_id"])
    dossier_alerts = sa.select(alerts.c.alert_id, alerts.c.subject_id).where(
        alerts.c.subject_type == "dossier"
    )
    with store.read() as session:
        about = dict(session.execute(dossier_alerts).all())
    active = {a for a, st in raised.items() if st in ("open", "acknowledged")}
    assert {a for a in active if about[a] in touched} == theirs
    assert live.progress.dossiers == len(touched) and live.progress.failed == 0


def test_the_worker_rescores_what_ingestion_marks(
    store: Store,
    people: dict[str, User],
    scoring_case: ScoringCase,
    scoring_registry: Registered,
) -> None:
    """With the worker on, a batch posted is re-scored without anyone asking."""
    case = scoring_case
    _store_until(store, case, case.cut)
    with store.transaction() as session:
        rescore_all(session, case.bundle, case.ref, as_of=case.cut)
    with api_over(store, people, **scoring_registry.changes, scoring_clock="events",
                  model_reload_seconds=0) as api:  # fmt: skip
        soon = case.cut + pd.Timedelta(hours=6)
        times = case.events[s.TIMESTAMP]
        recent = case.events[(times > case.cut) & (times <= soon)]
        answer = api.post("ingest", "/v1/events", json=records(recent)[:500])
        assert answer.status_code == 200
        for _ in range(600):
            status = api.get("admin", "/v1/admin/rescoring").json()
            if status["pending"] == 0 and status["dossiers"] > 0:
                break
            time.sleep(0.1)
        assert status["pending"] == 0 and status["failed"] == 0, status
        metrics = api.client.get("/metrics").text
        assert 'giamsat_dossiers_rescored_total{outcome="scored"}' in metrics


def test_a_crash_while_writing_scores_leaves_the_dossiers_waiting(
    live_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scores, alerts and the 'scored' mark are one transaction: a failure after the
    scores were written rolls all back, and the next run does the work."""
    import serving.live as live_module

    store, live = live_api.store, live_api.app.state.live
    waiting = live.pending()
    assert waiting > 0  # the history was stored, never scored
    with store.read() as session:
        before = session.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one()
    real = live_module.write_scores

    def crash(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # scores and alerts written in the transaction...
        raise RuntimeError("power cut")  # ...which then never commits

    monkeypatch.setattr(live_module, "write_scores", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        live.rescore_pending(limit=50)
    with store.read() as session:
        assert (
            session.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one() == before
        )
        scored = sa.select(sa.func.count()).where(dossiers.c.scored_at.is_not(None))
        assert session.execute(scored).scalar_one() == 0
    assert live.pending() == waiting
    monkeypatch.setattr(live_module, "write_scores", real)
    done = live.rescore_pending(limit=50)
    assert done is not None and done.dossiers == 50
    assert live.pending() == waiting - 50
