"""Run a simulation: province by province, streamed to Parquet, with labels beside.

``simulate`` writes ``out/``::

    events.parquet          canonical events (one row group per batch of dossiers)
    events.csv              the same, on request (``write_csv``)
    open_events.parquet     with ``as_of``: the events known at that moment
    catalogue.yaml          the catalogue the log was generated from
    labels_dossiers.csv     dossier_id, late, reported_on_time, anomaly_type, entity
    labels_entities.csv     entity_type, entity_id, anomaly_type
    agencies.csv, officers.csv   the simulated world

Memory is bounded by one province at a time (events are written in batches of dossiers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue, dump_catalogue, load_catalogue
from giamsat.settings import get_settings
from simulator.config import SimulationConfig
from simulator.engine import ProvinceRun, simulate_province
from simulator.output import (
    as_plain,
    dossier_labels,
    entity_labels,
    event_table,
    freeze,
    identities,
)

DEFAULT_CATALOGUE = Path(__file__).resolve().parent / "data" / "catalogue.yaml"
Progress = Callable[[int, int, str], None]


def default_catalogue() -> Catalogue:
    """The package's catalogue of Vietnamese procedures (``simulator/data/catalogue.yaml``)."""
    return load_catalogue(DEFAULT_CATALOGUE)


def make_calendar(config: SimulationConfig) -> WorkingCalendar:
    """The working calendar of the settings' country, wide enough for the run and its tail."""
    settings = get_settings()
    end_year = (pd.Timestamp(config.start) + pd.DateOffset(months=config.months)).year
    return WorkingCalendar.for_country(
        settings.holiday_country,
        tz=settings.timezone,
        first_year=config.start.year - 1,
        last_year=end_year + 3,
    )


@dataclass(frozen=True)
class SimulationResult:
    """Where a run wrote its files, and how big and fast it was."""

    out: Path
    events_path: Path
    labels_dossiers_path: Path
    labels_entities_path: Path
    catalogue_path: Path
    csv_path: Path | None
    open_events_path: Path | None
    provinces: int
    dossiers: int
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def _as_of(config: SimulationConfig, tz: str) -> pd.Timestamp | None:
    if config.as_of is None:
        return None
    ts = pd.Timestamp(config.as_of)
    return ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)


def province_tables(
    config: SimulationConfig, catalogue: Catalogue | None = None
) -> Iterator[tuple[ProvinceRun, list[pa.Table], pd.DataFrame, pd.DataFrame]]:
    """Simulate each province; yield it with its event batches and label frames."""
    catalogue = catalogue or (
        load_catalogue(config.catalogue_path) if config.catalogue_path else default_catalogue()
    )
    calendar = make_calendar(config)
    settings = get_settings()
    key = settings.pseudonym_key.get_secret_value().encode("utf-8")
    seq = 0
    for index in range(config.provinces):
        run = simulate_province(index, config, catalogue, calendar)
        frozen = freeze(run, calendar, config.seed)
        ident = identities(run, key, settings.pseudonym_key_id, config.raw_identities)
        n = len(run.dossiers)
        tables = []
        for lo in range(0, n, config.batch_dossiers):
            table = event_table(
                run,
                frozen,
                ident,
                catalogue,
                calendar.tz,
                lo,
                min(n, lo + config.batch_dossiers),
                seq,
            )
            seq += table.num_rows
            tables.append(table)
        yield run, tables, dossier_labels(run, frozen, ident), entity_labels(run, ident)


