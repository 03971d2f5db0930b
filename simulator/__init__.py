"""GiamSat simulator: realistic processing logs of Vietnamese administrative procedures,
with ground-truth anomalies (see ``docs/simulator.md``).

Public API: :class:`SimulationConfig`, :class:`AnomalyRates`, :func:`simulate`,
:func:`simulate_frame`, :func:`simulate_log`, :func:`default_catalogue`.
"""

from simulator.config import ANOMALY_TYPES, AnomalyRates, SimulationConfig
from simulator.run import (
    SimulatedLog,
    SimulationResult,
    default_catalogue,
    simulate,
    simulate_frame,
    simulate_log,
)

__all__ = [
    "ANOMALY_TYPES",
    "AnomalyRates",
    "SimulatedLog",
    "SimulationConfig",
    "SimulationResult",
    "default_catalogue",
    "simulate",
    "simulate_frame",
    "simulate_log",
]
