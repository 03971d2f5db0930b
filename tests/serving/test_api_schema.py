"""The HTTP API against its own OpenAPI schema (schemathesis, in process over ASGI): for
every operation, generated requests, valid and invalid, never get a 5xx, and every
response is one the schema documents, in the shape it documents.

Checks enabled: ``not_a_server_error``, ``status_code_conformance`` (every status a
route answers is in its ``responses``; the routes list their 4xx explicitly, so
FastAPI's default 422 is not needed), ``content_type_conformance`` and
``response_schema_conformance`` (the body validates against the documented schema).
Each operation runs once with an admin's key and once with an inspector's (who sees
only J1, so 404s and 403s are exercised too) on a seeded SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.app import create_app
from serving.db import Store
from serving.migrations import upgrade
from serving.users import create_api_key, create_user
from tests.serving.api_helpers import seed
from tests.serving.api_helpers import settings as app_settings
from tests.serving.conftest import PEPPER

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: hypothesis settings of the default run (bounded: the whole file in well under 60 s).
QUICK = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
THOROUGH = settings(QUICK, max_examples=200)


def _document() -> dict[str, Any]:
    """The app's OpenAPI document (building it touches no database)."""
    store = Store.from_url("sqlite://")
    try:
        return create_app(app_settings(), store).openapi()
    finally:
        store.dispose()


#: built from the document rather than with ``schemathesis.pytest.from_fixture``, whose
#: lazy loading fails on pytest 9.2 (it sets ``node._nodeid``); requests go to the app
#: of the ``target`` fixture (``call_and_validate(app=...)``), in process.
schema = schemathesis.openapi.from_dict(_document())


@dataclass
class Target:
    app: FastAPI
    keys: dict[str, str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One app over a seeded, migrated SQLite store, and an admin's and an inspector's key."""
    url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'store.db'}"
    upgrade(url)
    store = Store.from_url(url)
    seed(store)
    keys = {}
    with store.transaction() as session:
        create_user(session, "admin", "admin")
        create_user(session, "insp1", "inspector", ["J1"])
        for name in ("admin", "insp1"):
            keys[name] = create_api_key(session, name, PEPPER)[1]
    yield Target(create_app(app_settings(max_batch_events=20, stream_max_seconds=0.1), store), keys)
    store.dispose()


#: operations whose documented 503 is this app's right answer: it has no model loaded.
WITHOUT_A_MODEL = {"/readyz", "/v1/admin/models/reload", "/v1/score"}


def _call(case: Any, target: Target, who: str) -> None:
    headers = {"X-API-Key": target.keys[who]}
    checks = CHECKS
    if case.operation.path in WITHOUT_A_MODEL:
        checks = [c for c in CHECKS if c is not not_a_server_error]
    case.call_and_validate(app=target.app, headers=headers, checks=checks)


@schema.parametrize()
@QUICK
def test_an_admin_gets_only_documented_answers(case: Any, target: Target) -> None:
    _call(case, target, "admin")


@schema.parametrize()
@QUICK
def test_an_inspector_gets_only_documented_answers(case: Any, target: Target) -> None:
    _call(case, target, "insp1")


@pytest.mark.slow
@schema.parametrize()
@THOROUGH
def test_many_requests_get_only_documented_answers(case: Any, target: Target) -> None:
    _call(case, target, "admin")
