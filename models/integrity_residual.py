"""The residual detector: how far a dossier's features are from what its procedure's
dossiers look like together, for the oddities no named rule describes.

Per procedure (pooled for small ones), features are log-scaled, centred on the median and
divided by a robust spread; a principal-component model of the procedure's typical
variation is removed, and the score is the root-mean-square of what is left. A dossier
that is long *and* has many events is ordinary if the two usually go together; one that
is long with few events is not. Everything is kept as JSON arrays (no pickle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA

from features.process import NotFittedError
from models.explain import describe
from models.tails import procedure_groups

__all__ = ["RESIDUAL_COLUMNS", "ResidualDetector", "residual", "scaled"]

#: behaviour features the residual looks at (those present in a table are used).
RESIDUAL_COLUMNS = (
    "events",
    "distinct_activities",
    "distinct_officers",
    "distinct_agencies",
    "handovers",
    "transfers",
    "rework",
    "elapsed_days",
    "honest_clock_ratio",
    "reported_clock_ratio",
    "clock_gap_days",
    "supplement_rounds",
    "supplement_days",
    "pauses",
    "paused_days",
    "longest_idle_days",
    "idle_excess_days",
    "off_hours_share",
    "holiday_share",
    "max_record_lag_hours",
    "payments",
    "ratings",
)
#: share of the procedure's variance the component model keeps as "typical".
KEEP_VARIANCE = 0.8
#: smallest robust spread of a log-scaled feature (a feature that is almost always 0
#: would otherwise make any non-zero value infinitely odd).
MIN_SPREAD = 0.25
POOLED = "*"


def _transform(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return scaled(table[columns].to_numpy(dtype=np.float64, na_value=np.nan))


def scaled(x: np.ndarray) -> np.ndarray:
    """Features (dossiers x columns, NaN where missing) on the detector's log scale."""
    return np.nan_to_num(np.sign(x) * np.log1p(np.abs(x)), nan=0.0)


def _model(x: np.ndarray) -> dict[str, Any]:
    centre = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    spread = np.maximum((q75 - q25) / 1.349, MIN_SPREAD)
    z = (x - centre) / spread
    k = 0
    components = np.zeros((0, x.shape[1]))
    if len(x) > x.shape[1] and x.shape[1] > 1:
        pca = PCA(svd_solver="full").fit(z)
        k = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), KEEP_VARIANCE) + 1)
        components = pca.components_[: min(k, x.shape[1] - 1)]
    mean = z.mean(axis=0)
    return {
        "centre": centre.tolist(),
        "spread": spread.tolist(),
        "mean": mean.tolist(),
        "components": components.tolist(),
    }


def residual(x: np.ndarray, m: dict[str, Any]) -> np.ndarray:
    """What the group model ``m`` leaves of scaled features (dossiers x columns)."""
    z = (x - np.asarray(m["centre"])) / np.asarray(m["spread"])
    d = z - np.asarray(m["mean"])
    comps = np.asarray(m["components"], dtype=np.float64).reshape(-1, x.shape[1])
    return d - (d @ comps.T) @ comps if len(comps) else d


class ResidualDetector(BaseEstimator):
    """Residual of a dossier's features from its procedure's typical variation, >= 0."""

    def __init__(self, min_group: int = 200) -> None:
        self.min_group = min_group

    def fit(self, table: pd.DataFrame) -> ResidualDetector:
        self.columns_ = [c for c in RESIDUAL_COLUMNS if c in table]
        x = _transform(table, self.columns_)
        groups = procedure_groups(table)
        self.models_ = {POOLED: _model(x)}
        for key in pd.unique(groups):
            at = groups == key
            if at.sum() >= self.min_group:
                self.models_[str(key)] = _model(x[at])
        return self

    def _residuals(self, table: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "models_"):
            raise NotFittedError("this ResidualDetector is not fitted yet: call fit first")
        x = _transform(table, self.columns_)
        groups = procedure_groups(table)
        keys = np.where(np.isin(groups, list(self.models_)), groups, POOLED)
        out = np.zeros_like(x)
        for key in pd.unique(keys):
            at = keys == key
            out[at] = residual(x[at], self.models_[str(key)])
        return out

    def score_samples(self, table: pd.DataFrame) -> np.ndarray:
        """Root-mean-square residual per dossier (0 = typical; higher = more unusual)."""
        r = self._residuals(table)
        return np.sqrt((r**2).mean(axis=1)) if r.shape[1] else np.zeros(len(table))

    def reasons(self, table: pd.DataFrame) -> list[str]:
        """The feature furthest from its procedure's norm, in words."""
        r = self._residuals(table)
        if not r.shape[1]:
            return [""] * len(table)
        worst = np.argmax(np.abs(r), axis=1)
        groups = procedure_groups(table)
        out = []
        for i, j in enumerate(worst):
            name = self.columns_[j]
            m = self.models_.get(str(groups[i]), self.models_[POOLED])
            norm = float(np.expm1(m["centre"][j]))
            value = table[name].iloc[i]
            out.append("unusual for its procedure: " + describe(name, value, norm))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"min_group": self.min_group, "columns": self.columns_, "models": self.models_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResidualDetector:
        model = cls(int(data["min_group"]))
        model.columns_ = list(data["columns"])
        model.models_ = {str(k): v for k, v in data["models"].items()}
        return model
