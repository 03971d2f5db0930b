"""One code path, two engines: the features of a whole log, in-process with pandas or on a
Dask cluster partitioned by dossier.

Stage A (``dossier_stage``) is dossier-local: each partition of whole dossiers gives its
dossier features and the small stage-A tables (facts, officer touches, transfer edges).
Stage B (``entity_stage``) aggregates those tables for entities and the transfer and
officer-intermediary graphs, and joins the results back to the dossiers. Stage B is
written once as calls on a runner (:mod:`features.tasks`): the pandas engine makes the
calls in turn in this process; the Dask engine makes each a task, so Louvain, the
transfer tables, the betweenness shares, each entity window and the officer-intermediary
pairs run side by side on the workers, next to the stage-A partitions they read, and only
their results come back to the driver for the final join. Both engines call the same
functions on the same inputs in the same order of dependencies and give the same result.
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
from features.entities import (
    DEFAULT_WINDOWS,
    ENTITY_KEYS,
    combine_windows,
    entity_tables,
    entity_window,
    join_entity_features,
    officer_submitter_pairs,
)
from features.entity_facts import dossier_facts, officer_touches, transfer_edges
from features.eventstore import EventStore, bucket_of
from features.graph import join_graph_features, submit_graph_features
from features.process import NormalProcess
from features.tasks import IN_PROCESS, OnCluster, Runner

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


#: How each stage-A table is put in one canonical order (partitions arrive in any order).
_CANONICAL: dict[str, list[str]] = {
    "facts": [s.DOSSIER_ID],
    "touches": [s.DOSSIER_ID, s.OFFICER_ID],
    "edges": [s.DOSSIER_ID, "at"],
}


def _stage_table(name: str, *parts: StageA) -> pd.DataFrame:
    """One stage-A table of all partitions, in canonical order."""
    frames = [getattr(p, name) for p in parts]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.sort_values(_CANONICAL[name], kind="stable", ignore_index=True)


def _part_dossiers(part: StageA) -> pd.DataFrame:
    return part.dossiers


def _entity_keys(facts: pd.DataFrame) -> pd.DataFrame:
    """The columns of the facts that name a dossier's entities (what the join needs)."""
    return facts[[s.DOSSIER_ID, *ENTITY_KEYS.values()]]


def entity_stage(
    a: StageA | Sequence[Any],
    ref: Reference,
    as_of: pd.Timestamp | None,
    run: Runner = IN_PROCESS,
) -> FeatureSet:
    """Stage B: entity and graph features from the stage-A tables, joined to dossiers.

    ``a`` is stage A of the whole log, or handles on ``run`` of the stage A of partitions.
    Every step is a call on ``run``: in process they run one after the other; on a
    cluster they are tasks (Louvain, the transfer tables, betweenness shares, each entity
    window, the officer-intermediary pairs) that run side by side on the workers, and only
    their results come back to be joined to the dossiers here.
    """
    parts = [a] if isinstance(a, StageA) else list(a)
    own = [run.submit(_part_dossiers, p) for p in parts]  # fetched while the rest runs
    facts = run.submit(_stage_table, "facts", *parts)
    edges = run.submit(_stage_table, "edges", *parts)
    stamp = _as_of(as_of, run.result(run.submit(_last_time, facts)))
    transfer, people = submit_graph_features(
        run, edges, facts, catalogue=ref.catalogue, agencies=ref.agencies, as_of=stamp
    )
    touches = run.submit(_stage_table, "touches", *parts)
    tables = run.submit(entity_tables, facts, touches, edges, stamp)
    windows = [run.submit(entity_window, tables, stamp, w) for w in DEFAULT_WINDOWS]
    # beside Louvain, which already holds the facts: balances the workers, moves little
    pairs = run.submit_apart(officer_submitter_pairs, facts, touches, stamp)
    keys = run.submit(_entity_keys, facts)
    frames = run.gather(own)
    dossiers = (pd.concat(frames) if len(frames) > 1 else frames[0]).sort_index(kind="stable")
    keyed = run.result(keys).set_index(s.DOSSIER_ID).reindex(dossiers.index).reset_index()
    entity = combine_windows([run.result(w) for w in windows])
    graph = {**run.result(transfer), **run.result(people)}
    joined = join_graph_features(join_entity_features(keyed, entity), graph)
    extra = joined.drop(columns=list(keyed.columns)).set_axis(dossiers.index)
    entities = {**entity, **{f"graph_{k}": v for k, v in graph.items()}}
    entities["officer_submitter"] = run.result(pairs)
    return FeatureSet(dossiers.join(extra), entities, stamp)


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
        return entity_stage(a, ref, as_of)
    if engine == "dask":
        return _dask_features(
            source, calendar, catalogue, agencies, as_of, scheduler, workers, partitions, progress
        )
    raise EngineError(f"unknown engine {engine!r}: use 'pandas' or 'dask'")


def _last_time(facts: pd.DataFrame) -> pd.Timestamp:
    ends = facts["last_event_at"] if "last_event_at" in facts else facts["started_at"]
    return pd.Timestamp(ends.max())


def _as_of(as_of: pd.Timestamp | None, last: pd.Timestamp) -> pd.Timestamp:
    """Without an explicit time, entity windows end at the last event of the log."""
    return as_of if as_of is not None else last


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
        for done, _ in enumerate(as_completed(futures), start=1):
            if progress:
                progress(done, len(futures))
        return entity_stage(futures, ref, as_of, OnCluster(client))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
