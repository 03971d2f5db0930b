"""Shared simulated logs (simulated once per session: they take a few seconds each)."""

from __future__ import annotations

import pytest

from simulator import AnomalyRates, SimulationConfig, simulate_log
from simulator.run import SimulatedLog
from tests.conftest import TEST_KEY

#: generous anomaly rates so that a one-month province holds every type several times.
TEST_RATES = AnomalyRates.scaled(0.1)


def _simulate(config: SimulationConfig) -> SimulatedLog:
    from giamsat.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIAMSAT_PSEUDONYM_KEY", TEST_KEY.decode())
        mp.setenv("GIAMSAT_ENVIRONMENT", "test")
        get_settings.cache_clear()
        try:
            return simulate_log(config)
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="session")
def anomalous_log() -> SimulatedLog:
    """One province-month with many anomalies of every type."""
    return _simulate(SimulationConfig(months=1, seed=3, anomalies=TEST_RATES))


@pytest.fixture(scope="session")
def default_log() -> SimulatedLog:
    """One province-month with the default anomaly rates (the calibration reference)."""
    return _simulate(SimulationConfig(months=1, seed=1))
