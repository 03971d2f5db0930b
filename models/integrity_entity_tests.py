"""Statistics of the entity-level integrity detectors (:mod:`models.integrity_entity`),
vectorised over many entities at once.

- :func:`rank_sum_tests`: one-sided Mann-Whitney U tests of each subgroup of a group
  against the rest of that group (an officer's dossiers of one intermediary against their
  other dossiers; a receiver's holdings of one sender against its other senders'), by
  ranking every group once; normal approximation with tie and continuity correction,
  with Cliff's delta and the two medians as effect sizes;
- :func:`binomial_tests`: one-sided exact binomial tests of counts against a base rate;
- :func:`hypergeom_tests`: one-sided Fisher exact tests of two shares;
- :func:`bh_qvalues`: Benjamini-Hochberg q-values (false discovery rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["bh_qvalues", "binomial_tests", "hypergeom_tests", "rank_sum_tests"]


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p, dtype="float64")
    q = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q


def binomial_tests(k: np.ndarray, n: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """One-sided p-values ``P(X >= k)`` for ``X ~ Binomial(n, p0)`` (NaN where ``n == 0``).

    A base rate of 0 is floored at one event in the pooled count's order (``1e-6``): an
    entity is never "infinitely" significant because nobody else ever did it.
    """
    k = np.asarray(k, dtype="float64")
    n = np.asarray(n, dtype="float64")
    p0 = np.clip(np.asarray(p0, dtype="float64"), 1e-6, 1 - 1e-9)
    p = stats.binom.sf(k - 1, n, p0)
    return np.where(n > 0, np.clip(p, 0.0, 1.0), np.nan)


def hypergeom_tests(a: ArrayLike, n_a: ArrayLike, b: ArrayLike, n_b: ArrayLike) -> np.ndarray:
    """One-sided Fisher exact tests that ``a`` of ``n_a`` is a larger share than ``b`` of
    ``n_b`` (hypergeometric ``P(X >= a)``; NaN when either side is empty)."""
    a, n_a, b, n_b = (np.asarray(x, dtype="float64") for x in (a, n_a, b, n_b))
    p = stats.hypergeom.sf(a - 1, n_a + n_b, a + b, n_a)
    return np.where((n_a > 0) & (n_b > 0), np.clip(p, 0.0, 1.0), np.nan)


def rank_sum_tests(
    group: pd.Series, subgroup: pd.Series, values: pd.Series, *, alternative: str
) -> pd.DataFrame:
    """Mann-Whitney U of every (group, subgroup) against the rest of its group.

    ``alternative`` is ``"less"`` (the subgroup's values are smaller, e.g. faster) or
    ``"greater"``. Rows with a missing value are ignored. Returns one row per (group,
    subgroup) present, indexed by both, with ``n_in``, ``n_out``, ``u`` (U of the subgroup),
    ``p_value`` (one-sided, normal approximation with tie and continuity correction; NaN
    when either side is empty), ``cliffs_delta`` (``P(in > out) - P(in < out)``, in
    [-1, 1]) and ``median_in`` / ``median_out``.
    """
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
    v = pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)
    keep = np.isfinite(v)
    frame = pd.DataFrame(
        {
            "g": pd.Series(group).to_numpy(dtype=object)[keep],
            "s": pd.Series(subgroup).to_numpy(dtype=object)[keep],
            "v": v[keep],
        }
    )
    if not len(frame):
        return _empty()
    frame["r"] = frame.groupby("g", sort=False)["v"].rank(method="average")
    by_g = frame.groupby("g", sort=True)
    n_g = by_g.size()
    ties = frame.groupby(["g", "v"], sort=False).size()
    tie_term = (ties.astype("float64") ** 3 - ties).groupby(level=0).sum()
    pairs = frame.groupby(["g", "s"], sort=True)
    out = pd.DataFrame({"n_in": pairs.size(), "rank_sum": pairs["r"].sum()})
    out["median_in"] = pairs["v"].median()
    gkeys = out.index.get_level_values(0)
    n = n_g.reindex(gkeys).to_numpy(dtype="float64")
    n1 = out["n_in"].to_numpy(dtype="float64")
    n2 = n - n1
    u = out["rank_sum"].to_numpy() - n1 * (n1 + 1) / 2
    t = tie_term.reindex(gkeys).to_numpy(dtype="float64")
    var = n1 * n2 / 12 * ((n + 1) - t / np.maximum(n * (n - 1), 1))
    sd = np.sqrt(np.maximum(var, 0))
    mean = n1 * n2 / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        if alternative == "less":
            z = (u - mean + 0.5) / sd
            p = stats.norm.cdf(z)
        else:
            z = (u - mean - 0.5) / sd
            p = stats.norm.sf(z)
        delta = 2 * u / (n1 * n2) - 1
    valid = (n1 > 0) & (n2 > 0) & (sd > 0)
    out["n_out"] = n2.astype(np.int64)
    out["u"] = u
    out["p_value"] = np.where(valid, p, np.nan)
    out["cliffs_delta"] = np.where(valid, delta, np.nan)
    out["median_out"] = _complement_medians(frame, out.index)
    out.index.names = ["group", "subgroup"]
    return out.drop(columns="rank_sum")


def _complement_medians(frame: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """Median of each group's values outside each subgroup (the features' order
    statistics, :func:`features.entity_stats.complement_quantiles`)."""
    from features.entity_stats import complement_quantiles

    q = complement_quantiles(frame["g"], frame["s"], frame["v"], (0.5,))
    q.index = q.index.set_names(["g", "s"])
    return q["q0.5"].reindex(index).to_numpy(dtype="float64")


def _empty() -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays(
        [pd.Index([], dtype=object), pd.Index([], dtype=object)], names=["group", "subgroup"]
    )
    cols = ["n_in", "median_in", "n_out", "u", "p_value", "cliffs_delta", "median_out"]
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}, index=index)
