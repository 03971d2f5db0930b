"""The officer-intermediary bipartite graph: repeat pairs and communities (rings).

An edge links a dossier's main officer and its submitter, weighted by the dossiers they
share. Louvain communities (fixed seed, nodes added in sorted order, so the result is
deterministic) group officers and intermediaries that work together much more than chance.

Decision (issue 4): an intermediary who shared dossiers with one officer only is folded
into that officer before Louvain, as a self-loop of the same weight, and takes the
officer's community. In every local optimum of modularity such a leaf sits with its only
neighbour (joining it always gains ``w/m * (1 - S/2m) > 0``), and the folded graph has the
same modularity for the corresponding partition, so no optimum is lost; but Louvain walks
a graph about half the size (on a ten-province log 295k instead of 650k nodes, 35 s
instead of 60 s), so its random path and thus the community ids differ from a Louvain run
on the whole graph. The seed and node order are fixed, so the result is still the same on
every run and in both engines. The graph is not split into connected components first: on
the simulated provinces it is one component (ministry officers handle dossiers of every
province), so there is nothing to split.
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


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` into their sorted distinct values (hashing, then one small sort)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    names = np.asarray(uniques, dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], names[order]


class _Numbered:
    """The pairs with nodes numbered 0, 1, ...: officers, then submitters, each sorted."""

    def __init__(self, pairs: pd.DataFrame) -> None:
        officer, self.officers = _sorted_codes(pairs[OFFICER_KEY])
        submitter, self.submitters = _sorted_codes(pairs[s.SUBMITTER_ID])
        self.source = officer
        self.target = len(self.officers) + submitter
        self.weight = pairs["dossiers"].to_numpy(dtype=np.int64)
        self.n = len(self.officers) + len(self.submitters)

    def nodes(self) -> pd.DataFrame:
        kinds = np.repeat(["officer", "submitter"], [len(self.officers), len(self.submitters)])
        return pd.DataFrame({"kind": kinds, "id": np.concatenate([self.officers, self.submitters])})


def officer_submitter_graph(facts: pd.DataFrame) -> nx.Graph:
    """Officers (``("officer", id)``) and submitters (``("submitter", id)``), edge weight =
    dossiers they share (``weight``)."""
    num = _Numbered(_pair_weights(facts))
    nodes = num.nodes()
    graph = nx.Graph()
    graph.add_nodes_from(zip(nodes["kind"], nodes["id"], strict=True))
    labels = list(zip(nodes["kind"], nodes["id"], strict=True))
    graph.add_weighted_edges_from(
        (labels[u], labels[v], w)
        for u, v, w in zip(
            num.source.tolist(), num.target.tolist(), num.weight.tolist(), strict=True
        )
    )
    return graph


def _folded_graph(num: _Numbered) -> tuple[nx.Graph, np.ndarray]:
    """The graph Louvain runs on (leaf submitters folded into their officer's self-loop)
    and, per folded-away submitter node, the officer node it follows (-1: kept)."""
    degree = np.bincount(num.target, minlength=num.n)
    leaf = degree[num.target] == 1
    follows = np.full(num.n, -1, dtype=np.int64)
    follows[num.target[leaf]] = num.source[leaf]
    kept = np.flatnonzero(follows < 0)  # every submitter of a pair has a degree
    loops = np.bincount(num.source[leaf], weights=num.weight[leaf], minlength=len(num.officers))
    looped = np.flatnonzero(loops > 0)
    graph = nx.Graph()
    graph.add_nodes_from(kept.tolist())
    core = ~leaf
    graph.add_weighted_edges_from(
        zip(
            num.source[core].tolist(),
            num.target[core].tolist(),
            num.weight[core].tolist(),
            strict=True,
        )
    )
    graph.add_weighted_edges_from(
        zip(looped.tolist(), looped.tolist(), loops[looped].astype(np.int64).tolist(), strict=True)
    )
    return graph, follows


def _communities(num: _Numbered, seed: int) -> pd.DataFrame:
    """Node -> community id, numbered by decreasing size then smallest member."""
    if num.n == 0:
        return pd.DataFrame(columns=["kind", "id", "community_id"])
    graph, follows = _folded_graph(num)
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    label = np.full(num.n, -1, dtype=np.int64)
    for i, members in enumerate(found):
        label[np.fromiter(members, dtype=np.int64, count=len(members))] = i
    folded = follows >= 0
    label[folded] = label[follows[folded]]
    size = np.bincount(label, minlength=len(found))
    smallest = np.full(len(found), num.n, dtype=np.int64)
    np.minimum.at(smallest, label, np.arange(num.n))
    rank = np.empty(len(found), dtype=np.int64)
    rank[np.lexsort((smallest, -size))] = np.arange(len(found))
    return num.nodes().assign(community_id=rank[label])


def bipartite_features(facts: pd.DataFrame, *, seed: int = LOUVAIN_SEED) -> dict[str, pd.DataFrame]:
    """Repeat-pair strength and community of each officer and submitter.

    ``facts`` are the dossiers to consider (:func:`features.entity_facts.dossier_facts`, in
    any order). Returns ``{"officer": ..., "submitter": ...}`` indexed by id.
    """
    facts = facts.sort_values(s.DOSSIER_ID, kind="stable")
    pairs = _pair_weights(facts)
    members = _communities(_Numbered(pairs), seed)
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
