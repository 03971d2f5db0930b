"""The main job's service part: the store set up, demo users, the history loaded and
scored, the service started, and the recent events replayed through its ingestion API so
that alerts appear live.

The replay is what a processing system does: batches of events, in the order they
happened, ``POST``ed to ``/v1/events`` with an ``ingest`` key. The service re-scores each
dossier a batch touches and raises, updates or closes its alerts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests

from features import schema as s
from features.engine import Reference
from giamsat.settings import Settings
from models.bundle import ModelBundle
from serving.db import Store

Say = Callable[[str], None]

#: the demo's users: name -> (role, whether scoped to the inspected jurisdiction).
DEMO_USERS = {
    "demo-admin": ("admin", False),
    "demo-ingest": ("ingest", False),
    "demo-inspector": ("inspector", True),
    "demo-analyst": ("analyst", False),
}
#: events per ingestion request, as the issue's processing systems send them.
BATCH = 500
#: the replayed events' columns (the canonical ones the API takes).
_SENT = [c for c in s.CANONICAL_COLUMNS]


class DemoServiceError(s.GiamSatError, RuntimeError):
    """The demo service could not be set up or reached (port taken, replay refused...)."""


@dataclass(frozen=True)
class Prepared:
    """The store is ready: demo keys (shown once), the jurisdiction the demo inspector
    covers, and the time the history runs to (the replay starts after it)."""

    keys: dict[str, str]
    jurisdiction: str
    history_until: pd.Timestamp
    loaded: int
    summary: str


@dataclass(frozen=True)
class Replayed:
    """What the replay sent and the service answered."""

    events: int
    new: int
    duplicate: int
    batches: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.inf


def _keys(store: Store, settings: Settings, jurisdiction: str) -> dict[str, str]:
    """Each demo user (created on the first run) with a fresh API key."""
    from serving.errors import NotFoundError
    from serving.users import create_api_key, create_user, get_user

    pepper = settings.api_key_pepper.get_secret_value().encode()
    keys: dict[str, str] = {}
    with store.transaction() as session:
        for name, (role, scoped) in DEMO_USERS.items():
            try:
                get_user(session, name)
            except NotFoundError:
                create_user(session, name, role, [jurisdiction] if scoped else (), actor="demo")
            _, keys[name] = create_api_key(session, name, pepper, label="demo", actor="demo")
    return keys


def prepare(
    settings: Settings,
    events: pd.DataFrame,
    ref: Reference,
    bundle: ModelBundle,
    version: str,
    *,
    history_until: pd.Timestamp,
    say: Say,
) -> Prepared:
    """Migrate the store, create the demo users, store the events up to
    ``history_until`` and score them with the batch pipeline (entity alerts included)."""
    from serving.migrations import upgrade
    from serving.rescoring import rescore_all
    from serving.store import add_events

    upgrade(settings.database_url)
    store = Store.from_url(settings.database_url)
    try:
        history = events[events[s.TIMESTAMP] <= history_until]
        jurisdiction = _busiest(history)
        keys = _keys(store, settings, jurisdiction)
        say(f"storing {len(history):,} events up to {history_until} in {settings.database_url}")
        loaded = 0
        for chunk in _chunks(history, 5_000):
            with store.transaction() as session:
                loaded += add_events(session, chunk).new
        say(f"scoring the stored dossiers as of {history_until} (batch pipeline)")
        with store.transaction() as session:
            done = rescore_all(session, bundle, ref, as_of=history_until, model_version=version,
                               tz=settings.timezone, say=say)  # fmt: skip
        return Prepared(keys, jurisdiction, history_until, loaded, done.describe())
    finally:
        store.dispose()


def _busiest(events: pd.DataFrame) -> str:
    """The jurisdiction with the most dossiers: the demo inspector's."""
    per = events.groupby(s.DOSSIER_ID, observed=True)[s.JURISDICTION].first().value_counts()
    if not len(per):
        raise DemoServiceError("the demo log has no jurisdiction to give the demo inspector")
    return str(per.index[0])


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[list[dict[str, Any]]]:
    """``frame``'s canonical columns as JSON-ready records, ``size`` at a time."""
    for start in range(0, len(frame), size):
        yield records(frame.iloc[start : start + size])


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Events as the ingestion API takes them: ISO 8601 times with offsets, the source's
    extra columns (``via``...) beside the canonical ones, no NaN (a missing extra value is
    left out)."""
    extra = s.attribute_columns(frame)
    part = frame[_SENT + extra].copy()
    for column in s.TIME_COLUMNS:
        part[column] = part[column].map(lambda t: None if pd.isna(t) else t.isoformat())
    rows = part.astype(object).where(part.notna(), None).to_dict("records")
    out: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in rows]
    for row in out:
        for key in extra:
            if row[key] is None:
                del row[key]
        for key, value in row.items():
            if hasattr(value, "item"):  # numpy scalars
                row[key] = value.item()
    return out


def replay(
    url: str,
    key: str,
    events: pd.DataFrame,
    *,
    batch: int = BATCH,
    say: Say,
    every: int = 10,
) -> Replayed:
    """``POST`` ``events`` in time order to ``url``/v1/events in batches; progress every
    ``every`` batches. A refused batch stops the replay with the service's reason."""
    ordered = events.sort_values([s.TIMESTAMP, s.SEQ], kind="stable")
    total = len(ordered)
    batches = math.ceil(total / batch) if total else 0
    new = duplicate = 0
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as client:
        client.headers.update(headers)
        for n, body in enumerate(_chunks(ordered, batch), start=1):
            answer = client.post(f"{url}/v1/events", json=body, timeout=120)
            if answer.status_code != 200:
                raise DemoServiceError(
                    f"the service refused replay batch {n}: {answer.status_code} {answer.text}"
                )
            result: Mapping[str, int] = answer.json()
            new += result["new"]
            duplicate += result["duplicate"]
            if n % every == 0 or n == batches:
                sent = min(n * batch, total)
                say(f"replayed {sent:,} / {total:,} events ({n}/{batches} batches)")
    return Replayed(total, new, duplicate, batches, time.perf_counter() - started)


