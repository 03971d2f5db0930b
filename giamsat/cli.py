"""The one command line: ``giamsat <command>``. Commands stay thin: they parse options,
call one package function and print its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features.calendar import WorkingCalendar
from features.eventstore import CURRENT, EventStore
from features.ingest import IngestOptions, load_events
from features.schema import GiamSatError
from features.sources import load_mapping_file
from features.summary import summarise
from giamsat.commands.features import features, registry
from giamsat.commands.models import evaluate, promote, score, train
from giamsat.commands.service import (
    alerts_app,
    audit_app,
    db_app,
    dispatch,
    labels_app,
    rescore,
    serve,
    users_app,
)
from giamsat.commands.simulate import simulate
from giamsat.settings import Settings, get_settings

if TYPE_CHECKING:
    from giamsat.demo import DemoResult

app = typer.Typer(
    help="GiamSat: oversight of administrative-procedure processing logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("simulate")(simulate)
app.command("features")(features)
app.command("registry")(registry)
app.command("train")(train)
app.command("score")(score)
app.command("evaluate")(evaluate)
app.command("promote")(promote)
app.command("serve")(serve)
app.command("rescore")(rescore)
app.command("dispatch")(dispatch)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(alerts_app, name="alerts")
app.add_typer(labels_app, name="labels")
console = Console(stderr=True)
out = Console()

MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="canonical=source column mapping, repeatable (e.g. --map dossier_id=ID)",
    ),
]
MappingFile = Annotated[
    Path | None, typer.Option(help="YAML file of 'canonical_column: source_column' lines")
]
SepOption = Annotated[str | None, typer.Option(help="CSV delimiter (default: sniffed)")]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="csv, parquet or xes (default: from the name)")
]
TzOption = Annotated[
    str | None,
    typer.Option(help="zone of timestamps without an offset (default: settings, Asia/Ho_Chi_Minh)"),
]
TimeFormat = Annotated[
    str | None, typer.Option(help="strftime format of timestamps (default: ISO 8601)")
]


def _options(
    maps: list[str] | None,
    mapping_file: Path | None,
    sep: str | None,
    fmt: str | None,
    tz: str | None,
    time_format: str | None,
) -> IngestOptions:
    mapping: dict[str, str] = load_mapping_file(mapping_file) if mapping_file else {}
    for item in maps or []:
        target, eq, source = item.partition("=")
        if not eq or not target or not source:
            raise typer.BadParameter(f"--map takes canonical=source, got {item!r}")
        mapping[target.strip()] = source.strip()
    return IngestOptions(
        fmt=fmt,
        sep=sep,
        mapping=mapping,
        tz=tz or get_settings().timezone,
        time_format=time_format,
    )


def _load(path: Path, options: IngestOptions) -> pd.DataFrame:
    settings = get_settings()
    return load_events(
        path,
        options,
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
        pseudonym_key_id=settings.pseudonym_key_id,
    )


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=2)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="logs to ingest (CSV, Parquet, XES[.gz])")],
    store: Annotated[Path, typer.Option("--out", help="event store directory")] = Path(
        "var/events"
    ),
    maps: MapOption = None,
    mapping_file: MappingFile = None,
    sep: SepOption = None,
    fmt: FormatOption = None,
    tz: TzOption = None,
    time_format: TimeFormat = None,
) -> None:
    """Ingest logs into the canonical event store: all files or none, re-runs add nothing."""
    options = _options(maps, mapping_file, sep, fmt, tz, time_format)
    frames = []
    try:
        with console.status("") as status:
            for path in paths:
                status.update(f"reading {path}")
                frames.append(_load(path, options))
                console.print(f"read {path}: {len(frames[-1]):,} events")
            status.update(f"writing {store}")
            events = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            report = EventStore(store, get_settings().buckets).append(events)
    except GiamSatError as exc:
        raise _fail(exc) from exc
    out.print(
        f"{report.added:,} events added, {report.already_stored:,} already stored "
        f"({store}, version {report.version})"
    )


@app.command()
def summary(
    log: Annotated[Path, typer.Argument(help="an event store directory or a log file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
    maps: MapOption = None,
    mapping_file: MappingFile = None,
    sep: SepOption = None,
    fmt: FormatOption = None,
    tz: TzOption = None,
    time_format: TimeFormat = None,
    country: Annotated[
        str | None, typer.Option(help="holiday calendar (ISO country code; default VN)")
    ] = None,
) -> None:
    """Print a log's summary: size, span, people, variants, durations, lateness."""
    try:
        if (log / CURRENT).exists():
            events = EventStore(log).read()
        else:
            events = _load(log, _options(maps, mapping_file, sep, fmt, tz, time_format))
        zone = str(events["timestamp"].dt.tz)
        calendar = WorkingCalendar.for_country(country or get_settings().holiday_country, tz=zone)
        figures = summarise(events, calendar)
    except GiamSatError as exc:
        raise _fail(exc) from exc
    if as_json:
        out.print_json(json.dumps(figures))
        return
    out.print(summary_table(str(log), figures))


