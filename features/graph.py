"""Inter-agency graph features: the transfer graph (agency -> agency) against the approved
routes, reciprocity, cycles and ping-pong, holding-time anomalies, centrality; and the
officer-intermediary graph (:mod:`features.graph_bipartite`). Stage B: built from the
stage-A tables of :mod:`features.entity_facts` in any row order, deterministically.

A *return* is a handover X -> Y of a dossier that Y had earlier handed to X; a *ping-pong*
is a return after which the dossier is handed over again (a plain return to the one-stop
desk at the end is the normal route, not ping-pong).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

import networkx as nx
import numpy as np
import pandas as pd

from features import schema as s
from features.catalogue import Catalogue
from features.entities import join_entity_features
from features.entity_stats import IQR_TO_SIGMA, as_timestamp, complement_quantiles, safe_ratio
from features.graph_bipartite import bipartite_features, officer_submitter_graph
from features.graph_centrality import betweenness, pagerank
from features.graph_specs import SPECS

__all__ = [
    "SPECS",
    "graph_features",
    "join_graph_features",
    "merge_entity_frames",
    "officer_submitter_graph",
    "transfer_graph",
]

PAIR = "agency_pair"


def _prepared_edges(
    edges: pd.DataFrame, catalogue: Catalogue | None, agencies: pd.DataFrame | None
) -> pd.DataFrame:
    """Edges in canonical order with their pair, return / ping-pong and off-route marks."""
    e = edges.sort_values(
        [s.DOSSIER_ID, "at", "from_agency", "to_agency"], kind="stable", ignore_index=True
    )
    e = e.assign(**{PAIR: e["from_agency"] + "->" + e["to_agency"]})
    nth = e.groupby(s.DOSSIER_ID, sort=False).cumcount().to_numpy()
    size = e.groupby(s.DOSSIER_ID, sort=False)["at"].transform("size").to_numpy()
    # first handover of each (dossier, from, to): a later reverse handover is a return
    first = e.assign(_n=nth).groupby([s.DOSSIER_ID, "from_agency", "to_agency"])["_n"].min()
    reverse = pd.MultiIndex.from_arrays([e[s.DOSSIER_ID], e["to_agency"], e["from_agency"]])
    earlier = first.reindex(reverse).to_numpy(dtype="float64", na_value=np.nan)
    returns = np.isfinite(earlier) & (earlier < nth)
    return e.assign(
        _return=returns,
        _pingpong=returns & (nth < size - 1),
        _offroute=_off_route_rows(e, catalogue, agencies),
        _offroute_pair=_off_route_rows(e, catalogue, agencies, per_procedure=False),
    )


def _off_route_rows(
    e: pd.DataFrame,
    catalogue: Catalogue | None,
    agencies: pd.DataFrame | None,
    *,
    per_procedure: bool = True,
) -> np.ndarray:
    """1.0 for a handover between unit types the catalogue never approves (for the dossier's
    procedure when it is listed, else for any), 0.0 if approved, NaN if unknown."""
    if catalogue is None or agencies is None or not len(e):
        return np.full(len(e), np.nan)
    if not {s.AGENCY_ID, "unit_type"} <= set(agencies.columns):
        raise ValueError("agencies must have columns 'agency_id' and 'unit_type'")
    unit = agencies.drop_duplicates(s.AGENCY_ID).set_index(s.AGENCY_ID)["unit_type"]
    unit.index = unit.index.astype(str)
    a = e["from_agency"].astype(str).map(unit)
    b = e["to_agency"].astype(str).map(unit)
    rows = [(p.code, x, y) for p in catalogue for x, y in p.approved_transfers()]
    approved = pd.DataFrame(rows, columns=["code", "a", "b"]).drop_duplicates()
    anywhere = pd.MultiIndex.from_frame(approved[["a", "b"]].drop_duplicates())
    pair_ok = pd.MultiIndex.from_arrays([a, b]).isin(anywhere)
    listed = e[s.PROCEDURE_CODE].isin(catalogue.codes).to_numpy(dtype=bool)
    own = pd.MultiIndex.from_arrays([e[s.PROCEDURE_CODE].astype(str), a, b])
    ok = np.where(listed & per_procedure, own.isin(pd.MultiIndex.from_frame(approved)), pair_ok)
    known = (a.notna() & b.notna()).to_numpy(dtype=bool)
    return np.where(known, (~ok).astype("float64"), np.nan)


def _pair_table(e: pd.DataFrame) -> pd.DataFrame:
    """One row per agency pair: volume, holding times and their anomaly, reciprocity."""
    g = e.groupby(PAIR, sort=True)
    hold = e["holding_days"]
    table = pd.DataFrame(
        {
            "from_agency": g["from_agency"].first(),
            "to_agency": g["to_agency"].first(),
            "volume": g.size(),
            "dossiers": g[s.DOSSIER_ID].nunique(),
            "hold_p50": g["holding_days"].median(),
            "hold_p90": g["holding_days"].quantile(0.9),
            "pingpong": g["_pingpong"].sum().astype(np.int64),
            "off_route": g["_offroute_pair"].max(),
            "off_route_share": g["_offroute"].mean(),
        }
    )
    others = complement_quantiles(e["to_agency"], e["from_agency"], hold, (0.25, 0.5, 0.75))
    index = pd.MultiIndex.from_arrays([table["to_agency"], table["from_agency"]])
    others = others.reindex(index)
    other_p50 = others["q0.5"].to_numpy()
    iqr = (others["q0.75"] - others["q0.25"]).to_numpy()
    own = table["hold_p50"].to_numpy()
    table["holding_anomaly_ratio"] = safe_ratio(own, other_p50)
    table["holding_anomaly_z"] = (own - other_p50) * safe_ratio(IQR_TO_SIGMA, iqr)
    reverse = table["to_agency"] + "->" + table["from_agency"]
    table["reciprocal_volume"] = (
        table["volume"].reindex(reverse.to_numpy()).fillna(0).astype(np.int64).to_numpy()
    )
    table["off_route"] = table["off_route"].map({1.0: True, 0.0: False}).astype("boolean")
    return table


def transfer_graph(
    edges: pd.DataFrame,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
) -> nx.DiGraph:
    """The agency -> agency transfer graph of :func:`features.entity_facts.transfer_edges`.

    Edge attributes: ``volume`` (handovers), ``dossiers``, ``hold_p50`` and ``hold_p90``
    (working days the receiver held them), ``holding_anomaly_ratio``/``_z``,
    ``reciprocal_volume``, ``pingpong`` and, given the catalogue and an agencies directory
    (columns ``agency_id``, ``unit_type``), ``off_route`` (the unit types' transfer is on
    no approved route; None when unknown) and ``off_route_share``.
    """
    return _graph_of(_pair_table(_prepared_edges(edges, catalogue, agencies)))


class TransferArrays(NamedTuple):
    """The transfer graph as integer edges into its sorted agencies (for centralities)."""

    nodes: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame) -> TransferArrays:
        """The edges of a pair table (:func:`_pair_table`), one per agency pair."""
        sources = table["from_agency"].to_numpy(dtype=object)
        targets = table["to_agency"].to_numpy(dtype=object)
        nodes = np.array(sorted(set(sources) | set(targets)), dtype=object)
        return cls(
            nodes,
            np.searchsorted(nodes, sources).astype(np.int64),
            np.searchsorted(nodes, targets).astype(np.int64),
            table["volume"].to_numpy(dtype="float64"),
        )


def _graph_of(table: pd.DataFrame) -> nx.DiGraph:
    """The transfer graph of a pair table (:func:`_pair_table`)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(set(table["from_agency"]) | set(table["to_agency"])))
    for attrs in table.to_dict("records"):
        source, target = attrs.pop("from_agency"), attrs.pop("to_agency")
        flag = attrs["off_route"]
        attrs["off_route"] = None if pd.isna(flag) else bool(flag)
        graph.add_edge(source, target, **{str(k): v for k, v in attrs.items()})
    return graph


