"""Scores and alerts written into the store from the store's events: the batch path
(``rescore_all``) gives what ``score_log`` gives, re-running changes nothing, and alerts
whose risk passed are closed."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from features import schema as s
from models.scoring import score_log
from serving.db import Store
from serving.rescoring import pending_dossiers, rescore_all, stored_events
from serving.store import add_events
from serving.tables import alerts, dossiers
from tests.serving.scoring import ScoringCase


def _load(store: Store, case: ScoringCase, until: pd.Timestamp) -> None:
    from giamsat.demo_service import records

    part = case.events[case.events[s.TIMESTAMP] <= until]
    with store.transaction() as session:
        add_events(session, records(part))


def _records_of(case: ScoringCase, dossier: str) -> list[dict[str, object]]:
    from giamsat.demo_service import records

    mine = case.events[
        (case.events[s.DOSSIER_ID] == dossier) & (case.events[s.TIMESTAMP] <= case.cut)
    ]
    return records(mine)


def test_stored_events_round_trip_the_log(store: Store, scoring_case: ScoringCase) -> None:
    _load(store, scoring_case, scoring_case.cut)
    with store.read() as session:
        back = stored_events(session)
    known = scoring_case.events[scoring_case.events[s.TIMESTAMP] <= scoring_case.cut]
    expected = s.sort_events(known)
    assert len(back) == len(expected)
    for column in (s.EVENT_ID, s.DOSSIER_ID, s.ACTIVITY, s.AGENCY_ID, s.OFFICER_ID):
        assert back[column].astype(str).tolist() == expected[column].astype(str).tolist()
    assert (back[s.TIMESTAMP] == expected[s.TIMESTAMP]).all()
    assert str(back[s.TIMESTAMP].dt.tz) == s.DEFAULT_TZ


def test_rescore_all_writes_what_the_batch_scorer_gives(
    store: Store, scoring_case: ScoringCase
) -> None:
    case = scoring_case
    _load(store, case, case.cut)
    with store.transaction() as session:
        assert len(pending_dossiers(session)) > 0
        done = rescore_all(session, case.bundle, case.ref, as_of=case.cut, model_version="7")
    known = case.events[case.events[s.TIMESTAMP] <= case.cut]
    expected = score_log(case.bundle, s.sort_events(known), case.ref, as_of=case.cut)
    assert done.dossiers == len(expected.scores)
    assert done.raised == len(expected.alerts) > 0
    with store.read() as session:
        assert pending_dossiers(session) == []
        stored = pd.DataFrame(session.execute(sa.select(dossiers)).mappings().all())
        raised = set(session.execute(sa.select(alerts.c.alert_id)).scalars())
    assert raised == set(expected.alerts["alert_id"])
    mine = stored.set_index(s.DOSSIER_ID).sort_index()
    theirs = expected.scores.set_index(s.DOSSIER_ID).sort_index()
    assert mine.index.tolist() == theirs.index.tolist()
    for column in ("delay_risk", "waste_score", "integrity_score", "risk_score"):
        pd.testing.assert_series_equal(
            mine[column].astype(float), theirs[column].astype(float), check_names=False,
            check_index_type=False,
        )  # fmt: skip
    assert (mine["model_version"] == "7").all()

    with store.transaction() as session:  # the same run again: updates, raises nothing
        again = rescore_all(session, case.bundle, case.ref, as_of=case.cut, model_version="7")
    assert (again.raised, again.reopened, again.closed) == (0, 0, 0)
    assert again.updated == done.raised
    with store.transaction() as session:  # new events for one dossier: it waits again
        one = str(expected.scores[s.DOSSIER_ID].iloc[0])
        add_events(session, [{**_records_of(case, one)[-1], "event_id": "extra-1"}])
    with store.read() as session:
        assert pending_dossiers(session) == [one]


def test_alerts_whose_risk_passed_are_closed(store: Store, scoring_case: ScoringCase) -> None:
    case = scoring_case
    _load(store, case, case.later)
    with store.transaction() as session:
        first = rescore_all(session, case.bundle, case.ref, as_of=case.cut)
        # scored as of the cut: the dossiers with later events are not up to date
        waiting = set(pending_dossiers(session))
    later_events = case.events[
        (case.events[s.TIMESTAMP] > case.cut) & (case.events[s.TIMESTAMP] <= case.later)
    ]
    assert waiting == set(later_events[s.DOSSIER_ID].astype(str))
    with store.transaction() as session:
        later = rescore_all(session, case.bundle, case.ref, as_of=case.later)
    known = case.events[case.events[s.TIMESTAMP] <= case.later]
    expected = score_log(case.bundle, s.sort_events(known), case.ref, as_of=case.later)
    still = set(expected.alerts["alert_id"])
    with store.read() as session:
        rows = session.execute(sa.select(alerts.c.alert_id, alerts.c.status)).all()
    status = dict(rows)
    assert later.closed > 0 and first.raised > 0
    with store.read() as session:
        assert pending_dossiers(session) == []
    assert {i for i, st in status.items() if st == "closed"} == set(status) - still
    assert all(status[i] in ("open", "acknowledged") for i in still)


def test_an_empty_store_is_refused_with_a_reason(store: Store, scoring_case: ScoringCase) -> None:
    with store.transaction() as session, pytest.raises(s.EventSchemaError, match="no event"):
        rescore_all(session, scoring_case.bundle, scoring_case.ref)
