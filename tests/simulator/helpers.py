"""Small views of a simulated log used by several tests."""

from __future__ import annotations

import pandas as pd

from features.calendar import WorkingCalendar
from simulator import default_catalogue
from simulator.run import SimulatedLog


def calendar() -> WorkingCalendar:
    return WorkingCalendar.for_country("VN", first_year=2024, last_year=2029)


def statutory_days(log: SimulatedLog) -> pd.Series:
    """Statutory working days of each dossier."""
    days = {p.code: p.statutory_days for p in default_catalogue()}
    first = log.events.groupby("dossier_id", sort=False, observed=True).procedure_code.first()
    return first.astype(str).map(days).astype(float)


def with_units(log: SimulatedLog) -> pd.DataFrame:
    """Events with the unit type of their agency and of their transfer target."""
    unit = log.agencies.set_index("agency_id").unit_type
    ev = log.events.copy()
    ev["unit"] = ev.agency_id.astype(str).map(unit)
    ev["target_unit"] = ev.target_agency_id.astype("string").map(unit)
    return ev


def labelled(log: SimulatedLog, anomaly: str) -> pd.Index:
    lab = log.labels_dossiers
    return pd.Index(lab.loc[lab.anomaly_type == anomaly, "dossier_id"])


def normal(log: SimulatedLog) -> pd.Index:
    lab = log.labels_dossiers
    return pd.Index(lab.loc[lab.anomaly_type.isna(), "dossier_id"])
