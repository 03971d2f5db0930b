"""Explanations: the features that pushed a score up, with their values, the norm they are
compared with (the median for the dossier's procedure in the training data) and the line
the feature registry gives them, e.g. "Supplement rounds: 3 (usual for this procedure:
0)". Contributions are LightGBM's exact per-feature SHAP values (``pred_contrib``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import schema as s
from features.registry import FeatureSpec, UnregisteredFeatureError, feature_registry

__all__ = ["Norms", "Reason", "contributions", "reasons_of", "top_reasons"]


@dataclass(frozen=True)
class Reason:
    """One feature behind a score."""

    feature: str
    value: Any
    norm: float | None
    contribution: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        value = self.value.item() if isinstance(self.value, np.generic) else self.value
        return {
            "feature": self.feature,
            "value": None if _missing(value) else value,
            "norm": self.norm,
            "contribution": round(float(self.contribution), 4),
            "text": self.text,
        }


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


@dataclass(frozen=True)
class Norms:
    """Medians of numeric features per procedure (and overall), learned from training."""

    by_procedure: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    overall: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, table: pd.DataFrame, columns: Sequence[str]) -> Norms:
        numeric = [c for c in columns if c in table and pd.api.types.is_numeric_dtype(table[c])]
        values = table[numeric].astype(np.float64)
        overall = {str(k): float(v) for k, v in values.median().dropna().round(4).items()}
        by: dict[str, dict[str, float]] = {}
        if s.PROCEDURE_CODE in table:
            grouped = values.groupby(table[s.PROCEDURE_CODE].astype("string").to_numpy()).median()
            for proc, row in grouped.round(4).iterrows():
                by[str(proc)] = {str(k): float(v) for k, v in row.dropna().items()}
        return cls(by, overall)

    def of(self, feature: str, procedure: object) -> float | None:
        row = self.by_procedure.get(str(procedure), {})
        value = row.get(feature, self.overall.get(feature))
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"by_procedure": dict(self.by_procedure), "overall": dict(self.overall)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Norms:
        return cls(data.get("by_procedure", {}), data.get("overall", {}))


def contributions(booster: lgb.Booster, X: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Per-row, per-feature contributions to the raw score (the bias column dropped)."""
    if not len(X):
        return np.zeros((0, X.shape[1]))
    out = np.asarray(booster.predict(X, pred_contrib=True))
    return out[:, : X.shape[1]]


def _spec(name: str) -> FeatureSpec | None:
    try:
        return feature_registry().get(name)
    except UnregisteredFeatureError:
        return None


def describe(feature: str, value: Any, norm: float | None) -> str:
    """The sentence an inspector reads for one feature value and its norm."""
    spec = _spec(feature)
    if spec is None:
        shown = "unknown" if _missing(value) else str(value)
        return f"{feature}: {shown}"
    text = f"{spec.description}: {spec.format(value)}"
    if norm is not None and spec.unit not in ("category", "flag"):
        text += f" (usual for this procedure: {spec.format(norm)})"
    return text


def top_reasons(
    contrib: np.ndarray,
    table: pd.DataFrame,
    columns: Sequence[str],
    norms: Norms,
    *,
    k: int = 3,
) -> list[list[Reason]]:
    """For each row the ``k`` features with the largest positive contributions."""
    n = len(table)
    if n == 0:
        return []
    k = min(k, contrib.shape[1])
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    procedures = (
        _objects(table[s.PROCEDURE_CODE])
        if s.PROCEDURE_CODE in table
        else np.full(n, None, dtype=object)
    )
    cols = list(columns)
    values = {c: table[c].to_numpy(dtype=object) for c in {cols[j] for j in np.unique(order)}}
    out: list[list[Reason]] = []
    for i in range(n):
        row: list[Reason] = []
        for j in order[i]:
            weight = float(contrib[i, j])
            if weight <= 0:
                break
            name = cols[j]
            value = values[name][i]
            norm = norms.of(name, procedures[i])
            row.append(Reason(name, value, norm, weight, describe(name, value, norm)))
        out.append(row)
    return out


def _objects(values: pd.Series) -> np.ndarray:
    """Text values as Python objects, None where missing."""
    text = values.astype("string")
    return np.asarray(text.astype(object).where(text.notna(), None))


def reasons_of(reasons: Sequence[Reason]) -> str:
    """The short text of a row's reasons, joined with '; '."""
    return "; ".join(r.text for r in reasons)
