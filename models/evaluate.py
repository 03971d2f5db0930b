"""Measures of the delay and waste models on a test period: pure functions of tables and
scores, no training and no I/O (:mod:`models.train` builds the tables and calls them).

Delay risks are compared at one moment per dossier (half of its statutory time elapsed)
and at every cut of a dense grid, the way a live system re-scores open dossiers. Warnings
are counted per dossier: a dossier is warned at its first cut whose risk reaches the
threshold, and how many working days before the deadline that was is its lead time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from features import schema as s
from models.delay import LABEL, REMAINING

__all__ = [
    "LEAD_DAYS",
    "WASTE_TYPES",
    "auc",
    "by_position",
    "curves",
    "lead_distribution",
    "reliability",
    "remaining_errors",
    "scored_at_half",
    "warnings",
    "waste_quality",
]

#: a warning counts as early enough when given this many working days before the deadline.
LEAD_DAYS = 2.0
#: the waste anomalies the simulator injects (labels' anomaly_type), scored against normal.
WASTE_TYPES = ("excess_supplements", "rework_loop", "ping_pong", "idle_then_rush")
#: prefix positions (events so far) reported one by one; longer prefixes are pooled.
MAX_POSITION = 10


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present."""
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def _ap(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(average_precision_score(y, score))


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2)) if len(y) else float("nan")