def summary_table(title: str, figures: dict[str, object]) -> Table:
    """The summary as a two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        if isinstance(value, float):
            shown = f"{value:.1%}" if key.startswith("share") else f"{value:,.2f}"
        table.add_row(key.replace("_", " "), shown)
    return table


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="real logs (default: settings, ../shared/data)")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="where to write")] = Path("var"),
    months: Annotated[int, typer.Option(min=2, max=24, help="months to simulate")] = 3,
    serve: Annotated[
        bool, typer.Option(help="start the service and replay recent events through it")
    ] = True,
    forever: Annotated[
        bool, typer.Option(help="keep serving after the replay (until Ctrl-C)")
    ] = True,
    host: Annotated[str, typer.Option(help="address the service listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port the service listens on")] = 8000,
    replay_days: Annotated[
        float, typer.Option(min=0.5, max=60, help="days of recent events to replay")
    ] = 3.0,
) -> None:
    """The main job: simulate a province, ingest it and a real log, summarise both, train
    and promote the models, then start the service on the province and replay its recent
    events through the ingestion API so that alerts appear."""
    from giamsat.demo import run_demo

    settings = get_settings()
    try:
        result = run_demo(
            settings,
            out_dir,
            data_dir=data_dir or settings.data_dir,
            months=months,
            say=lambda line: console.print(line, highlight=False),
        )
    except GiamSatError as exc:
        raise _fail(exc) from exc
    for name, figures in result.summaries.items():
        out.print(summary_table(name, figures))
    if result.furthest_over is not None:
        table = Table(title="dossiers furthest over their statutory time (honest clock)",
                      title_justify="left")  # fmt: skip
        table.add_column("dossier", style="bold")
        table.add_column("why")
        for row in result.furthest_over.itertuples(index=False):
            table.add_row(str(row.dossier), str(row.why))
        out.print(table)
    if result.metrics is not None:
        shown: dict[str, object] = {k: result.metrics[k] for k in DEMO_METRICS
                                    if k in result.metrics}  # fmt: skip
        out.print(summary_table("delay and waste models, test period", shown))
    if result.alerts is not None and len(result.alerts):
        table = Table(title=f"alerts as of {result.as_of}", title_justify="left")
        for column in ("kind", "pattern", "subject", "score", "reasons"):
            table.add_column(column, style="bold" if column == "kind" else None)
        for alert in result.alerts.to_dict("records"):
            subject = f"{alert['subject_type']} {alert['subject_id']}"
            table.add_row(str(alert["kind"]), str(alert["pattern"]), subject,
                          f"{alert['score']:.2f}", str(alert["reasons"]))  # fmt: skip
        out.print(table)
    if serve and result.province is not None and result.as_of is not None:
        _serve_demo(settings, result, host=host, port=port, replay_days=replay_days,
                    forever=forever)  # fmt: skip


def _serve_demo(
    settings: Settings, result: DemoResult, *, host: str, port: int, replay_days: float,
    forever: bool,
) -> None:  # fmt: skip
    from giamsat.demo_service import DEMO_USERS, Served, serve_demo

    province = result.province
    assert province is not None and result.as_of is not None

    def announce(served: Served) -> None:
        out.print(f"GiamSat is serving at {served.url}; the demo users' API keys (shown once):",
                  style="bold", highlight=False)  # fmt: skip
        for name, key in served.prepared.keys.items():
            role, scoped = DEMO_USERS[name]
            where = f", jurisdiction {served.prepared.jurisdiction}" if scoped else ""
            out.print(f"  {name} ({role}{where}): {key}", highlight=False, soft_wrap=True)
        out.print(
            f"{served.replayed.events:,} events replayed ({served.replayed.new:,} new) and "
            f"their dossiers re-scored {served.settled_seconds:.1f} s after the last batch; "
            f"{served.alerts:,} alerts in the inbox. Try:\n"
            f"  curl -H 'Authorization: Bearer {served.prepared.keys['demo-inspector']}' "
            f"'{served.url}/v1/alerts?limit=5'\n"
            f"  API docs: {served.url}/docs" + ("   (Ctrl-C stops the service)" if forever else ""),
            highlight=False,
            soft_wrap=True,
        )

    try:
        serve_demo(
            settings,
            province.events,
            province.ref,
            province.champion.bundle,
            province.champion.version,
            until=result.as_of,
            replay_days=replay_days,
            host=host,
            port=port,
            forever=forever,
            say=lambda line: console.print(line, highlight=False),
            announce=announce,
        )
    except GiamSatError as exc:
        raise _fail(exc) from exc


#: the model figures the demo prints (the report has them all).
DEMO_METRICS = (
    "delay_auc_half",
    "logistic_auc_half",
    "procedure_rate_auc_half",
    "delay_false_alarm_share",
    "delay_warned_2d_share_over_2d",
    "remaining_mae",
    "naive_remaining_mae",
    "remaining_p90_coverage",
    "waste_ap",
)


def main() -> None:  # pragma: no cover - console entry point
    app()