def simulate(
    config: SimulationConfig, out: Path, *, progress: bool | Progress = True
) -> SimulationResult:
    """Simulate ``config`` and write the log, its catalogue and its labels under ``out``."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalogue = (
        load_catalogue(config.catalogue_path) if config.catalogue_path else default_catalogue()
    )
    tz = get_settings().timezone
    as_of = _as_of(config, tz)
    paths = {
        "events": out / "events.parquet",
        "labels_dossiers": out / "labels_dossiers.csv",
        "labels_entities": out / "labels_entities.csv",
        "catalogue": dump_catalogue(catalogue, out / "catalogue.yaml"),
    }
    csv_path = out / "events.csv" if config.write_csv else None
    open_path = out / "open_events.parquet" if as_of is not None else None
    report = _reporter(progress, config.provinces)
    writers: dict[str, pq.ParquetWriter] = {}
    csv_writer: pacsv.CSVWriter | None = None
    dossiers = events = 0
    entity_frames = []
    agencies, officers = [], []
    try:
        for i, (run, tables, labels, entities) in enumerate(province_tables(config, catalogue)):
            for table in tables:
                plain = as_plain(table)
                _write(writers, "events", paths["events"], plain)
                if csv_path is not None:
                    csv_writer = csv_writer or pacsv.CSVWriter(csv_path, plain.schema)
                    csv_writer.write_table(plain)
                if open_path is not None and as_of is not None:
                    known = plain.filter(
                        pa.compute.less_equal(
                            plain[s.TIMESTAMP],
                            pa.scalar(
                                as_of.to_pydatetime(), type=plain.schema.field(s.TIMESTAMP).type
                            ),
                        )
                    )
                    _write(writers, "open", open_path, known)
                events += table.num_rows
            labels.to_csv(
                paths["labels_dossiers"], mode="a" if i else "w", header=not i, index=False
            )
            dossiers += len(labels)
            entity_frames.append(entities)
            agencies.append(run.province.agencies)
            officers.append(run.staff.frame(run.province.agencies["agency_id"].to_numpy()))
            report(i + 1, config.provinces, f"province {run.province.name}: {events:,} events")
            del run, tables
    finally:
        for writer in writers.values():
            writer.close()
        if csv_writer is not None:
            csv_writer.close()
    pd.concat(entity_frames, ignore_index=True).to_csv(paths["labels_entities"], index=False)
    pd.concat(agencies, ignore_index=True).drop_duplicates("agency_id").to_csv(
        out / "agencies.csv", index=False
    )
    pd.concat(officers, ignore_index=True).drop_duplicates("officer_id").to_csv(
        out / "officers.csv", index=False
    )
    return SimulationResult(
        out=out,
        events_path=paths["events"],
        labels_dossiers_path=paths["labels_dossiers"],
        labels_entities_path=paths["labels_entities"],
        catalogue_path=paths["catalogue"],
        csv_path=csv_path,
        open_events_path=open_path,
        provinces=config.provinces,
        dossiers=dossiers,
        events=events,
        seconds=time.perf_counter() - started,
    )


def _write(writers: dict[str, pq.ParquetWriter], name: str, path: Path, table: pa.Table) -> None:
    if name not in writers:
        writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
    writers[name].write_table(table)


def _reporter(progress: bool | Progress, total: int) -> Progress:
    if callable(progress):
        return progress
    if not progress:
        return lambda done, total, message: None
    from rich.console import Console

    console = Console(stderr=True)

    def report(done: int, total: int, message: str) -> None:
        console.print(f"[{done}/{total}] {message}")

    return report


@dataclass
class SimulatedLog:
    """An in-memory run: canonical events, labels, and the simulated world."""

    events: pd.DataFrame
    labels_dossiers: pd.DataFrame
    labels_entities: pd.DataFrame
    agencies: pd.DataFrame
    officers: pd.DataFrame


def simulate_log(config: SimulationConfig) -> SimulatedLog:
    """Simulate in memory (small configs: tests, notebooks)."""
    tables, labels, entities, agencies, officers = [], [], [], [], []
    for run, batch, lab, ent in province_tables(config):
        tables += batch
        labels.append(lab)
        entities.append(ent)
        agencies.append(run.province.agencies)
        officers.append(run.staff.frame(run.province.agencies["agency_id"].to_numpy()))
    table = pa.concat_tables([as_plain(t) for t in tables])
    events = s.sort_events(s.coerce_events(table.to_pandas()))
    return SimulatedLog(
        events=events,
        labels_dossiers=pd.concat(labels, ignore_index=True),
        labels_entities=pd.concat(entities, ignore_index=True),
        agencies=pd.concat(agencies, ignore_index=True).drop_duplicates("agency_id"),
        officers=pd.concat(officers, ignore_index=True).drop_duplicates("officer_id"),
    )


def simulate_frame(config: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(events, labels_dossiers, labels_entities)`` of a run, in memory."""
    log = simulate_log(config)
    return log.events, log.labels_dossiers, log.labels_entities


__all__ = [
    "DEFAULT_CATALOGUE",
    "SimulatedLog",
    "SimulationResult",
    "default_catalogue",
    "make_calendar",
    "simulate",
    "simulate_frame",
    "simulate_log",
]
