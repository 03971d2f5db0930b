"""A model bundle: everything batch and online scoring load, as one directory of native
files (LightGBM text models, JSON), with no pickle: the delay model, the waste model, the
alert thresholds, the training split and the metrics it was trained with.

Layout::

    bundle.json     version of the layout, split, thresholds, metrics, feature list
    delay/          models.delay.DelayModel.save
    waste/          models.waste.WasteModel.save
    integrity.json  models.integrity.IntegrityModel.to_dict (absent: no integrity model)
    catalogue.json  the procedure catalogue trained with (absent: none, or an older bundle)
    agencies.json   the agency directory trained with (absent: none, or an older bundle)

The working calendar's settings are in bundle.json. :meth:`ModelBundle.reference` gives
back the reference data (calendar, catalogue, agencies, process) scoring must use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue, catalogue_document, parse_catalogue
from features.engine import Reference
from features.process import NormalProcess
from models.boosting import read_json, write_json
from models.dataset import Split
from models.delay import DelayModel
from models.integrity import IntegrityModel
from models.waste import WasteModel

__all__ = ["BundleError", "ModelBundle"]

LAYOUT = 1


class BundleError(s.GiamSatError, ValueError):
    """A directory that is not a model bundle (or one of another layout)."""


@dataclass
class ModelBundle:
    """The models scoring needs, and how they were trained."""

    delay: DelayModel
    waste: WasteModel
    split: Split
    waste_threshold: float
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: the normal process learned at training for logs without a catalogue; scoring
    #: compares new dossiers with it rather than with a process learned from them.
    process: NormalProcess | None = None
    #: the integrity detectors and their alert threshold (None in bundles trained before).
    integrity: IntegrityModel | None = None
    #: the reference data trained with (None in bundles saved before they were kept):
    #: scoring must read dossiers against the same catalogue, directory and calendar.
    catalogue: Catalogue | None = None
    agencies: pd.DataFrame | None = None
    calendar: WorkingCalendar | None = None

    def reference(self, calendar: WorkingCalendar | None = None) -> Reference:
        """The reference data to score with: the bundle's calendar (else ``calendar``,
        else Vietnam's), catalogue, agency directory and normal process."""
        chosen = self.calendar or calendar or WorkingCalendar.for_country("VN")
        return Reference(chosen, self.catalogue, self.agencies, self.process)

    @property
    def delay_threshold(self) -> float:
        return float(self.delay.threshold_)

    def features(self) -> list[str]:
        """Every model input, delay model first."""
        names = list(self.delay.matrix_.columns)
        return names + [c for c in self.waste.matrix_.columns if c not in names]

    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.delay.save(path / "delay")
        self.waste.save(path / "waste")
        if self.integrity is not None:
            write_json(path / "integrity.json", self.integrity.to_dict())
        if self.catalogue is not None:
            write_json(path / "catalogue.json", catalogue_document(self.catalogue))
        if self.agencies is not None:
            write_json(path / "agencies.json", _agencies_to_dict(self.agencies))
        write_json(
            path / "bundle.json",
            {
                "layout": LAYOUT,
                "split": {
                    "calibrate_from": self.split.calibrate_from.isoformat(),
                    "test_from": self.split.test_from.isoformat(),
                },
                "waste_threshold": self.waste_threshold,
                "delay_threshold": self.delay_threshold,
                "metrics": {k: _finite(v) for k, v in self.metrics.items()},
                "features": self.features(),
                "info": self.info,
                "process": None if self.process is None else process_to_dict(self.process),
                "calendar": None if self.calendar is None else calendar_to_dict(self.calendar),
            },
        )
        return path

    @classmethod
    def load(cls, path: Path) -> ModelBundle:
        meta_path = path / "bundle.json"
        if not meta_path.exists():
            raise BundleError(f"{path} is not a model bundle: bundle.json is missing")
        meta = read_json(meta_path)
        if meta.get("layout") != LAYOUT:
            raise BundleError(f"{path}: bundle layout {meta.get('layout')!r}, expected {LAYOUT}")
        split = Split(
            pd.Timestamp(meta["split"]["calibrate_from"]), pd.Timestamp(meta["split"]["test_from"])
        )
        return cls(
            delay=DelayModel.load(path / "delay"),
            waste=WasteModel.load(path / "waste"),
            split=split,
            waste_threshold=float(meta["waste_threshold"]),
            metrics={k: _number(v) for k, v in meta["metrics"].items()},
            info=dict(meta.get("info", {})),
            process=None if meta.get("process") is None else process_from_dict(meta["process"]),
            integrity=_integrity(path / "integrity.json"),
            catalogue=_catalogue(path / "catalogue.json"),
            agencies=_agencies(path / "agencies.json"),
            calendar=None if meta.get("calendar") is None else calendar_from_dict(meta["calendar"]),
        )


