"""A small simulated province and a model bundle trained on it, for the service's scoring
tests (session-scoped: trained once per test process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from features import schema as s
from features.engine import Reference
from models.bundle import ModelBundle
from simulator.config import SimulationConfig
from tests.models.conftest import model_log_of, train_small_bundle


@dataclass(frozen=True)
class ScoringCase:
    """Events (pseudonymised), reference data, a bundle, and two scoring times inside the
    log's last month."""

    events: pd.DataFrame
    ref: Reference
    bundle: ModelBundle
    cut: pd.Timestamp
    later: pd.Timestamp


@dataclass(frozen=True)
class Registered:
    """An MLflow tracking store (SQLite in a temporary folder) where the scoring case's
    bundle is version 1 and champion, as settings changes."""

    changes: dict[str, Any]
    version: str


@pytest.fixture(scope="session")
def scoring_registry(
    scoring_case: ScoringCase, tmp_path_factory: pytest.TempPathFactory
) -> Registered:
    from models import registry
    from tests.serving.api_helpers import settings

    root = tmp_path_factory.mktemp("mlflow-scoring")
    changes = {
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_root": str(root / "artifacts"),
        "model_cache": root / "cache",
    }
    done = registry.log_training(settings(**changes), scoring_case.bundle, params={"case": 1})
    return Registered(changes, done.version)


@pytest.fixture(scope="session")
def scoring_case() -> ScoringCase:
    log = model_log_of(
        SimulationConfig(months=2, seed=13, dossiers_per_month=3_000, communes_per_province=20)
    )
    bundle = train_small_bundle(log, rounds=30)
    starts = log.events.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    cut = pd.Timestamp(starts.quantile(0.85)).floor("h")  # while dossiers still arrive
    return ScoringCase(log.events, log.ref, bundle, cut, cut + pd.Timedelta(days=7))
