"""The API's dependencies, as ``Annotated`` aliases: the store, sessions, the settings,
the models served, the current user (from the API key) and the role each route needs.

Tests override them with ``app.dependency_overrides``. Sessions end with the route
function (``scope="function"``), before the response is sent: a write that fails to
commit answers an error, never a success.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from giamsat.settings import Settings
from serving.db import Store
from serving.errors import InvalidKeyError, PermissionDeniedError
from serving.handlers import ApiError
from serving.models import LoadedModel, ModelHolder
from serving.users import KeyCache, User
from serving.users import Role as R

__all__ = [
    "AdminUser",
    "AlertWorker",
    "CurrentUser",
    "DossierReader",
    "IngestUser",
    "MAX_OFFSET",
    "ModelDep",
    "ModelsDep",
    "Reader",
    "SessionDep",
    "SettingsDep",
    "StoreDep",
    "TransactionDep",
]


# Trivial dependencies are ``async``: FastAPI runs a plain ``def`` dependency in a worker
# thread, and each hand-off costs more than these functions do.
async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_models(request: Request) -> ModelHolder:
    models: ModelHolder = request.app.state.models
    return models


async def current_model(models: Annotated[ModelHolder, Depends(get_models)]) -> LoadedModel:
    """The model served when the request started (503 with the reason when none is);
    the request keeps it even if a reload swaps another in meanwhile."""
    return models.require()


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]
#: the holder of the models (its status, reloads, swap callbacks).
ModelsDep = Annotated[ModelHolder, Depends(get_models)]
#: the model to score with.
ModelDep = Annotated[LoadedModel, Depends(current_model)]


def read_session(store: StoreDep) -> Iterator[Session]:
    """A read-only snapshot for the route."""
    with store.read() as session:
        yield session


def write_session(store: StoreDep) -> Iterator[Session]:
    """A write transaction: committed when the route returns, rolled back if it raises."""
    with store.transaction() as session:
        yield session


#: the largest ``offset`` a list accepts: past any real list, and inside the databases'
#: 64-bit integers (a larger one would be a 500 from the driver, not an empty page).
MAX_OFFSET = 1_000_000_000

SessionDep = Annotated[Session, Depends(read_session, scope="function")]
TransactionDep = Annotated[Session, Depends(write_session, scope="function")]


def _api_key(authorization: str | None, x_api_key: str | None) -> str:
    if x_api_key:
        return x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    raise InvalidKeyError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")


def key_cache(request: Request) -> KeyCache:
    """The app's cache of verified keys (made on first use)."""
    state = request.app.state
    cache = getattr(state, "key_cache", None)
    if not isinstance(cache, KeyCache):
        cache = state.key_cache = KeyCache()
    return cache


async def current_user(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[
        str | None, Header(description="the API key (or 'Authorization: Bearer <key>')")
    ] = None,
) -> User:
    """The active user whose API key the request carries; 401 otherwise. A key verified
    within :data:`serving.users.KEY_CACHE_SECONDS` is not looked up again (no thread
    hand-off, no query); otherwise the store is asked from a worker thread."""
    key = _api_key(authorization, x_api_key)
    pepper = settings.api_key_pepper.get_secret_value().encode()
    cache = key_cache(request)
    user = cache.get(key, pepper)
    if user is None:
        user = await anyio.to_thread.run_sync(cache.verify, store, key, pepper)
    request.state.user = user.name  # for the request log
    _refuse_nul(request)
    return user


def _refuse_nul(request: Request) -> None:
    """422 for a path or query parameter with a NUL character, which no PostgreSQL text
    can hold (checked once for every ``/v1`` route, after the key)."""
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in params:
        if "\x00" in name or "\x00" in str(value):
            field = name if "\x00" not in name else None
            raise ApiError(
                422, f"{field or 'a parameter'}: NUL characters are not allowed", field=field
            )


CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: R) -> Callable[[User], Coroutine[None, None, User]]:
    """A dependency: the current user, if their role is one of ``roles`` (else 403)."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise PermissionDeniedError(f"role {user.role.value} may not do this (needs {names})")
        return user

    return check


#: sends events.
IngestUser = Annotated[User, Depends(require(R.INGEST, R.ADMIN))]
#: reads a dossier's events (inspectors within their jurisdictions; not dashboards).
DossierReader = Annotated[User, Depends(require(R.INSPECTOR, R.INVESTIGATOR, R.ANALYST, R.ADMIN))]
#: reads lists of dossiers and scores, alerts and their evidence.
Reader = Annotated[
    User, Depends(require(R.INSPECTOR, R.INVESTIGATOR, R.ANALYST, R.DASHBOARD, R.ADMIN))
]
#: moves alerts through their workflow.
AlertWorker = Annotated[User, Depends(require(R.INSPECTOR, R.INVESTIGATOR, R.ADMIN))]
#: administers the service.
AdminUser = Annotated[User, Depends(require(R.ADMIN))]
