"""A model bundle: everything batch and online scoring load, as one directory of native
files (LightGBM text models, JSON), with no pickle: the delay model, the waste model, the
alert thresholds, the training split and the metrics it was trained with.

Layout::

    bundle.json     version of the layout, split, thresholds, metrics, feature list
    delay/          models.delay.DelayModel.save
    waste/          models.waste.WasteModel.save
    integrity.json  models.integrity.IntegrityModel.to_dict (absent: no integrity model)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
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


def _integrity(path: Path) -> IntegrityModel | None:
    return IntegrityModel.from_dict(read_json(path)) if path.exists() else None


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
