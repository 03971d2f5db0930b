"""One code path, two engines: the features of a whole log, in-process with pandas or on a
Dask cluster partitioned by dossier.

Stage A (``dossier_stage``) is dossier-local: each partition of whole dossiers gives its
dossier features and the small stage-A tables (facts, officer touches, transfer edges).
Stage B (``entity_stage``) aggregates those tables once, for entities and the transfer
graph, and joins the results back to the dossiers. Both engines call the same two
functions; the Dask engine only decides where stage A runs, so both give the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.dossiers import dossier_features
from features.entities import entity_features, join_entity_features, officer_submitter_pairs
from features.entity_facts import dossier_facts, officer_touches, transfer_edges
from features.eventstore import EventStore, bucket_of
from features.graph import graph_features, join_graph_features
from features.process import NormalProcess

Engine = Literal["pandas", "dask"]
Progress = Callable[[int, int], None]
#: columns the normal process is learned from (all a Dask driver needs to gather).
PROCESS_COLUMNS = [s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP, s.SEQ]


class EngineError(s.GiamSatError, ValueError):
    """An engine setting that cannot work (unknown engine, no cluster reachable...)."""


@dataclass(frozen=True)
class Reference:
    """The reference data every partition needs: calendar, catalogue, agencies, process."""

    calendar: WorkingCalendar
    catalogue: Catalogue | None = None
    agencies: pd.DataFrame | None = None
    process: NormalProcess | None = None


@dataclass
class StageA:
    """Dossier-local results of one partition (or of all, concatenated)."""

    dossiers: pd.DataFrame
    facts: pd.DataFrame
    touches: pd.DataFrame
    edges: pd.DataFrame

    @classmethod
    def concat(cls, parts: Sequence[StageA]) -> StageA:
        def cat(name: str) -> pd.DataFrame:
            frames = [getattr(p, name) for p in parts]
            return pd.concat(frames) if len(frames) > 1 else frames[0]

        return cls(cat("dossiers"), cat("facts"), cat("touches"), cat("edges"))


@dataclass
class FeatureSet:
    """Dossier features (own, entity and graph features joined) and entity tables."""

    dossiers: pd.DataFrame
    entities: dict[str, pd.DataFrame] = field(default_factory=dict)
    as_of: pd.Timestamp | None = None


def dossier_stage(events: pd.DataFrame, ref: Reference, as_of: pd.Timestamp | None) -> StageA:
    """Stage A on whole dossiers: their features and the tables entities are built from."""
    events = s.sort_events(events)
    feats = dossier_features(
        events,
        ref.calendar,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        process=ref.process,
        as_of=as_of,
    )
    return StageA(
        dossiers=feats,
        facts=dossier_facts(events, ref.calendar, catalogue=ref.catalogue, as_of=as_of),
        touches=officer_touches(events, ref.calendar, as_of=as_of),
        edges=transfer_edges(events, ref.calendar, as_of=as_of),
    )


def entity_stage(a: StageA, ref: Reference, as_of: pd.Timestamp) -> FeatureSet:
    """Stage B: entity and graph features from the stage-A tables, joined to dossiers."""
    facts = a.facts.sort_values(s.DOSSIER_ID, kind="stable")
    touches = a.touches.sort_values([s.DOSSIER_ID, s.OFFICER_ID], kind="stable")
    edges = a.edges.sort_values([s.DOSSIER_ID, "at"], kind="stable")
    entity = entity_features(facts, touches, edges, as_of)
    graph = graph_features(
        edges, facts, touches, catalogue=ref.catalogue, agencies=ref.agencies, as_of=as_of
    )
    dossiers = a.dossiers.sort_index(kind="stable")
    keyed = facts.set_index(s.DOSSIER_ID).reindex(dossiers.index).reset_index()
    joined = join_graph_features(join_entity_features(keyed, entity), graph)
    extra = joined.drop(columns=list(keyed.columns)).set_axis(dossiers.index)
    entities = {**entity, **{f"graph_{k}": v for k, v in graph.items()}}
    entities["officer_submitter"] = officer_submitter_pairs(facts, touches, as_of)
    return FeatureSet(dossiers.join(extra), entities, as_of)


def fit_reference(
    events: pd.DataFrame, calendar: WorkingCalendar, *, catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
) -> Reference:  # fmt: skip
    """Reference data for ``events``: without a catalogue, the normal process is learned."""
    process = None if catalogue is not None else NormalProcess().fit(events)
    return Reference(calendar, catalogue, agencies, process)


def compute_features(
    source: pd.DataFrame | EventStore,
    calendar: WorkingCalendar,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    workers: int = 2,
    partitions: int = 16,
    progress: Progress | None = None,
) -> FeatureSet:
    """The features of a log (a canonical frame or an event store) with either engine.

    ``scheduler`` is the address of a running ``dask.distributed`` scheduler; without it
    the Dask engine starts a ``LocalCluster`` of ``workers`` single-threaded processes.
    A frame given to the Dask engine is split into ``partitions`` buckets of whole dossiers;
    a store is read bucket by bucket on the workers.
    """
    if engine == "pandas":
        events = source.read() if isinstance(source, EventStore) else source
        ref = fit_reference(events, calendar, catalogue=catalogue, agencies=agencies)
        a = dossier_stage(events, ref, as_of)
        if progress:
            progress(1, 1)
        return entity_stage(a, ref, _as_of(as_of, a))
    if engine == "dask":
        return _dask_features(
            source, calendar, catalogue, agencies, as_of, scheduler, workers, partitions, progress
        )
    raise EngineError(f"unknown engine {engine!r}: use 'pandas' or 'dask'")


def _as_of(as_of: pd.Timestamp | None, a: StageA) -> pd.Timestamp:
    """Without an explicit time, entity windows end at the last event of the log."""
    if as_of is not None:
        return as_of
    ends = a.facts["last_event_at"] if "last_event_at" in a.facts else a.facts["started_at"]
    return pd.Timestamp(ends.max())


def _read_bucket(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.read_table(path, columns=columns).to_pandas()


def _stage_a_of_bucket(path: Path, ref: Reference, as_of: pd.Timestamp | None) -> StageA:
    return dossier_stage(s.coerce_events(_read_bucket(path)), ref, as_of)


def _dask_features(
    source: pd.DataFrame | EventStore,
    calendar: WorkingCalendar,
    catalogue: Catalogue | None,
    agencies: pd.DataFrame | None,
    as_of: pd.Timestamp | None,
    scheduler: str | None,
    workers: int,
    partitions: int,
    progress: Progress | None,
) -> FeatureSet:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
    except OSError as exc:
        raise EngineError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from exc
    try:
        if isinstance(source, EventStore):
            files = source.bucket_files()
            process_events = None
            if catalogue is None:
                # The normal process is learned once, on the driver, from 4 columns.
                parts = client.map(_read_bucket, files, columns=PROCESS_COLUMNS)
                process_events = s.sort_events(pd.concat(client.gather(parts)))
            ref = fit_reference(
                process_events if process_events is not None else source.read(PROCESS_COLUMNS),
                calendar,
                catalogue=catalogue,
                agencies=agencies,
            ) if catalogue is None else Reference(calendar, catalogue, agencies)  # fmt: skip
            futures = client.map(_stage_a_of_bucket, files, ref=ref, as_of=as_of)
        else:
            ref = fit_reference(source, calendar, catalogue=catalogue, agencies=agencies)
            buckets = bucket_of(source[s.DOSSIER_ID], partitions)
            chunks = [source.loc[buckets == b] for b in range(partitions)]
            chunks = [c for c in chunks if len(c)]
            scattered = client.scatter(chunks)
            futures = client.map(dossier_stage, scattered, ref=ref, as_of=as_of)
        results: list[Any] = []
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            if progress:
                progress(done, len(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    a = StageA.concat(results)
    return entity_stage(a, ref, _as_of(as_of, a))
