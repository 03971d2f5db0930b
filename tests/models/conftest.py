"""Shared fixtures of the model tests: one simulated province over a few months, with its
ground truth, simulated once per test session (per xdist worker)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from features.calendar import WorkingCalendar
from features.engine import Reference
from models.bundle import ModelBundle
from simulator import SimulationConfig, simulate_log
from simulator.run import default_catalogue
from tests.conftest import TEST_KEY


@dataclass(frozen=True)
class ModelLog:
    """A simulated log ready for the models: events, reference data and labels."""

    events: pd.DataFrame
    ref: Reference
    labels: pd.DataFrame  # per dossier: late, reported_on_time, anomaly_type, entity
    entity_labels: pd.DataFrame


def simulated_model_log(months: int = 4, seed: int = 21) -> ModelLog:
    """A province over ``months`` months (about 10,000 dossiers a month)."""
    return model_log_of(SimulationConfig(months=months, seed=seed))


def model_log_of(config: SimulationConfig) -> ModelLog:
    """A simulated log under the tests' pseudonym key, with its reference data."""
    from giamsat.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIAMSAT_PSEUDONYM_KEY", TEST_KEY.decode())
        mp.setenv("GIAMSAT_ENVIRONMENT", "test")
        get_settings.cache_clear()
        try:
            sim = simulate_log(config)
        finally:
            get_settings.cache_clear()
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    agencies = sim.agencies[["agency_id", "unit_type"]].astype("string")
    ref = Reference(calendar, default_catalogue(), agencies)
    labels = sim.labels_dossiers.set_index("dossier_id")
    return ModelLog(sim.events, ref, labels, sim.labels_entities)


@pytest.fixture(scope="session")
def model_log() -> ModelLog:
    return simulated_model_log()


@dataclass(frozen=True)
class SmallBundle:
    """A quickly trained bundle on a two-month province, and that log."""

    log: ModelLog
    bundle: ModelBundle


def train_small_bundle(log: ModelLog, rounds: int = 60) -> ModelBundle:
    """Delay and waste models with few rounds (enough to test the plumbing, not quality),
    and the integrity detectors."""
    from models.dataset import closed_table, prefix_table, temporal_split
    from models.delay import DelayModel
    from models.lifecycle import fit_integrity, waste_threshold
    from models.waste import WasteModel

    table = prefix_table(log.events, log.ref)
    split = temporal_split(table.groupby(level=0)["started_at"].first())
    delay = DelayModel(rounds=rounds, quantile_rounds=rounds // 2).fit(
        split.settled(table, 0), split.settled(table, 1)
    )
    closed = closed_table(log.events, log.ref)
    waste = WasteModel(rounds=rounds // 2).fit(closed[split.period(closed["started_at"]) == 0])
    threshold = waste_threshold(waste, log.events, log.ref, split, 0.01)
    integrity = fit_integrity(log.events, log.ref, split, 0.02)
    return ModelBundle(
        delay,
        waste,
        split,
        threshold,
        metrics={"delay_auc_half": 0.5},
        integrity=integrity,
        catalogue=log.ref.catalogue,
        agencies=log.ref.agencies,
        calendar=log.ref.calendar,
    )


@pytest.fixture(scope="session")
def small() -> SmallBundle:
    log = simulated_model_log(months=2, seed=5)
    return SmallBundle(log, train_small_bundle(log))
