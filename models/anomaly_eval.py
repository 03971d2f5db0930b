"""The anomaly evaluation harness: how well the product finds what the labels say is there,
per anomaly type, for dossiers and for entities, beside the literature's baselines.

Ground truth comes in two formats (:func:`read_truth`):

- the simulator's output folder (or its ``labels_dossiers.csv``): per dossier its injected
  ``anomaly_type`` (and ``labels_entities.csv`` beside it for entities);
- a foreign log's labels, ``case_id, is_anomalous, anomaly_type``.

Dossier figures per type compare that type's dossiers with the clean ones (other
anomalies left out), by the dossier's strongest alert score of integrity and waste (the
larger of ``integrity_score`` and ``waste_score``; ``integrity_score`` alone without a
waste model), flagged when either alerts. For each
method: average precision, recall at the alert budget (the product's own threshold; a
baseline flags as many dossiers as the product does), the best F1 over all thresholds
(chosen after the fact, as in the literature) and the F1 at the budget.
Entity figures per type: recall and precision of the entity alerts at the default budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.engine import Reference
from models.anomaly_metrics import average_precision, best_f1, f1_at
from models.dataset import closed_table
from models.integrity import IntegrityModel
from models.integrity_baselines import ActivityCountForest, BigramLikelihood, VariantRarity
from models.labelled import LabelsFormatError, read_labels
from models.report import markdown_table, pyplot, save_figure
from models.waste import WasteModel

__all__ = ["AnomalyReport", "Truth", "evaluate_anomalies", "read_truth", "write_report"]

PRODUCT = "giamsat"
BASELINES: dict[str, Callable[[], object]] = {
    "bigram_likelihood": BigramLikelihood,
    "variant_rarity": VariantRarity,
    "activity_count_forest": ActivityCountForest,
}
Say = Callable[[str], None]


@dataclass(frozen=True)
class Truth:
    """Per dossier ``is_anomalous`` and ``anomaly_type`` (NA when clean); per labelled
    entity its type, id and anomaly (None for foreign logs)."""

    dossiers: pd.DataFrame
    entities: pd.DataFrame | None


def read_truth(path: Path) -> Truth:
    """Labels from a simulation folder, its ``labels_dossiers.csv``, or a foreign
    ``case_id, is_anomalous, anomaly_type`` file."""
    folder = path if path.is_dir() else path.parent
    file = path / "labels_dossiers.csv" if path.is_dir() else path
    if not file.exists():
        raise LabelsFormatError(f"{file}: no such labels file")
    head = pd.read_csv(file, nrows=0).columns
    if "case_id" in head:
        return Truth(read_labels(file), None)
    if not {"dossier_id", "anomaly_type"} <= set(head):
        raise LabelsFormatError(
            f"{file}: expected the simulator's labels (dossier_id, anomaly_type, ...) or "
            f"case_id, is_anomalous, anomaly_type; found {list(head)}"
        )
    frame = pd.read_csv(file, dtype={"dossier_id": "string", "anomaly_type": "string"})
    frame = frame.set_index("dossier_id")
    dossiers = pd.DataFrame(
        {
            "is_anomalous": frame["anomaly_type"].notna().astype(np.int64),
            "anomaly_type": frame["anomaly_type"],
        }
    )
    entities_file = folder / "labels_entities.csv"
    entities = pd.read_csv(entities_file, dtype="string") if entities_file.exists() else None
    return Truth(dossiers, entities)


@dataclass(frozen=True)
class AnomalyReport:
    """``dossiers``: one row per (method, type); ``entities``: one row per entity type
    (empty without entity labels); ``metrics``: flat figures for MLflow."""

    dossiers: pd.DataFrame
    entities: pd.DataFrame
    metrics: dict[str, float]


def _product_scores(
    events: pd.DataFrame,
    ref: Reference,
    integrity: IntegrityModel | None,
    waste: WasteModel | None,
    say: Say,
) -> tuple[pd.DataFrame, float]:
    say("dossier features")
    table = closed_table(events, ref)
    if integrity is None:  # the literature's protocol: fit on the log, score the same log
        say("fitting the integrity detectors on the log and scoring it")
        integrity = IntegrityModel()
        scored = integrity.fit_score_samples(table, events)
    else:
        say("integrity scores")
        scored = integrity.score_samples(table, events)
    out = pd.DataFrame({"integrity_score": scored["integrity_score"]})
    if waste is not None:
        out["waste_score"] = waste.transform(table)["waste_score"].reindex(out.index)
    return out, integrity.threshold_


def _row(method: str, kind: str, y: np.ndarray, score: np.ndarray, flagged: np.ndarray) -> dict:
    return {
        "method": method,
        "type": kind,
        "cases": int(y.sum()),
        "ap": average_precision(y, score),
        "recall_at_budget": float(flagged[y].mean()) if y.any() else np.nan,
        "best_f1": best_f1(y, score),
        "f1_at_budget": f1_at(y, flagged.astype(np.float64), 0.5),
    }


def _dossier_table(
    truth: pd.DataFrame,
    scores: dict[str, pd.Series],
    flagged: dict[str, pd.Series],
) -> pd.DataFrame:
    kinds = truth["anomaly_type"].astype("string")
    clean = truth["is_anomalous"].to_numpy() == 0
    rows = []
    for method, score in scores.items():
        s_all = score.reindex(truth.index).fillna(0.0).to_numpy(dtype=np.float64)
        f_all = flagged[method].reindex(truth.index).fillna(False).to_numpy(dtype=bool)
        y_any = ~clean
        rows.append(_row(method, "all", y_any, s_all, f_all))
        for kind in sorted(kinds.dropna().unique()):
            mine = (kinds == kind).fillna(False).to_numpy(bool)
            both = mine | clean
            rows.append(_row(method, str(kind), mine[both], s_all[both], f_all[both]))
    return pd.DataFrame(rows)


def _entity_table(truth: pd.DataFrame | None, findings: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["type", "entities", "found", "recall", "alerts", "precision"]
    if truth is None or findings is None or not len(truth):
        return pd.DataFrame(columns=columns)
    alerts = findings[findings["alert"].astype(bool)]
    raised = set(zip(alerts["entity_id"].astype(str), alerts["kind"].astype(str), strict=True))
    labelled = set(
        zip(truth["entity_id"].astype(str), truth["anomaly_type"].astype(str), strict=True)
    )
    rows = []
    for kind in sorted(truth["anomaly_type"].dropna().unique()):
        want = {p for p in labelled if p[1] == kind}
        got = {p for p in raised if p[1] == kind}
        rows.append(
            {
                "type": kind,
                "entities": len(want),
                "found": len(want & got),
                "recall": len(want & got) / len(want) if want else np.nan,
                "alerts": len(got),
                "precision": len(want & got) / len(got) if got else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def evaluate_anomalies(
    events: pd.DataFrame,
    ref: Reference,
    truth: Truth,
    *,
    integrity: IntegrityModel | None = None,
    waste: WasteModel | None = None,
    waste_threshold: float = np.inf,
    entities: pd.DataFrame | None = None,
    baselines: bool = True,
    say: Say = print,
) -> AnomalyReport:
    """Evaluate the product's scores (``integrity`` and ``waste`` fitted before; without
    ``integrity``, the detectors are fitted on this log) and the baselines against
    ``truth``. ``entities``: entity findings
    (:func:`models.integrity_entity.detect_entities`) when the log has entity labels."""
    labels = truth.dossiers
    cases = pd.Index(pd.unique(events[s.DOSSIER_ID].astype("string")))
    missing = cases.difference(list(labels.index))
    if len(missing):
        raise LabelsFormatError(
            f"{len(missing)} dossier(s) of the log have no label, e.g. {list(missing[:3])}"
        )
    labels = labels.loc[cases]
    product, threshold = _product_scores(events, ref, integrity, waste, say)
    score = product["integrity_score"].reindex(labels.index).fillna(0.0)
    alerted = score >= threshold
    if "waste_score" in product:  # a dossier is found by whichever of its alerts is stronger
        waste_score = product["waste_score"].reindex(labels.index).fillna(0.0)
        score = score.where(score >= waste_score, waste_score)
        alerted = alerted | (waste_score >= waste_threshold)
    scores = {PRODUCT: score}
    flagged = {PRODUCT: alerted}
    budget = int(flagged[PRODUCT].sum())
    if baselines:
        for name, make in BASELINES.items():
            say(f"baseline: {name}")
            model = make()
            raw = model.fit(events).score_samples(events)  # type: ignore[attr-defined]
            series = pd.Series(raw).reindex(labels.index).fillna(-np.inf)
            scores[name] = series
            top = series.rank(ascending=False, method="first") <= max(budget, 1)
            flagged[name] = top
    table = _dossier_table(labels, scores, flagged)
    if truth.entities is not None:  # entity patterns are scored on entities, not dossiers
        entity_kinds = set(truth.entities["anomaly_type"].dropna().astype(str))
        table = table[~table["type"].isin(entity_kinds)].reset_index(drop=True)
    entity_table = _entity_table(truth.entities, entities)
    metrics: dict[str, float] = {"integrity_threshold": threshold, "alerts": float(budget)}
    for row in table.itertuples():
        for name in ("ap", "recall_at_budget", "best_f1", "f1_at_budget"):
            metrics[f"{row.method}.{row.type}.{name}"] = float(getattr(row, name))
    for rec in entity_table.to_dict("records"):
        metrics[f"entity.{rec['type']}.recall"] = float(rec["recall"])
        metrics[f"entity.{rec['type']}.precision"] = float(rec["precision"])
    return AnomalyReport(table, entity_table, metrics)


def write_report(report: AnomalyReport, out: Path) -> Path:
    """``anomalies.md`` (both tables) and ``anomaly_ap.png`` (average precision per type
    and method) under ``out``; returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    table = report.dossiers
    wide = table.pivot(index="type", columns="method", values="ap")
    wide = wide[[PRODUCT, *sorted(c for c in wide.columns if c != PRODUCT)]]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(wide) + 1.5))
    wide.iloc[::-1].plot.barh(ax=ax, width=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision (that type against clean dossiers)")
    ax.set_title("Finding each anomaly type: GiamSat and the baselines")
    image = save_figure(fig, out / "anomaly_ap.png")
    lines = [
        "# Anomaly evaluation",
        "",
        "Dossiers: each type against the clean dossiers. `recall_at_budget` and "
        "`f1_at_budget` flag what the product's alert threshold flags (a baseline flags as "
        "many dossiers); `best_f1` chooses the threshold after the fact.",
        "",
        markdown_table(table),
        "",
        f"![average precision per type]({image})",
        "",
    ]
    if len(report.entities):
        lines += ["## Entities (alerts at the default budget)", "",
                  markdown_table(report.entities), ""]  # fmt: skip
    path = out / "anomalies.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
