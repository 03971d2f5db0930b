"""The public transparency endpoints (issue 8 item 4) on the hand-made log of
:mod:`tests.serving.dashboard_log`: a citizen's lookup by code and receipt check value
(and nothing without the right one), agencies' on-time figures, no personal data, the
rate limit's 429 with Retry-After, and the receipt route for processing systems."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from giamsat.settings import DEV_RECEIPT_SECRET
from serving.db import Store
from serving.transparency import RateLimiter, check_value, matches
from serving.users import User
from tests.serving import dashboard_log
from tests.serving.api_helpers import Api, api_over

SECRET = "receipt-secret-for-tests-0123"


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    dashboard_log.load(store)
    with api_over(store, people, receipt_secret=SECRET, public_rate_burst=1000) as client:
        yield client


def _check(dossier: str) -> str:
    return check_value(SECRET.encode(), dossier)


def test_a_citizen_sees_their_dossier_with_the_check_value(api: Api) -> None:
    open_one = api.client.get("/v1/public/dossiers/D4", params={"check": _check("D4")})
    assert open_one.status_code == 200, open_one.text
    body = open_one.json()
    assert body == {
        "dossier_id": "D4",
        "procedure_code": "P1",
        "agency_id": "A2",
        "stage": "awaiting_documents",
        "outcome": None,
        "received_on": "2025-03-04",
        "due_on": "2025-03-07",
        # scored Wed 12 March 17:00 with 2 working days left
        "expected_on": "2025-03-14",
        "closed_on": None,
        "as_of": "2025-03-12T17:00:00+07:00",
    }
    typed = _check("D2").lower()
    closed = api.client.get("/v1/public/dossiers/D2", params={"check": f"{typed[:5]}-{typed[5:]}"})
    assert closed.status_code == 200
    assert closed.json() | {"as_of": None} == {
        "dossier_id": "D2",
        "procedure_code": "P1",
        "agency_id": "A1",
        "stage": "closed",
        "outcome": "returned",
        "received_on": "2025-03-03",
        "due_on": "2025-03-06",
        "expected_on": None,
        "closed_on": "2025-03-11",
        "as_of": None,
    }


def test_without_the_right_check_value_nothing_is_revealed(api: Api) -> None:
    wrong = api.client.get("/v1/public/dossiers/D4", params={"check": _check("D3")})
    unknown = api.client.get("/v1/public/dossiers/D9", params={"check": _check("D9")})
    guessed = api.client.get("/v1/public/dossiers/D9", params={"check": "AAAAAAAAAA"})
    assert wrong.status_code == unknown.status_code == guessed.status_code == 404
    assert wrong.json() == unknown.json() == guessed.json()
    assert "check value" in wrong.json()["detail"]
    missing = api.client.get("/v1/public/dossiers/D4")
    assert missing.status_code == 422 and missing.json()["field"] == "check"
    other_key = check_value(DEV_RECEIPT_SECRET.encode(), "D4")
    assert api.client.get("/v1/public/dossiers/D4", params={"check": other_key}).status_code == 404


def test_check_values_are_hmacs_of_the_code() -> None:
    key = b"k" * 20
    value = check_value(key, "HCM-2025-000123")
    assert len(value) == 10 and value.isalnum() and value == value.upper()
    assert check_value(key, "HCM-2025-000124") != value
    assert check_value(b"x" * 20, "HCM-2025-000123") != value
    assert matches(key, "HCM-2025-000123", f" {value[:5].lower()}-{value[5:]} ")
    assert not matches(key, "HCM-2025-000123", value[:9])
    assert not matches(key, "HCM-2025-000123", "ÄÖÜ")


def test_agencies_on_time_figures_are_public_aggregates(api: Api) -> None:
    march = {"since": "2025-03-01", "until": "2025-03-31"}
    listed = api.client.get("/v1/public/agencies", params=march)
    assert listed.status_code == 200
    items = {a["agency_id"]: a for a in listed.json()["items"]}
    assert set(items) == {"A1", "A2"}
    a1 = items["A1"]
    assert (a1["received"], a1["closed"], a1["late_honest"], a1["late_reported"]) == (4, 4, 2, 1)
    assert a1["on_time_rate_reported"] == pytest.approx(0.75)
    assert a1["on_time_rate_honest"] == pytest.approx(0.5)
    assert a1["online_rate"] == pytest.approx(0.5)
    assert set(a1) == {
        "agency_id",
        "received",
        "closed",
        "on_time_rate_reported",
        "on_time_rate_honest",
        "late_honest",
        "late_reported",
        "median_duration_ratio",
        "online_rate",
    }  # fmt: skip  (no officers, no alerts, no people)
    one = api.client.get("/v1/public/agencies/A2", params={"since": "2025-03-01"})
    assert one.status_code == 200 and one.json()["received"] == 1
    none = api.client.get("/v1/public/agencies/A9", params={"since": "2025-03-01"})
    assert none.status_code == 404 and "A9" in none.json()["detail"]
    reversed_ = {"since": "2025-04-01", "until": "2025-03-01"}
    bad = api.client.get("/v1/public/agencies", params=reversed_)
    assert bad.status_code == 422 and bad.json()["field"] == "since"


def test_public_routes_are_rate_limited_per_client(store: Store, people: dict[str, User]) -> None:
    with api_over(store, people, public_rate_per_minute=6, public_rate_burst=3) as api:
        answers = [api.client.get("/v1/public/agencies") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert refused.headers["Retry-After"] == "10"  # a token every 10 s
        assert "too many requests" in refused.json()["detail"]
        # a lookup spends from the same bucket, whatever its answer would be
        assert (
            api.client.get("/v1/public/dossiers/D1", params={"check": "X" * 10}).status_code == 429
        )
        # another address has its own bucket (behind a trusted proxy)
    with api_over(store, people, public_rate_burst=1, public_trust_forwarded=True) as api:
        me = {"X-Forwarded-For": "203.0.113.7"}
        assert api.client.get("/v1/public/agencies", headers=me).status_code == 200
        assert api.client.get("/v1/public/agencies", headers=me).status_code == 429
        other = {"X-Forwarded-For": "198.51.100.2, 10.0.0.1"}
        assert api.client.get("/v1/public/agencies", headers=other).status_code == 200


def test_the_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(60, 2, clock=lambda: now[0], max_clients=2)
    assert limiter.take("a") is None and limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.take("a") is None
    assert RateLimiter.retry_after(0.2) == "1"
    limiter.take("b")
    limiter.take("c")  # "a" is forgotten: at most max_clients remembered
    assert limiter.take("a") is None


def test_processing_systems_get_the_check_value_to_print(api: Api) -> None:
    response = api.get("ingest", "/v1/receipts/HCM-2025-000123")
    assert response.status_code == 200
    body = response.json()
    assert body["check"] == _check("HCM-2025-000123")
    assert body["printed"] == f"{body['check'][:5]}-{body['check'][5:]}"
    assert api.client.get("/v1/receipts/D1").status_code == 401
    assert api.get("dash", "/v1/receipts/D1").status_code == 403
    assert api.get("insp1", "/v1/receipts/D1").status_code == 403


def test_production_refuses_the_placeholder_receipt_secret(
    store: Store, people: dict[str, User]
) -> None:
    changes = {
        "environment": "production",
        "pseudonym_key": "a-real-pseudonym-key-0123456789",
    }
    with api_over(store, people, **changes) as api:
        lookup = api.client.get("/v1/public/dossiers/D1", params={"check": "A" * 10})
        assert lookup.status_code == 503 and "GIAMSAT_RECEIPT_SECRET" in lookup.json()["detail"]
        assert api.get("ingest", "/v1/receipts/D1").status_code == 503
