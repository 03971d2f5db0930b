"""The models the service scores with: the bundle an MLflow alias points at, loaded at
start-up and reloaded when the alias moves, without a restart.

:class:`ModelHolder` (``app.state.models``) keeps one immutable :class:`LoadedModel`
(version, run id, bundle, ``loaded_at``). Swapping it is one reference assignment, so a
request that took :meth:`ModelHolder.current` keeps that bundle until it ends, whatever
happens meanwhile. :meth:`ModelHolder.reload` asks the registry where the alias points and,
when the version changed, loads the new bundle and swaps it in; the app's lifespan runs it
at start-up and then every ``GIAMSAT_MODEL_RELOAD_SECONDS`` in a worker thread (never on
the event loop), and ``POST /v1/admin/models/reload`` runs it on demand. A failure keeps
the model being served, is logged as one JSON line (logger ``giamsat.models``) and counted
in ``/metrics``. The service starts without any model: readiness and the scoring routes
say why (:class:`ModelUnavailableError`, 503).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import anyio.to_thread

from features.schema import GiamSatError
from giamsat.settings import Settings
from models import registry
from models.bundle import ModelBundle
from serving import audit
from serving.db import Store
from serving.metrics import Metrics

__all__ = [
    "LoadedModel",
    "ModelHolder",
    "ModelStatus",
    "ModelUnavailableError",
    "ReloadOutcome",
    "SwapCallback",
    "reload_audited",
]

log = logging.getLogger("giamsat.models")
Stage = Literal["resolve", "load", "callback"]


class ModelUnavailableError(GiamSatError):
    """No model is loaded (none registered with the alias, or it failed to load): the
    message says why and what to run."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered bundle as the service holds it (never changed once published).

    ``state`` holds what consumers derive from this bundle (filled by the holder's swap
    callbacks before it is published), so that derived state travels with its bundle.
    """

    name: str
    alias: str
    version: str
    run_id: str
    bundle: ModelBundle
    loaded_at: datetime
    path: Path
    state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ModelStatus:
    """What readiness and metrics report: the model served (if any) and the last problem:
    why none is loaded, or why the last reload failed while an older one is served."""

    name: str
    alias: str
    version: str | None
    run_id: str | None
    loaded_at: datetime | None
    problem: str | None


@dataclass(frozen=True)
class ReloadOutcome:
    """What one :meth:`ModelHolder.reload` did.

    ``loaded``: a new version is served; ``unchanged``: the alias still points at the
    version served; ``failed``: the alias's version could not be loaded (or the registry
    not asked) and ``model`` is still the one served before; ``no model``: none is loaded
    and the registry has none to give.
    """

    outcome: Literal["loaded", "unchanged", "failed", "no model"]
    model: LoadedModel | None
    previous_version: str | None
    detail: str | None = None


#: called with a newly loaded model before it is published (in the loading thread);
#: may fill ``model.state``. If it raises, the model is not published.
SwapCallback = Callable[[LoadedModel], None]


def _missing_store(settings: Settings) -> str | None:
    """Why a local SQLite tracking store cannot hold the model (its file does not exist),
    found without creating it as MLflow would; None for any other store."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    if path.exists():
        return None
    return (
        f"no model {settings.model_name!r} with alias {settings.model_alias!r}: the tracking "
        f"store {uri} does not exist: run 'giamsat train' first"
    )


