"""The main job of ``make run``: a simulated province and a real log, end to end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.calendar import WorkingCalendar
from features.eventstore import EventStore
from features.ingest import IngestOptions, load_events
from features.summary import summarise
from giamsat.settings import Settings
from simulator.config import SimulationConfig
from simulator.run import simulate

#: the real log the demo ingests beside the simulated one, and how to read it.
REAL_LOG = ("receipt.xes", IngestOptions(tz="Europe/Amsterdam"), "NL")

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: one summary per log, keyed by the log's name."""

    summaries: dict[str, dict[str, Any]]
    stores: dict[str, Path]


def run_demo(
    settings: Settings, out: Path, *, data_dir: Path | None, months: int = 2, say: Say = print
) -> DemoResult:
    """Simulate a province, ingest it and a real log into event stores, summarise both."""
    key = settings.pseudonym_key.get_secret_value().encode()
    summaries: dict[str, dict[str, Any]] = {}
    stores: dict[str, Path] = {}

    say(f"simulating one province for {months} months into {out / 'simulated'}")
    sim = simulate(SimulationConfig(provinces=1, months=months, seed=7), out / "simulated")
    say(f"simulated {sim.dossiers:,} dossiers, {sim.events:,} events in {sim.seconds:.1f} s")
    events = load_events(
        sim.events_path,
        IngestOptions(tz=settings.timezone),
        pseudonym_key=key,
        pseudonym_key_id=settings.pseudonym_key_id,
    )
    stores["simulated"] = _store(settings, out / "store-simulated", events, say)
    calendar = WorkingCalendar.for_country(settings.holiday_country, tz=settings.timezone)
    summaries["simulated province"] = summarise(events, calendar)

    name, options, country = REAL_LOG
    path = (data_dir / name) if data_dir is not None else None
    if path is None or not path.exists():
        say(f"real log {name} not found (set GIAMSAT_DATA_DIR): skipped")
    else:
        events = load_events(
            path, options, pseudonym_key=key, pseudonym_key_id=settings.pseudonym_key_id
        )
        stores[name] = _store(settings, out / f"store-{path.stem}", events, say)
        real_calendar = WorkingCalendar.for_country(country, tz=options.tz)
        summaries[name] = summarise(events, real_calendar)
    return DemoResult(summaries, stores)


def _store(settings: Settings, root: Path, events: Any, say: Say) -> Path:
    report = EventStore(root, settings.buckets).append(events)
    say(f"{root}: {report.added:,} events added, {report.already_stored:,} already stored")
    return root
