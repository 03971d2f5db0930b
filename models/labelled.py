"""Labelled foreign logs: events read through the product's ingestion, and case labels in
the format of the anomaly-detection literature (``case_id, is_anomalous, anomaly_type``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.ingest import IngestOptions, load_events

__all__ = ["LabelsFormatError", "load_labelled", "read_labels"]

LABEL_COLUMNS = ("case_id", "is_anomalous", "anomaly_type")


class LabelsFormatError(s.GiamSatError, ValueError):
    """A labels file without the expected columns, or labels that do not match the log."""


def read_labels(path: str | Path) -> pd.DataFrame:
    """Labels indexed by case id (string): ``is_anomalous`` 0/1, ``anomaly_type`` (NA when
    clean)."""
    labels = pd.read_csv(path, dtype={"case_id": "string", "anomaly_type": "string"})
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise LabelsFormatError(f"{path}: missing column(s) {missing}; expected {LABEL_COLUMNS}")
    labels = labels.set_index("case_id")
    labels.index.name = s.DOSSIER_ID
    labels["is_anomalous"] = labels["is_anomalous"].astype(np.int64)
    return labels[["is_anomalous", "anomaly_type"]]


def load_labelled(
    events_path: str | Path,
    labels_path: str | Path,
    *,
    tz: str = "UTC",
    pseudonym_key: bytes = b"labelled-log-key-0123456789",
    pseudonym_key_id: str = "labelled",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical events of a labelled log (:func:`features.ingest.load_events`, the path
    every log takes) and its labels, restricted to the cases the log holds.

    The pseudonym key only hides identity columns (the labelled logs have none that the
    detectors read); pass the settings' key to match a store. Raises
    :class:`LabelsFormatError` when a case of the log has no label.
    """
    events = load_events(
        events_path,
        IngestOptions(tz=tz),
        pseudonym_key=pseudonym_key,
        pseudonym_key_id=pseudonym_key_id,
    )
    labels = read_labels(labels_path)
    cases = pd.Index(pd.unique(events[s.DOSSIER_ID].astype("string")))
    unlabelled = cases[~cases.isin(labels.index)]
    if len(unlabelled):
        raise LabelsFormatError(
            f"{labels_path}: {len(unlabelled)} case(s) of the log have no label, "
            f"e.g. {list(unlabelled[:3])}"
        )
    return events, labels.loc[cases]
