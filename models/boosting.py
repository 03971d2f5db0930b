"""LightGBM pieces shared by the models: estimators on the model matrix that keep the
native Booster (serving calls it directly), isotonic calibration stored as plain arrays,
and (de)serialisation to text files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression

__all__ = ["Calibration", "booster_from_text", "train_booster"]

#: defaults shared by every booster; deterministic for a seed on any number of threads.
BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "cat_smooth": 20.0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
    # one thread: OpenMP spin-waits badly when processes share the cores (CI runs two
    # test workers on two cores); the bench measures more threads where they help.
    "num_threads": 1,
}


def train_booster(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    objective: str,
    rounds: int,
    seed: int,
    params: Mapping[str, Any] | None = None,
    weight: np.ndarray | None = None,
) -> lgb.Booster:
    """A Booster trained on the model matrix ``X`` (categorical columns as categories)."""
    merged = {**BASE_PARAMS, "objective": objective, "seed": seed}
    merged.update(params or {})
    data = lgb.Dataset(X, label=y, weight=weight, categorical_feature="auto", free_raw_data=True)
    return lgb.train(merged, data, num_boost_round=rounds)


def booster_from_text(text: str) -> lgb.Booster:
    return lgb.Booster(model_str=text)


class Calibration(BaseEstimator):
    """Monotone map from raw scores to probabilities, fitted on a held-out period
    (isotonic regression), stored as two arrays and applied with ``np.interp``."""

    def __init__(self, method: str = "isotonic") -> None:
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibration:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64))
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        if len(self.x_) == 1:
            return np.full(len(raw), self.y_[0])
        return np.interp(np.asarray(raw, dtype=np.float64), self.x_, self.y_)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x_.tolist(), "y": self.y_.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        cal = cls()
        cal.x_ = np.asarray(data["x"], dtype=np.float64)
        cal.y_ = np.asarray(data["y"], dtype=np.float64)
        return cal


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=_jsonable))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
