"""``giamsat simulate``: generate a realistic processing log with ground-truth anomalies."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.config import AnomalyRates, SimulationConfig

DEFAULT_ANOMALY_RATE = round(AnomalyRates().dossier_total, 6)


def simulate(
    provinces: Annotated[int, typer.Option(min=1, help="number of provinces")] = 1,
    months: Annotated[int, typer.Option(min=1, max=120, help="months simulated")] = 12,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same log")] = 0,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("var/simulated"),
    anomaly_rate: Annotated[
        float,
        typer.Option(min=0.0, max=0.5, help="share of dossiers with an injected anomaly"),
    ] = DEFAULT_ANOMALY_RATE,
    as_of: Annotated[
        str | None,
        typer.Option(help="also write open_events.parquet: the events known at this moment"),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="also write events.csv")] = False,
    raw_identities: Annotated[
        bool,
        typer.Option("--raw-identities", help="write raw ID numbers instead of pseudonyms"),
    ] = False,
    start: Annotated[str, typer.Option(help="first simulated day (ISO date)")] = "2025-07-01",
) -> None:
    """Simulate provinces' processing logs, with labels of the injected anomalies."""
    config = SimulationConfig(
        provinces=provinces,
        months=months,
        seed=seed,
        start=date.fromisoformat(start),
        anomalies=AnomalyRates.scaled(anomaly_rate),
        as_of=as_of,
        write_csv=csv,
        raw_identities=raw_identities,
    )
    from simulator.run import simulate as run

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("simulating provinces", total=provinces)

        def report(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, description=message)

        result = run(config, out, progress=report)
    console.print(
        f"{result.dossiers:,} dossiers, {result.events:,} events in {result.seconds:.1f} s "
        f"({result.events_per_second:,.0f} events/s) -> {result.out}"
    )
