"""Waste: per dossier, the citizen waiting days and officer touches that were not needed.

* supplement rounds after the first, and the days the applicant spent on them;
* rework and transfers beyond what the procedure normally needs (its median), ping-pong
  beyond its median shown as a reason (its transfers are in the transfers count);
* the excess of the honest duration over the duration a dossier like this one normally
  takes: a LightGBM median regressor given procedure, receiving unit, channel, season,
  time of day and the recent load of the procedure and unit. Idle time and rework show
  up here as days.

``waste_days`` = supplement days of extra rounds + excess duration (working days);
``waste_touches`` = extra rounds + extra rework + extra transfers. The score puts both in
one cost, ``waste_days + TOUCH_DAYS * waste_touches``, and maps it to [0, 1) as
``cost / (cost + scale_)`` where ``scale_`` is the 90th percentile of the training cost:
0.5 means as wasteful as the worst tenth of the training period. Higher = more waste.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from features.context import CATEGORICAL as CONTEXT_CATEGORICAL
from features.recent import SPECS as RECENT_SPECS
from models.boosting import booster_from_text, read_json, train_booster, write_json
from models.dataset import EmptyTableError
from models.matrix import FeatureMatrix

__all__ = ["WASTE_COLUMNS", "WasteModel", "waste_by"]

#: officer effort of one needless touch, in working days, to weigh touches against days.
TOUCH_DAYS = 0.5
#: inputs of the expected-duration regressor: what a dossier is, where and when it came in.
EXPECTED_INPUTS = (
    *CONTEXT_CATEGORICAL,
    "start_month",
    "start_weekday",
    "start_hour",
    "statutory_days",
    *(spec.name for spec in RECENT_SPECS),
)
#: counts whose procedure median is the norm; waste is what exceeds it.
NORMED = ("rework", "transfers", "ping_pong", "idle_excess_days")
WASTE_COLUMNS = (
    "extra_supplement_rounds",
    "extra_supplement_days",
    "extra_rework",
    "extra_transfers",
    "extra_ping_pong",
    "expected_days",
    "excess_days",
    "waste_days",
    "waste_touches",
    "waste_share",
    "waste_score",
)


class WasteModel(BaseEstimator):
    """Learned norms and expected duration; :meth:`transform` gives :data:`WASTE_COLUMNS`."""

    def __init__(self, rounds: int = 200, num_leaves: int = 31, seed: int = 0) -> None:
        self.rounds = rounds
        self.num_leaves = num_leaves
        self.seed = seed

    def fit(self, closed: pd.DataFrame) -> WasteModel:
        """Learn from finished dossiers (a :func:`models.dataset.closed_table`)."""
        closed = closed[closed["finished"].astype(bool)] if "finished" in closed else closed
        if len(closed) < 20:
            raise EmptyTableError("the waste model needs at least 20 finished dossiers")
        procs = closed[s.PROCEDURE_CODE].astype("string")
        self.norms_ = {
            c: closed[c].groupby(procs.to_numpy()).median().astype(float).to_dict()
            for c in NORMED
            if c in closed
        }
        self.overall_ = {c: float(closed[c].median()) for c in NORMED if c in closed}
        inputs = [c for c in EXPECTED_INPUTS if c in closed]
        self.matrix_ = FeatureMatrix.fit(
            closed[inputs], categorical=[c for c in CONTEXT_CATEGORICAL if c in inputs]
        )
        y = closed["honest_clock_days"].to_numpy(dtype=np.float64)
        known = np.isfinite(y)
        self.booster_ = train_booster(
            self.matrix_.transform(closed[known]),
            y[known],
            objective="quantile",
            rounds=self.rounds,
            seed=self.seed,
            params={"alpha": 0.5, "num_leaves": self.num_leaves},
        )
        cost = self._cost(self._raw(closed))
        self.scale_ = float(max(np.nanquantile(cost, 0.9), 1e-3)) if len(cost) else 1.0
        return self

    def _norm(self, column: str, procs: pd.Series) -> np.ndarray:
        table = self.norms_.get(column, {})
        fallback = self.overall_.get(column, 0.0)
        return procs.map(table).astype("Float64").fillna(fallback).to_numpy(dtype=np.float64)

    def _raw(self, table: pd.DataFrame) -> pd.DataFrame:
        procs = table[s.PROCEDURE_CODE].astype("string")
        out = pd.DataFrame(index=table.index)
        rounds = table["supplement_rounds"].to_numpy(dtype=np.float64)
        extra = np.maximum(rounds - 1.0, 0.0)
        days = table["supplement_days"].to_numpy(dtype=np.float64)
        out["extra_supplement_rounds"] = extra
        with np.errstate(invalid="ignore", divide="ignore"):
            out["extra_supplement_days"] = np.where(rounds > 0, days * extra / rounds, 0.0)
        for column, name in (("rework", "extra_rework"), ("transfers", "extra_transfers"),
                             ("ping_pong", "extra_ping_pong")):  # fmt: skip
            value = table[column].to_numpy(dtype=np.float64)
            out[name] = np.maximum(value - self._norm(column, procs), 0.0)
        expected = np.maximum(np.asarray(self.booster_.predict(self.matrix_.transform(table))), 0)
        honest = table["honest_clock_days"].to_numpy(dtype=np.float64)
        out["expected_days"] = expected
        out["excess_days"] = np.nan_to_num(np.maximum(honest - expected, 0.0))
        out["waste_days"] = out["extra_supplement_days"].fillna(0) + out["excess_days"]
        out["waste_touches"] = (
            out["extra_supplement_rounds"] + out["extra_rework"] + out["extra_transfers"]
        )
        elapsed = table["elapsed_days"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(elapsed > 0, out["waste_days"] / elapsed, 0.0)
        out["waste_share"] = np.clip(share, 0.0, 1.0)
        return out

    @staticmethod
    def _cost(raw: pd.DataFrame) -> np.ndarray:
        return (raw["waste_days"] + TOUCH_DAYS * raw["waste_touches"]).to_numpy(np.float64)

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """The :data:`WASTE_COLUMNS` of each dossier of ``table`` (open or closed)."""
        check_is_fitted(self, "booster_")
        raw = self._raw(table)
        cost = self._cost(raw)
        raw["waste_score"] = cost / (cost + self.scale_)
        return raw

    def reasons(self, waste: pd.DataFrame, k: int = 3) -> list[str]:
        """The largest waste components of each dossier as text."""
        parts = {
            "extra_supplement_rounds": "supplement_rounds",
            "extra_rework": "rework",
            "extra_transfers": "transfers",
            "excess_days": "honest_clock_days",
        }
        days = waste[list(parts)].copy()
        days[["extra_supplement_rounds", "extra_rework", "extra_transfers"]] *= TOUCH_DAYS
        days["extra_supplement_rounds"] += waste["extra_supplement_days"].fillna(0)
        order = np.argsort(-days.to_numpy(), axis=1)[:, :k]
        names = list(parts)
        out = []
        for i, row in enumerate(order):
            texts = []
            for j in row:
                name = names[j]
                if days.iat[i, j] <= 0:
                    break
                texts.append(_waste_text(name, waste.iloc[i]))
            out.append("; ".join(texts))
        return out

    def save(self, path: Path) -> Path:
        check_is_fitted(self, "booster_")
        path.mkdir(parents=True, exist_ok=True)
        (path / "expected_duration.txt").write_text(self.booster_.model_to_string())
        write_json(
            path / "waste.json",
            {
                "params": self.get_params(),
                "matrix": self.matrix_.to_dict(),
                "norms": self.norms_,
                "overall": self.overall_,
                "scale": self.scale_,
            },
        )
        return path

    @classmethod
    def load(cls, path: Path) -> WasteModel:
        meta = read_json(path / "waste.json")
        model = cls(**meta["params"])
        model.matrix_ = FeatureMatrix.from_dict(meta["matrix"])
        model.norms_ = meta["norms"]
        model.overall_ = meta["overall"]
        model.scale_ = float(meta["scale"])
        model.booster_ = booster_from_text((path / "expected_duration.txt").read_text())
        return model


def _waste_text(name: str, row: pd.Series) -> str:
    if name == "excess_days":
        return (
            f"{row['excess_days']:.1f} working days longer than a dossier like this usually "
            f"takes ({row['expected_days']:.1f})"
        )
    if name == "extra_supplement_rounds":
        return (
            f"{row['extra_supplement_rounds']:.0f} supplement round(s) after the first, "
            f"{row['extra_supplement_days']:.1f} working days of the applicant's time"
        )
    label = {"extra_rework": "steps repeated", "extra_transfers": "transfers"}[name]
    return f"{row[name]:.0f} more {label} than the procedure usually needs"


def waste_by(dossiers: pd.DataFrame, waste: pd.DataFrame, key: str) -> pd.DataFrame:
    """Waste per entity (``key`` a column of ``dossiers``: first_agency, procedure_code,
    main officer...): dossiers, waste days and touches, and waste as a share of the time
    its dossiers took."""
    frame = pd.DataFrame(
        {
            key: dossiers[key].astype("string").to_numpy(),
            "waste_days": waste["waste_days"].to_numpy(),
            "waste_touches": waste["waste_touches"].to_numpy(),
            "elapsed_days": dossiers["elapsed_days"].to_numpy(dtype=np.float64),
        }
    ).dropna(subset=[key])
    out = frame.groupby(key).agg(
        dossiers=("waste_days", "size"),
        waste_days=("waste_days", "sum"),
        waste_touches=("waste_touches", "sum"),
        elapsed_days=("elapsed_days", "sum"),
    )
    out["waste_share"] = np.where(out["elapsed_days"] > 0,
                                  out["waste_days"] / out["elapsed_days"], 0.0)  # fmt: skip
    return out.sort_values("waste_days", ascending=False)
