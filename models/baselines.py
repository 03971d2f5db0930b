"""Baselines the delay model must beat, scored on the same prefix tables.

* :class:`ProcedureRate`: the procedure's historical late rate (share of its settled
  training dossiers that ended late, smoothed toward the overall rate), the same for every
  prefix of a dossier;
* :class:`LogisticDelay`: logistic regression on the delay model's columns (the same
  :class:`~models.matrix.FeatureMatrix`): numbers imputed with the median and scaled,
  categories one-hot encoded with rare and unseen values in one "infrequent" column;
* :class:`NaiveRemaining`: the median remaining honest working days of the procedure at
  that current step in training, falling back to the procedure's, then the overall median.

Risks are in [0, 1], higher = more likely late, as the delay model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from models.dataset import EmptyTableError
from models.delay import CATEGORICAL, EXCLUDE, LABEL, REMAINING
from models.matrix import FeatureMatrix

__all__ = ["LogisticDelay", "NaiveRemaining", "ProcedureRate"]


def _labels(table: pd.DataFrame, label: str) -> np.ndarray:
    if label not in table:
        raise EmptyTableError(f"the table has no label column {label!r}")
    y = table[label].to_numpy(dtype=np.float64)
    if not len(y) or np.isnan(y).any() or len(np.unique(y)) < 2:
        raise EmptyTableError(f"{label!r} needs both classes and no missing value to fit on")
    return y


class ProcedureRate(BaseEstimator):
    """Late rate of the dossier's procedure in training, each dossier counted once and the
    rate shrunk toward the overall one with ``smoothing`` pseudo-dossiers."""

    def __init__(
        self, smoothing: float = 20.0, key: str = s.PROCEDURE_CODE, label: str = LABEL
    ) -> None:
        self.smoothing = smoothing
        self.key = key
        self.label = label

    def fit(self, table: pd.DataFrame) -> ProcedureRate:
        y = _labels(table, self.label)
        ids = table.index.get_level_values(s.DOSSIER_ID)
        per = pd.DataFrame({"key": table[self.key].astype("string").to_numpy(), "y": y}, index=ids)
        per = per[~per.index.duplicated()]
        self.overall_ = float(per["y"].mean())
        stats = per.groupby("key")["y"].agg(["sum", "size"])
        rate = (stats["sum"] + self.smoothing * self.overall_) / (stats["size"] + self.smoothing)
        self.rates_ = {str(k): float(v) for k, v in rate.items()}
        return self

    def risk(self, table: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "rates_")
        keys = table[self.key].astype("string")
        rates = keys.map(self.rates_).astype("Float64").fillna(self.overall_)
        return rates.to_numpy(dtype=np.float64)

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        p = self.risk(table)
        return np.c_[1.0 - p, p]


class LogisticDelay(BaseEstimator):
    """L2 logistic regression on the delay model's matrix; ``min_frequency`` is the count
    below which a category joins the infrequent column. It learns from at most
    ``max_rows`` prefixes drawn at random (a linear model of a few hundred coefficients
    needs no more; the solver reads the whole matrix at each step)."""

    def __init__(
        self,
        C: float = 1.0,
        min_frequency: int = 20,
        max_iter: int = 500,
        max_rows: int | None = 100_000,
        seed: int = 0,
        label: str = LABEL,
        exclude: Sequence[str] = EXCLUDE,
        categorical: Sequence[str] = CATEGORICAL,
    ) -> None:
        self.C = C
        self.min_frequency = min_frequency
        self.max_iter = max_iter
        self.max_rows = max_rows
        self.seed = seed
        self.label = label
        self.exclude = exclude
        self.categorical = categorical

    def fit(self, table: pd.DataFrame, sample_weight: np.ndarray | None = None) -> LogisticDelay:
        _labels(table, self.label)
        if self.max_rows is not None and len(table) > self.max_rows:
            rows = np.sort(
                np.random.default_rng(self.seed).choice(len(table), self.max_rows, replace=False)
            )
            table = table.iloc[rows]
            sample_weight = None if sample_weight is None else np.asarray(sample_weight)[rows]
        y = _labels(table, self.label)
        self.matrix_ = FeatureMatrix.fit(
            table, exclude=(*self.exclude, self.label), categorical=self.categorical
        )
        X = self._frame(table)
        numeric = list(self.matrix_.numeric)
        cats = list(self.matrix_.categories)
        steps = [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                numeric,
            )
        ]
        if cats:
            onehot = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency
            )
            steps.append(("categorical", onehot, cats))
        self.pipeline_ = Pipeline(
            [
                # sparse: the one-hot block is mostly zeros (a dense matrix of the training
                # prefixes of a province-quarter is 300 MB, and each solver step reads it)
                ("columns", ColumnTransformer(steps, sparse_threshold=1.0)),
                ("logistic", LogisticRegression(C=self.C, max_iter=self.max_iter)),
            ]
        )
        self.pipeline_.fit(X, y, logistic__sample_weight=sample_weight)
        return self

    def _frame(self, table: pd.DataFrame) -> pd.DataFrame:
        X = self.matrix_.transform(table)
        numeric = list(self.matrix_.numeric)
        X[numeric] = X[numeric].replace([np.inf, -np.inf], np.nan)
        for c in self.matrix_.categories:
            # the matrix's fixed category codes (-1: missing or unseen at fit time);
            # integers one-hot encode far faster than strings
            X[c] = X[c].cat.codes.astype(np.int64)
        return X

    def risk(self, table: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        if not len(table):
            return np.zeros(0)
        return np.asarray(self.pipeline_.predict_proba(self._frame(table))[:, 1])

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        p = self.risk(table)
        return np.c_[1.0 - p, p]


class NaiveRemaining(BaseEstimator):
    """Median remaining honest working days by (procedure, current step), then procedure,
    then overall, learned from settled training prefixes."""

    def __init__(self, target: str = REMAINING) -> None:
        self.target = target

    def fit(self, table: pd.DataFrame) -> NaiveRemaining:
        y = table[self.target].to_numpy(dtype=np.float64)
        known = np.isfinite(y)
        if not known.any():
            raise EmptyTableError(f"no known {self.target!r} to learn medians from")
        procedure, key = self._keys(table)
        frame = pd.DataFrame({"procedure": procedure, "key": key, "y": y})[known]
        self.overall_ = float(frame["y"].median())
        self.by_procedure_ = frame.groupby("procedure")["y"].median().to_dict()
        self.by_step_ = frame.groupby("key")["y"].median().to_dict()
        return self

    @staticmethod
    def _keys(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """The procedure and the (procedure, current step) key of each row."""
        procedure = table[s.PROCEDURE_CODE].astype("string").reset_index(drop=True)
        step = table["current_step"].astype("string").reset_index(drop=True)
        return procedure, procedure + "\x1f" + step

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "by_step_")
        procedure, key = self._keys(table)
        out = key.map(self.by_step_).astype("Float64")
        out = out.fillna(procedure.map(self.by_procedure_).astype("Float64"))
        return out.fillna(self.overall_).to_numpy(dtype=np.float64)
