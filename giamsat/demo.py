"""The main job of ``make run``: a simulated province and a real log, end to end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import load_catalogue
from features.engine import Reference, compute_features
from features.eventstore import EventStore
from features.ingest import IngestOptions, load_events
from features.registry import feature_registry
from features.summary import summarise
from giamsat.settings import Settings
from simulator.config import SimulationConfig
from simulator.run import simulate

if TYPE_CHECKING:
    from models.registry import RegisteredBundle

#: the real log the demo ingests beside the simulated one, and how to read it.
REAL_LOG = ("receipt.xes", IngestOptions(tz="Europe/Amsterdam"), "NL")

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: one summary per log, keyed by the log's name, and the
    simulated province's dossiers furthest over their statutory time, with their features."""

    summaries: dict[str, dict[str, Any]]
    stores: dict[str, Path]
    features: Path | None = None
    furthest_over: pd.DataFrame | None = None
    #: the trained model's figures on the test period, and the top alerts as of a time.
    metrics: dict[str, float] | None = None
    alerts: pd.DataFrame | None = None
    as_of: pd.Timestamp | None = None
    #: what the service part of the main job needs: the province's events, reference
    #: data and the champion it serves.
    province: Province | None = None


@dataclass(frozen=True)
class Province:
    """The simulated province's events and reference data, and the champion model."""

    events: pd.DataFrame
    ref: Reference
    champion: RegisteredBundle
    promotion: str


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
    say("computing dossier, entity and graph features of the simulated province")
    agencies = pd.read_csv(sim.out / "agencies.csv", dtype=str)[["agency_id", "unit_type"]]
    feats = compute_features(
        EventStore(stores["simulated"], settings.buckets),
        calendar,
        catalogue=load_catalogue(sim.catalogue_path),
        agencies=agencies,
    )
    features_dir = out / "features-simulated"
    features_dir.mkdir(parents=True, exist_ok=True)
    feats.dossiers.to_parquet(features_dir / "dossiers.parquet")
    say(f"{len(feats.dossiers):,} dossiers x {feats.dossiers.shape[1]} features -> {features_dir}")
    labels = pd.read_csv(sim.out / "labels_dossiers.csv", dtype={"dossier_id": str})
    ref = Reference(calendar, load_catalogue(sim.catalogue_path), agencies)
    metrics, top, as_of, province = _models(
        settings, out, events, ref, labels.set_index("dossier_id"), say
    )

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
    return DemoResult(summaries, stores, features_dir, furthest_over(feats.dossiers), metrics,
                      top, as_of, province)  # fmt: skip


def _models(
    settings: Settings,
    out: Path,
    events: pd.DataFrame,
    ref: Reference,
    labels: pd.DataFrame,
    say: Say,
) -> tuple[dict[str, float], pd.DataFrame, pd.Timestamp, Province]:
    """Train and register the delay and waste models, promote them over the champion if
    they are at least as good, then score the province with the champion as of a day in
    the test period; writes scores.csv and alerts.csv beside the stores."""
    from models import registry
    from models.lifecycle import promote, score, train_and_register

    say("training the delay, waste and integrity models (MLflow: "
        + settings.mlflow_tracking_uri + ")")  # fmt: skip
    registered = train_and_register(
        settings, events, ref, labels=labels, report_dir=out / "report", source="demo", say=say
    )
    decision = promote(settings, events, ref, say=say)
    promotion = (
        f"v{decision.challenger} {'promoted to' if decision.promoted else 'not promoted over'} "
        f"champion v{decision.champion}: {decision.reason}"
    )
    say(promotion)
    champion = registry.load_bundle(settings, registry.CHAMPION)
    if champion.version != registered.version:
        ref = Reference(ref.calendar, ref.catalogue, ref.agencies, champion.bundle.process)
    starts = events.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    as_of = pd.Timestamp(starts.sort_values().iloc[int(len(starts) * 0.9)]).floor("h")
    result, which = score(settings, events, ref, as_of=as_of, say=say)
    result.scores.to_csv(out / "scores.csv", index=False)
    result.alerts.to_csv(out / "alerts.csv", index=False)
    say(f"scored {len(result.scores):,} dossiers as of {as_of} with {which}: "
        f"{len(result.alerts):,} alerts -> {out / 'alerts.csv'}")  # fmt: skip
    # delay alerts while there is still time to act first, then the most wasteful dossiers,
    # then integrity alerts on dossiers and on officers, agencies and intermediaries
    left = result.scores.set_index(s.DOSSIER_ID)["remaining_honest_days"]
    alerts = result.alerts.assign(left=left.reindex(result.alerts["subject_id"]).to_numpy())
    savable = alerts[(alerts["kind"] == "delay") & (alerts["left"] > 0)].head(4)
    integrity = alerts[alerts["kind"] == "integrity"]
    by_dossier = integrity[integrity["subject_type"] == "dossier"].head(3)
    by_entity = integrity[integrity["subject_type"] != "dossier"].head(3)
    top = pd.concat(
        [savable, alerts[alerts["kind"] == "waste"].head(3), by_dossier, by_entity],
        ignore_index=True,
    )
    province = Province(events, ref, champion, promotion)
    return registered.bundle.metrics, top, as_of, province


def furthest_over(dossiers: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """The ``n`` dossiers furthest over their statutory time on the honest clock, with the
    features an inspector would look at first, described by the registry."""
    registry = feature_registry()
    ranked = dossiers.sort_values("honest_clock_ratio", ascending=False).head(n)
    rows = []
    for dossier_id, row in ranked.iterrows():
        reasons = [
            registry.describe(name, row[name])
            for name in SHOWN
            if name in row.index and pd.notna(row[name]) and row[name] != 0
        ]
        rows.append({"dossier": dossier_id, "why": "; ".join(reasons)})
    return pd.DataFrame(rows)


#: the features the demo shows for each dossier, in this order.
SHOWN = (
    "honest_clock_ratio",
    "reported_clock_ratio",
    "supplement_rounds",
    "pauses",
    "longest_idle_days",
    "transfers",
    "missing_mandatory_steps",
)


def _store(settings: Settings, root: Path, events: Any, say: Say) -> Path:
    report = EventStore(root, settings.buckets).append(events)
    say(f"{root}: {report.added:,} events added, {report.already_stored:,} already stored")
    return root
