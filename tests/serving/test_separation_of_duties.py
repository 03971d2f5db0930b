"""Separation of duties: a user of an agency may not confirm or dismiss an alert about
it (its agency, or the agency or an end of the agency pair it is about), through the
store, HTTP and the CLI; other users, and other actions, are not affected."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from giamsat.cli import app
from models.scoring import alert_id
from serving.alerts import Status, get_alert
from serving.db import Store
from serving.errors import InvalidUserError, PermissionDeniedError
from serving.users import SYSTEM, User, create_user, get_user
from serving.workflow import interested_agency, transition, upsert_alerts
from tests.serving.api_helpers import A1, A3, api_over, seed
from tests.serving.conftest import T0, alert_row


def _entity(subject_type: str, subject_id: str, agency: str | None) -> dict[str, object]:
    return {
        **alert_row(subject_id),
        "kind": "integrity",
        "subject_type": subject_type,
        "pattern": "agency_holds",
        "agency_id": agency,
        "dossiers": "D1;D2",
    }


@pytest.fixture
def staff(store: Store, people: dict[str, User]) -> dict[str, User]:
    with store.transaction() as session:
        return {
            **people,
            "a1": create_user(session, "a1", "inspector", ["J1"], agency_id="A1"),
            "b": create_user(session, "b", "inspector", ["J1"], agency_id="B"),
        }


def test_users_keep_their_agency(store: Store, staff: dict[str, User]) -> None:
    with store.read() as session:
        assert get_user(session, "a1").agency_id == "A1"
        assert get_user(session, "insp1").agency_id is None
    with store.transaction() as session, pytest.raises(InvalidUserError, match="agency id"):
        create_user(session, "x", "inspector", ["J1"], agency_id=" ")


@pytest.mark.parametrize("verdict", ["confirm", "dismiss"])
def test_a_user_of_the_agency_may_not_give_the_verdict(
    store: Store, staff: dict[str, User], verdict: str
) -> None:
    d1 = alert_id("delay", "dossier", "D1")  # agency A1
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1")], now=T0)
        transition(session, d1, "acknowledge", staff["a1"], now=T0)  # allowed
        transition(session, d1, "escalate", staff["a1"], now=T0)  # allowed: hands it on
    with store.transaction() as session, pytest.raises(PermissionDeniedError) as refused:
        transition(session, d1, verdict, staff["a1"], reason="fine", now=T0)
    assert "works for agency A1" in str(refused.value)
    assert "separation of duties" in str(refused.value)
    with store.transaction() as session:
        transition(session, d1, verdict, staff["b"], reason="fine", now=T0)
    with store.read() as session:
        after = get_alert(session, SYSTEM, d1)
    assert after.status is Status(f"{verdict}ed")
    assert after.decided_by == "b"


def test_agency_and_agency_pair_subjects_count(store: Store, staff: dict[str, User]) -> None:
    pair = alert_id("integrity", "agency_pair", "B->C")
    desk = alert_id("integrity", "agency", "B")
    with store.transaction() as session:
        upsert_alerts(
            session,
            [_entity("agency_pair", "B->C", None), _entity("agency", "B", None)],
            now=T0,
        )
        for a in (pair, desk):
            transition(session, a, "acknowledge", staff["a1"], now=T0)
    for a in (pair, desk):
        with store.transaction() as session, pytest.raises(PermissionDeniedError):
            transition(session, a, "dismiss", staff["b"], reason="no", now=T0)
    with store.transaction() as session:
        transition(session, pair, "dismiss", staff["a1"], reason="route approved", now=T0)
        alert = get_alert(session, SYSTEM, desk)
    assert interested_agency(staff["b"], alert) == "B"
    assert interested_agency(staff["a1"], alert) is None
    assert interested_agency(staff["insp1"], alert) is None


def test_the_refusal_is_a_403_with_the_reason(store: Store, people: dict[str, User]) -> None:
    seed(store)  # A1 (D1) and A3 (D3) are about agency A1
    with store.transaction() as session:
        staff = {**people, "a1": create_user(session, "a1", "inspector", ["J1"], agency_id="A1")}
    with api_over(store, staff) as api:
        assert api.post("a1", f"/v1/alerts/{A1}/acknowledge").status_code == 200
        refused = api.post("a1", f"/v1/alerts/{A1}/dismiss", json={"reason": "no delay"})
        assert refused.status_code == 403
        assert "works for agency A1" in refused.json()["detail"]
        assert api.post("a1", f"/v1/alerts/{A1}/confirm").status_code == 403
        assert api.post("insp1", f"/v1/alerts/{A1}/confirm").status_code == 200
        assert api.post("insp1", f"/v1/alerts/{A3}/acknowledge").status_code == 200


def test_the_cli_creates_users_with_an_agency(store_url: str, migrated_cli: CliRunner) -> None:
    runner = migrated_cli
    made = runner.invoke(
        app,
        ["users", "create", "--name", "lan", "--role", "inspector",
         "--jurisdiction", "J1", "--agency", "HCM-Q1-BPMC"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "agency: HCM-Q1-BPMC" in made.output
    listed = runner.invoke(app, ["users", "list"])
    assert "HCM-Q1-BPMC" in listed.output
    store = Store.from_url(store_url)
    with store.read() as session:
        assert get_user(session, "lan").agency_id == "HCM-Q1-BPMC"
    store.dispose()
