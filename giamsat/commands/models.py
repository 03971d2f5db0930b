"""``giamsat train``, ``score``, ``evaluate`` and ``promote``: the models' lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features.schema import GiamSatError
from giamsat.commands.inputs import (
    AgenciesOption,
    CatalogueOption,
    CountryOption,
    EventsOption,
    TzOption,
    load_input,
    parse_time,
)
from giamsat.settings import get_settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _say(line: str) -> None:
    console.print(f"[dim]·[/] {line}", highlight=False)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=2)


def _metrics_table(title: str, metrics: pd.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for column in metrics.columns:
        table.add_column(str(column), justify="right")
    for name, row in metrics.iterrows():
        table.add_row(str(name), *(f"{v:.4f}" if pd.notna(v) else "" for v in row))
    return table


def train(
    events: EventsOption,
    catalogue: CatalogueOption = None,
    agencies: AgenciesOption = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="ground truth (simulator labels_dossiers.csv) to report waste AP"),
    ] = None,
    report: Annotated[Path, typer.Option(help="folder for the evaluation report")] = Path(
        "var/report"
    ),
    rounds: Annotated[int, typer.Option(min=10, help="boosting rounds of the delay model")] = 300,
    tz: TzOption = None,
    country: CountryOption = None,
) -> None:
    """Train the delay and waste models, evaluate them on the latest period, log the run
    to MLflow and register the bundle (alias challenger; champion if there is none)."""
    from models.lifecycle import train_and_register

    settings = get_settings()
    try:
        log = load_input(events, settings, catalogue=catalogue, agencies=agencies, tz=tz,
                         country=country)  # fmt: skip
        truth = pd.read_csv(labels, dtype={"dossier_id": str}).set_index("dossier_id") if labels \
            else None  # fmt: skip
        _say(f"{len(log.events):,} events read from {events}")
        registered = train_and_register(
            settings,
            log.events,
            log.learned(),
            delay_params={"rounds": rounds},
            labels=truth,
            report_dir=report,
            source=str(events),
            say=_say,
        )
    except GiamSatError as exc:
        raise _fail(exc) from exc
    metrics = pd.DataFrame({"test period": pd.Series(registered.bundle.metrics)})
    out.print(_metrics_table("evaluation on the test period", metrics))
    out.print(
        f"registered {settings.model_name} version {registered.version} (run "
        f"{registered.run_id}); report in {report}"
    )


def score(
    events: EventsOption,
    scores_out: Annotated[Path, typer.Option("--out", help="scores CSV, one row per dossier")],
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="alerts CSV, one row per alert")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="score as of this time (ISO 8601; default: last event)")
    ] = None,
    catalogue: CatalogueOption = None,
    agencies: AgenciesOption = None,
    model: Annotated[str, typer.Option(help="registry alias to score with")] = "champion",
    bundle: Annotated[
        Path | None, typer.Option(help="a bundle directory instead of the registry")
    ] = None,
    tz: TzOption = None,
    country: CountryOption = None,
) -> None:
    """Score every dossier of a log as of a time: delay risk, remaining time, waste,
    alerts, and the reasons behind them."""
    from models.lifecycle import score as score_with

    settings = get_settings()
    try:
        log = load_input(events, settings, catalogue=catalogue, agencies=agencies, tz=tz,
                         country=country)  # fmt: skip
        when = parse_time(as_of, str(log.calendar.tz))
        result, which = score_with(settings, log.events, log.with_process(None), alias=model,
                                   bundle_dir=bundle, as_of=when, say=_say)  # fmt: skip
    except GiamSatError as exc:
        raise _fail(exc) from exc
    _write_csv(result.scores, scores_out)
    if alerts_out is not None:
        _write_csv(result.alerts, alerts_out)
    opened = int((result.scores["status"] == "open").sum())
    out.print(
        f"{len(result.scores):,} dossiers scored as of {result.as_of.isoformat()} with {which} "
        f"({opened:,} open), {len(result.alerts):,} alerts -> {scores_out}"
    )


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Written to a temporary file and renamed: a crash never leaves half a CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def evaluate(
    events: EventsOption,
    report: Annotated[Path, typer.Option("--out", help="folder for the report")] = Path(
        "var/report"
    ),
    catalogue: CatalogueOption = None,
    agencies: AgenciesOption = None,
    model: Annotated[str, typer.Option(help="registry alias to evaluate")] = "champion",
    labels: Annotated[
        Path | None,
        typer.Option(
            help="anomaly ground truth: a simulation folder or its labels_dossiers.csv, or "
            "case_id,is_anomalous,anomaly_type; reports per anomaly type with baselines"
        ),
    ] = None,
    fit_on_log: Annotated[
        bool,
        typer.Option(
            "--fit-on-log",
            help="with --labels: fit the detectors on this log and score the same log "
            "(the literature's unsupervised protocol) instead of using the registered model",
        ),
    ] = False,
    tz: TzOption = None,
    country: CountryOption = None,
) -> None:
    """Write the evaluation report of a registered model on its test period of a log
    (AUC and PR by prefix position, calibration, lead time, remaining time, waste) and
    log it to MLflow. With ``--labels``: the anomaly evaluation instead (average
    precision, recall at the alert budget, best F1 and F1 at the threshold per anomaly
    type, for dossiers and entities, beside the baselines)."""
    from models import registry
    from models.lifecycle import evaluate_and_log

    settings = get_settings()
    try:
        log = load_input(events, settings, catalogue=catalogue, agencies=agencies, tz=tz,
                         country=country)  # fmt: skip
        if labels is not None:
            from giamsat.commands.anomalies import evaluate_labels, print_report

            alias = None if fit_on_log else model
            found = evaluate_labels(settings, log, labels, report, alias=alias, say=_say)
            print_report(found, out)
            out.print(f"report in {report / 'anomalies.md'}")
            return
        registered = registry.load_bundle(settings, model)
        metrics = evaluate_and_log(settings, registered, log.events, log.with_process(None),
                                   report, say=_say)  # fmt: skip
    except GiamSatError as exc:
        raise _fail(exc) from exc
    frame = pd.DataFrame({f"v{registered.version}": pd.Series(metrics)})
    out.print(_metrics_table("evaluation on the test period", frame))
    out.print(f"report in {report / 'report.md'}")


def promote(
    events: EventsOption,
    catalogue: CatalogueOption = None,
    agencies: AgenciesOption = None,
    challenger: Annotated[str, typer.Option(help="alias of the challenger")] = "challenger",
    tolerance: Annotated[float, typer.Option(help="AUC the challenger may lose")] = 0.0,
    force: Annotated[bool, typer.Option(help="promote whatever the comparison says")] = False,
    tz: TzOption = None,
    country: CountryOption = None,
) -> None:
    """Compare the challenger with the champion on the same test period and move the
    champion alias when the challenger is at least as good."""
    from models.lifecycle import promote as run_promotion

    settings = get_settings()
    try:
        log = load_input(events, settings, catalogue=catalogue, agencies=agencies, tz=tz,
                         country=country)  # fmt: skip
        result = run_promotion(settings, log.events, log.with_process(None),
                               challenger=challenger, tolerance=tolerance, force=force,
                               say=_say)  # fmt: skip
    except GiamSatError as exc:
        raise _fail(exc) from exc
    title = f"champion v{result.champion} vs challenger v{result.challenger}"
    out.print(_metrics_table(title, result.metrics))
    verdict = "promoted: champion is now" if result.promoted else "not promoted: champion stays"
    now = result.challenger if result.promoted else result.champion
    out.print(f"{verdict} v{now} ({result.reason})")
