"""The dashboard API (issue 8 items 3 and 5) on the hand-made log of
:mod:`tests.serving.dashboard_log`, whose figures are worked out by hand: scorecards per
agency, procedure and officer (on time as reported and on the honest clock, the service
index), time series, the transfer graph, the risk list and its CSV; jurisdiction scoping,
roles, and 422s with reasons. Then that scoring writes the facts (batch and live)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from features import schema as s
from giamsat.demo_service import records
from serving.db import Store
from serving.facts import facts_of
from serving.rescoring import rescore_all, stored_events
from serving.store import add_events
from serving.tables import dossier_facts, dossier_transfers
from serving.users import User
from tests.serving import dashboard_log
from tests.serving.api_helpers import Api, api_over
from tests.serving.scoring import Registered, ScoringCase

MARCH = {"since": "2025-03-01", "until": "2025-03-31"}


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    dashboard_log.load(store)
    with api_over(store, people) as client:
        yield client


def _cards(api: Api, who: str, **params: str) -> dict[str | None, dict]:
    response = api.get(who, "/v1/dashboard/scorecards", params={**MARCH, **params})
    assert response.status_code == 200, response.text
    return {c["key"]: c for c in response.json()["items"]}


def test_agency_scorecards_give_the_figures_of_the_log(api: Api) -> None:
    cards = _cards(api, "dash")
    assert set(cards) == {"A1", "A2"}
    a1 = cards["A1"]
    assert (a1["received"], a1["closed"], a1["deadline_known"]) == (4, 4, 4)
    assert (a1["late_honest"], a1["late_reported"]) == (2, 1)  # D2, D3 / D3 only
    assert a1["on_time_rate_reported"] == pytest.approx(0.75)
    assert a1["on_time_rate_honest"] == pytest.approx(0.5)
    assert a1["on_time_gap"] == pytest.approx(0.25)
    # ratios 0.5 (D1), 4/3 (D2), 2.5 (D3), 0.3 (D5)
    assert a1["median_duration_ratio"] == pytest.approx((0.5 + 4 / 3) / 2)
    assert a1["supplement_rate"] == pytest.approx(0.25)
    assert a1["supplement_requests"] == 1
    assert (a1["waste_days"], a1["waste_scored"]) == (pytest.approx(3.5), 3)
    assert (a1["rating_mean"], a1["ratings"]) == (pytest.approx(4.0), 2)
    assert a1["alerts"] == {"integrity": {"open": 2}, "waste": {"open": 1}}
    assert a1["service_index"] == {
        "on_time_rate": pytest.approx(0.75),
        "on_time_rate_honest": pytest.approx(0.5),
        "online_rate": pytest.approx(0.5),  # D1, D3 of D1, D2, D3, D5
        "online_payment_rate": pytest.approx(0.5),  # D1 of D1, D2
        "digitised_rate": pytest.approx(0.5),  # D3 of D1, D3 (the others' logs say nothing)
        "satisfaction_rate": pytest.approx(0.5),  # the 5 of 5 and 3
    }
    a2 = cards["A2"]  # D4, open
    assert (a2["received"], a2["closed"], a2["deadline_known"]) == (1, 0, 0)
    assert a2["on_time_rate_reported"] is None and a2["median_duration_ratio"] is None
    assert a2["service_index"]["online_rate"] == 1.0
    assert a2["service_index"]["digitised_rate"] is None
    assert a2["alerts"] == {"delay": {"open": 1}}


def test_a_period_counts_what_was_received_and_closed_in_it(api: Api) -> None:
    first_week = _cards(api, "dash", since="2025-03-03", until="2025-03-07")["A1"]
    assert (first_week["received"], first_week["closed"]) == (4, 1)  # D1 closed Wed 5
    assert first_week["on_time_rate_honest"] == 1.0
    later = _cards(api, "dash", since="2025-03-10", until="2025-03-14")["A1"]
    assert (later["received"], later["closed"], later["late_honest"]) == (0, 3, 2)
    assert _cards(api, "dash", since="2025-04-01", until="2025-04-30") == {}


def test_scorecards_per_procedure_officer_and_jurisdiction(api: Api) -> None:
    procedures = _cards(api, "dash", by="procedure")
    assert (procedures["P1"]["received"], procedures["P1"]["closed"]) == (3, 2)
    assert procedures["P1"]["late_honest"] == 1 and procedures["P1"]["late_reported"] == 0
    assert procedures["P2"]["median_duration_ratio"] == pytest.approx((2.5 + 0.3) / 2)
    assert procedures["P1"]["alerts"] == {"waste": {"open": 1}, "delay": {"open": 1}}
    officers = _cards(api, "dash", by="officer")
    assert {k: c["received"] for k, c in officers.items()} == {"O1": 2, "O2": 1, "O3": 1, "O4": 1}
    # O1's dossier alert (D3) and the alert about O1 itself
    assert officers["O1"]["alerts"] == {"integrity": {"open": 2}}
    narrowed = _cards(api, "dash", by="officer", procedure="P2")
    assert set(narrowed) == {"O1", "O3"}
    places = _cards(api, "dash", by="jurisdiction")
    assert (places["J1"]["received"], places["J2"]["received"]) == (4, 1)


def test_time_series_by_day_week_and_month(api: Api) -> None:
    def points(interval: str) -> list[dict]:
        response = api.get("dash", "/v1/dashboard/series", params={**MARCH, "interval": interval})
        assert response.status_code == 200, response.text
        return response.json()["points"]

    days = {p["start"]: (p["received"], p["closed"]) for p in points("day")}
    assert days == {
        "2025-03-03": (3, 0),
        "2025-03-04": (1, 0),
        "2025-03-05": (1, 1),
        "2025-03-10": (0, 2),
        "2025-03-11": (0, 1),
    }
    weeks = {p["start"]: p for p in points("week")}
    assert list(weeks) == ["2025-03-03", "2025-03-10"]
    assert (weeks["2025-03-10"]["closed"], weeks["2025-03-10"]["late_honest"]) == (3, 2)
    assert weeks["2025-03-10"]["on_time_rate_reported"] == pytest.approx(2 / 3)
    (month,) = points("month")
    assert (month["start"], month["received"], month["closed"]) == ("2025-03-01", 5, 4)
    assert month["service_index"]["online_rate"] == pytest.approx(3 / 5)


def test_the_transfer_graph_has_volumes_and_holding_times(api: Api) -> None:
    response = api.get("dash", "/v1/dashboard/transfers", params=MARCH)
    assert response.status_code == 200, response.text
    graph = response.json()
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert set(edges) == {("A1", "A3"), ("A3", "A1")}
    assert edges[("A1", "A3")]["transfers"] == 1
    assert edges[("A1", "A3")]["holding_days_mean"] == pytest.approx(2.0)
    assert edges[("A3", "A1")]["holding_days_mean"] == pytest.approx(0.0)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert (nodes["A3"]["received"], nodes["A3"]["sent"]) == (1, 1)
    assert nodes["A3"]["holding_days_mean"] == pytest.approx(2.0)
    thin = api.get("dash", "/v1/dashboard/transfers", params={**MARCH, "min_transfers": 2})
    assert thin.json()["edges"] == []


def test_the_risk_list_filters_and_pages(api: Api) -> None:
    def ids(**params: object) -> list[str]:
        response = api.get("dash", "/v1/dashboard/dossiers", params=params)
        assert response.status_code == 200, response.text
        return [d["dossier_id"] for d in response.json()["items"]]

    assert ids() == ["D3", "D4", "D2", "D5", "D1"]
    assert ids(score="waste") == ["D2", "D3", "D4", "D1", "D5"]  # D5 unscored: last
    assert ids(min_score=0.4, max_score=0.7) == ["D4", "D2", "D5"]
    assert ids(agency="A1", procedure="P2") == ["D3", "D5"]
    assert ids(officer="O1") == ["D3", "D1"]
    assert ids(since="2025-03-04", until="2025-03-05") == ["D4", "D5"]
    assert ids(status="open") == ["D4"]
    page = api.get("dash", "/v1/dashboard/dossiers", params={"limit": 2, "offset": 2}).json()
    assert [d["dossier_id"] for d in page["items"]] == ["D2", "D5"]
    assert (page["total"], page["total_exact"]) == (5, True)
    d2 = next(
        d for d in api.get("dash", "/v1/dashboard/dossiers").json()["items"]
        if d["dossier_id"] == "D2"
    )  # fmt: skip
    assert (d2["late_honest"], d2["late_reported"], d2["waste_days"]) == (True, False, 2.0)


def test_the_csv_export_has_every_matching_dossier(api: Api) -> None:
    response = api.get("dash", "/v1/dashboard/dossiers.csv", params={"agency": "A1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["dossier_id"] for r in rows] == ["D1", "D2", "D3", "D5"]
    d2 = rows[1]
    assert (d2["late_honest"], d2["late_reported"], d2["officer_id"]) == ("1", "0", "O2")
    assert float(d2["duration_ratio"]) == pytest.approx(4 / 3)
    assert d2["received_at"] == "2025-03-03T01:00:00+00:00"
    assert rows[3]["waste_days"] == ""  # unknown


def test_an_inspector_sees_only_their_jurisdictions(api: Api) -> None:
    assert set(_cards(api, "insp2")) == {"A2"}
    assert _cards(api, "insp2", jurisdiction="J1") == {}
    assert set(_cards(api, "insp1")) == {"A1"}
    assert _cards(api, "insp1")["A1"]["alerts"] == {"integrity": {"open": 2}, "waste": {"open": 1}}
    assert set(_cards(api, "insp1", by="officer")) == {"O1", "O2", "O3"}
    listed = api.get("insp2", "/v1/dashboard/dossiers").json()
    assert [d["dossier_id"] for d in listed["items"]] == ["D4"] and listed["total"] == 1
    exported = api.get("insp2", "/v1/dashboard/dossiers.csv").text
    assert [r["dossier_id"] for r in csv.DictReader(io.StringIO(exported))] == ["D4"]
    month = api.get("insp2", "/v1/dashboard/series", params={**MARCH, "interval": "month"})
    assert [(p["received"], p["closed"]) for p in month.json()["points"]] == [(1, 0)]
    graph = api.get("insp2", "/v1/dashboard/transfers", params=MARCH).json()
    assert graph == {**graph, "nodes": [], "edges": []}


ROUTES = (
    "/v1/dashboard/dossiers",
    "/v1/dashboard/dossiers.csv",
    "/v1/dashboard/scorecards",
    "/v1/dashboard/series",
    "/v1/dashboard/transfers",
)


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_a_key_and_a_reading_role(api: Api, path: str) -> None:
    anonymous = api.client.get(path)
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["detail"]
    refused = api.get("ingest", path)
    assert refused.status_code == 403 and "role ingest" in refused.json()["detail"]
    for who in ("dash", "analyst", "admin", "insp1"):
        assert api.get(who, path).status_code == 200, who


@pytest.mark.parametrize(
    ("path", "params", "field", "says"),
    [
        ("/v1/dashboard/scorecards", {"since": "2025-03-10", "until": "2025-03-01"}, "since",
         "after until"),
        ("/v1/dashboard/scorecards", {"since": "2015-01-01", "until": "2025-03-01"}, "until",
         "at most"),
        ("/v1/dashboard/scorecards", {"since": "2025-02-30"}, "since", "date"),
        ("/v1/dashboard/scorecards", {"by": "district"}, "by", "agency"),
        ("/v1/dashboard/series", {"interval": "year"}, "interval", "day"),
        ("/v1/dashboard/dossiers", {"min_score": 0.8, "max_score": 0.2}, "min_score",
         "max_score"),
        ("/v1/dashboard/dossiers", {"min_score": 2}, "min_score", "less than or equal"),
        ("/v1/dashboard/dossiers.csv", {"score": "fame"}, "score", "risk"),
        ("/v1/dashboard/transfers", {"min_transfers": 0}, "min_transfers", "greater"),
        ("/v1/dashboard/dossiers", {"agency": "A\x00"}, "agency", "NUL"),
    ],
)  # fmt: skip
def test_bad_queries_answer_422_naming_the_field(
    api: Api, path: str, params: dict[str, object], field: str, says: str
) -> None:
    response = api.get("dash", path, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and says in body["detail"]


# --- the facts are written by the scoring ------------------------------------------------


def _facts(store: Store) -> pd.DataFrame:
    with store.read() as session:
        rows = session.execute(sa.select(dossier_facts)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows]).set_index("dossier_id").sort_index()


def test_scoring_writes_the_facts_batch_and_live(
    store: Store,
    people: dict[str, User],
    scoring_case: ScoringCase,
    scoring_registry: Registered,
) -> None:
    case = scoring_case
    early = records(case.events[case.events[s.TIMESTAMP] <= case.cut])
    with store.transaction() as session:
        add_events(session, early)
    with store.transaction() as session:
        done = rescore_all(session, case.bundle, case.ref, model_version="1")
        known = stored_events(session)
    facts = _facts(store)
    assert len(facts) == done.dossiers == known[s.DOSSIER_ID].nunique()
    expected = facts_of(known, case.ref, pd.Timestamp(done.as_of)).dossiers.set_index("dossier_id")
    for column in ("late_honest", "late_reported", "closed_day", "officer_id", "online"):
        assert facts[column].astype(object).where(facts[column].notna(), None).tolist() == (
            expected[column].astype(object).where(expected[column].notna(), None).tolist()
        ), column
    assert facts["waste_days"].notna().all()  # from the scores
    with store.read() as session:
        moves = session.execute(sa.select(sa.func.count()).select_from(dossier_transfers))
        assert moves.scalar_one() > 0
    later = case.events[(case.events[s.TIMESTAMP] > case.cut)
                        & (case.events[s.TIMESTAMP] <= case.later)]  # fmt: skip
    touched = set(later[s.DOSSIER_ID].astype(str))
    with api_over(store, people, **scoring_registry.changes, scoring_clock="events",
                  rescore_on_ingest=False, model_reload_seconds=0) as api:  # fmt: skip
        rows = records(later)
        for start in range(0, len(rows), 500):
            body = [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
                    for r in rows[start : start + 500]]  # fmt: skip
            assert api.post("ingest", "/v1/events", json=body).status_code == 200
        api.app.state.live.drain()
    after = _facts(store)
    assert touched <= set(after.index)
    moved = after.loc[sorted(touched), "as_of"]
    assert (moved > facts["as_of"].max()).all()  # re-written by the live re-scoring
    newly_closed = after.loc[sorted(touched)]["closed_day"].notna().sum()
    assert newly_closed > facts.reindex(sorted(touched))["closed_day"].notna().sum()
