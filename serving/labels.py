"""Inspectors' verdicts as training labels (``giamsat labels export``).

Two shapes, one verdict each way:

- ``per="alert"`` (the default): one row per confirmed or dismissed alert, its supporting
  dossiers as the scorer writes them (``a;b;c``). One row is one decision, so counts and
  precision per kind or pattern are not weighted by how many dossiers an alert has.
- ``per="dossier"``: one row per (alert, supporting dossier), with ``dossier_id``: the
  shape a dossier-level model is retrained on. A dossier alert supports itself; an
  entity alert without supporting dossiers gives no row.

``label`` is 1 for a confirmed alert and 0 for a dismissed one; ``score`` is the model's
score when the verdict was given (the alert's last score).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd

from features.schema import GiamSatError
from serving.alerts import Status, Verdict

__all__ = ["LABEL_COLUMNS", "LabelExportError", "label_frame", "write_labels"]

LABEL_COLUMNS = [
    "alert_id",
    "kind",
    "pattern",
    "subject_type",
    "subject_id",
    "jurisdiction",
    "dossiers",
    "verdict",
    "label",
    "reason",
    "decided_by",
    "decided_at",
    "score",
]
Per = Literal["alert", "dossier"]
Format = Literal["csv", "parquet"]


class LabelExportError(GiamSatError, ValueError):
    """An export that cannot be written as asked (shape, format)."""


def _supporting(v: Verdict) -> list[str]:
    if v.dossiers:
        return list(v.dossiers)
    return [v.subject_id] if v.subject_type == "dossier" else []


def label_frame(found: Iterable[Verdict], *, per: Per = "alert") -> pd.DataFrame:
    """The verdicts as a label table (see the module for the two shapes)."""
    if per not in ("alert", "dossier"):
        raise LabelExportError(f"per must be 'alert' or 'dossier', not {per!r}")
    rows = [
        {
            "alert_id": v.alert_id,
            "kind": v.kind,
            "pattern": v.pattern,
            "subject_type": v.subject_type,
            "subject_id": v.subject_id,
            "jurisdiction": v.jurisdiction,
            "dossiers": _supporting(v),
            "verdict": v.verdict.value,
            "label": int(v.verdict is Status.CONFIRMED),
            "reason": v.reason,
            "decided_by": v.decided_by,
            "decided_at": v.decided_at,
            "score": v.score,
        }
        for v in found
    ]
    frame = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    frame["label"] = frame["label"].astype("int64")
    frame["score"] = frame["score"].astype("float64")
    if per == "dossier":
        frame = frame.explode("dossiers").dropna(subset=["dossiers"])
        frame = frame.rename(columns={"dossiers": "dossier_id"}).reset_index(drop=True)
        return frame.astype({"label": "int64", "score": "float64"})
    frame["dossiers"] = frame["dossiers"].map(";".join)
    return frame


def write_labels(frame: pd.DataFrame, path: Path, fmt: Format | None = None) -> Format:
    """Write a label table to ``path`` as CSV or Parquet (default: from the suffix, else
    CSV); returns the format written. Times are UTC (ISO 8601 in CSV)."""
    chosen = fmt or ("parquet" if path.suffix.lower() == ".parquet" else "csv")
    if chosen not in ("csv", "parquet"):
        raise LabelExportError(f"format must be csv or parquet, not {chosen!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "parquet":
        frame.to_parquet(path, index=False)
    else:
        out = frame.copy()
        out["decided_at"] = out["decided_at"].map(lambda t: t.isoformat())
        out.to_csv(path, index=False)
    return chosen
