"""``GET /v1/alerts/stream`` over a real uvicorn server on loopback: each caller gets the
alert changes of their jurisdictions only, in outbox order; ``Last-Event-ID`` resumes
after the event given; heartbeats while nothing happens; a client that goes away ends
its stream; auth and bad input answer 4xx with a reason."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session

from models.scoring import alert_id
from serving.alerts import Action
from serving.app import create_app
from serving.db import Store
from serving.users import SYSTEM, User, create_api_key
from serving.webhooks import enqueue, latest_message_id
from serving.workflow import transition, upsert_alerts
from tests.serving.api_helpers import api_over, settings
from tests.serving.conftest import PEPPER, T0, alert_row

STREAM = {"stream_poll_seconds": 0.05, "stream_heartbeat_seconds": 0.3}


@dataclass
class Served:
    url: str
    app: FastAPI
    keys: dict[str, str]

    def open(self, who: str, **headers: str) -> requests.Response:
        answer = requests.get(
            f"{self.url}/v1/alerts/stream",
            headers={"X-API-Key": self.keys[who], **headers},
            stream=True,
            timeout=(2, 5),
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        return answer


@contextmanager
def served(store: Store, people: dict[str, User], **extra: Any) -> Iterator[Served]:
    """The app under uvicorn in a thread, on a free loopback port."""
    keys = {}
    with store.transaction() as session:
        for name in people:
            keys[name] = create_api_key(session, name, PEPPER)[1]
    app = create_app(settings(**{**STREAM, **extra}), store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app, keys)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Reader:
    """Parses a response's server-sent events in a thread, as they arrive."""

    response: requests.Response
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = ""
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                buffer += chunk.decode("utf-8")
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self._parse(block)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test

    def _parse(self, block: str) -> None:
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                self.comments.append(value.strip())
            elif name in ("id", "event", "data", "retry"):
                event[name] = value.strip()
        if "data" in event:
            event["data"] = json.loads(event["data"])
            self.events.append(event)

    def wait(self, what: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, f"timed out: {self.events} {self.comments}"
            time.sleep(0.02)

    def close(self) -> None:
        self.response.close()


def _changes(store: Store) -> None:
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), alert_row("D2", "J2"), alert_row("D3")], now=T0)
    with store.transaction() as session:
        transition(session, alert_id("delay", "dossier", "D2"), Action.ACKNOWLEDGE, SYSTEM)
        transition(session, alert_id("delay", "dossier", "D3"), Action.ESCALATE, SYSTEM)


def test_each_caller_gets_their_jurisdictions_alert_changes_in_order(
    store: Store, people: dict[str, User]
) -> None:
    with served(store, people) as srv:
        readers = {who: Reader(srv.open(who)) for who in ("insp1", "insp2", "admin", "dash")}
        for r in readers.values():
            r.wait(lambda r=r: "connected" in r.comments)
        _changes(store)
        readers["admin"].wait(lambda: len(readers["admin"].events) == 5)
        readers["insp1"].wait(lambda: len(readers["insp1"].events) == 3)
        readers["insp2"].wait(lambda: len(readers["insp2"].events) == 2)
        readers["dash"].wait(lambda: len(readers["dash"].events) == 5)
        time.sleep(0.2)  # nothing more comes
        for r in readers.values():
            r.close()
    admin = readers["admin"].events
    assert [e["event"] for e in admin] == ["alert.raise"] * 3 + [
        "alert.acknowledge",
        "alert.escalate",
    ]
    ids = [int(e["id"]) for e in admin]
    assert ids == sorted(ids) and [e["data"]["id"] for e in admin] == ids
    j1 = readers["insp1"].events
    assert {e["data"]["jurisdiction"] for e in j1} == {"J1"} and len(j1) == 3
    assert [e["data"]["data"]["subject_id"] for e in j1] == ["D1", "D3", "D3"]
    j2 = readers["insp2"].events
    assert [(e["event"], e["data"]["data"]["subject_id"]) for e in j2] == [
        ("alert.raise", "D2"),
        ("alert.acknowledge", "D2"),
    ]


