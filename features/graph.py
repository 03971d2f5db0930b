"""Inter-agency graph features: the transfer graph (agency -> agency) against the approved
routes, reciprocity, cycles and ping-pong, holding-time anomalies, centrality; and the
officer-intermediary graph (:mod:`features.graph_bipartite`). Stage B: built from the
stage-A tables of :mod:`features.entity_facts` in any row order, deterministically.

A *return* is a handover X -> Y of a dossier that Y had earlier handed to X; a *ping-pong*
is a return after which the dossier is handed over again (a plain return to the one-stop
desk at the end is the normal route, not ping-pong).

The work is a few calls (:func:`submit_graph_features`) that an engine may run as tasks:
the officer-intermediary features (Louvain, the longest), the transfer tables
(:mod:`features.graph_transfers`), betweenness in :data:`BETWEENNESS_TASKS` shares of
source blocks (:mod:`features.graph_centrality`) and the frames built from them. The
graphs are not split into connected components: on the simulated provinces each is a
single component (ministries link every province), so there was nothing to split.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.catalogue import Catalogue
from features.entities import join_entity_features
from features.entity_stats import as_timestamp, safe_ratio
from features.graph_bipartite import bipartite_features, officer_submitter_graph
from features.graph_centrality import (
    betweenness_of_sources,
    normalised_betweenness,
    pagerank,
    source_blocks,
)
from features.graph_specs import SPECS
from features.graph_transfers import (
    PAIR,
    TransferArrays,
    transfer_arrays,
    transfer_graph,
    transfer_tables,
)
from features.tasks import IN_PROCESS, Runner

__all__ = [
    "SPECS",
    "graph_features",
    "join_graph_features",
    "merge_entity_frames",
    "officer_submitter_graph",
    "transfer_graph",
]

#: Calls the betweenness of the transfer graph is split into (tasks on a cluster).
BETWEENNESS_TASKS = 4


def _cycles3(table: pd.DataFrame) -> pd.Series:
    """Directed three-agency cycles through each agency (a -> b -> c -> a)."""
    p = table.loc[table["from_agency"] != table["to_agency"], ["from_agency", "to_agency"]]
    first = p.set_axis(["a", "b"], axis=1)
    two = first.merge(p.set_axis(["b", "c"], axis=1), on="b")
    two = two[two["c"] != two["a"]]
    back = two.merge(p.set_axis(["c", "a"], axis=1), on=["c", "a"])
    return back.groupby("a", sort=True).size()


def _agency_table(
    e: pd.DataFrame, table: pd.DataFrame, graph: TransferArrays, betweenness: np.ndarray
) -> pd.DataFrame:
    nodes = graph.nodes
    n = len(nodes)
    out = pd.DataFrame(index=pd.Index(nodes, name=s.AGENCY_ID, dtype=object))
    out["in_volume"] = table.groupby("to_agency")["volume"].sum()
    out["out_volume"] = table.groupby("from_agency")["volume"].sum()
    out["in_partners"] = table.groupby("to_agency").size()
    out["out_partners"] = table.groupby("from_agency").size()
    out = out.fillna(0).astype(np.int64)
    degree = (out["in_partners"] + out["out_partners"]).to_numpy(dtype="float64")
    out["degree_centrality"] = degree / (n - 1) if n > 1 else np.ones(n)  # as networkx
    out["betweenness"] = betweenness
    out["pagerank"] = pagerank(graph.src, graph.dst, graph.volume, n)
    mutual = table[table["reciprocal_volume"] > 0].groupby("from_agency")["volume"].sum()
    out["reciprocity_share"] = safe_ratio(mutual.reindex(out.index).fillna(0), out["out_volume"])
    out["cycles3"] = _cycles3(table).reindex(out.index).fillna(0).astype(np.int64)
    bounced = e[e["_pingpong"]]
    involved = pd.concat(
        [
            bounced[[s.DOSSIER_ID, "from_agency"]].set_axis(["d", "a"], axis=1),
            bounced[[s.DOSSIER_ID, "to_agency"]].set_axis(["d", "a"], axis=1),
        ]
    ).drop_duplicates()
    touched = pd.concat(
        [
            e[[s.DOSSIER_ID, "from_agency"]].set_axis(["d", "a"], axis=1),
            e[[s.DOSSIER_ID, "to_agency"]].set_axis(["d", "a"], axis=1),
        ]
    ).drop_duplicates()
    out["pingpong_dossiers"] = (
        involved.groupby("a").size().reindex(out.index).fillna(0).astype(np.int64)
    )
    out["pingpong_share"] = safe_ratio(
        out["pingpong_dossiers"], touched.groupby("a").size().reindex(out.index)
    )
    sent = pd.concat(
        [
            e[["from_agency", "_offroute"]].set_axis(["a", "o"], axis=1),
            e[["to_agency", "_offroute"]].set_axis(["a", "o"], axis=1),
        ]
    )
    out["offroute_share"] = sent.groupby("a")["o"].mean().reindex(out.index)
    out.index = out.index.astype("string")
    return out


def _dossier_table(e: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    anomaly = e[PAIR].map(table["holding_anomaly_ratio"]).astype("float64")
    z = e[PAIR].map(table["holding_anomaly_z"]).astype("float64")
    g = e.assign(_anomaly=anomaly, _z=z).groupby(s.DOSSIER_ID, sort=True)
    known = e["_offroute"].notna().groupby(e[s.DOSSIER_ID], sort=True).any()
    out = pd.DataFrame(
        {
            "graph_transfers": g.size(),
            "graph_offroute_transfers": g["_offroute"].sum().where(known),
            "graph_pingpong": g["_pingpong"].sum().astype(np.int64),
            "graph_max_holding_anomaly": g["_anomaly"].max(),
            "graph_max_holding_z": g["_z"].max(),
        }
    )
    out.index = pd.Index(out.index.astype("string"), name=s.DOSSIER_ID)
    return out


def betweenness_share(graph: TransferArrays, task: int, tasks: int) -> list[np.ndarray]:
    """Betweenness from the ``task``-th of ``tasks`` equal runs of source blocks."""
    blocks = source_blocks(len(graph.nodes))
    mine = blocks[task * len(blocks) // tasks : (task + 1) * len(blocks) // tasks]
    return [betweenness_of_sources(graph.src, graph.dst, len(graph.nodes), b) for b in mine]


def transfer_frames(
    tables: tuple[pd.DataFrame, pd.DataFrame],
    graph: TransferArrays,
    *shares: list[np.ndarray],
) -> dict[str, pd.DataFrame]:
    """Agency, agency-pair and dossier frames from the tables and the betweenness shares."""
    e, table = tables
    parts = [part for share in shares for part in share]
    centrality = normalised_betweenness(parts, len(graph.nodes))
    pairs = table.drop(columns=["from_agency", "to_agency"])
    pairs.index = pd.Index(pairs.index.astype("string"), name=PAIR)
    return {
        "agency": _agency_table(e, table, graph, centrality),
        "agency_pair": pairs,
        "dossier": _dossier_table(e, table),
    }


def people_features(
    facts: pd.DataFrame, as_of: datetime | str | None = None
) -> dict[str, pd.DataFrame]:
    """Officer and submitter frames (:func:`bipartite_features`) of dossiers started by
    ``as_of``."""
    if as_of is not None:
        stamp = as_timestamp(as_of)
        facts = facts[(facts["started_at"] <= stamp).to_numpy(dtype=bool, na_value=False)]
    return bipartite_features(facts)


def submit_graph_features(
    run: Runner,
    edges: Any,
    facts: Any,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    as_of: datetime | str | None = None,
) -> tuple[Any, Any]:
    """:func:`graph_features` as calls on ``run``: handles of the transfer frames and of the
    people frames. Louvain (the longest call) is submitted first and apart; betweenness is split in
    :data:`BETWEENNESS_TASKS` calls."""
    people = run.submit_apart(people_features, facts, as_of)
    tables = run.submit(transfer_tables, edges, catalogue, agencies, as_of)
    graph = run.submit(transfer_arrays, tables)
    shares = [
        run.submit(betweenness_share, graph, i, BETWEENNESS_TASKS) for i in range(BETWEENNESS_TASKS)
    ]
    return run.submit(transfer_frames, tables, graph, *shares), people


def graph_features(
    edges: pd.DataFrame,
    facts: pd.DataFrame,
    touches: pd.DataFrame | None = None,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    as_of: datetime | str | None = None,
) -> dict[str, pd.DataFrame]:
    """Graph features per agency, agency pair, dossier, officer and submitter.

    ``edges``, ``facts`` (and ``touches``, accepted for symmetry with
    :func:`features.entities.entity_features` and not used yet) are stage-A tables in any
    order. With ``as_of``, only handovers at or before it and dossiers started by then
    count, and holding times not over by then are unknown. Off-route features need both
    ``catalogue`` and ``agencies`` (``agency_id``, ``unit_type``); without them they are
    missing. Returns frames indexed by entity id (an agency pair as ``"A->B"``).
    """
    del touches
    frames, people = submit_graph_features(
        IN_PROCESS, edges, facts, catalogue=catalogue, agencies=agencies, as_of=as_of
    )
    return {**frames, **people}


def join_graph_features(
    dossier_table: pd.DataFrame,
    graph_frames: Mapping[str, pd.DataFrame],
    *,
    keys: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``dossier_table`` with its own graph features and those of its main officer, first
    agency and submitter (prefixed ``officer__`` etc., as
    :func:`features.entities.join_entity_features`)."""
    keys = keys or {
        "officer": "main_officer_id",
        "agency": "first_agency_id",
        "submitter": s.SUBMITTER_ID,
    }
    own = graph_frames.get("dossier")
    out = dossier_table
    if own is not None:
        ids = dossier_table[s.DOSSIER_ID].astype("string").to_numpy(dtype=object)
        mine = own.reindex(pd.Index(ids, dtype=object))
        mine.index = dossier_table.index
        for col in ("graph_transfers", "graph_pingpong"):
            mine[col] = mine[col].fillna(0).astype(np.int64)  # no handover: zero, not unknown
        out = pd.concat([dossier_table, mine], axis=1)
    return join_entity_features(out, {k: v for k, v in graph_frames.items()}, keys=keys)


def merge_entity_frames(
    *frames: Mapping[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """Entity frames side by side (e.g. entity and graph features), outer-joined by id."""
    out: dict[str, pd.DataFrame] = {}
    for group in frames:
        for entity, frame in group.items():
            out[entity] = frame if entity not in out else out[entity].join(frame, how="outer")
    return out
