"""Webhook subscriptions (the store and ``/v1/subscriptions``) and the transactional
outbox: secrets encrypted and never returned, every change audited, inspectors limited to
their jurisdictions, bad input refused naming the field, auth on every route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from serving import audit
from serving.db import Store
from serving.errors import NotFoundError, PermissionDeniedError
from serving.tables import webhook_subscriptions
from serving.users import SYSTEM, User
from serving.webhooks import (
    SecretKeyError,
    SubscriptionFieldError,
    create_subscription,
    enqueue,
    list_subscriptions,
    mark_dispatched,
    open_secret,
    pending_messages,
    subscription_named,
)
from serving.workflow import upsert_alerts
from tests.serving.api_helpers import Api, api_over
from tests.serving.conftest import T0, alert_row

KEY = b"test-webhook-key-0123456789"
SECRET = "s3cret-shared-with-the-receiver"


def test_subscriptions_are_stored_encrypted_and_audited_without_their_secret(
    store: Store,
) -> None:
    with store.transaction() as session:
        create_subscription(
            session,
            "province-inspectorate",
            "https://inspect.example/hook",
            SECRET,
            key=KEY,
            topics=["alert.raise", "alert.confirm"],
            jurisdictions=["J1"],
            kinds=["delay"],
            min_severity="medium",
        )
        create_subscription(session, "ministry", "https://ministry.example/hook", SECRET, key=KEY)
    with store.read() as session:
        subs = list_subscriptions(session)
        one = subscription_named(session, "province-inspectorate")
        logged = audit.entries(session)
        stored = session.execute(sa.select(webhook_subscriptions.c.secret)).scalars().all()
        with pytest.raises(NotFoundError):
            subscription_named(session, "nobody")
    assert [s.name for s in subs] == ["ministry", "province-inspectorate"]
    assert one.wants("alert.raise", "J1", "delay", "high")
    assert not one.wants("alert.raise", "J2", "delay", "high")
    assert not one.wants("alert.raise", "J1", "waste", "high")
    assert not one.wants("alert.raise", "J1", "delay", "low")
    assert not one.wants("alert.close", "J1", "delay", "high")
    assert subs[0].wants("alert.close", None)
    assert [e.action for e in logged] == ["webhook.create", "webhook.create"]
    assert SECRET not in str([e.details for e in logged])
    assert all(SECRET not in s and s.startswith("f1:") for s in stored)
    assert open_secret(stored[0], KEY) == SECRET
    with pytest.raises(SecretKeyError, match="GIAMSAT_WEBHOOK_SECRET_KEY"):
        open_secret(stored[0], b"another-key-0123456789")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": "https://"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"secret": "has spaces in the secret"}, "secret"),
        ({"topics": ["alert.exploded"]}, "topics"),
        ({"jurisdictions": []}, "jurisdictions"),
        ({"kinds": [""]}, "kinds"),
        ({"min_severity": "urgent"}, "min_severity"),
    ],
)
def test_bad_subscriptions_are_refused_naming_the_field(
    store: Store, changes: dict[str, Any], field: str
) -> None:
    spec: dict[str, Any] = {"url": "https://x.example/h", "secret": SECRET, **changes}
    with pytest.raises(SubscriptionFieldError) as caught, store.transaction() as session:
        create_subscription(session, "x", spec.pop("url"), spec.pop("secret"), key=KEY, **spec)
    assert caught.value.field == field


def test_an_inspector_subscribes_only_within_their_jurisdictions(
    store: Store, people: dict[str, User]
) -> None:
    with store.transaction() as session:
        mine = create_subscription(
            session, "j1", "https://a.example/h", SECRET, key=KEY, jurisdictions=["J1"],
            user=people["insp1"],
        )  # fmt: skip
        create_subscription(session, "all", "https://b.example/h", SECRET, key=KEY)
    for places in (None, ["J1", "J2"]):
        with pytest.raises(PermissionDeniedError), store.transaction() as session:
            create_subscription(
                session, "x", "https://c.example/h", SECRET, key=KEY, jurisdictions=places,
                user=people["insp1"],
            )  # fmt: skip
    with store.read() as session:
        assert [s.name for s in list_subscriptions(session, people["insp1"])] == ["j1"]
        assert list_subscriptions(session, people["insp2"]) == []
        assert len(list_subscriptions(session, SYSTEM)) == 2
    assert mine.jurisdictions == ["J1"]


def test_the_outbox_holds_messages_until_dispatched(store: Store) -> None:
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), alert_row("D2", "J2")], now=T0)
        enqueue(session, "test.ping", {"n": 1}, jurisdiction="J9", now=T0)
    with pytest.raises(RuntimeError), store.transaction() as session:  # rolled back: no message
        enqueue(session, "test.lost", {"n": 2})
        raise RuntimeError("the change failed")
    with store.read() as session:
        pending = pending_messages(session)
    assert [(m.topic, m.jurisdiction) for m in pending] == [
        ("alert.raise", "J1"),
        ("alert.raise", "J2"),
        ("test.ping", "J9"),
    ]
    assert pending[0].payload["subject_id"] == "D1" and pending[0].created_at == T0
    assert pending[0].payload["severity"] == "high" and pending[0].payload["kind"] == "delay"
    with store.transaction() as session:
        assert mark_dispatched(session, [pending[0].id, pending[1].id]) == 2
        assert mark_dispatched(session, [pending[0].id]) == 0
    with store.read() as session:
        assert [m.topic for m in pending_messages(session)] == ["test.ping"]


# --- the HTTP API -------------------------------------------------------------------------


@pytest.fixture
def api(store: Store, people: dict[str, User]) -> Iterator[Api]:
    with api_over(store, people, webhook_secret_key=KEY.decode()) as running:
        yield running


def _body(**changes: Any) -> dict[str, Any]:
    return {"name": "hook", "url": "https://hook.example/in", "secret": SECRET, **changes}


def test_the_subscriptions_api_creates_lists_updates_and_deletes(api: Api) -> None:
    made = api.post("admin", "/v1/subscriptions", json=_body(kinds=["delay"], min_severity="high"))
    assert made.status_code == 201, made.text
    sub = made.json()
    assert "secret" not in sub and SECRET not in made.text
    assert sub["kinds"] == ["delay"] and sub["min_severity"] == "high" and sub["active"]
    path = f"/v1/subscriptions/{sub['id']}"
    assert api.get("admin", path).json() == sub
    assert [s["name"] for s in api.get("admin", "/v1/subscriptions").json()] == ["hook"]
    patched = api.client.patch(
        path, headers=api.headers("admin"), json={"active": False, "secret": "x" * 20}
    )
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert "secret" not in patched.json()
    cleared = api.client.patch(path, headers=api.headers("admin"), json={"kinds": None})
    assert cleared.json()["kinds"] is None and cleared.json()["min_severity"] == "high"
    assert api.client.delete(path, headers=api.headers("admin")).status_code == 204
    assert api.get("admin", path).status_code == 404
    with api.store.read() as session:
        logged = [(e.action, e.details) for e in audit.entries(session)]
        assert audit.verify(session).ok
    webhook = [(a, d) for a, d in logged if a.startswith("webhook.")]
    assert [a for a, _ in webhook] == [
        "webhook.create",
        "webhook.update",
        "webhook.update",
        "webhook.delete",
    ]
    assert webhook[1][1]["secret_changed"] is True and "x" * 20 not in str(logged)


def test_inspectors_manage_only_their_jurisdictions_subscriptions(api: Api) -> None:
    own = api.post("insp1", "/v1/subscriptions", json=_body(jurisdictions=["J1"]))
    assert own.status_code == 201, own.text
    other = api.post("admin", "/v1/subscriptions", json=_body(name="j2", jurisdictions=["J2"]))
    everything = api.post("admin", "/v1/subscriptions", json=_body(name="all"))
    assert other.status_code == everything.status_code == 201
    refused = api.post("insp1", "/v1/subscriptions", json=_body(name="x"))
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    wider = api.post("insp1", "/v1/subscriptions", json=_body(name="y", jurisdictions=["J2"]))
    assert wider.status_code == 403 and "'J2'" in wider.json()["detail"]
    assert [s["name"] for s in api.get("insp1", "/v1/subscriptions").json()] == ["hook"]
    for sub in (other.json(), everything.json()):  # not theirs: as if absent
        path = f"/v1/subscriptions/{sub['id']}"
        assert api.get("insp1", path).status_code == 404
        changed = api.client.patch(path, headers=api.headers("insp1"), json={"active": False})
        assert changed.status_code == 404
        assert api.client.delete(path, headers=api.headers("insp1")).status_code == 404
        assert api.get("insp1", f"{path}/deliveries").status_code == 404
    mine = f"/v1/subscriptions/{own.json()['id']}"
    moved = api.client.patch(mine, headers=api.headers("insp1"), json={"jurisdictions": ["J2"]})
    assert moved.status_code == 403  # cannot move it out of their jurisdictions


def test_every_subscriptions_route_needs_a_key_and_a_managing_role(api: Api) -> None:
    made = api.post("admin", "/v1/subscriptions", json=_body()).json()
    base = f"/v1/subscriptions/{made['id']}"
    routes = [
        ("POST", "/v1/subscriptions", _body(name="z")),
        ("GET", "/v1/subscriptions", None),
        ("GET", base, None),
        ("PATCH", base, {"active": False}),
        ("DELETE", base, None),
        ("GET", f"{base}/deliveries", None),
        ("GET", f"{base}/deliveries/1", None),
        ("POST", f"{base}/deliveries/1/redeliver", None),
    ]
    for method, path, body in routes:
        anonymous = api.client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        for who in ("analyst", "dash", "ingest"):
            denied = api.client.request(method, path, json=body, headers=api.headers(who))
            assert denied.status_code == 403, (method, path, who)
            assert "may not" in denied.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(url="ftp://hook.example"), "url"),
        (_body(secret="too-short"), "secret"),
        (_body(min_severity="urgent"), "min_severity"),
        (_body(topics=["alert.unknown"]), "topics"),
        (_body(jurisdictions=[]), "jurisdictions"),
        (_body(name="bad name"), "name"),
        ({**_body(), "extra": 1}, "extra"),
    ],
)
def test_bad_subscription_bodies_get_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    answer = api.post("admin", "/v1/subscriptions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["detail"]


def test_bad_delivery_queries_get_4xx_with_a_reason(api: Api) -> None:
    sub = api.post("admin", "/v1/subscriptions", json=_body()).json()
    base = f"/v1/subscriptions/{sub['id']}"
    bad = api.get("admin", f"{base}/deliveries", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    assert api.get("admin", f"{base}/deliveries/99").status_code == 404
    assert api.post("admin", f"{base}/deliveries/99/redeliver").status_code == 404
    assert api.get("admin", "/v1/subscriptions/99999999999999").status_code == 404
    assert api.get("admin", "/v1/subscriptions/abc").status_code == 422
    dup = api.post("admin", "/v1/subscriptions", json=_body())
    assert dup.status_code == 422 and dup.json()["field"] == "name"
    patch = api.client.patch(base, headers=api.headers("admin"), json={"url": None})
    assert patch.status_code == 422 and patch.json()["field"] == "url"