def test_last_event_id_resumes_right_after_the_event_given(
    store: Store, people: dict[str, User]
) -> None:
    _changes(store)
    with store.read() as session:
        last = latest_message_id(session)
    with served(store, people) as srv:
        resumed = Reader(srv.open("admin", **{"Last-Event-ID": str(last - 3)}))
        fresh = Reader(srv.open("admin"))  # no resume point: from now on
        resumed.wait(lambda: len(resumed.events) == 3)
        fresh.wait(lambda: "heartbeat" in fresh.comments)
        assert fresh.events == []
        with store.transaction() as session:
            upsert_alerts(session, [alert_row("D9")], now=T0)
        fresh.wait(lambda: len(fresh.events) == 1)
        resumed.wait(lambda: len(resumed.events) == 4)
        by_query = Reader(
            requests.get(
                f"{srv.url}/v1/alerts/stream",
                params={"after": last},
                headers={"X-API-Key": srv.keys["insp1"]},
                stream=True,
                timeout=(2, 5),
            )
        )
        by_query.wait(lambda: len(by_query.events) == 1)  # D9 is in J1
        for r in (resumed, fresh, by_query):
            r.close()
    assert [int(e["id"]) for e in resumed.events] == [last - 2, last - 1, last, last + 1]
    assert fresh.events[0]["data"]["data"]["subject_id"] == "D9"
    assert by_query.events[0]["id"] == str(last + 1)


def test_heartbeats_while_quiet_and_a_clean_end_when_the_client_goes(
    store: Store, people: dict[str, User]
) -> None:
    with served(store, people) as srv:
        streams = srv.app.state.streams
        reader = Reader(srv.open("insp1"))
        reader.wait(lambda: reader.comments.count("heartbeat") >= 2)
        assert streams.open == 1
        reader.close()
        deadline = time.monotonic() + 5
        while streams.open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert streams.open == 0 and streams.served == 1


def test_a_stream_ends_after_its_lifetime_and_resumes_on_reconnection(
    store: Store, people: dict[str, User]
) -> None:
    with served(store, people, stream_max_seconds=1.5) as srv:
        reader = Reader(srv.open("admin"))
        reader.wait(lambda: "connected" in reader.comments)
        _changes(store)
        reader.wait(lambda: len(reader.events) == 5)
        reader.wait(lambda: "reconnect" in reader.comments)
        reader._thread.join(5)
        assert not reader._thread.is_alive()  # the response ended
        last = reader.events[-1]["id"]
        with store.transaction() as session:
            upsert_alerts(session, [alert_row("D7")], now=T0)
        again = Reader(srv.open("admin", **{"Last-Event-ID": last}))
        again.wait(lambda: len(again.events) == 1)
        again.close()
    assert len(reader.events) == 5 and again.events[0]["data"]["data"]["subject_id"] == "D7"


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Any]:
    with api_over(store, people, **STREAM) as running:
        yield running


def test_the_stream_needs_a_key_and_a_reading_role_and_a_sane_resume_point(api: Any) -> None:
    assert api.client.get("/v1/alerts/stream").status_code == 401
    denied = api.get("ingest", "/v1/alerts/stream")
    assert denied.status_code == 403 and "may not" in denied.json()["detail"]
    for bad in ("abc", "-1", "1" * 30):
        answer = api.client.get(
            "/v1/alerts/stream", headers={**api.headers("admin"), "Last-Event-ID": bad}
        )
        assert answer.status_code == 422 and answer.json()["field"] == "Last-Event-ID"
    query = api.get("admin", "/v1/alerts/stream", params={"after": "-5"})
    assert query.status_code == 422 and query.json()["field"] == "after"
    # the alert routes still answer: the stream does not shadow /v1/alerts/{alert_id}
    assert api.get("admin", "/v1/alerts/not-an-alert").status_code == 404


def test_a_change_committed_after_a_later_one_still_reaches_the_stream(
    store: Store, people: dict[str, User]
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite's writers are serialised: ids commit in order")
    with served(store, people) as srv:
        reader = Reader(srv.open("admin"))
        reader.wait(lambda: "connected" in reader.comments)
        # alert changes take their outbox ids under the audit chain's lock, so they commit
        # in id order; any other writer of the outbox need not: one takes an id and waits
        slow = Session(store.engine)
        slow.begin()
        enqueue(slow, "alert.raise", {"subject_id": "EARLY"}, jurisdiction="J1")
        slow.flush()
        with store.transaction() as session:
            enqueue(session, "alert.raise", {"subject_id": "LATE"}, jurisdiction="J1")
        reader.wait(lambda: len(reader.events) == 1)
        slow.commit()
        slow.close()
        reader.wait(lambda: len(reader.events) == 2)
        reader.close()
    subjects = [e["data"]["data"]["subject_id"] for e in reader.events]
    ids = [int(e["id"]) for e in reader.events]
    assert subjects == ["LATE", "EARLY"] and ids[0] > ids[1]
