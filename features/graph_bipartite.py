"""The officer-intermediary bipartite graph: repeat pairs and communities (rings).

An edge links a dossier's main officer and its submitter, weighted by the dossiers they
share. Louvain communities (fixed seed, nodes added in sorted order, so the result is
deterministic) group officers and intermediaries that work together much more than chance.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from features import schema as s
from features.entity_stats import safe_ratio

__all__ = ["bipartite_features", "officer_submitter_graph"]

OFFICER_KEY = "main_officer_id"
#: Pairs sharing at least this many dossiers are repeat pairs.
REPEAT_PAIR_DOSSIERS = 3
LOUVAIN_SEED = 42


def _pair_weights(facts: pd.DataFrame) -> pd.DataFrame:
    both = facts[facts[OFFICER_KEY].notna() & facts[s.SUBMITTER_ID].notna()]
    w = both.groupby([OFFICER_KEY, s.SUBMITTER_ID], sort=True).size().rename("dossiers")
    return w.reset_index()


def officer_submitter_graph(facts: pd.DataFrame) -> nx.Graph:
    """Officers (``("officer", id)``) and submitters (``("submitter", id)``), edge weight =
    dossiers they share (``weight``)."""
    graph, nodes = _numbered_graph(_pair_weights(facts))
    return nx.relabel_nodes(graph, dict(enumerate(zip(nodes["kind"], nodes["id"], strict=True))))


def _numbered_graph(pairs: pd.DataFrame) -> tuple[nx.Graph, pd.DataFrame]:
    """The officer-submitter graph with nodes numbered 0, 1, ... and the node table.

    Numbers follow the order of the ``(kind, id)`` labels (officers, then submitters, each
    sorted), and nodes and edges are inserted in the same order as with those labels, so
    Louvain visits them alike and finds the same communities; integer nodes hash faster.
    """
    officers = np.sort(np.asarray(pairs[OFFICER_KEY].unique(), dtype=object))
    submitters = np.sort(np.asarray(pairs[s.SUBMITTER_ID].unique(), dtype=object))
    source = np.searchsorted(officers, pairs[OFFICER_KEY].to_numpy(dtype=object))
    target = len(officers) + np.searchsorted(
        submitters, pairs[s.SUBMITTER_ID].to_numpy(dtype=object)
    )
    graph = nx.Graph()
    graph.add_nodes_from(range(len(officers) + len(submitters)))
    weights = pairs["dossiers"].to_numpy(dtype=np.int64)
    graph.add_weighted_edges_from(
        zip(source.tolist(), target.tolist(), weights.tolist(), strict=True)
    )
    kinds = np.repeat(["officer", "submitter"], [len(officers), len(submitters)])
    nodes = pd.DataFrame({"kind": kinds, "id": np.concatenate([officers, submitters])})
    return graph, nodes


def _communities(graph: nx.Graph, nodes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Node -> community id, numbered by decreasing size then smallest member."""
    if graph.number_of_nodes() == 0:
        return pd.DataFrame(columns=["kind", "id", "community_id"])
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    ordered = sorted((sorted(c) for c in found), key=lambda c: (-len(c), c[0]))
    members = np.concatenate([np.asarray(c, dtype=np.int64) for c in ordered])
    community = np.repeat(np.arange(len(ordered)), [len(c) for c in ordered])
    out = nodes.iloc[members].reset_index(drop=True)
    return out.assign(community_id=community)


def bipartite_features(facts: pd.DataFrame, *, seed: int = LOUVAIN_SEED) -> dict[str, pd.DataFrame]:
    """Repeat-pair strength and community of each officer and submitter.

    ``facts`` are the dossiers to consider (:func:`features.entity_facts.dossier_facts`, in
    any order). Returns ``{"officer": ..., "submitter": ...}`` indexed by id.
    """
    facts = facts.sort_values(s.DOSSIER_ID, kind="stable")
    pairs = _pair_weights(facts)
    members = _communities(*_numbered_graph(pairs), seed)
    community = {
        kind: members[members["kind"] == kind].set_index("id")["community_id"]
        for kind in ("officer", "submitter")
    }
    pairs["c_off"] = pairs[OFFICER_KEY].map(community["officer"])
    pairs["c_sub"] = pairs[s.SUBMITTER_ID].map(community["submitter"])
    inside = pairs[pairs["c_off"] == pairs["c_sub"]]
    per_c = pd.DataFrame(
        {
            "officers": members[members["kind"] == "officer"].groupby("community_id").size(),
            "submitters": members[members["kind"] == "submitter"].groupby("community_id").size(),
            "links": inside.groupby("c_off").size(),
            "community_dossiers": inside.groupby("c_off")["dossiers"].sum(),
        }
    ).fillna(0)
    per_c["community_size"] = per_c["officers"] + per_c["submitters"]
    per_c["community_density"] = safe_ratio(per_c["links"], per_c["officers"] * per_c["submitters"])
    out = {}
    for kind, key, index in (
        ("officer", OFFICER_KEY, s.OFFICER_ID),
        ("submitter", s.SUBMITTER_ID, s.SUBMITTER_ID),
    ):
        g = pairs.groupby(key, sort=True)["dossiers"]
        total = facts[facts[key].notna()].groupby(key, sort=True).size()
        frame = pd.DataFrame(
            {
                "partners": g.size(),
                "repeat_pairs": pairs[pairs["dossiers"] >= REPEAT_PAIR_DOSSIERS]
                .groupby(key, sort=True)
                .size(),
                "top_pair_dossiers": g.max(),
            }
        )
        frame = frame.reindex(total.index.union(frame.index)).fillna(0).astype(np.int64)
        frame["top_pair_share"] = safe_ratio(frame["top_pair_dossiers"], total.reindex(frame.index))
        ids = community[kind].reindex(frame.index)
        frame["community_id"] = ids.astype("Int64")
        stats = per_c.reindex(ids.to_numpy(dtype="float64", na_value=np.nan))
        frame["community_size"] = stats["community_size"].astype("Int64").to_numpy()
        frame["community_density"] = stats["community_density"].to_numpy(dtype="float64")
        frame["community_dossiers"] = stats["community_dossiers"].astype("Int64").to_numpy()
        frame.index = pd.Index(frame.index.astype("string"), name=index)
        out[kind] = frame
    return out