class ModelHolder:
    """The model the alias points at, swapped atomically when the alias moves.

    Parameters: the settings (``model_name``, ``model_alias``, the MLflow tracking store
    and model cache, ``model_reload_seconds``, ``timezone``) and the app's metrics.
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.name = settings.model_name
        self.alias = settings.model_alias
        self.interval = float(settings.model_reload_seconds)
        self.metrics = metrics if metrics is not None else Metrics()
        self._tz = ZoneInfo(settings.timezone)
        self._current: LoadedModel | None = None
        self._problem: str | None = "no model loaded yet: the service is starting"
        self._callbacks: list[SwapCallback] = []
        self._lock = threading.Lock()  # one reload at a time (timer and admin route)

    def current(self) -> LoadedModel | None:
        """The model served now (None before the first successful load). Take it once
        per request and use that one throughout."""
        return self._current

    def require(self) -> LoadedModel:
        """The model served now, or :class:`ModelUnavailableError` saying why none is."""
        model = self._current
        if model is None:
            raise ModelUnavailableError(self._problem or f"no model with alias {self.alias}")
        return model

    def status(self) -> ModelStatus:
        model = self._current
        if model is None:
            return ModelStatus(self.name, self.alias, None, None, None, self._problem)
        return ModelStatus(
            self.name, self.alias, model.version, model.run_id, model.loaded_at, self._problem
        )

    def on_swap(self, callback: SwapCallback) -> None:
        """Call ``callback`` with every model loaded from now on, before it is published
        (off the event loop); if a model is already served, at once with that one."""
        with self._lock:
            self._callbacks.append(callback)
            if self._current is not None:
                callback(self._current)

    def reload(self) -> ReloadOutcome:
        """Ask the registry where the alias points; load and publish that version if it is
        not the one served. Blocking (MLflow, files): call it off the event loop."""
        with self._lock:
            return self._reload()

    async def reload_async(self) -> ReloadOutcome:
        """:meth:`reload` in a worker thread."""
        return await anyio.to_thread.run_sync(self.reload)

    async def run(self) -> None:
        """Reload every ``interval`` seconds until cancelled (the app's lifespan task)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reload_async()
            except Exception:  # noqa: BLE001 - the timer must outlive any one failure
                log.exception("model reload crashed", extra=self._where())

    def _reload(self) -> ReloadOutcome:
        current = self._current
        before = None if current is None else current.version
        try:
            missing = _missing_store(self.settings)
            if missing is not None:
                raise registry.RegistryError(missing)
            version, _ = registry.resolve(self.settings, self.alias)
        except Exception as exc:  # noqa: BLE001 - RegistryError, or MLflow's own errors
            problem = _describe(exc)
            if current is None:  # nothing registered yet is a state, not a failure
                self._problem = problem
                return ReloadOutcome("no model", None, None, problem)
            return self._failed("resolve", current, None, problem)
        if current is not None and current.version == version:
            self._problem = None
            return ReloadOutcome("unchanged", current, before)
        try:
            # load_bundle resolves the alias again: if it moved meanwhile, the newer
            # version is loaded, and its own number is what is recorded.
            found = registry.load_bundle(self.settings, self.alias)
        except Exception as exc:  # noqa: BLE001 - a bad artifact must not stop the service
            detail = f"version {version} failed to load: {_describe(exc)}"
            return self._failed("load", current, version, detail)
        if current is not None and found.version == current.version:  # moved back meanwhile
            self._problem = None
            return ReloadOutcome("unchanged", current, before)
        model = LoadedModel(
            self.name,
            self.alias,
            found.version,
            found.run_id,
            found.bundle,
            datetime.now(self._tz),
            found.path,
        )
        for callback in self._callbacks:
            try:
                callback(model)
            except Exception as exc:  # noqa: BLE001 - a consumer's failure keeps the old model
                name = getattr(callback, "__qualname__", repr(callback))
                detail = f"version {model.version} was refused by {name}: {_describe(exc)}"
                return self._failed("callback", current, model.version, detail)
        self._current, self._problem = model, None
        self.metrics.model_reloaded()
        log.info(
            "model loaded",
            extra={**self._where(), "version": model.version, "previous_version": before,
                   "run_id": model.run_id},
        )  # fmt: skip
        return ReloadOutcome("loaded", model, before)

    def _failed(
        self, stage: Stage, current: LoadedModel | None, version: str | None, detail: str
    ) -> ReloadOutcome:
        serving = None if current is None else current.version
        self._problem = detail if current is None else f"{detail} (still serving {serving})"
        self.metrics.model_reload_failed(stage)
        log.error(
            "model reload failed",
            extra={**self._where(), "stage": stage, "version": version,
                   "serving_version": serving, "error": detail},
        )  # fmt: skip
        return ReloadOutcome("failed", current, serving, self._problem)

    def _where(self) -> dict[str, str]:
        return {"model_name": self.name, "alias": self.alias}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, registry.RegistryError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def reload_audited(models: ModelHolder, store: Store, actor: str) -> ReloadOutcome:
    """:meth:`ModelHolder.reload` on an administrator's request, recorded in the audit
    chain (action ``model.reload``, whatever its outcome) once the load is over, so the
    store's write lock is not held while a bundle downloads."""
    outcome = models.reload()
    served = outcome.model
    details = {
        "outcome": outcome.outcome,
        "version": None if served is None else served.version,
        "previous_version": outcome.previous_version,
        "detail": outcome.detail,
    }
    with store.transaction() as session:
        audit.append(
            session,
            actor,
            "model.reload",
            subject_type="model",
            subject_id=f"{models.name}@{models.alias}",
            details=details,
        )
    return outcome
