"""What the commands that read a log share: the log itself (an event store or any file
the ingestion reads), the working-day calendar and the reference data (catalogue, agency
directory), and the options that name them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from features.calendar import WorkingCalendar
from features.catalogue import Catalogue, load_catalogue
from features.engine import Reference, fit_reference
from features.eventstore import CURRENT, EventStore
from features.ingest import IngestOptions, load_events
from features.process import NormalProcess
from features.schema import TIMESTAMP, EventSchemaError
from giamsat.settings import Settings

CatalogueOption = Annotated[
    Path | None,
    typer.Option("--catalog", "--catalogue", help="procedure catalogue YAML (approved routes)"),
]
AgenciesOption = Annotated[
    Path | None, typer.Option(help="agency directory CSV (agency_id, unit_type)")
]
EventsOption = Annotated[
    Path, typer.Option("--events", help="an event store directory or a log (CSV, Parquet, XES)")
]
TzOption = Annotated[str | None, typer.Option(help="zone of the log (default: settings)")]
CountryOption = Annotated[str | None, typer.Option(help="holiday calendar (default VN)")]


@dataclass(frozen=True)
class LogInput:
    """A log read for modelling, with its calendar and reference data."""

    events: pd.DataFrame
    calendar: WorkingCalendar
    catalogue: Catalogue | None
    agencies: pd.DataFrame | None

    def learned(self) -> Reference:
        """Reference data with, when there is no catalogue, the normal process learned
        from this log (for training)."""
        return fit_reference(
            self.events, self.calendar, catalogue=self.catalogue, agencies=self.agencies
        )

    def with_process(self, process: NormalProcess | None) -> Reference:
        """Reference data with a process learned before (a bundle's, for scoring)."""
        return Reference(self.calendar, self.catalogue, self.agencies, process)


def read_log(path: Path, settings: Settings, tz: str | None = None) -> pd.DataFrame | EventStore:
    """An event store (a directory holding ``_CURRENT``) or a log file, canonical."""
    if (path / CURRENT).exists():
        return EventStore(path, settings.buckets)
    return load_events(
        path,
        IngestOptions(tz=tz or settings.timezone),
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
        pseudonym_key_id=settings.pseudonym_key_id,
    )


def calendar_for(settings: Settings, tz: str | None, country: str | None) -> WorkingCalendar:
    return WorkingCalendar.for_country(
        country or settings.holiday_country, tz=tz or settings.timezone
    )


def reference_tables(
    catalogue: Path | None, agencies: Path | None
) -> tuple[Catalogue | None, pd.DataFrame | None]:
    cat = load_catalogue(catalogue) if catalogue else None
    directory = pd.read_csv(agencies, dtype=str) if agencies else None
    if directory is not None:
        missing = {"agency_id", "unit_type"} - set(directory.columns)
        if missing:
            raise EventSchemaError(
                f"{agencies}: the agency directory lacks the column(s) {sorted(missing)}",
                column=sorted(missing)[0],
            )
        directory = directory[["agency_id", "unit_type"]]
    return cat, directory


def load_input(
    path: Path,
    settings: Settings,
    *,
    catalogue: Path | None = None,
    agencies: Path | None = None,
    tz: str | None = None,
    country: str | None = None,
) -> LogInput:
    """The log in memory, the calendar in its zone, and the reference data."""
    source = read_log(path, settings, tz)
    events = source.read() if isinstance(source, EventStore) else source
    zone = tz or str(events[TIMESTAMP].dt.tz)
    calendar = calendar_for(settings, zone, country)
    cat, directory = reference_tables(catalogue, agencies)
    return LogInput(events, calendar, cat, directory)


def parse_time(value: str | None, zone: str) -> pd.Timestamp | None:
    """An ISO 8601 time; one without an offset is read in ``zone``."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    return stamp.tz_localize(zone) if stamp.tzinfo is None else stamp
