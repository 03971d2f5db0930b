"""``giamsat features`` and ``giamsat registry``: compute features, describe them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress

from features.calendar import WorkingCalendar
from features.catalogue import load_catalogue
from features.engine import EngineError, compute_features
from features.eventstore import CURRENT, EventStore
from features.ingest import IngestOptions, load_events
from features.registry import feature_registry
from features.schema import GiamSatError
from giamsat.settings import get_settings

console = Console(stderr=True)


def features(
    log: Annotated[Path, typer.Argument(help="an event store directory or a log file")],
    out: Annotated[Path, typer.Option(help="directory for the feature tables (Parquet)")] = Path(
        "var/features"
    ),
    engine: Annotated[str, typer.Option(help="pandas (in-process) or dask")] = "pandas",
    scheduler: Annotated[
        str | None, typer.Option(help="address of a running Dask scheduler (tcp://host:8786)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="local Dask workers without --scheduler")] = 2,
    catalogue: Annotated[Path | None, typer.Option(help="procedure catalogue YAML")] = None,
    agencies: Annotated[
        Path | None, typer.Option(help="agency directory CSV (agency_id, unit_type)")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="compute as of this time (ISO 8601; default: log end)")
    ] = None,
    tz: Annotated[str | None, typer.Option(help="zone of the log (default: settings)")] = None,
    country: Annotated[str | None, typer.Option(help="holiday calendar (default VN)")] = None,
) -> None:
    """Compute dossier, entity and graph features of a log with pandas or Dask."""
    settings = get_settings()
    zone = tz or settings.timezone
    try:
        if (log / CURRENT).exists():
            source: pd.DataFrame | EventStore = EventStore(log, settings.buckets)
        else:
            source = load_events(
                log,
                IngestOptions(tz=zone),
                pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
                pseudonym_key_id=settings.pseudonym_key_id,
            )
        calendar = WorkingCalendar.for_country(country or settings.holiday_country, tz=zone)
        cat = load_catalogue(catalogue) if catalogue else None
        directory = pd.read_csv(agencies, dtype=str) if agencies else None
        when = pd.Timestamp(as_of) if as_of else None
        if when is not None and when.tzinfo is None:
            when = when.tz_localize(zone)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"features ({engine})", total=None)
            result = compute_features(
                source,
                calendar,
                catalogue=cat,
                agencies=directory,
                as_of=when,
                engine=engine,  # type: ignore[arg-type]
                scheduler=scheduler,
                workers=workers,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (GiamSatError, EngineError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    out.mkdir(parents=True, exist_ok=True)
    result.dossiers.to_parquet(out / "dossiers.parquet")
    for name, frame in result.entities.items():
        frame.to_parquet(out / f"{name}.parquet")
    typer.echo(
        f"{len(result.dossiers):,} dossiers x {result.dossiers.shape[1]} features, "
        f"{len(result.entities)} entity tables -> {out}"
    )


def registry(
    markdown: Annotated[bool, typer.Option(help="print a Markdown table")] = False,
) -> None:
    """List every feature: entity, family, name, unit and what it means."""
    table = feature_registry().to_frame()
    if markdown:
        typer.echo(
            "| entity | family | feature | unit | meaning |\n| --- | --- | --- | --- | --- |"
        )
        for row in table.itertuples(index=False):
            typer.echo(
                f"| {row.entity} | {row.family} | `{row.name}` | {row.unit} | {row.description} |"
            )
        return
    with pd.option_context("display.max_rows", None, "display.width", 200):
        typer.echo(table.to_string(index=False))
