"""``POST /v1/events``: idempotent, atomic per batch, bounded, and every bad input a 4xx
that says what was wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from features.pseudonym import is_pseudonym
from serving.db import Store
from serving.tables import events
from serving.users import User
from tests.serving.api_helpers import Api, api_over, wire
from tests.serving.conftest import event

LIMIT = 5


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    with api_over(store, people, max_batch_events=LIMIT) as client:
        yield client


def _stored(store: Store) -> list[str]:
    with store.read() as session:
        ids = session.execute(sa.select(events.c.event_id).order_by(events.c.event_id))
        return list(ids.scalars())


def test_a_resent_batch_adds_nothing(api: Api) -> None:
    batch = [wire(event(i)) for i in range(3)]
    first = api.post("ingest", "/v1/events", json=batch)
    again = api.post("ingest", "/v1/events", json=batch)
    more = api.post("admin", "/v1/events", json=[*batch[1:], wire(event(3))])
    assert first.status_code == again.status_code == more.status_code == 200
    assert first.json() == {"new": 3, "duplicate": 0}
    assert again.json() == {"new": 0, "duplicate": 3}
    assert more.json() == {"new": 1, "duplicate": 2}
    assert _stored(api.store) == ["E0", "E1", "E2", "E3"]
    text = api.client.get("/metrics").text
    assert 'giamsat_events_ingested_total{outcome="new"} 4' in text
    assert 'giamsat_events_ingested_total{outcome="duplicate"} 5' in text


def test_applicants_are_pseudonymised_before_storage(api: Api) -> None:
    batch = [wire(event(0, applicant_id="079123456789", submitter_id=" "))]
    assert api.post("ingest", "/v1/events", json=batch).status_code == 200
    with api.store.read() as session:
        row = session.execute(sa.select(events.c.applicant_id, events.c.submitter_id)).one()
    assert is_pseudonym(row.applicant_id) and "079123456789" not in row.applicant_id
    assert row.submitter_id is None


def test_one_invalid_event_rejects_the_batch_naming_index_and_field(api: Api) -> None:
    batch = [wire(event(0)), wire(event(1)), {**wire(event(2)), "timestamp": "2025-03-03T10:00"}]
    r = api.post("ingest", "/v1/events", json=batch)
    assert r.status_code == 422
    body = r.json()
    assert (body["index"], body["field"], body["event_id"]) == (2, "timestamp", "E2")
    assert "no zone" in body["detail"]
    assert _stored(api.store) == []  # nothing of the batch was kept
    for bad, field in (
        ({"dossier_id": None}, "dossier_id"),
        ({"channel": "fax"}, "channel"),
        ({"rating": 9}, "rating"),
        ({"event_id": 7}, "event_id"),
    ):
        r = api.post("ingest", "/v1/events", json=[wire(event(0)), {**wire(event(1)), **bad}])
        assert r.status_code == 422 and r.json()["field"] == field and r.json()["index"] == 1
    r = api.post("ingest", "/v1/events", json=[wire(event(0)), "E1"])
    assert r.status_code == 422 and r.json()["index"] == 1
    assert _stored(api.store) == []


def test_a_batch_over_the_limit_is_413(api: Api) -> None:
    r = api.post("ingest", "/v1/events", json=[wire(event(i)) for i in range(LIMIT + 1)])
    assert r.status_code == 413 and f"at most {LIMIT}" in r.json()["detail"]
    huge = json.dumps([{"event_id": "x" * 100_000}])  # over the byte budget, refused unread
    r = api.post("ingest", "/v1/events", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b"["
        for _ in range(100):
            yield json.dumps(wire(event(0, note="x" * 1000))).encode() + b","
        yield b"{}]"

    r = api.post(
        "ingest", "/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert _stored(api.store) == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b'[{"event_id": ', "application/json", 400, "body"),
        (b"\xff\xfe", "application/json", 400, "body"),
        (b"", "application/json", 400, "body"),
        (b'{"event_id": "E1"}', "application/json", 422, "body"),
        (b"event_id,dossier_id\nE1,D1\n", "text/csv", 415, None),
        (b"[]", "", 415, None),
    ],
)
def test_malformed_bodies_are_4xx_saying_why(
    api: Api, body: bytes, content_type: str, status: int, field: str | None
) -> None:
    headers = {**api.headers("ingest"), "Content-Type": content_type}
    r = api.client.post("/v1/events", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["detail"]


def test_an_empty_batch_is_fine(api: Api) -> None:
    assert api.post("ingest", "/v1/events", json=[]).json() == {"new": 0, "duplicate": 0}
