"""The service's models: loaded by MLflow alias at start-up, followed when the alias moves
(no restart), a broken version never replacing a working one, readiness and metrics
naming the version served, and the admin's audited reload.

One real MLflow tracking store (SQLite in a temporary folder) per module holds three
versions of a tiny bundle: 1 and 2 good (2 marked in its ``info``), 3 with a corrupted
``bundle.json``. Each test points an alias of its own at them, so the tests share the
store without seeing each other's moves. The service store is SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from giamsat.settings import Settings
from models import registry
from models.bundle import ModelBundle
from serving.audit import entries
from serving.db import Store
from serving.deps import ModelDep
from serving.middleware import JsonFormatter
from serving.models import LoadedModel, ModelHolder
from serving.users import User
from simulator import SimulationConfig
from tests.models.conftest import model_log_of, train_small_bundle
from tests.serving.api_helpers import Api, api_over
from tests.serving.api_helpers import settings as app_settings


@dataclass(frozen=True)
class Registry:
    """Where the module's MLflow store is, as settings changes."""

    changes: dict[str, Any]

    def settings(self, alias: str, **more: Any) -> Settings:
        return app_settings(**self.changes, model_alias=alias, **more)

    def point(self, alias: str, version: str) -> None:
        registry.set_alias(self.settings(alias), alias, version)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Versions 1 and 2 of a tiny bundle (2's ``info`` says so), and a broken version 3."""
    root = tmp_path_factory.mktemp("mlflow")
    changes = {
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_root": str(root / "artifacts"),
        "model_cache": root / "cache",
    }
    config = SimulationConfig(months=2, seed=5, dossiers_per_month=1500, communes_per_province=10)
    bundle = train_small_bundle(model_log_of(config), rounds=10)
    settings = app_settings(**changes)
    registry.log_training(settings, bundle, params={"build": "first"})
    registry.log_training(settings, _marked(bundle, "second"), params={"build": "second"})
    before = set((root / "artifacts").rglob("bundle.json"))
    registry.log_training(settings, _marked(bundle, "broken"), params={"build": "broken"})
    (broken,) = set((root / "artifacts").rglob("bundle.json")) - before
    meta = json.loads(broken.read_text())
    broken.write_text(json.dumps({**meta, "layout": 99}))  # as a corrupted upload would be
    return Registry(changes)


def _marked(bundle: ModelBundle, build: str) -> ModelBundle:
    return replace(bundle, info={**bundle.info, "build": build})


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {seconds} s: {what}")
        time.sleep(0.05)


def _metric(text: str, name: str, labels: str = "") -> float:
    line = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert line is not None, f"{name}{labels} not in /metrics"
    return float(line.group(1))


def _served(api: Api) -> str | None:
    version: str | None = api.client.get("/readyz").json()["model"]["version"]
    return version


@pytest.fixture
def follow(
    mlflow_store: Registry, store: Store, people: dict[str, User]
) -> Iterator[tuple[Api, str]]:
    """A running app whose alias (v1) is checked every 0.1 s."""
    alias = f"follow-{store.dialect}"
    mlflow_store.point(alias, "1")
    changes = {**mlflow_store.changes, "model_alias": alias, "model_reload_seconds": 0.1}
    with api_over(store, people, **changes) as api:
        yield api, alias


def test_the_service_follows_the_alias_and_keeps_a_working_model(
    follow: tuple[Api, str], mlflow_store: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    api, alias = follow
    ready = api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["detail"] is None and body["schema_revision"]
    model = body["model"]
    assert (model["name"], model["alias"], model["version"]) == ("giamsat", alias, "1")
    assert model["loaded_at"].endswith("+07:00") and model["problem"] is None
    first: LoadedModel = api.app.state.models.current()
    assert first.bundle.info.get("build") is None

    mlflow_store.point(alias, "2")  # what `giamsat promote` does
    _wait_for(lambda: _served(api) == "2", "version 2 served after the alias moved")
    second: LoadedModel = api.app.state.models.current()
    assert second.bundle.info["build"] == "second" and second.loaded_at > first.loaded_at
    assert first.version == "1" and first.bundle.info.get("build") is None  # not mutated
    text = api.client.get("/metrics").text
    assert f'giamsat_model_info{{name="giamsat",alias="{alias}",version="2"}} 1' in text
    assert 'version="1"' not in text
    assert _metric(text, "giamsat_model_reloads_total") == 2
    age = _metric(text, "giamsat_model_seconds_since_load", f'{{name="giamsat",alias="{alias}"}}')
    assert 0 <= age < 15

    with caplog.at_level(logging.ERROR, logger="giamsat.models"):
        mlflow_store.point(alias, "3")
        failures = 'giamsat_model_reload_failures_total{stage="load"}'

        def failed() -> bool:
            return f"{failures} 0" not in api.client.get("/metrics").text

        _wait_for(failed, "a failed load of version 3 counted")
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model"]["version"] == "2"
    problem = ready.json()["model"]["problem"]
    assert "version 3 failed to load" in problem and "layout 99" in problem
    assert "still serving 2" in problem
    assert api.app.state.models.current() is second
    text = api.client.get("/metrics").text
    assert _metric(text, "giamsat_model_reload_failures_total", '{stage="load"}') >= 1
    assert _metric(text, "giamsat_model_reloads_total") == 2
    record = next(r for r in caplog.records if r.getMessage() == "model reload failed")
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["stage"], line["version"], line["serving_version"]) == (
        "error",
        "load",
        "3",
        "2",
    )
    assert line["alias"] == alias and "layout 99" in line["error"]

    mlflow_store.point(alias, "2")  # back to the version served: the problem clears
    _wait_for(lambda: api.client.get("/readyz").json()["model"]["problem"] is None, "cleared")


def test_without_a_model_the_service_starts_and_says_why(
    store: Store, people: dict[str, User], tmp_path: Path
) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    with api_over(store, people, mlflow_tracking_uri=missing, model_reload_seconds=0) as api:
        ready = api.client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready" and body["schema_revision"]  # the store is fine
        assert body["model"]["version"] is None
        assert "alias 'champion'" in body["detail"] and "giamsat train" in body["detail"]
        assert not (tmp_path / "nowhere").exists()  # serving creates no tracking store

        @api.app.get("/probe")
        def probe(model: ModelDep) -> dict[str, str]:  # as a scoring route takes its model
            return {"version": model.version}

        scored = api.client.get("/probe")
        assert scored.status_code == 503 and "giamsat train" in scored.json()["detail"]
        text = api.client.get("/metrics").text
        assert 'giamsat_model_loaded{name="giamsat",alias="champion"} 0' in text
        assert "giamsat_model_info" not in text
        assert _metric(text, "giamsat_model_reload_failures_total", '{stage="resolve"}') == 0


def test_an_alias_nobody_set_is_not_ready_with_the_alias_named(
    mlflow_store: Registry, store: Store, people: dict[str, User]
) -> None:
    changes = {**mlflow_store.changes, "model_alias": "nightly", "model_reload_seconds": 0}
    with api_over(store, people, **changes) as api:
        ready = api.client.get("/readyz")
        assert ready.status_code == 503 and "alias 'nightly'" in ready.json()["detail"]
        assert ready.json()["model"]["version"] is None


def test_an_admin_reloads_now_and_the_audit_chain_records_it(
    mlflow_store: Registry,
    store: Store,
    people: dict[str, User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = f"manual-{store.dialect}"
    mlflow_store.point(alias, "1")
    changes = {**mlflow_store.changes, "model_alias": alias, "model_reload_seconds": 0}
    with api_over(store, people, **changes) as api:
        mlflow_store.point(alias, "2")
        time.sleep(0.2)
        assert _served(api) == "1"  # no timer: nothing moves by itself
        path = "/v1/admin/models/reload"
        assert api.client.post(path).status_code == 401
        denied = api.post("insp1", path)
        assert denied.status_code == 403 and "needs admin" in denied.json()["detail"]
        assert api.post("analyst", path).status_code == 403

        done = api.post("admin", path)
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "loaded" and done.json()["previous_version"] == "1"
        assert done.json()["model"]["version"] == "2" and _served(api) == "2"
        again = api.post("admin", path).json()
        assert again["outcome"] == "unchanged" and again["model"]["version"] == "2"

        mlflow_store.point(alias, "3")
        broken = api.post("admin", path)
        assert broken.status_code == 502 and "version 3 failed to load" in broken.json()["detail"]
        assert broken.json()["version"] == "2" and _served(api) == "2"

    with store.read() as session:
        log = [e for e in entries(session) if e.action == "model.reload"]
    assert [(e.actor, e.subject_id) for e in log] == [("admin", f"giamsat@{alias}")] * 3
    assert [e.details["outcome"] for e in log] == ["loaded", "unchanged", "failed"]
    assert [e.details["version"] for e in log] == ["2", "2", "2"]
    assert log[0].details["previous_version"] == "1"

    from giamsat.cli import app
    from giamsat.settings import get_settings

    monkeypatch.setenv("GIAMSAT_DATABASE_URL", store.engine.url.render_as_string(False))
    get_settings.cache_clear()
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "audit log intact" in verified.output


def test_a_request_in_flight_keeps_the_model_it_started_with(
    mlflow_store: Registry, store: Store, people: dict[str, User]
) -> None:
    alias = f"inflight-{store.dialect}"
    mlflow_store.point(alias, "1")
    changes = {**mlflow_store.changes, "model_alias": alias, "model_reload_seconds": 0}
    started, release = threading.Event(), threading.Event()
    with api_over(store, people, **changes) as api:

        @api.app.get("/probe")
        def probe(model: ModelDep) -> dict[str, str]:
            started.set()
            assert release.wait(10)
            return {"version": model.version, "build": str(model.bundle.info.get("build"))}

        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(api.client.get, "/probe")
            assert started.wait(10)
            mlflow_store.point(alias, "2")
            assert api.post("admin", "/v1/admin/models/reload").json()["outcome"] == "loaded"
            assert _served(api) == "2"
            release.set()
            assert answer.result(10).json() == {"version": "1", "build": "None"}
        assert api.client.get("/probe").json() == {"version": "2", "build": "second"}


def test_swap_callbacks_see_a_model_before_it_is_served_and_can_refuse_it(
    mlflow_store: Registry,
) -> None:
    alias = "callbacks"
    mlflow_store.point(alias, "1")
    holder = ModelHolder(mlflow_store.settings(alias))
    assert holder.reload().outcome == "loaded"
    seen: list[tuple[str, str | None]] = []

    def build(model: LoadedModel) -> None:
        served = holder.current()
        seen.append((model.version, None if served is None else served.version))
        model.state["features"] = model.bundle.features()

    holder.on_swap(build)  # called at once with the model served
    assert seen == [("1", "1")]
    mlflow_store.point(alias, "2")
    assert holder.reload().outcome == "loaded"
    assert seen[-1] == ("2", "1")  # before the swap: the old model still served
    current = holder.current()
    assert current is not None and current.state["features"] == current.bundle.features()

    def refuse(model: LoadedModel) -> None:
        if model.version == "1":
            raise ValueError("cannot score with version 1")

    holder.on_swap(refuse)
    mlflow_store.point(alias, "1")
    outcome = holder.reload()
    assert outcome.outcome == "failed" and outcome.model is current
    assert outcome.detail is not None and "cannot score with version 1" in outcome.detail
    assert holder.metrics.model_reload_failures["callback"] == 1