def _cycles3(table: pd.DataFrame) -> pd.Series:
    """Directed three-agency cycles through each agency (a -> b -> c -> a)."""
    p = table.loc[table["from_agency"] != table["to_agency"], ["from_agency", "to_agency"]]
    first = p.set_axis(["a", "b"], axis=1)
    two = first.merge(p.set_axis(["b", "c"], axis=1), on="b")
    two = two[two["c"] != two["a"]]
    back = two.merge(p.set_axis(["c", "a"], axis=1), on=["c", "a"])
    return back.groupby("a", sort=True).size()


def _agency_table(e: pd.DataFrame, table: pd.DataFrame, graph: TransferArrays) -> pd.DataFrame:
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
    out["betweenness"] = betweenness(graph.src, graph.dst, n)
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
    if as_of is not None:
        stamp = as_timestamp(as_of)
        edges = edges[(edges["at"] <= stamp).to_numpy(dtype=bool, na_value=False)]
        open_ = ~(edges["released_at"] <= stamp).to_numpy(dtype=bool, na_value=False)
        edges = edges.assign(holding_days=edges["holding_days"].where(~open_))
        facts = facts[(facts["started_at"] <= stamp).to_numpy(dtype=bool, na_value=False)]
    e = _prepared_edges(edges, catalogue, agencies)
    table = _pair_table(e)
    graph = TransferArrays.of(table)
    pairs = table.drop(columns=["from_agency", "to_agency"])
    pairs.index = pd.Index(pairs.index.astype("string"), name=PAIR)
    people = bipartite_features(facts)
    return {
        "agency": _agency_table(e, table, graph),
        "agency_pair": pairs,
        "dossier": _dossier_table(e, table),
        "officer": people["officer"],
        "submitter": people["submitter"],
    }


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
