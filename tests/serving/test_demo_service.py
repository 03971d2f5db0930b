"""The main job's service part over a real uvicorn server: the history stored and scored,
the recent events replayed through ``POST /v1/events``, alerts raised by the live
re-scoring, demo keys that work, an inspector who sees only their jurisdiction."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest
import requests

from features import schema as s
from giamsat.demo_service import DemoServiceError, Served, serve_demo
from tests.serving.api_helpers import settings
from tests.serving.scoring import Registered, ScoringCase


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_demo_serves_the_replayed_province(
    tmp_path: Path, scoring_case: ScoringCase, scoring_registry: Registered
) -> None:
    case = scoring_case
    config = settings(
        **scoring_registry.changes,
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        model_reload_seconds=0,
    )
    port = _free_port()
    seen: list[Served] = []
    lines: list[str] = []
    scoped: list[set[str]] = []

    def announce(served: Served) -> None:  # while the service still runs
        seen.append(served)
        for who in ("demo-inspector", "demo-admin"):
            headers = {"Authorization": f"Bearer {served.prepared.keys[who]}"}
            answer = requests.get(
                f"{served.url}/v1/alerts", params={"limit": 200}, headers=headers, timeout=30
            )
            assert answer.status_code == 200, answer.text
            scoped.append({a["jurisdiction"] for a in answer.json()["items"]})

    served = serve_demo(
        config,
        case.events,
        case.ref,
        case.bundle,
        scoring_registry.version,
        until=case.later,
        replay_days=2,
        host="127.0.0.1",
        port=port,
        forever=False,
        say=lines.append,
        announce=announce,
    )
    assert seen == [served]
    times = case.events[s.TIMESTAMP]
    recent = case.events[(times > case.later - pd.Timedelta(days=2)) & (times <= case.later)]
    assert served.replayed.events == served.replayed.new == len(recent) > 0
    assert served.alerts > 0
    assert any("replayed" in line for line in lines)
    inspector, admin = scoped
    assert inspector == {served.prepared.jurisdiction}, "the inspector sees their jurisdiction"
    assert len(admin) > 1
    # the service stopped with the job (forever=False): nothing listens any more
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_the_demo_refuses_a_taken_port(
    tmp_path: Path, scoring_case: ScoringCase, scoring_registry: Registered
) -> None:
    case = scoring_case
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(DemoServiceError, match=f"cannot serve on 127.0.0.1:{port}"):
            serve_demo(
                settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}"),
                case.events, case.ref, case.bundle, "1", until=case.later, replay_days=1,
                host="127.0.0.1", port=port, forever=False, say=print, announce=print,
            )  # fmt: skip
    assert not (tmp_path / "demo.db").exists(), "nothing is set up before the port is checked"