def wait_ready(url: str, *, timeout: float = 120.0, server: threading.Thread | None = None) -> None:
    """Wait until ``url``/readyz answers 200 (the store migrated and a model loaded)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server is not None and not server.is_alive():
            raise DemoServiceError(f"the service stopped before it was ready ({last})")
        try:
            answer = requests.get(f"{url}/readyz", timeout=5)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise DemoServiceError(f"the service at {url} was not ready within {timeout:.0f} s: {last}")


@dataclass(frozen=True)
class Served:
    """The demo service as the main job left it."""

    url: str
    prepared: Prepared
    replayed: Replayed
    alerts: int
    #: seconds from the end of the replay until no dossier waited for re-scoring.
    settled_seconds: float


def _free(host: str, port: int) -> None:
    """:class:`DemoServiceError` if ``host:port`` is taken (before anything is started)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DemoServiceError(
                f"cannot serve on {host}:{port} ({exc.strerror}): stop what runs there or "
                "pass --port"
            ) from None


def serve_demo(
    settings: Settings,
    events: pd.DataFrame,
    ref: Reference,
    bundle: ModelBundle,
    version: str,
    *,
    until: pd.Timestamp,
    replay_days: float,
    host: str,
    port: int,
    forever: bool,
    say: Say,
    announce: Callable[[Served], None],
) -> Served:
    """Prepare the store with the events up to ``replay_days`` before ``until``, start
    the service, replay the events after that up to ``until`` through its API, wait for
    the re-scoring to catch up, ``announce`` the URL and keys, then serve until
    interrupted (``forever``) or stop."""
    import uvicorn

    from serving.app import create_app
    from serving.middleware import log_config

    _free(host, port)
    history_until = until - pd.Timedelta(days=replay_days)
    prepared = prepare(settings, events, ref, bundle, version, history_until=history_until,
                       say=say)  # fmt: skip
    say(prepared.summary)
    recent = events[(events[s.TIMESTAMP] > history_until) & (events[s.TIMESTAMP] <= until)]
    url = f"http://{host}:{port}"
    live = settings.model_copy(update={"scoring_clock": "events"})
    app = create_app(live)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_config=log_config("warning"), log_level="warning"
        )  # fmt: skip
    )
    done: dict[str, Served] = {}
    failed: list[BaseException] = []

    def feed(thread: threading.Thread | None) -> None:
        try:
            wait_ready(url, server=thread)
            say(f"service ready at {url}; replaying {len(recent):,} events of the last "
                f"{replay_days:g} days through POST /v1/events")  # fmt: skip
            replayed = replay(url, prepared.keys["demo-ingest"], recent, say=say)
            say(f"replayed {replayed.events:,} events in {replayed.seconds:.1f} s "
                f"({replayed.rate:,.0f} events/s); waiting for the re-scoring")  # fmt: skip
            started = time.perf_counter()
            alerts = _settled(url, prepared.keys["demo-admin"])
            settled = time.perf_counter() - started
            done["served"] = Served(url, prepared, replayed, alerts, settled)
            announce(done["served"])
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            failed.append(exc)
            server.should_exit = True

    if forever:
        feeder = threading.Thread(target=feed, args=(None,), name="demo-replay", daemon=True)
        feeder.start()
        server.run()  # until Ctrl-C
        feeder.join(timeout=1)
    else:
        serving = threading.Thread(target=server.run, name="demo-service", daemon=True)
        serving.start()
        feed(serving)
        server.should_exit = True
        serving.join(timeout=30)
    if failed:
        raise failed[0]
    if "served" not in done:
        raise DemoServiceError("the service stopped before the replay finished")
    return done["served"]


def _settled(url: str, key: str, *, timeout: float = 300.0) -> int:
    """Wait until no dossier waits for re-scoring; the number of alerts then."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout
    with requests.Session() as client:
        client.headers.update(headers)
        while True:
            status = client.get(f"{url}/v1/admin/rescoring", timeout=30).json()
            if status["pending"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        answer = client.get(f"{url}/v1/alerts", params={"limit": 1}, timeout=30)
        body: Mapping[str, Any] = answer.json()
        return int(body.get("total", 0))
