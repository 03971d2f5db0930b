"""What the HTTP API tests share: an app over the test store, a key per user, a seeded
province (dossiers and alerts in two jurisdictions) and JSON-ready events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from giamsat.settings import Settings
from models.scoring import alert_id
from serving.app import create_app
from serving.db import Store
from serving.store import add_events, upsert_scores
from serving.users import User, create_api_key
from serving.workflow import upsert_alerts
from tests.serving.conftest import PEPPER, T0, alert_row, event

#: the alerts of the seeded province: a delay alert on D1 (J1, agency A1) and on D2
#: (J2, agency A2), and a waste alert on D3 (J1, agency A1, medium).
A1 = alert_id("delay", "dossier", "D1")
A2 = alert_id("delay", "dossier", "D2")
A3 = alert_id("waste", "dossier", "D3")


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    store: Store
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}

    def get(self, who: str, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), **kwargs)

    def post(
        self, who: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        return self.client.post(path, headers={**self.headers(who), **(headers or {})}, **kwargs)


def settings(**changes: Any) -> Settings:
    return Settings(_env_file=None, api_key_pepper=PEPPER.decode(), **changes)  # type: ignore[call-arg]


def wire(row: dict[str, Any]) -> dict[str, Any]:
    """An event as JSON carries it (times as ISO 8601 text)."""
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


def seed(store: Store) -> None:
    """Events of D1, D3 (J1) and D2 (J2); scores; three alerts."""
    with store.transaction() as session:
        add_events(
            session,
            [
                event(0, "D1"),
                event(1, "D1"),
                event(2, "D2", jurisdiction="J2", agency_id="A2"),
                event(3, "D3"),
            ],
            now=T0,
        )
        upsert_scores(
            session,
            [
                {"dossier_id": "D1", "risk_score": 0.9, "delay_risk": 0.9, "reasons": "late"},
                {"dossier_id": "D2", "risk_score": 0.8, "delay_risk": 0.8, "reasons": "late"},
                {"dossier_id": "D3", "risk_score": 0.4, "waste_score": 0.4, "reasons": "waste"},
            ],
            as_of=T0 + timedelta(days=1),
            model_version="1",
        )
        upsert_alerts(
            session,
            [
                alert_row("D1"),
                {**alert_row("D2", "J2", score=0.85), "agency_id": "A2"},
                alert_row("D3", score=0.5, kind="waste"),
            ],
            now=T0,
        )


@contextmanager
def api_over(store: Store, people: dict[str, User], **changes: Any) -> Iterator[Api]:
    """A running app over ``store`` (start-up checks done) and a key for each of ``people``."""
    keys = {}
    with store.transaction() as session:
        for name in people:
            keys[name] = create_api_key(session, name, PEPPER)[1]
    app = create_app(settings(**changes), store)
    with TestClient(app) as client:
        yield Api(client, app, store, keys)
