"""Users, roles, jurisdictions and API keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from serving import audit
from serving.db import Store
from serving.errors import InvalidKeyError, InvalidUserError
from serving.tables import api_keys, users
from serving.users import (
    KeyCache,
    Role,
    User,
    can_see,
    create_api_key,
    create_user,
    deactivate_user,
    get_user,
    list_users,
    restrict,
    revoke_api_key,
    verify_api_key,
)
from tests.serving.conftest import PEPPER


def test_an_api_key_is_stored_hashed_and_verified(store: Store) -> None:
    with store.transaction() as session:
        create_user(session, "insp", "inspector", ["J1", "J2"])
        key_id, key = create_api_key(session, "insp", PEPPER, label="laptop")
    with store.read() as session:
        user = verify_api_key(session, key, PEPPER)
        stored = session.execute(sa.select(api_keys)).one()
        logged = audit.entries(session)
    assert user.name == "insp" and user.role is Role.INSPECTOR
    assert user.jurisdictions == frozenset({"J1", "J2"})
    assert key.startswith(f"gs_{key_id}_") and stored.key_id == key_id
    secret = key.split("_", 2)[2]
    assert secret not in stored.secret_hash and key not in str(tuple(stored))
    assert [e.action for e in logged] == ["user.create", "key.create"]
    assert key not in str([e.details for e in logged]) and secret not in str(logged)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: "gs_0000000000000000_" + k.split("_", 2)[2],  # unknown key id
        lambda k: k[:20],  # malformed
        lambda k: "",
    ],
)
def test_other_keys_are_rejected(store: Store, mangle: Callable[[str], str]) -> None:
    with store.transaction() as session:
        create_user(session, "a", "analyst")
        _, key = create_api_key(session, "a", PEPPER)
    with store.read() as session, pytest.raises(InvalidKeyError, match="invalid API key"):
        verify_api_key(session, mangle(key), PEPPER)
    with store.read() as session, pytest.raises(InvalidKeyError):
        verify_api_key(session, key, b"another pepper")


def test_revoked_keys_and_deactivated_users_are_rejected(store: Store) -> None:
    with store.transaction() as session:
        create_user(session, "a", "analyst")
        create_user(session, "b", "dashboard")
        old_id, old = create_api_key(session, "a", PEPPER)
        _, new = create_api_key(session, "a", PEPPER)
        _, other = create_api_key(session, "b", PEPPER)
        revoke_api_key(session, old_id)
        deactivate_user(session, "b")
    with store.read() as session:
        assert verify_api_key(session, new, PEPPER).name == "a"
        for key in (old, other):
            with pytest.raises(InvalidKeyError):
                verify_api_key(session, key, PEPPER)
        assert [u.name for u in list_users(session)] == ["a", "b"]
        assert get_user(session, "b").active is False
        assert audit.verify(session).ok


@pytest.mark.parametrize(
    ("name", "role", "places", "says"),
    [
        ("x", "inspector", [], "needs at least one jurisdiction"),
        ("x", "investigator", [], "needs at least one jurisdiction"),
        ("x", "superuser", [], "unknown role 'superuser'"),
        ("bad name!", "admin", [], "user name"),
        ("x", "inspector", [""], "jurisdiction codes"),
    ],
)
def test_invalid_users_are_refused(
    store: Store, name: str, role: str, places: list[str], says: str
) -> None:
    with pytest.raises(InvalidUserError, match=says), store.transaction() as session:
        create_user(session, name, role, places)
    with store.read() as session:
        assert session.execute(sa.select(users)).all() == []


def test_a_name_is_taken_once(store: Store) -> None:
    with store.transaction() as session:
        create_user(session, "a", "admin")
    with pytest.raises(InvalidUserError, match="exists already"), store.transaction() as session:
        create_user(session, "a", "analyst")


def test_queries_are_restricted_to_the_users_jurisdictions(store: Store) -> None:
    table = sa.table("t", sa.column("jurisdiction"))
    stmt = sa.select(table.c.jurisdiction)
    inspector = User(1, "i", Role.INSPECTOR, frozenset({"J2", "J1"}))
    scoped_dashboard = User(2, "d", Role.DASHBOARD, frozenset({"J1"}))
    compiled = str(restrict(stmt, inspector, table.c.jurisdiction).compile())
    assert "IN" in compiled
    assert restrict(stmt, User(3, "a", Role.ADMIN, frozenset({"J1"})), table.c.jurisdiction) is stmt
    assert restrict(stmt, User(4, "n", Role.ANALYST), table.c.jurisdiction) is stmt
    assert can_see(inspector, "J1") and not can_see(inspector, "J3")
    assert not can_see(inspector, None)
    assert can_see(scoped_dashboard, "J1") and not can_see(scoped_dashboard, "J2")
    assert not can_see(User(5, "g", Role.INGEST), "J1")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_key_cache_trusts_a_verified_key_for_its_ttl_only(store: Store) -> None:
    clock = _Clock()
    cache = KeyCache(ttl=5.0, clock=clock)
    with store.transaction() as session:
        create_user(session, "a", "analyst")
        key_id, key = create_api_key(session, "a", PEPPER)
    assert cache.verify(store, key, PEPPER).name == "a"
    with store.transaction() as session:  # as another process would: not seen here...
        session.execute(sa.update(api_keys).values(revoked_at=sa.func.now()))
    clock.now += 4.9
    assert cache.verify(store, key, PEPPER).name == "a"  # ... within the ttl
    clock.now += 0.2
    with pytest.raises(InvalidKeyError):
        cache.verify(store, key, PEPPER)
    with pytest.raises(InvalidKeyError):  # failures are not kept either
        cache.verify(store, key, PEPPER)


def test_the_key_cache_finds_only_the_key_verified(store: Store) -> None:
    cache = KeyCache()
    with store.transaction() as session:
        create_user(session, "a", "analyst")
        _, key = create_api_key(session, "a", PEPPER)
    cache.verify(store, key, PEPPER)
    assert cache.get(key, PEPPER) is not None
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert cache.get(wrong, PEPPER) is None and cache.get(key, b"another pepper") is None
    with pytest.raises(InvalidKeyError):
        cache.verify(store, wrong, PEPPER)


def test_revoking_or_deactivating_here_empties_the_cache_at_once(store: Store) -> None:
    cache = KeyCache(ttl=3600.0)
    with store.transaction() as session:
        create_user(session, "a", "analyst")
        create_user(session, "b", "dashboard")
        a_id, a_key = create_api_key(session, "a", PEPPER)
        _, a_other = create_api_key(session, "a", PEPPER)
        _, b_key = create_api_key(session, "b", PEPPER)
    for key in (a_key, a_other, b_key):
        cache.verify(store, key, PEPPER)
    with store.transaction() as session:
        revoke_api_key(session, a_id)
    with pytest.raises(InvalidKeyError):
        cache.verify(store, a_key, PEPPER)
    assert cache.verify(store, a_other, PEPPER).name == "a"
    with store.transaction() as session:
        deactivate_user(session, "b")
    with pytest.raises(InvalidKeyError):
        cache.verify(store, b_key, PEPPER)
