"""Parameters of a simulation run (documented in ``docs/simulator.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path

from features.schema import GiamSatError

#: Dossier-level anomaly types, in the order they are injected.
DOSSIER_ANOMALIES: tuple[str, ...] = (
    "clock_reset",
    "backdated",
    "skipped_step",
    "out_of_order",
    "excess_supplements",
    "rework_loop",
    "ping_pong",
    "off_route_transfer",
    "idle_then_rush",
    "forced_in_person",
)
#: Entity-level anomaly types (an officer, agency, agency pair, desk or intermediary).
ENTITY_ANOMALIES: tuple[str, ...] = (
    "favouritism",
    "selective_slowness",
    "off_hours_approvals",
    "agency_holds",
    "rating_stuffing",
    "intermediary_fanout",
)
ANOMALY_TYPES: tuple[str, ...] = DOSSIER_ANOMALIES + ENTITY_ANOMALIES


class SimulationConfigError(GiamSatError, ValueError):
    """A simulation parameter out of its range."""


@dataclass(frozen=True)
class AnomalyRates:
    """How often each anomaly is injected.

    Dossier-level rates are shares of all dossiers (a dossier carries at most one injected
    anomaly; ``clock_reset`` draws only from dossiers that are late, so it can fall short).
    Entity-level rates are counts per province of entities turned bad (at least one when
    the rate is positive).
    """

    clock_reset: float = 0.004
    backdated: float = 0.002
    skipped_step: float = 0.002
    out_of_order: float = 0.002
    excess_supplements: float = 0.002
    rework_loop: float = 0.002
    ping_pong: float = 0.002
    off_route_transfer: float = 0.002
    idle_then_rush: float = 0.002
    forced_in_person: float = 0.002
    favouritism: float = 2
    selective_slowness: float = 2
    off_hours_approvals: float = 2
    agency_holds: float = 1
    rating_stuffing: float = 1
    intermediary_fanout: float = 2

    @classmethod
    def scaled(cls, anomaly_rate: float) -> AnomalyRates:
        """Rates whose dossier-level shares add up to ``anomaly_rate`` (entity counts scale too).

        ``anomaly_rate=0.022`` gives the defaults; 0 switches every anomaly off.
        """
        if not 0 <= anomaly_rate <= 0.5:
            raise SimulationConfigError(f"anomaly_rate must be in [0, 0.5], got {anomaly_rate}")
        base = cls()
        factor = anomaly_rate / base.dossier_total
        values = {}
        for f in fields(cls):
            value = getattr(base, f.name)
            if f.name in DOSSIER_ANOMALIES:
                values[f.name] = value * factor
            else:
                values[f.name] = 0.0 if anomaly_rate == 0 else max(1.0, round(value * factor**0.5))
        return cls(**values)

    @property
    def dossier_total(self) -> float:
        return float(sum(getattr(self, name) for name in DOSSIER_ANOMALIES))

    def rate(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a run depends on; the same config and seed give the same log."""

    provinces: int = 1
    months: int = 12
    start: date = date(2025, 7, 1)
    seed: int = 0
    #: dossiers per month of an average province (before seasonality); ~10,000 after the
    #: 2025 merger, of which ~45 % at the provincial centre and its branches.
    dossiers_per_month: float = 10_000.0
    #: multiplies arrivals but not staffing: > 1 overloads the agencies (stress scenarios).
    load_factor: float = 1.0
    communes_per_province: int = 100
    branches_per_province: int = 6
    anomalies: AnomalyRates = field(default_factory=AnomalyRates)
    #: share of dossiers that need one round of supplementary documents.
    supplement_rate: float = 0.14
    #: shares of dossiers rejected, withdrawn, and paused for verification (besides the
    #: pauses for financial obligations of land procedures).
    rejection_rate: float = 0.02
    withdrawal_rate: float = 0.008
    pause_rate: float = 0.02
    #: share of returned dossiers whose applicant leaves a QR rating.
    rating_rate: float = 0.35
    #: mean utilisation of officers at the planned load; bottleneck agencies run hotter.
    utilisation: float = 0.6
    bottleneck_share: float = 0.15
    #: write raw citizen ID numbers / tax codes instead of keyed pseudonyms.
    raw_identities: bool = False
    #: None: the default catalogue of the package.
    catalogue_path: Path | None = None
    #: a moment (ISO, Asia/Ho_Chi_Minh if naive): also write the events known by then.
    as_of: str | None = None
    write_csv: bool = False
    #: dossiers per Parquet part when streaming (bounds memory).
    batch_dossiers: int = 60_000

    def __post_init__(self) -> None:
        if self.provinces < 1:
            raise SimulationConfigError(f"provinces must be >= 1, got {self.provinces}")
        if not 1 <= self.months <= 120:
            raise SimulationConfigError(f"months must be in 1..120, got {self.months}")
        if self.dossiers_per_month <= 0 or self.load_factor <= 0:
            raise SimulationConfigError("dossiers_per_month and load_factor must be > 0")
        if not 0 < self.utilisation < 1:
            raise SimulationConfigError(f"utilisation must be in (0, 1), got {self.utilisation}")
        for name in ("supplement_rate", "rejection_rate", "withdrawal_rate", "pause_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 0.5:
                raise SimulationConfigError(f"{name} must be in [0, 0.5], got {value}")
        if self.communes_per_province < 1 or self.branches_per_province < 0:
            raise SimulationConfigError("communes_per_province >= 1, branches_per_province >= 0")

    def with_(self, **changes: object) -> SimulationConfig:
        """A copy with some parameters changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