def process_to_dict(process: NormalProcess) -> dict[str, Any]:
    """A fitted normal process as JSON-able data (its calendar, if any, is not kept)."""
    timing = process.timing_.reset_index()
    return {
        "params": {k: v for k, v in process.get_params().items() if k != "calendar"},
        "activities": [str(a) for a in process.activities_],
        "counts": process.counts_.tolist(),
        "probabilities": process.probabilities_.tolist(),
        "frequencies": process.frequencies_.tolist(),
        "timing": {c: timing[c].tolist() for c in timing.columns},
        "uses_calendar": bool(process.uses_calendar_),
    }


def process_from_dict(data: dict[str, Any]) -> NormalProcess:
    process = NormalProcess(**data["params"])
    names = pd.Index(data["activities"])
    process.activities_ = names
    process.counts_ = np.asarray(data["counts"], dtype=np.int64)
    process.probabilities_ = np.asarray(data["probabilities"], dtype=np.float64)
    process.frequencies_ = pd.Series(np.asarray(data["frequencies"], dtype=np.float64), index=names)
    timing = pd.DataFrame(data["timing"])
    process.timing_ = timing.set_index(["from", "to"])
    process.uses_calendar_ = bool(data["uses_calendar"])
    return process


def calendar_to_dict(calendar: WorkingCalendar) -> dict[str, Any]:
    """The settings a working calendar is built from, as JSON-able data."""
    return {
        "country": calendar.country,
        "tz": calendar.tz,
        "extra_days_off": [d.isoformat() for d in calendar.extra_days_off],
        "working_days": [d.isoformat() for d in calendar.working_days],
        "office_hours": [[a.isoformat(), b.isoformat()] for a, b in calendar.office_hours],
        "first_year": calendar.first_year,
        "last_year": calendar.last_year,
    }


def calendar_from_dict(data: dict[str, Any]) -> WorkingCalendar:
    return WorkingCalendar.for_country(
        data["country"],
        tz=data["tz"],
        extra_days_off=[date.fromisoformat(d) for d in data["extra_days_off"]],
        working_days=[date.fromisoformat(d) for d in data["working_days"]],
        office_hours=[
            (time.fromisoformat(a), time.fromisoformat(b)) for a, b in data["office_hours"]
        ],
        first_year=int(data["first_year"]),
        last_year=int(data["last_year"]),
    )


def _agencies_to_dict(agencies: pd.DataFrame) -> dict[str, Any]:
    """The directory's columns as lists of strings (None where missing)."""
    text = agencies.astype("string")
    return {c: [None if pd.isna(v) else str(v) for v in text[c]] for c in text.columns}


def _agencies(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.DataFrame(read_json(path)).astype("string")


def _catalogue(path: Path) -> Catalogue | None:
    return parse_catalogue(read_json(path), source=str(path)) if path.exists() else None


def _integrity(path: Path) -> IntegrityModel | None:
    return IntegrityModel.from_dict(read_json(path)) if path.exists() else None


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
