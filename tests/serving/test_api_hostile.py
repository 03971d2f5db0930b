"""Hostile requests: deep nesting, huge strings, NaN and Infinity, wrong types, duplicate
keys, bytes that are not UTF-8, NUL and lone surrogates, bodies just over the byte budget,
10^5 tiny events, unknown fields, SQL and script text in ids. Each is a 4xx whose JSON
says why, or a 2xx where the input is legitimately accepted; never a 5xx. On SQLite and
PostgreSQL (whose text holds no NUL: the API refuses it on both)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from serving.db import Store
from serving.routes.events import BYTES_PER_EVENT
from serving.tables import events
from serving.users import User
from tests.serving.api_helpers import A1, Api, api_over, seed, wire
from tests.serving.conftest import event

LIMIT = 50
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    seed(store)
    with api_over(store, people, max_batch_events=LIMIT) as client:
        yield client


def _send(api: Api, body: bytes | str, path: str = "/v1/events", who: str = "ingest") -> Any:
    data = body.encode() if isinstance(body, str) else body
    return api.post(who, path, content=data, headers=JSON)


def _one(i: int, **changes: Any) -> str:
    return json.dumps([{**wire(event(i, "H1")), **changes}])


def _refused(r: Any, status: int | tuple[int, ...], field: str | None = "?") -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    if field != "?":
        assert body["field"] == field, body
    return body


def _stored_ids(store: Store) -> list[str]:
    with store.read() as session:
        return list(session.execute(sa.select(events.c.event_id)).scalars())


NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("name", "body", "status", "field"),
    [
        ("nested arrays", NESTED, 400, "body"),
        (
            "a nested attribute",
            _one(900, extra=None).replace("null", "[" * 5000 + "]" * 5000),
            400,
            "body",
        ),
        ("NaN rating", _one(901, rating=float("nan")).replace("NaN", "Infinity"), 422, "rating"),
        ("NaN attribute", _one(902, score=float("nan")), 422, "score"),
        ("Infinity seq", _one(903, seq=float("inf")), 422, "seq"),
        ("seq past 64 bits", _one(904, seq=2**70), 422, "seq"),
        ("seq as 1e300", _one(905, seq=1e300), 422, "seq"),
        ("an integer of 5000 digits", "[" + "9" * 5000 + "]", 400, "body"),
        ("a number as event_id", _one(906, event_id=906), 422, "event_id"),
        ("an object as timestamp", _one(907, timestamp={"$gt": ""}), 422, "timestamp"),
        ("a list as dossier_id", _one(908, dossier_id=["H1"]), 422, "dossier_id"),
        ("a boolean rating", _one(909, rating=True), 422, "rating"),
        ("an id of 10^5 characters", _one(910, activity="x" * 100_000), 422, "activity"),
        ("year 1 east of UTC", _one(911, timestamp="0001-01-01T00:00:00+14:00"), 422, "timestamp"),
        ("year 9999 west of UTC", _one(912, due_at="9999-12-31T23:59:59-12:00"), 422, "due_at"),
        ("a NUL in an id", _one(913, event_id="E\x00913"), 422, "event_id"),
        ("a lone surrogate", _one(914).replace('"appraised"', '"\\ud800"'), 422, "activity"),
        ("a lone surrogate in an attribute", _one(915, note="\udfff"), 422, "note"),
        ("a lone surrogate as a key", _one(916, **{"\udfff": 1}), 422, "*"),
        ("not UTF-8", b'[{"event_id": "\xff\xfe"}]', 400, "body"),
        ("an object, not an array", json.dumps(wire(event(918))), 422, "body"),
        ("a bare string", '"E919"', 422, "body"),
    ],
)
def test_hostile_event_batches_are_4xx_saying_why(
    api: Api, name: str, body: str | bytes, status: int, field: str
) -> None:
    _refused(_send(api, body), status, field)
    assert not [e for e in _stored_ids(api.store) if e.startswith("E9")], name


def test_a_body_one_byte_over_the_budget_is_413_and_one_at_it_is_read(api: Api) -> None:
    budget = LIMIT * BYTES_PER_EVENT
    head = json.dumps([{**wire(event(920, "H1")), "note": ""}])
    pad = budget - len(head.encode())
    at = head.replace('"note": ""', '"note": "' + "x" * pad + '"')
    assert len(at.encode()) == budget
    assert _send(api, at).status_code == 200
    over = at.replace('"note": "', '"note": "y', 1)
    _refused(_send(api, over), 413)


def test_ten_thousand_tiny_events_in_one_array_are_413_unread(api: Api) -> None:
    body = "[" + ",".join(["{}"] * 100_000) + "]"  # 300 kB: under the byte budget
    r = _refused(_send(api, body), 413)
    assert "100000 events" in r["detail"]


def test_duplicate_keys_take_the_last_value_as_json_parsers_do(api: Api) -> None:
    one = wire(event(930, "H1"))
    text = json.dumps([one])[:-2] + ', "event_id": "E931"}]'  # a second event_id, last
    assert _send(api, text).json() == {"new": 1, "duplicate": 0}
    assert "E931" in _stored_ids(api.store) and "E930" not in _stored_ids(api.store)


def test_unknown_fields_are_kept_as_attributes(api: Api) -> None:
    r = _send(api, _one(940, colour="red", nested={"a": [1, {"b": None}]}, big=10**40))
    assert r.status_code == 200, r.text
    found = api.get("admin", "/v1/dossiers/H1").json()["events"]
    assert found[0]["attributes"] == {
        "big": 10**40,
        "colour": "red",
        "nested": {"a": [1, {"b": None}]},
    }


HOSTILE_IDS = [
    "'; DROP TABLE events; --",
    '" OR "1"="1',
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "Hồ sơ 🇻🇳 \\ \" '",
]


def test_sql_and_script_ids_are_stored_verbatim_and_returned_escaped(api: Api) -> None:
    batch = [
        {**wire(event(950 + i, f"D-{text}")), "event_id": f"E-{text}", "officer_id": text}
        for i, text in enumerate(HOSTILE_IDS)
    ]
    assert _send(api, json.dumps(batch)).json() == {"new": len(HOSTILE_IDS), "duplicate": 0}
    assert {f"E-{t}" for t in HOSTILE_IDS} <= set(_stored_ids(api.store))
    for text in (t for t in HOSTILE_IDS if "/" not in t):  # a %2F splits the route's path
        r = api.client.get("/v1/dossiers/" + _quote(f"D-{text}"), headers=api.headers("admin"))
        assert r.status_code == 200, (text, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["events"][0]["officer_id"] == text  # verbatim
        assert json.dumps(text, ensure_ascii=False) in r.text  # quotes, backslashes escaped
    listed = api.get("admin", "/v1/dossiers", params={"limit": 500})
    assert listed.headers["content-type"] == "application/json"  # never text/html
    assert {f"D-{t}" for t in HOSTILE_IDS} <= {d["dossier_id"] for d in listed.json()["items"]}
    with api.store.read() as session:  # the tables are all still there
        assert session.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() > 0


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (NESTED, 400, None),
        ('{"expected_version": NaN}', 422, "expected_version"),
        ('{"expected_version": Infinity}', 422, "expected_version"),
        ('{"expected_version": "1; DROP TABLE alerts"}', 422, "expected_version"),
        ('{"reason": "\\ud800"}', 422, "reason"),
        ('{"reason": "a\\u0000b"}', 422, "reason"),
        ('{"reason": "' + "x" * 100_000 + '"}', 422, "reason"),
        (b'{"reason": "\xff"}', 400, None),
        ('{"reason": "x", "is_admin": true}', 422, "is_admin"),
        ("[]", 422, None),
    ],
)
def test_hostile_action_bodies_are_4xx_saying_why(
    api: Api, body: str | bytes, status: int, field: str | None
) -> None:
    r = _send(api, body, f"/v1/alerts/{A1}/acknowledge", who="insp1")
    got = _refused(r, status)
    if field is not None:
        assert got["field"] == field
    assert api.get("insp1", f"/v1/alerts/{A1}").json()["version"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v1/alerts?agency=%00",
        "/v1/alerts?offset=9223372036854775808",
        "/v1/alerts?since=0001-01-01T00:00:00%2B14:00",
        "/v1/alerts?until=9999-12-31T23:59:59-12:00",
        "/v1/alerts?limit=NaN",
        "/v1/alerts/%00",
        "/v1/dossiers/%00",
        "/v1/dossiers?offset=-1",
        "/v1/dossiers?min_risk=NaN",
        "/v1/dossiers?min_risk=Infinity",
    ],
)
def test_hostile_query_and_path_values_are_422(api: Api, path: str) -> None:
    _refused(api.get("admin", path), 422)


def test_ids_that_look_like_sql_in_paths_are_just_not_found(api: Api) -> None:
    for text in HOSTILE_IDS:
        r = api.client.get("/v1/alerts/" + _quote(text), headers=api.headers("admin"))
        _refused(r, (404, 405))  # 405: a %2F made it another route's path
