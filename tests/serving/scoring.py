"""A small simulated province and a model bundle trained on it, for the service's scoring
tests (session-scoped: trained once per test process)."""

from __future__ import annotations

from dataclasses import dataclass

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


@pytest.fixture(scope="session")
def scoring_case() -> ScoringCase:
    log = model_log_of(
        SimulationConfig(months=2, seed=13, dossiers_per_month=3_000, communes_per_province=20)
    )
    bundle = train_small_bundle(log, rounds=30)
    span = log.events[s.TIMESTAMP]
    cut = (span.min() + (span.max() - span.min()) * 0.8).floor("h")
    return ScoringCase(log.events, log.ref, bundle, cut, cut + pd.Timedelta(days=7))
