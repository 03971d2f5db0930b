"""``giamsat evaluate --labels``: the anomaly evaluation harness on a labelled log."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from giamsat.commands.inputs import LogInput
from giamsat.settings import Settings
from models.anomaly_eval import AnomalyReport, evaluate_anomalies, read_truth, write_report

__all__ = ["evaluate_labels", "print_report"]


def evaluate_labels(
    settings: Settings,
    log: LogInput,
    labels: Path,
    report_dir: Path,
    *,
    alias: str | None,
    say: object,
) -> AnomalyReport:
    """Evaluate the registered model ``alias`` (None: detectors fitted on the log itself,
    the literature's unsupervised protocol) against ``labels``; write the report and log
    it to MLflow as its own run."""
    from models import registry
    from models.bundle import BundleError
    from models.integrity_entity import detect_entities

    speak = say if callable(say) else print
    truth = read_truth(labels)
    integrity = waste = None
    waste_threshold = float("inf")
    if alias is not None:
        registered = registry.load_bundle(settings, alias)
        if registered.bundle.integrity is None:
            raise BundleError(
                f"{settings.model_name} v{registered.version} ({alias}) has no integrity model "
                "(trained before it existed): train again, or evaluate with --fit-on-log"
            )
        integrity, waste = registered.bundle.integrity, registered.bundle.waste
        waste_threshold = registered.bundle.waste_threshold
        ref = log.with_process(registered.bundle.process)
        tags = {"evaluates": f"{settings.model_name}/{registered.version}"}
    else:
        ref = log.learned()
        tags = {"protocol": "fit and score the same log"}
    entities = None
    if truth.entities is not None:
        speak("entity detectors")
        entities = detect_entities(log.events, ref)
    report = evaluate_anomalies(
        log.events,
        ref,
        truth,
        integrity=integrity,
        waste=waste,
        waste_threshold=waste_threshold,
        entities=entities,
        say=speak,
    )
    write_report(report, report_dir)
    tags["labels"] = str(labels)
    registry.log_report_run(settings, "anomaly evaluation", tags, report.metrics, report_dir)
    return report


def print_report(report: AnomalyReport, out: Console) -> None:
    for method, rows in report.dossiers.groupby("method", sort=False):
        out.print(_table(f"dossiers: {method}", rows.drop(columns="method")))
    if len(report.entities):
        out.print(_table("entities: alerts at the default budget", report.entities))


def _table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == "type" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3f}"
    return str(value)
