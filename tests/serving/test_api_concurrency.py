"""Concurrent workflow actions through HTTP: threads confirm, dismiss and acknowledge one
alert at once (the store-level race is in test_alerts.py). One wins; the others get a
409 that says why; the alert ends in the winner's state, its history has one entry per
win, and the audit chain verifies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from serving.db import Store
from serving.users import User
from tests.serving.api_helpers import A1, Api, api_over, seed

WORKERS = 8
VERDICT = {"confirm": "confirmed", "dismiss": "dismissed", "acknowledge": "acknowledged"}


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    seed(store)
    with api_over(store, people) as client:
        yield client


def _race(api: Api, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    """Post every ``(action, body)`` on A1 from its own thread, all released at once."""
    start = threading.Barrier(len(calls))
    results: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def act(action: str, body: dict[str, Any]) -> None:
        start.wait()
        r = api.post("insp1", f"/v1/alerts/{A1}/{action}", json=body)
        with lock:
            results.append((action, r))

    threads = [threading.Thread(target=act, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == len(calls)
    return results


def _lost(body: dict[str, Any]) -> bool:
    """A loser's reason: the alert changed under it (it read the winner's version too
    late), or its status no longer allows the action (it read it after the winner)."""
    detail = body["detail"]
    return "changed by someone else" in detail or "it is" in detail


def _check_final(api: Api, winners: list[tuple[str, Any]], version: int) -> None:
    ((action, won),) = winners
    alert = api.get("insp1", f"/v1/alerts/{A1}").json()
    assert alert["status"] == VERDICT[action] == won.json()["status"]
    assert alert["version"] == version + 1 == won.json()["version"]
    assert [h["action"] for h in alert["history"]][-1] == action
    assert sum(h["action"] == action for h in alert["history"]) == 1
    report = api.get("admin", "/v1/audit/verify").json()
    assert report["ok"] and report["entries"] == report["head_seq"], report


def test_with_expected_version_one_action_wins_and_the_rest_are_409(api: Api) -> None:
    ack = api.post("insp1", f"/v1/alerts/{A1}/acknowledge").json()
    version = ack["version"]
    calls = [
        ("confirm" if i % 2 else "dismiss", {"expected_version": version, "reason": f"w{i}"})
        for i in range(WORKERS)
    ]
    results = _race(api, calls)
    winners = [(a, r) for a, r in results if r.status_code == 200]
    losers = [r for _, r in results if r.status_code != 200]
    assert len(winners) == 1, [(a, r.status_code, r.text) for a, r in results]
    for r in losers:
        assert r.status_code == 409, r.text
        body = r.json()
        # the loser read the alert before the winner committed, or after
        assert _lost(body), body
        if body.get("field") == "expected_version":
            assert body["current_version"] == version + 1
    _check_final(api, winners, version)


def test_without_a_version_the_status_decides_and_losers_are_409(api: Api) -> None:
    """No ``expected_version``: whoever commits first moves the alert; the others find a
    status that no longer allows their action (acknowledged alerts cannot be acknowledged
    again, decided ones cannot be decided again), or the store's own version check
    catches the change under them."""
    calls = [("acknowledge", {}) for _ in range(WORKERS)]
    results = _race(api, calls)
    winners = [(a, r) for a, r in results if r.status_code == 200]
    assert len(winners) == 1, [(r.status_code, r.text) for _, r in results]
    for _, r in results:
        if r.status_code != 200:
            assert r.status_code == 409 and r.json()["detail"], r.text
    _check_final(api, winners, 1)
    version = winners[0][1].json()["version"]
    decide = [("confirm" if i % 2 else "dismiss", {"reason": f"w{i}"}) for i in range(WORKERS)]
    results = _race(api, decide)
    winners = [(a, r) for a, r in results if r.status_code == 200]
    assert len(winners) == 1, [(r.status_code, r.text) for _, r in results]
    for _, r in results:
        if r.status_code != 200:
            assert r.status_code == 409 and _lost(r.json()), r.text
    _check_final(api, winners, version)
