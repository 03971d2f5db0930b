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
    pairs = _pair_weights(facts)
    graph = nx.Graph()
    graph.add_nodes_from(("officer", o) for o in sorted(pairs[OFFICER_KEY].unique()))
    graph.add_nodes_from(("submitter", x) for x in sorted(pairs[s.SUBMITTER_ID].unique()))
    graph.add_weighted_edges_from(
        (("officer", o), ("submitter", x), int(n))
        for o, x, n in pairs.itertuples(index=False, name=None)
    )
    return graph


def _communities(graph: nx.Graph, seed: int) -> pd.DataFrame:
    """Node -> community id, numbered by decreasing size then smallest member."""
    if graph.number_of_nodes() == 0:
        return pd.DataFrame(columns=["kind", "id", "community_id"])
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    ordered = sorted((sorted(c) for c in found), key=lambda c: (-len(c), c[0]))
    rows = [(kind, node, k) for k, members in enumerate(ordered) for kind, node in members]
    return pd.DataFrame(rows, columns=["kind", "id", "community_id"])


def bipartite_features(facts: pd.DataFrame, *, seed: int = LOUVAIN_SEED) -> dict[str, pd.DataFrame]:
    """Repeat-pair strength and community of each officer and submitter.

    ``facts`` are the dossiers to consider (:func:`features.entity_facts.dossier_facts`, in
    any order). Returns ``{"officer": ..., "submitter": ...}`` indexed by id.
    """
    facts = facts.sort_values(s.DOSSIER_ID, kind="stable")
    pairs = _pair_weights(facts)
    members = _communities(officer_submitter_graph(facts), seed)
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
