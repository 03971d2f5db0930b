"""Grouped statistics shared by the entity and graph features: window masks, ratios and
quantiles of a group *without* one of its subgroups (an officer's dossiers from everyone but
one intermediary; an agency's holdings from every sender but one), all vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from features.calendar import NaiveTimestampError

__all__ = [
    "as_timestamp",
    "complement_quantiles",
    "object_values",
    "safe_ratio",
    "sorted_codes",
    "window_label",
]

#: A robust z-score divides by the IQR over this (the IQR of a standard normal).
IQR_TO_SIGMA = 1.3489795003921634


def as_timestamp(as_of: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """``as_of`` as a tz-aware Timestamp; a naive one is refused (its instant is unknown)."""
    stamp = pd.Timestamp(as_of)
    if stamp.tz is None:
        raise NaiveTimestampError(f"as_of must be tz-aware, got {stamp}")
    return stamp


def window_label(window: str) -> str:
    """The column suffix of a rolling window: ``"90D"`` -> ``"90d"``."""
    return str(window).strip().lower()


def object_values(values: pd.Series | pd.Index) -> np.ndarray:
    """Values as an object array of ``str`` and ``None`` (categoricals and strings alike)."""
    out = np.asarray(pd.Series(values).astype("string").to_numpy(dtype=object))
    out[pd.isna(out)] = None
    return out


def safe_ratio(num: ArrayLike, den: ArrayLike) -> np.ndarray:
    """``num / den`` as floats, NaN where the denominator is missing or not positive."""
    n = np.asarray(num, dtype="float64")
    d = np.asarray(den, dtype="float64")
    ok = np.isfinite(d) & (d > 0)
    return np.where(ok, n / np.where(ok, d, 1.0), np.nan)


def complement_quantiles(
    groups: pd.Series, subgroups: pd.Series, values: pd.Series, qs: Sequence[float]
) -> pd.DataFrame:
    """Quantiles of ``values`` within each group, leaving out one subgroup at a time.

    Returns one row per (group, subgroup) present, indexed by both, with a column per ``q``
    (linear interpolation, as ``numpy.quantile``): the quantile of the group's values whose
    subgroup is another one (NaN when nothing is left). Missing values are ignored; a missing
    subgroup counts as one subgroup of its own.

    The k-th smallest value of a group without subgroup S is found by order statistics, not
    by building each complement: if S occupies sorted positions s_0 < s_1 < ... of its group,
    ``t_j = s_j - j`` counts the other values before s_j, so the r-th value of the complement
    sits at position ``r + #{j: t_j <= r}`` (one ``searchsorted`` for all pairs).
    """
    v = pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)
    keep = np.isfinite(v)
    gcode, gnames = sorted_codes(pd.Series(groups))
    scode, snames = sorted_codes(pd.Series(subgroups))
    gcode, scode, v = gcode[keep], scode[keep], v[keep]
    order = _order_by(gcode, v, scode)
    gcode, scode, sorted_values = gcode[order], scode[order], v[order]
    n_total = len(sorted_values)
    gsize = np.bincount(gcode, minlength=len(gnames)).astype(np.int64)
    gstart = np.concatenate([[0], np.cumsum(gsize)[:-1]]).astype(np.int64)
    pos = np.arange(n_total, dtype=np.int64) - gstart[gcode] if n_total else gcode
    pkey, pcode = np.unique(gcode.astype(np.int64) * len(snames) + scode, return_inverse=True)
    pnames = pd.MultiIndex.from_arrays(
        [gnames[pkey // max(len(snames), 1)], snames[pkey % max(len(snames), 1)]]
    )
    order = np.argsort(pcode * (n_total + 1) + pos)  # by pair, then position in the group
    pc = pcode[order]
    psize = np.bincount(pc, minlength=len(pnames)).astype(np.int64)
    pstart = np.concatenate([[0], np.cumsum(psize)[:-1]]).astype(np.int64)
    rank = np.arange(n_total, dtype=np.int64) - pstart[pc] if n_total else pc
    t = pos[order] - rank
    big = n_total + 1
    keys = pc * big + t
    pair_group = gcode[order][pstart] if len(pnames) else np.zeros(0, dtype=np.int64)
    m = gsize[pair_group] - psize  # size of each complement
    out: dict[str, np.ndarray] = {}
    pair_ids = np.arange(len(pnames), dtype=np.int64)

    def kth(r: np.ndarray) -> np.ndarray:
        j = np.searchsorted(keys, pair_ids * big + r, side="right") - pstart
        at = np.clip(gstart[pair_group] + r + j, 0, max(n_total - 1, 0))
        return sorted_values[at]

    for q in qs:
        h = np.maximum(m - 1, 0) * float(q)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(m - 1, 0))
        empty = m <= 0
        lo_v = np.where(empty, np.nan, kth(np.where(empty, 0, lo))) if len(m) else h
        hi_v = np.where(empty, np.nan, kth(np.where(empty, 0, hi))) if len(m) else h
        out[f"q{q:g}"] = lo_v + (h - lo) * (hi_v - lo_v)
    result = pd.DataFrame(out, index=pnames if len(pnames) else _no_pairs())
    result.index.names = ["group", "subgroup"]
    result["n_other"] = m
    return result


def _order_by(major: np.ndarray, values: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Row order by ``major`` code, then value, then ``minor`` code (as ``np.lexsort``).

    One argsort of a single int64 key (the value replaced by its rank among the distinct
    values) instead of a three-key lexsort; rows with equal keys are interchangeable.
    """
    distinct, rank = np.unique(values, return_inverse=True)
    n_minor = int(minor.max(initial=0)) + 1
    span = float(int(major.max(initial=0)) + 1) * (len(distinct) + 1) * n_minor
    if span >= 2.0**62:
        return np.lexsort((minor, values, major))
    return np.argsort((major * (len(distinct) + 1) + rank) * n_minor + minor)


def _no_pairs() -> pd.MultiIndex:
    """The empty (group, subgroup) index."""
    empty = pd.Index([], dtype=object)
    return pd.MultiIndex.from_arrays([empty, empty], names=["group", "subgroup"])


def sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` into their sorted distinct names (missing: the name ``""``).

    Hashes the values once (no conversion of every value to a Python string) and sorts
    only the distinct names, so it is the sorted factorisation of the values as strings.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names = object_values(pd.Index(uniques))
    missing = codes < 0
    if missing.any():
        names = np.append(names, "")
        codes = np.where(missing, len(names) - 1, codes)
    distinct, inverse = np.unique(names.astype(str), return_inverse=True)
    return inverse[codes].astype(np.int64), distinct.astype(object)
