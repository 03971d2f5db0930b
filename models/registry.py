"""MLflow tracking and the Model Registry. Every MLflow call of GiamSat lives here, inside
functions: importing this module configures nothing.

A training run logs its parameters, metrics, feature list, evaluation report (Markdown
and PNG plots) and the model bundle (:mod:`models.bundle`) as an MLflow model whose
artifacts are the bundle's native files; the model is registered under
``settings.model_name`` and gets the alias ``challenger`` (and ``champion`` when there is
none yet). :func:`promote` moves ``champion`` after comparing the two on one test period.
Serving and batch scoring load a bundle by alias (:func:`load_bundle`) and call the
native LightGBM Boosters, never MLflow's pyfunc wrapper.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features import schema as s
from giamsat.settings import Settings
from models.bundle import ModelBundle

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "RegistryError",
    "RegisteredBundle",
    "load_bundle",
    "log_training",
    "set_alias",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
ENTRY = Path(__file__).resolve().parent / "mlflow_entry.py"


class RegistryError(s.GiamSatError, LookupError):
    """No such registered model, version or alias, or the tracking store is unreachable."""


@dataclass(frozen=True)
class RegisteredBundle:
    """A bundle and where it came from in the registry."""

    bundle: ModelBundle
    version: str
    run_id: str
    path: Path


@contextmanager
def tracking(settings: Settings) -> Iterator[Any]:
    """The MLflow client for the configured store, the experiment created if needed."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    # MLflow's INFO lines (table creation, migrations) and its note that a pyfunc without
    # a signature has none are noise on a command line; errors still show.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(settings.mlflow_experiment) is None:
        root = settings.mlflow_artifact_root
        if "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
            root = Path(root).resolve().as_uri()
        mlflow.create_experiment(settings.mlflow_experiment, artifact_location=root)
    mlflow.set_experiment(settings.mlflow_experiment)
    yield MlflowClient(tracking_uri=uri)


def tracking_uri(settings: Settings) -> str:
    """The tracking URI, a relative SQLite path made absolute (MLflow keeps one store per
    URI string for the whole process, so a relative one would follow the first working
    directory it was used in) and its folder created."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def log_training(
    settings: Settings,
    bundle: ModelBundle,
    *,
    params: dict[str, Any],
    report: Path | None = None,
    run_name: str | None = None,
) -> RegisteredBundle:
    """Log a trained bundle as an MLflow run and register it (alias ``challenger``; also
    ``champion`` if the registered model has none yet)."""
    import mlflow

    with tracking(settings) as client, tempfile.TemporaryDirectory() as tmp:
        path = bundle.save(Path(tmp) / "bundle")
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            finite = {_metric_name(k): float(v) for k, v in bundle.metrics.items()
                      if v == v and abs(float(v)) != float("inf")}  # fmt: skip
            mlflow.log_metrics(finite)
            mlflow.log_text(json.dumps(bundle.features(), indent=1), "features.json")
            if report is not None and report.exists():
                mlflow.log_artifacts(str(report), artifact_path="report")
            info = mlflow.pyfunc.log_model(
                name="bundle",
                python_model=str(ENTRY),
                artifacts={"bundle": str(path)},
                registered_model_name=settings.model_name,
                pip_requirements=["lightgbm", "pandas", "numpy", "scikit-learn"],
            )
        version = str(info.registered_model_version)
        set_alias(settings, CHALLENGER, version, client=client)
        try:
            client.get_model_version_by_alias(settings.model_name, CHAMPION)
        except Exception:  # noqa: BLE001 - MLflow raises its own RestException here
            set_alias(settings, CHAMPION, version, client=client)
        return RegisteredBundle(bundle, version, run.info.run_id, path)


def set_alias(settings: Settings, alias: str, version: str, *, client: Any = None) -> None:
    """Point ``alias`` of the registered model at ``version``."""
    if client is None:
        with tracking(settings) as c:
            c.set_registered_model_alias(settings.model_name, alias, str(version))
        return
    client.set_registered_model_alias(settings.model_name, alias, str(version))


def resolve(settings: Settings, alias: str) -> tuple[str, str]:
    """(version, run id) that ``alias`` points at; :class:`RegistryError` if none."""
    with tracking(settings) as client:
        try:
            mv = client.get_model_version_by_alias(settings.model_name, alias)
        except Exception as exc:  # noqa: BLE001 - MLflow raises RestException / MlflowException
            raise RegistryError(
                f"no model {settings.model_name!r} with alias {alias!r} in "
                f"{settings.mlflow_tracking_uri}: run 'giamsat train' first"
            ) from exc
        return str(mv.version), str(mv.run_id)


def load_bundle(settings: Settings, alias: str = CHAMPION) -> RegisteredBundle:
    """The bundle ``alias`` points at, downloaded once per version into the model cache."""
    import mlflow

    version, run_id = resolve(settings, alias)
    target = Path(settings.model_cache) / settings.model_name / version
    bundle_dir = target / "artifacts" / "bundle"
    if not (bundle_dir / "bundle.json").exists():
        with tracking(settings):
            tmp = Path(tempfile.mkdtemp(prefix="bundle-", dir=_parent(target)))
            try:
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{settings.model_name}/{version}", dst_path=str(tmp)
                )
                if target.exists():
                    shutil.rmtree(target)
                tmp.rename(target)  # atomic: a crash never leaves half a bundle in the cache
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return RegisteredBundle(ModelBundle.load(bundle_dir), version, run_id, bundle_dir)


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def tag_version(settings: Settings, version: str, tags: dict[str, str]) -> None:
    """Record facts (a promotion decision and its figures) on a registered version."""
    with tracking(settings) as client:
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, str(version), key, str(value)[:5000])


def log_evaluation(
    settings: Settings, version: str, metrics: dict[str, float], report: Path | None
) -> str:
    """Log an evaluation of a registered version as its own run; returns the run id."""
    tags = {"evaluates": f"{settings.model_name}/{version}"}
    return log_report_run(settings, f"evaluate v{version}", tags, metrics, report)


def log_report_run(
    settings: Settings,
    name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    report: Path | None,
) -> str:
    """A run of its own holding finite ``metrics`` and the ``report`` folder as artifacts."""
    import mlflow

    with tracking(settings), mlflow.start_run(run_name=name) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({_metric_name(k): float(v) for k, v in metrics.items()
                            if v == v and abs(float(v)) != float("inf")})  # fmt: skip
        if report is not None and report.exists():
            mlflow.log_artifacts(str(report), artifact_path="report")
        return str(run.info.run_id)
