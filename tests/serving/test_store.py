"""Live ingestion (idempotent, atomic, order-free) and dossiers with their scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from serving.db import Store
from serving.errors import InvalidEventError, NotFoundError
from serving.store import (
    add_events,
    dossier_events,
    get_dossier,
    list_dossiers,
    upsert_scores,
)
from serving.tables import dossiers, events
from serving.users import Role, User
from tests.serving.conftest import T0, event


def _count(store: Store, table: sa.Table) -> int:
    with store.read() as session:
        return int(session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_resending_a_batch_adds_nothing(store: Store) -> None:
    batch = [event(i, dossier=f"D{i % 7}") for i in range(500)]
    with store.transaction() as session:
        first = add_events(session, batch)
    with store.transaction() as session:
        again = add_events(session, batch)
    with store.transaction() as session:
        mixed = add_events(session, batch[:10] + [event(500), event(501)])
    assert (first.new, first.duplicate) == (500, 0)
    assert (again.new, again.duplicate) == (0, 500)
    assert (mixed.new, mixed.duplicate) == (2, 10)
    assert _count(store, events) == 502
    assert _count(store, dossiers) == 7


def test_resending_does_not_mark_dossiers_as_changed(store: Store) -> None:
    with store.transaction() as session:
        add_events(session, [event(0), event(1)], now=T0)
    with store.transaction() as session:
        add_events(session, [event(0), event(1)], now=T0 + timedelta(days=1))
    with store.read() as session:
        row = session.execute(sa.select(dossiers)).one()
    assert row.events_changed_at == T0


@pytest.mark.parametrize(
    ("bad", "field", "says"),
    [
        ({"timestamp": datetime(2025, 3, 3, 8, 0)}, "timestamp", "no zone"),
        ({"timestamp": None}, "timestamp", "missing"),
        ({"timestamp": "yesterday"}, "timestamp", "ISO 8601"),
        ({"dossier_id": ""}, "dossier_id", "empty"),
        ({"activity": 12}, "activity", "expected a string"),
        ({"rating": 9}, "rating", "outside 1..5"),
        ({"channel": "pigeon"}, "channel", "not one of"),
        ({"agency_id": "x" * 201}, "agency_id", "longer than 200"),
        ({"seq": 1.5}, "seq", "integer"),
        ({"scan": object()}, "scan", "JSON"),
    ],
)
def test_a_batch_with_one_invalid_event_leaves_the_store_unchanged(
    store: Store, bad: dict[str, object], field: str, says: str
) -> None:
    with store.transaction() as session:
        add_events(session, [event(100)])
    batch = [event(i) for i in range(5)]
    batch[3] = {**event(3), **bad}
    with pytest.raises(InvalidEventError) as caught, store.transaction() as session:
        add_events(session, batch)
    err = caught.value
    assert (err.index, err.field, err.event_id) == (3, field, "E3")
    assert f"event 3 (event_id 'E3'), field '{field}'" in str(err) and says in str(err)
    assert _count(store, events) == 1


def test_a_batch_item_that_is_not_a_mapping_is_refused(store: Store) -> None:
    with pytest.raises(InvalidEventError, match="event 1, field '\\*'"):
        with store.transaction() as session:
            add_events(session, [event(0), ["E1", "D1"]])  # type: ignore[list-item]


def test_an_event_id_reused_with_other_content_in_a_batch_is_refused(store: Store) -> None:
    batch = [event(0), event(1), event(1, activity="approved")]
    with pytest.raises(InvalidEventError, match="event 2 .* repeated") as caught:
        with store.transaction() as session:
            add_events(session, batch)
    assert caught.value.field == "event_id"
    with store.transaction() as session:  # the same event twice in a batch is fine
        assert add_events(session, [event(0), event(0)]).new == 1


def test_out_of_order_arrivals_are_fine(store: Store) -> None:
    with store.transaction() as session:
        add_events(session, [event(5), event(9)])
    with store.transaction() as session:
        add_events(session, [event(0, jurisdiction="J1"), event(2)])
    with store.read() as session:
        row = session.execute(sa.select(dossiers)).one()
        stored = session.execute(sa.select(events.c.event_id).order_by(events.c.timestamp))
        order = list(stored.scalars())
    assert row.last_event_at == T0 + timedelta(minutes=9)
    assert order == ["E0", "E2", "E5", "E9"]


def test_timestamps_come_back_aware_in_utc_and_attributes_are_kept(store: Store) -> None:
    hanoi = T0.astimezone(pd.Timestamp("2025-01-01", tz="Asia/Ho_Chi_Minh").tzinfo)
    frame = pd.DataFrame(
        {
            "event_id": ["E1", "E2"],
            "dossier_id": ["D1", "D1"],
            "activity": pd.Categorical(["received", "approved"]),
            "timestamp": pd.to_datetime([hanoi, hanoi + timedelta(hours=1)]),
            "jurisdiction": ["J1", None],
            "rating": [None, 4.0],
            "source_row": [1, 2],
        }
    )
    with store.transaction() as session:
        assert add_events(session, frame).new == 2
    admin = User(None, "a", Role.ADMIN)
    with store.read() as session:
        rows = dossier_events(session, admin, "D1")
    assert rows[0]["timestamp"] == T0 and rows[0]["timestamp"].tzinfo is not None
    assert rows[0]["timestamp"].utcoffset() == timedelta(0)
    assert rows[0]["attributes"] == {"source_row": 1} and rows[1]["rating"] == 4.0
    assert rows[1]["jurisdiction"] is None


def test_scores_become_the_dossiers_current_scores_seen_per_jurisdiction(
    store: Store, people: dict[str, User]
) -> None:
    with store.transaction() as session:
        add_events(session, [event(0, "D1"), event(1, "D2", jurisdiction="J2"), event(2, "D3")])
    scores = pd.DataFrame(
        {
            "dossier_id": ["D1", "D2", "D4"],
            "status": ["open", "open", "closed"],
            "procedure_code": ["P1", "P1", "P2"],
            "first_agency": ["A1", "A1", "A2"],
            "jurisdiction": ["J1", "J2", "J1"],
            "delay_risk": [0.9, 0.2, float("nan")],
            "waste_score": [0.1, 0.3, 0.7],
            "risk_score": [0.9, 0.3, 0.7],
            "reasons": ["late", "", "waste"],
        }
    )
    as_of = T0 + timedelta(days=1)
    with store.transaction() as session:
        assert upsert_scores(session, scores, as_of=as_of, model_version="3") == 3
        upsert_scores(session, scores.iloc[:1].assign(risk_score=0.95), as_of=as_of)
    with store.read() as session:
        seen = [d["dossier_id"] for d in list_dossiers(session, people["insp1"])]
        everything = [d["dossier_id"] for d in list_dossiers(session, people["analyst"])]
        risky = list_dossiers(session, people["admin"], min_risk=0.5)
        d4 = get_dossier(session, people["insp1"], "D4")
        with pytest.raises(NotFoundError):
            get_dossier(session, people["insp1"], "D2")
        assert list_dossiers(session, people["ingest"]) == []
    assert seen == ["D1", "D4", "D3"]  # riskiest first, unscored last; no D2 (J2)
    assert everything == ["D1", "D4", "D2", "D3"]
    assert [d["dossier_id"] for d in risky] == ["D1", "D4"]
    assert risky[0]["risk_score"] == 0.95 and risky[0]["scored_as_of"] == as_of
    assert d4["delay_risk"] is None and d4["model_version"] == "3"
    assert d4["scored_at"].tzinfo is not None and d4["agency_id"] == "A2"
    assert as_of.tzinfo is UTC