def scored_at_half(table: pd.DataFrame, scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """AUC, average precision and Brier score of each scorer on the half-time table."""
    y = table[LABEL].to_numpy(dtype=np.float64)
    out = {"dossiers_half": float(len(y)), "late_share_half": float(np.mean(y)) if len(y) else 0.0}
    for name, score in scores.items():
        out[f"{name}_auc_half"] = auc(y, score)
        out[f"{name}_ap_half"] = _ap(y, score)
        out[f"{name}_brier_half"] = _brier(y, score)
    return out


def curves(
    table: pd.DataFrame, scores: Mapping[str, np.ndarray], points: int = 200
) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall curves of each scorer, thinned to about ``points`` points."""
    y = table[LABEL].to_numpy(dtype=np.float64)
    roc, pr = [], []
    if len(np.unique(y)) < 2:
        return {"roc_half": pd.DataFrame(), "pr_half": pd.DataFrame()}
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        keep = _thin(len(fpr), points)
        roc.append(pd.DataFrame({"model": name, "fpr": fpr[keep], "tpr": tpr[keep]}))
        precision, recall, _ = precision_recall_curve(y, score)
        keep = _thin(len(recall), points)
        pr.append(
            pd.DataFrame({"model": name, "recall": recall[keep], "precision": precision[keep]})
        )
    return {
        "roc_half": pd.concat(roc, ignore_index=True),
        "pr_half": pd.concat(pr, ignore_index=True),
    }


def _thin(n: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(np.int64))


def by_position(table: pd.DataFrame, scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """ROC AUC of each scorer by prefix position (events so far; the last row pools
    prefixes longer than :data:`MAX_POSITION`), with the rows and late share there."""
    y = table[LABEL].to_numpy(dtype=np.float64)
    position = np.minimum(table["events"].to_numpy(dtype=np.int64), MAX_POSITION + 1)
    rows = []
    for k in np.unique(position):
        at = position == k
        row: dict[str, object] = {
            "events": f"{k}" if k <= MAX_POSITION else f">{MAX_POSITION}",
            "rows": int(at.sum()),
            "late_share": float(y[at].mean()),
        }
        for name, score in scores.items():
            row[name] = auc(y[at], np.asarray(score)[at])
        rows.append(row)
    return pd.DataFrame(rows)


def warnings(
    table: pd.DataFrame,
    risk: np.ndarray,
    threshold: float,
    *,
    lead_days: float = LEAD_DAYS,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Warnings at ``threshold`` over the cuts of a dense prefix table.

    Returns metrics (false alarms: on-time dossiers ever warned; late dossiers warned at
    all, and at least ``lead_days`` working days before the deadline, of all late ones and
    of those whose statutory time exceeds ``lead_days``) and one row per dossier: late,
    statutory_days, warned, lead_days (remaining honest working days at the first warning).
    """
    frame = pd.DataFrame(
        {
            "dossier": table.index.get_level_values(s.DOSSIER_ID),
            "cut": table["cut"].to_numpy(),
            "risk": np.asarray(risk, dtype=np.float64),
            "remaining": table["remaining_honest_days"].to_numpy(dtype=np.float64),
            "late": table[LABEL].to_numpy(dtype=np.float64),
            "statutory": table["statutory_days"].to_numpy(dtype=np.float64),
        }
    ).sort_values(["dossier", "cut"], kind="stable")
    per = frame.groupby("dossier", sort=True).agg(
        late=("late", "max"), statutory_days=("statutory", "first")
    )
    first = frame[frame["risk"] >= threshold].groupby("dossier", sort=True).first()
    per["warned"] = per.index.isin(first.index)
    per["lead_days"] = first["remaining"].reindex(per.index)
    late = per[per["late"] > 0]
    possible = late[late["statutory_days"] > lead_days]
    on_time = per[per["late"] == 0]

    def share(mask: pd.Series) -> float:
        return float(mask.mean()) if len(mask) else float("nan")

    early = f"{lead_days:g}d"
    metrics = {
        "delay_threshold": float(threshold),
        "dossiers_dense": float(len(per)),
        "late_dossiers_dense": float(len(late)),
        f"late_dossiers_over_{early}": float(len(possible)),
        "delay_false_alarm_share": share(on_time["warned"]),
        "delay_warned_share": share(late["warned"]),
        f"delay_warned_{early}_share": share(late["lead_days"] >= lead_days),
        f"delay_warned_{early}_share_over_{early}": share(possible["lead_days"] >= lead_days),
        "delay_lead_days_median": float(late["lead_days"].median()) if len(late) else np.nan,
    }
    return metrics, per


#: lead-time bins (working days before the deadline at the first warning).
LEAD_BINS = (-np.inf, 0.0, 1.0, 2.0, 3.0, 5.0, 10.0, np.inf)
LEAD_LABELS = ("after deadline", "0-1", "1-2", "2-3", "3-5", "5-10", ">= 10")


def lead_distribution(per: pd.DataFrame, lead_days: float = LEAD_DAYS) -> pd.DataFrame:
    """Late dossiers by lead time of their first warning (``not warned`` last), for all of
    them and for those whose statutory time exceeds ``lead_days``."""
    late = per[per["late"] > 0]
    order = [*LEAD_LABELS, "not warned"]

    def counts(part: pd.DataFrame) -> pd.Series:
        bins = pd.cut(part["lead_days"], list(LEAD_BINS), right=False, labels=list(LEAD_LABELS))
        named = bins.astype("string").fillna("not warned")
        return named.value_counts().reindex(order, fill_value=0)

    possible = late[late["statutory_days"] > lead_days]
    return pd.DataFrame(
        {
            "lead": order,
            "late_dossiers": counts(late).to_numpy(),
            f"statutory_over_{lead_days:g}d": counts(possible).to_numpy(),
        }
    )


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table: predicted risk in ``bins`` equal-width bins, with the rows, the
    mean predicted risk and the observed late share of each non-empty bin."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        at = which == b
        if at.any():
            rows.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "rows": int(at.sum()),
                    "predicted": float(p[at].mean()),
                    "observed": float(y[at].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["bin", "rows", "predicted", "observed"])


def remaining_errors(
    table: pd.DataFrame, p50: np.ndarray, p90: np.ndarray, naive: np.ndarray
) -> tuple[dict[str, float], pd.DataFrame]:
    """Remaining honest working days: MAE of the median against the naive baseline's, and
    how often the 90th percentile covers the truth; overall and by prefix position."""
    y = table[REMAINING].to_numpy(dtype=np.float64)
    known = np.isfinite(y)
    y, p50, p90, naive = y[known], np.asarray(p50)[known], np.asarray(p90)[known], naive[known]
    position = np.minimum(table["events"].to_numpy(dtype=np.int64)[known], MAX_POSITION + 1)
    metrics = {
        "remaining_mae": float(np.mean(np.abs(p50 - y))) if len(y) else np.nan,
        "naive_remaining_mae": float(np.mean(np.abs(naive - y))) if len(y) else np.nan,
        "remaining_p90_coverage": float(np.mean(y <= p90)) if len(y) else np.nan,
        "remaining_median_error": float(np.median(p50 - y)) if len(y) else np.nan,
    }
    rows = []
    for k in np.unique(position):
        at = position == k
        rows.append(
            {
                "events": f"{k}" if k <= MAX_POSITION else f">{MAX_POSITION}",
                "rows": int(at.sum()),
                "model_mae": float(np.mean(np.abs(p50[at] - y[at]))),
                "naive_mae": float(np.mean(np.abs(naive[at] - y[at]))),
                "p90_coverage": float(np.mean(y[at] <= p90[at])),
            }
        )
    return metrics, pd.DataFrame(rows)


def waste_quality(waste: pd.DataFrame, labels: pd.DataFrame | None) -> dict[str, float]:
    """Waste days and touches of the period and, with labels (index dossier_id, column
    anomaly_type), the average precision of ``waste_score`` for each injected waste type
    and for all of them against normal dossiers (no anomaly of any kind)."""
    out = {
        "waste_dossiers": float(len(waste)),
        "waste_days_total": float(waste["waste_days"].sum()),
        "waste_days_mean": float(waste["waste_days"].mean()) if len(waste) else np.nan,
        "waste_touches_mean": float(waste["waste_touches"].mean()) if len(waste) else np.nan,
    }
    if labels is None:
        return out
    kind = labels["anomaly_type"].astype("string").reindex(waste.index)
    score = waste["waste_score"].to_numpy(dtype=np.float64)
    normal = kind.isna().to_numpy()
    wasteful = kind.isin(WASTE_TYPES).fillna(False).to_numpy(dtype=bool)
    keep = normal | wasteful
    out["waste_labelled_share"] = float(wasteful[keep].mean()) if keep.any() else np.nan
    out["waste_ap"] = _ap(wasteful[keep], score[keep])
    for name in WASTE_TYPES:
        this = (kind == name).fillna(False).to_numpy(dtype=bool)
        out[f"waste_ap_{name}"] = _ap(this[normal | this], score[normal | this])
    return out
