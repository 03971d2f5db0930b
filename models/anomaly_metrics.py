"""Metrics of trace-level anomaly detection, as the literature reports them on labelled logs.

``y`` is 0/1 per case (1 = anomalous), ``score`` is higher = more anomalous; both are
array-likes of the same length (Series are aligned on their index first, when both are
Series). Thresholds flag ``score >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

__all__ = [
    "average_precision",
    "best_f1",
    "best_f1_threshold",
    "f1_at",
    "per_type_table",
    "recall_at",
]


def _arrays(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(y, pd.Series) and isinstance(score, pd.Series):
        score = score.reindex(y.index)
    yy = np.asarray(y, dtype=np.float64)
    ss = np.asarray(score, dtype=np.float64)
    if yy.shape != ss.shape:
        raise ValueError(f"y has {yy.shape} values, score {ss.shape}")
    if np.isnan(ss).any() or np.isnan(yy).any():
        raise ValueError("y and score must not hold missing values (a case was not scored?)")
    return yy.astype(np.int64), ss


def best_f1_threshold(y: Any, score: Any) -> tuple[float, float]:
    """The best F1 over all thresholds, and the threshold reaching it."""
    yy, ss = _arrays(y, score)
    precision, recall, thresholds = precision_recall_curve(yy, ss)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    return float(f1[best]), float(thresholds[best]) if len(thresholds) else float("inf")


def best_f1(y: Any, score: Any) -> float:
    """The F1 of the best threshold chosen after the fact (the literature's protocol)."""
    return best_f1_threshold(y, score)[0]


def average_precision(y: Any, score: Any) -> float:
    """Area under the precision-recall curve (sklearn's step-wise average precision)."""
    yy, ss = _arrays(y, score)
    return float(average_precision_score(yy, ss))


def _threshold(ss: np.ndarray, k_or_threshold: float) -> float:
    # an integer >= 1 is a number of flagged cases (the top k); otherwise a score threshold
    if isinstance(k_or_threshold, int | np.integer) and k_or_threshold >= 1:
        k = min(int(k_or_threshold), len(ss))
        return float(np.sort(ss)[::-1][k - 1]) if k else float("inf")
    return float(k_or_threshold)


def recall_at(y: Any, score: Any, k_or_threshold: float) -> float:
    """Share of the anomalous cases flagged: by the top ``k`` scores when given an int, else
    by ``score >= threshold`` (ties at the k-th score are all flagged)."""
    yy, ss = _arrays(y, score)
    flagged = ss >= _threshold(ss, k_or_threshold)
    positives = yy.sum()
    return float((flagged & (yy == 1)).sum() / positives) if positives else float("nan")


def f1_at(y: Any, score: Any, threshold: float) -> float:
    """F1 of flagging ``score >= threshold``."""
    yy, ss = _arrays(y, score)
    flagged = ss >= threshold
    tp = float((flagged & (yy == 1)).sum())
    denominator = flagged.sum() + yy.sum()
    return 2 * tp / denominator if denominator else 0.0


def per_type_table(
    labels: pd.DataFrame,
    score: pd.Series,
    threshold: float | None = None,
    type_column: str = "anomaly_type",
    label_column: str = "is_anomalous",
) -> pd.DataFrame:
    """Per anomaly type: its cases, AP of that type against the clean cases, and the recall
    at ``threshold`` (default: the overall best-F1 threshold).

    ``labels`` is indexed by case id with ``label_column`` (0/1) and ``type_column`` (missing
    for clean cases); ``score`` is indexed by case id. A last row ``all`` gives the overall
    figures (best F1 in the ``f1`` column).
    """
    score = score.reindex(labels.index)
    y = labels[label_column].astype(np.int64)
    if threshold is None:
        f1, threshold = best_f1_threshold(y, score)
    else:
        f1 = f1_at(y, score, threshold)
    clean = y == 0
    rows = []
    kinds = labels.loc[~clean, type_column].astype("string").fillna("unknown")
    for kind in sorted(kinds.unique()):
        mine = (labels[type_column].astype("string") == kind).fillna(False).to_numpy(dtype=bool)
        mine &= ~clean.to_numpy()
        both = mine | clean.to_numpy()
        rows.append(
            {
                "type": kind,
                "cases": int(mine.sum()),
                "ap": average_precision(mine[both].astype(int), score.to_numpy()[both]),
                "recall": float((score.to_numpy()[mine] >= threshold).mean()),
                "f1": np.nan,
            }
        )
    rows.append(
        {
            "type": "all",
            "cases": int((~clean).sum()),
            "ap": average_precision(y, score),
            "recall": recall_at(y, score, float(threshold)),
            "f1": f1,
        }
    )
    table = pd.DataFrame(rows).set_index("type")
    table.attrs["threshold"] = float(threshold)
    return table
