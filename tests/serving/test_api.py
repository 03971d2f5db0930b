"""The HTTP API: keys on every route, roles, jurisdiction isolation on every route, the
dossier and alert lists, health, readiness, metrics, request ids, OpenAPI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.db import Store
from serving.middleware import JsonFormatter
from serving.readiness import SchemaNotReadyError
from serving.users import User
from tests.serving.api_helpers import A1, A2, A3, Api, api_over, seed, settings


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    seed(store)
    with api_over(store, people) as client:
        yield client


def _v1_calls(api: Api) -> list[tuple[str, str]]:
    calls = []
    # the app's routes, included routers' flattened (FastAPI keeps them nested)
    for route in iter_route_contexts(api.app.routes):
        # /v1/public: the citizens' routes, open by design (tests/serving/test_public.py)
        if route.path.startswith("/v1") and not route.path.startswith("/v1/public/"):
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            calls += [(method, path) for method in sorted(route.methods or ())]
    return calls


def test_every_v1_route_answers_401_without_a_valid_key(api: Api) -> None:
    calls = _v1_calls(api)
    assert len(calls) >= 7
    bad = {"Authorization": "Bearer gs_0123456789abcdef_" + "A" * 43}
    for method, path in calls:
        for headers in ({}, bad, {"X-API-Key": "nonsense"}, {"Authorization": "Basic abc"}):
            r = api.client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["detail"] and "field" in r.json()
            assert r.headers["www-authenticate"] == "Bearer"


def test_the_key_is_taken_as_a_bearer_token_too(api: Api) -> None:
    r = api.client.get("/v1/alerts", headers={"Authorization": f"Bearer {api.keys['admin']}"})
    assert r.status_code == 200 and r.json()["total"] == 3


def test_roles_decide_which_routes_a_user_may_call(api: Api) -> None:
    forbidden = [
        ("ingest", "GET", "/v1/alerts"),
        ("ingest", "GET", "/v1/dossiers/D1"),
        ("ingest", "GET", "/v1/dossiers"),
        ("insp1", "POST", "/v1/events"),
        ("analyst", "POST", "/v1/events"),
        ("dash", "GET", "/v1/dossiers/D1"),
        ("analyst", "POST", f"/v1/alerts/{A1}/acknowledge"),
        ("dash", "POST", f"/v1/alerts/{A1}/acknowledge"),
        ("insp1", "GET", "/v1/audit/verify"),
        ("analyst", "GET", "/v1/audit/verify"),
    ]
    for who, method, path in forbidden:
        r = api.client.request(method, path, headers=api.headers(who), json=[])
        assert r.status_code == 403, (who, method, path, r.text)
        assert "may not" in r.json()["detail"]
    allowed = [
        ("analyst", "/v1/dossiers/D2"),
        ("dash", "/v1/dossiers"),
        ("dash", f"/v1/alerts/{A2}"),
        ("admin", "/v1/audit/verify"),
    ]
    for who, path in allowed:
        assert api.get(who, path).status_code == 200, (who, path)


def test_an_inspector_sees_nothing_outside_their_jurisdiction(api: Api) -> None:
    # lists: only J1, even when asking for J2
    assert [d["dossier_id"] for d in api.get("insp1", "/v1/dossiers").json()["items"]] == [
        "D1",
        "D3",
    ]
    assert api.get("insp1", "/v1/dossiers", params={"jurisdiction": "J2"}).json()["total"] == 0
    inbox = api.get("insp1", "/v1/alerts").json()
    assert {a["alert_id"] for a in inbox["items"]} == {A1, A3} and inbox["total"] == 2
    assert api.get("insp1", "/v1/alerts", params={"jurisdiction": "J2"}).json()["total"] == 0
    # one resource: outside answers as absent would, word for word but for the id
    for path, absent in (
        (f"/v1/alerts/{A2}", "/v1/alerts/nope"),
        ("/v1/dossiers/D2", "/v1/dossiers/nope"),
    ):
        outside, missing = api.get("insp1", path), api.get("insp1", absent)
        assert outside.status_code == missing.status_code == 404
        assert outside.json()["detail"].replace(path.rsplit("/", 1)[1], "?") == missing.json()[
            "detail"
        ].replace("nope", "?")
    # actions: 404 too, and the alert is unchanged
    for action in ("acknowledge", "confirm", "escalate"):
        assert api.post("insp1", f"/v1/alerts/{A2}/{action}").status_code == 404
    r = api.post("insp1", f"/v1/alerts/{A2}/dismiss", json={"reason": "not mine"})
    assert r.status_code == 404
    r = api.post("insp1", f"/v1/alerts/{A2}/reassign", json={"assignee": "insp1"})
    assert r.status_code == 404
    after = api.get("insp2", f"/v1/alerts/{A2}").json()
    assert after["status"] == "open" and after["version"] == 1 and len(after["history"]) == 1
    # the other inspector sees their own
    assert api.get("insp2", "/v1/dossiers/D2").status_code == 200
    assert api.get("insp2", "/v1/dossiers/D1").status_code == 404


def test_a_dossier_comes_with_its_events_scores_and_reasons(api: Api) -> None:
    d1 = api.get("insp1", "/v1/dossiers/D1").json()
    assert [e["event_id"] for e in d1["events"]] == ["E0", "E1"]
    assert d1["risk_score"] == 0.9 and d1["reasons"] == "late" and d1["model_version"] == "1"
    assert d1["jurisdiction"] == "J1" and d1["events"][0]["timestamp"].startswith("2025-03-03")
    page = api.get("analyst", "/v1/dossiers", params={"min_risk": 0.5, "limit": 1}).json()
    assert page["total"] == 2 and [d["dossier_id"] for d in page["items"]] == ["D1"]
    page = api.get("analyst", "/v1/dossiers", params={"min_risk": 0.5, "offset": 1}).json()
    assert [d["dossier_id"] for d in page["items"]] == ["D2"] and page["offset"] == 1
    bad = api.get("analyst", "/v1/dossiers", params={"min_risk": 2})
    assert bad.status_code == 422 and bad.json()["field"] == "min_risk"


def test_the_inbox_filters_paginates_and_counts(api: Api) -> None:
    def ids(**params: object) -> tuple[list[str], int]:
        body = api.get("admin", "/v1/alerts", params=params).json()
        return [a["alert_id"] for a in body["items"]], body["total"]

    assert ids() == ([A1, A2, A3], 3)  # highest score first
    assert ids(kind="waste") == ([A3], 1)
    assert ids(severity="high") == ([A1, A2], 2)
    assert ids(agency="A2") == ([A2], 1)
    assert ids(status="open", jurisdiction="J1") == ([A1, A3], 2)
    assert ids(status=["acknowledged", "confirmed"]) == ([], 0)
    assert ids(limit=1, offset=1) == ([A2], 3)
    assert ids(since="2025-03-03T01:00:00Z") == ([A1, A2, A3], 3)
    assert ids(until="2025-03-03T08:00:00+07:00") == ([], 0)  # opened at 01:00 UTC, not before
    for params, field in (
        ({"since": "2025-03-03T01:00:00"}, "since"),
        ({"status": "lost"}, "status.0"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
    ):
        r = api.get("admin", "/v1/alerts", params=params)
        assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)


def test_alert_evidence_has_reasons_dossiers_and_history(api: Api) -> None:
    a = api.get("insp1", f"/v1/alerts/{A1}").json()
    assert a["reasons"] == "late risk" and a["dossiers"] == [] and a["pattern"] is None
    assert [h["action"] for h in a["history"]] == ["raise"] and a["version"] == 1


def test_health_readiness_and_metrics_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    ready = api.client.get("/readyz")  # the store is ready; no model is registered here
    assert ready.status_code == 503 and ready.json()["schema_revision"] is not None
    assert "giamsat train" in ready.json()["detail"]
    api.get("admin", "/v1/alerts")
    api.client.get("/v1/alerts")
    text = api.client.get("/metrics").text
    assert 'giamsat_http_requests_total{method="GET",route="/v1/alerts",status="200"} 1' in text
    assert 'giamsat_http_requests_total{method="GET",route="/v1/alerts",status="401"} 1' in text
    assert (
        'giamsat_http_request_duration_seconds_bucket{method="GET",route="/v1/alerts",le="+Inf"} 2'
        in text
    )
    assert 'giamsat_events_ingested_total{outcome="new"} 0' in text
    assert 'giamsat_alerts{kind="delay",status="open"} 2' in text
    assert 'giamsat_alerts{kind="waste",status="open"} 1' in text
    api.get("admin", "/v1/alerts/" + "z" * 16)  # ids stay out of the labels
    assert 'route="/v1/alerts/{alert_id}",status="404"' in api.client.get("/metrics").text


def test_the_app_refuses_to_start_on_an_unmigrated_database(store_url: str) -> None:
    store = Store.from_url(store_url)
    app = create_app(settings(), store)
    try:
        with pytest.raises(SchemaNotReadyError, match="giamsat db upgrade"), TestClient(app):
            pass
        client = TestClient(app)  # not started: readiness says why
        r = client.get("/readyz")
        assert r.status_code == 503 and "revision none" in r.json()["detail"]
    finally:
        store.dispose()


def test_request_ids_are_echoed_or_made_and_logged_as_json(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="giamsat.http"):
        given = api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = api.client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
        api.get("insp1", "/v1/alerts")
    assert given.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    records = [r for r in caplog.records if r.name == "giamsat.http"]
    assert [r.__dict__["request_id"] for r in records[:2]] == [
        "abc-123",
        made.headers["x-request-id"],
    ]
    assert records[2].__dict__["user"] == "insp1" and records[2].__dict__["status"] == 200
    line = json.loads(JsonFormatter().format(records[2]))
    assert line["route"] == "/v1/alerts" and line["message"] == "request"


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    r = api.client.get("/v2/nothing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found", "field": None}
    r = api.client.delete("/healthz")
    assert r.status_code == 405 and r.json()["detail"]


def test_openapi_describes_the_routes_with_examples(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert {
        "/v1/events",
        "/v1/alerts",
        "/v1/alerts/{alert_id}/{action}",
        "/v1/dossiers/{dossier_id}",
    } <= set(spec["paths"])
    events = spec["paths"]["/v1/events"]["post"]
    assert "Atomic per batch" in events["description"]
    body = events["requestBody"]["content"]["application/json"]
    assert body["examples"]["one event"]["value"][0]["event_id"]
    schemas = spec["components"]["schemas"]
    for name in ("AlertPublic", "AlertUpdate", "IngestOut", "ErrorOut", "DossierSummary"):
        assert schemas[name].get("examples"), name
    assert {"401", "403", "404", "409"} <= set(
        spec["paths"]["/v1/alerts/{alert_id}/{action}"]["post"]["responses"]
    )


def test_giamsat_serve_refuses_an_unmigrated_database_and_runs_a_migrated_one(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from giamsat.cli import app as cli
    from serving.migrations import upgrade

    runner = CliRunner()
    early = runner.invoke(cli, ["serve", "--url", store_url])
    assert early.exit_code == 2 and "giamsat db upgrade" in early.output
    upgrade(store_url)
    ran: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    done = runner.invoke(cli, ["serve", "--url", store_url, "--port", "8123"])
    assert done.exit_code == 0, done.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8123
    assert "/v1/events" in ran["app"].openapi()["paths"]  # type: ignore[attr-defined]
