"""Centralities on integer edge arrays agree with networkx; blocks of sources add up."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from features.graph_centrality import (
    betweenness,
    betweenness_of_sources,
    normalised_betweenness,
    pagerank,
    source_blocks,
)


def _arrays(graph: nx.DiGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = list(graph.edges(data="w", default=1.0))
    src = np.array([u for u, _, _ in edges], dtype=np.int64)
    dst = np.array([v for _, v, _ in edges], dtype=np.int64)
    return src, dst, np.array([w for _, _, w in edges], dtype="float64")


@pytest.mark.parametrize("seed", range(12))
def test_betweenness_and_pagerank_match_networkx_on_random_digraphs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    graph = nx.gnp_random_graph(n, float(rng.uniform(0.02, 0.3)), directed=True, seed=seed)
    graph.add_nodes_from(range(n))
    if n > 1:
        graph.add_edge(1, 1)  # self-loops lie on no shortest path
    for u, v in graph.edges:
        graph.edges[u, v]["w"] = float(rng.integers(1, 9))
    src, dst, w = _arrays(graph)
    expected = nx.betweenness_centrality(graph)
    assert betweenness(src, dst, n) == pytest.approx([expected[v] for v in range(n)], abs=1e-12)
    if graph.number_of_edges():
        ranks = nx.pagerank(graph, weight="w", tol=1e-12)
        assert pagerank(src, dst, w, n) == pytest.approx([ranks[v] for v in range(n)], abs=1e-8)


def test_source_blocks_cover_every_source_once_and_add_up() -> None:
    graph = nx.gnp_random_graph(70, 0.08, directed=True, seed=3)
    src, dst, _ = _arrays(graph)
    blocks = source_blocks(70, block=16)
    assert np.array_equal(np.concatenate(blocks), np.arange(70)) and len(blocks) == 5
    parts = [betweenness_of_sources(src, dst, 70, b) for b in blocks]
    whole = betweenness_of_sources(src, dst, 70, np.arange(70))
    assert normalised_betweenness(parts, 70) == pytest.approx(whole / (69 * 68), abs=1e-12)
    # a path from one block's sources only counts there
    assert parts[0].sum() > 0 and not np.array_equal(parts[0], parts[1])
