"""A busy or unreachable database answers 503 with a retry, never 500; other database
errors stay what they are (a bug, 500 with the request id)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from serving import handlers
from serving.metrics import Metrics
from serving.middleware import RequestContext


@pytest.mark.parametrize(
    ("message", "status"),
    [("database is locked", 503), ("could not connect to server", 503), ("no such table", 500)],
)
def test_database_errors_map_to_their_status(message: str, status: int) -> None:
    app = FastAPI()
    handlers.install(app)
    app.add_middleware(RequestContext, metrics=Metrics())

    @app.get("/boom")
    def boom() -> None:
        raise OperationalError("SELECT 1", {}, Exception(message))

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == status
    if status == 503:
        assert answer.headers["Retry-After"] == "1"
        assert "retry" in answer.json()["detail"]
    else:
        assert "request id" in answer.json()["detail"]
