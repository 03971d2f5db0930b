"""``giamsat db upgrade``, ``giamsat users ...`` and ``giamsat audit verify`` as an operator
runs them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from giamsat.cli import app
from giamsat.settings import get_settings
from serving.db import Store
from serving.migrations import head_revision
from serving.tables import audit_log
from serving.users import verify_api_key

runner = CliRunner()
PEPPER = "cli-test-pepper-0123456789"


@pytest.fixture
def url(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GIAMSAT_DATABASE_URL", store_url)
    monkeypatch.setenv("GIAMSAT_API_KEY_PEPPER", PEPPER)
    get_settings.cache_clear()
    return store_url


def test_setup_create_users_and_verify_the_audit_log(url: str) -> None:
    early = runner.invoke(app, ["users", "list"])
    assert early.exit_code == 2 and "giamsat db upgrade" in early.output

    done = runner.invoke(app, ["db", "upgrade"])
    assert done.exit_code == 0, done.output
    assert f"schema at revision {head_revision()} (was empty)" in done.output

    made = runner.invoke(
        app,
        ["users", "create", "--name", "lan", "--role", "inspector",
         "--jurisdiction", "J1", "--jurisdiction", "J2"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("gs_")
    store = Store.from_url(url)
    try:
        with store.read() as session:
            user = verify_api_key(session, key, PEPPER.encode())
        assert user.name == "lan" and user.jurisdictions == {"J1", "J2"}

        refused = runner.invoke(app, ["users", "create", "--name", "x", "--role", "inspector"])
        assert refused.exit_code == 2 and "needs at least one jurisdiction" in refused.output

        listed = runner.invoke(app, ["users", "list"])
        assert listed.exit_code == 0 and "lan" in listed.output and "J1, J2" in listed.output

        ok = runner.invoke(app, ["audit", "verify"])
        assert ok.exit_code == 0, ok.output
        assert "audit log intact: 2 entries" in ok.output

        with store.transaction() as session:
            session.execute(sa.update(audit_log).where(audit_log.c.seq == 1).values(actor="eve"))
        broken = runner.invoke(app, ["audit", "verify"])
        assert broken.exit_code == 1
        assert "broken at entry 1 (edited)" in broken.output
    finally:
        store.dispose()


def test_keys_can_be_added_and_revoked(url: str) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    made = runner.invoke(app, ["users", "create", "--name", "ops", "--role", "admin"])
    assert made.exit_code == 0, made.output
    second = runner.invoke(app, ["users", "key", "ops", "--label", "ci"])
    assert second.exit_code == 0, second.output
    key = second.stdout.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    assert runner.invoke(app, ["users", "revoke-key", key_id]).exit_code == 0
    missing = runner.invoke(app, ["users", "revoke-key", "0" * 16])
    assert missing.exit_code == 2 and "no API key" in missing.output
    gone = runner.invoke(app, ["users", "deactivate", "ops"])
    assert gone.exit_code == 0 and "deactivated" in gone.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_a_placeholder_pepper_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    from giamsat.settings import Settings

    monkeypatch.setenv("GIAMSAT_ENVIRONMENT", "production")
    monkeypatch.setenv("GIAMSAT_PSEUDONYM_KEY", "a-real-pseudonym-key-0123456789")
    monkeypatch.delenv("GIAMSAT_API_KEY_PEPPER", raising=False)
    with pytest.raises(ValueError, match="GIAMSAT_API_KEY_PEPPER"):  # pydantic wraps it
        Settings()
    monkeypatch.setenv("GIAMSAT_API_KEY_PEPPER", "a-real-pepper-0123456789")
    assert Settings().api_key_pepper.get_secret_value() == "a-real-pepper-0123456789"
