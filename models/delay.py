"""Delay early warning: the probability that an open dossier ends late on the honest clock,
and the working days it still needs (median and 90th percentile).

One LightGBM classifier over prefixes at several cuts per dossier, calibrated by isotonic
regression on a later, held-out period; two LightGBM quantile regressors of the remaining
honest working days. ``threshold_`` is the risk above which a dossier is warned: the
lowest that keeps the share of on-time dossiers of the calibration period ever warned at
any of their cuts at or below ``max_false_alarms``. Risk is in [0, 1], higher = more
likely late.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from features.context import CATEGORICAL as CONTEXT_CATEGORICAL
from models.boosting import Calibration, booster_from_text, read_json, train_booster, write_json
from models.dataset import LABELS, OUTCOME_FEATURES, EmptyTableError
from models.explain import Norms, Reason, contributions, top_reasons
from models.matrix import FeatureMatrix

__all__ = ["DelayModel", "dossier_max_risk", "dossier_weights", "warning_threshold"]

CATEGORICAL = (*CONTEXT_CATEGORICAL, "current_step")
EXCLUDE = (*LABELS, *OUTCOME_FEATURES)
LABEL = "final_late_honest"
REMAINING = "remaining_work_days"
#: features whose rise can only raise the risk (more queue, more waiting, more of the time
#: used, a worse recent record) or lower it (more time left): monotone constraints of the
#: classifier. They keep its response to load orderly where training saw little load;
#: measured on three simulated provinces, +0.002 to +0.010 ROC AUC at half time.
MONOTONE = {
    "unit_backlog": 1,
    "officer_backlog": 1,
    "waiting_days": 1,
    "honest_clock_ratio": 1,
    "recent_late_share_procedure": 1,
    "recent_late_share_agency": 1,
    "remaining_honest_days": -1,
}


def dossier_weights(table: pd.DataFrame) -> np.ndarray:
    """Row weights of a prefix table giving each dossier a total weight of 1: a dossier
    with many cuts would otherwise count more than one warned (or not) once."""
    codes, uniques = pd.factorize(table.index.get_level_values(s.DOSSIER_ID))
    return 1.0 / np.bincount(codes, minlength=len(uniques)).astype(np.float64)[codes]


def dossier_max_risk(risk: np.ndarray, dossier_ids: pd.Index | np.ndarray) -> pd.Series:
    """The highest risk of each dossier over its cuts."""
    return pd.Series(np.asarray(risk), index=pd.Index(dossier_ids)).groupby(level=0).max()


def warning_threshold(max_risk: pd.Series, late: pd.Series, max_false_alarms: float) -> float:
    """The lowest threshold warning at most ``max_false_alarms`` of on-time dossiers."""
    on_time = np.sort(max_risk[late.reindex(max_risk.index) == 0].to_numpy())
    if not len(on_time):
        return 0.5
    allowed = int(np.floor(max_false_alarms * len(on_time)))
    # warn when risk >= threshold: at most `allowed` on-time maxima may reach it.
    idx = len(on_time) - allowed
    above = on_time[idx - 1] if idx >= 1 else on_time[0]
    return float(np.nextafter(above, np.inf))


class DelayModel(BaseEstimator):
    """Late-risk classifier and remaining-time quantiles on open-dossier prefixes."""

    def __init__(
        self,
        rounds: int = 150,
        quantile_rounds: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_data_in_leaf: int = 100,
        feature_fraction: float = 0.5,
        weigh_dossiers: bool = True,
        monotone: bool = True,
        max_false_alarms: float = 0.10,
        seed: int = 0,
    ) -> None:
        self.rounds = rounds
        self.quantile_rounds = quantile_rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.weigh_dossiers = weigh_dossiers
        self.monotone = monotone
        self.max_false_alarms = max_false_alarms
        self.seed = seed

    def _params(self) -> dict[str, float]:
        return {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
        }

    def fit(self, table: pd.DataFrame, calibration: pd.DataFrame) -> DelayModel:
        """Learn from settled training prefixes; calibrate on a later period's prefixes."""
        for name, part in (("training", table), ("calibration", calibration)):
            if not len(part) or part[LABEL].nunique() < 2:
                raise EmptyTableError(f"the {name} period needs late and on-time dossiers")
        self.matrix_ = FeatureMatrix.fit(table, exclude=EXCLUDE, categorical=CATEGORICAL)
        X = self.matrix_.transform(table)
        y = table[LABEL].to_numpy(dtype=np.float64)
        weight = dossier_weights(table) if self.weigh_dossiers else None
        params: dict[str, Any] = dict(self._params())
        if self.monotone:
            params["monotone_constraints"] = [MONOTONE.get(c, 0) for c in X.columns]
        self.booster_ = train_booster(
            X, y, objective="binary", rounds=self.rounds, seed=self.seed, params=params,
            weight=weight,
        )  # fmt: skip
        raw = np.asarray(self.booster_.predict(self.matrix_.array(calibration), raw_score=True))
        y_cal = calibration[LABEL].to_numpy(dtype=np.float64)
        self.calibration_ = Calibration().fit(raw, y_cal)
        ids = calibration.index.get_level_values(s.DOSSIER_ID)
        late = pd.Series(y_cal, index=ids).groupby(level=0).max()
        self.threshold_ = warning_threshold(
            dossier_max_risk(self.calibration_.transform(raw), ids), late, self.max_false_alarms
        )
        known = np.isfinite(table[REMAINING].to_numpy(dtype=np.float64))
        Xr, yr = X[known], table[REMAINING].to_numpy(dtype=np.float64)[known]
        self.quantiles_ = {
            alpha: train_booster(
                Xr,
                yr,
                objective="quantile",
                rounds=self.quantile_rounds,
                seed=self.seed,
                params={**self._params(), "alpha": alpha},
            )  # fmt: skip
            for alpha in (0.5, 0.9)
        }
        self.norms_ = Norms.fit(table, self.matrix_.numeric)
        return self

    def risk(self, table: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of ending late, per row of ``table``."""
        check_is_fitted(self, "booster_")
        if not len(table):
            return np.zeros(0)
        raw = self.booster_.predict(self.matrix_.array(table), raw_score=True)
        return np.clip(self.calibration_.transform(np.asarray(raw)), 0.0, 1.0)

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        p = self.risk(table)
        return np.c_[1.0 - p, p]

    def remaining(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Remaining honest working days: (median, 90th percentile), never below 0 and the
        p90 never below the median."""
        check_is_fitted(self, "quantiles_")
        if not len(table):
            return np.zeros(0), np.zeros(0)
        X = self.matrix_.array(table)
        p50 = np.maximum(np.asarray(self.quantiles_[0.5].predict(X)), 0.0)
        p90 = np.maximum(np.asarray(self.quantiles_[0.9].predict(X)), p50)
        return p50, p90

    def explain(self, table: pd.DataFrame, k: int = 3) -> list[list[Reason]]:
        """The ``k`` features raising each row's risk most, with values and norms."""
        check_is_fitted(self, "booster_")
        contrib = contributions(self.booster_, self.matrix_.array(table))
        return top_reasons(contrib, table, self.matrix_.columns, self.norms_, k=k)

    # -- persistence: native LightGBM text and JSON, no pickle ---------------------------
    def save(self, path: Path) -> Path:
        check_is_fitted(self, "booster_")
        path.mkdir(parents=True, exist_ok=True)
        (path / "late.txt").write_text(self.booster_.model_to_string())
        for alpha, booster in self.quantiles_.items():
            (path / f"remaining_q{int(alpha * 100)}.txt").write_text(booster.model_to_string())
        write_json(
            path / "delay.json",
            {
                "params": self.get_params(),
                "matrix": self.matrix_.to_dict(),
                "calibration": self.calibration_.to_dict(),
                "threshold": self.threshold_,
                "norms": self.norms_.to_dict(),
            },
        )
        return path

    @classmethod
    def load(cls, path: Path) -> DelayModel:
        meta = read_json(path / "delay.json")
        model = cls(**meta["params"])
        model.matrix_ = FeatureMatrix.from_dict(meta["matrix"])
        model.calibration_ = Calibration.from_dict(meta["calibration"])
        model.threshold_ = float(meta["threshold"])
        model.norms_ = Norms.from_dict(meta["norms"])
        model.booster_ = booster_from_text((path / "late.txt").read_text())
        model.quantiles_ = {
            alpha: booster_from_text((path / f"remaining_q{int(alpha * 100)}.txt").read_text())
            for alpha in (0.5, 0.9)
        }
        return model
