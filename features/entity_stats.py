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
    frame = pd.DataFrame(
        {
            "g": pd.Series(groups).astype("string").to_numpy(dtype=object, na_value=""),
            "s": pd.Series(subgroups).astype("string").to_numpy(dtype=object, na_value=""),
            "v": pd.Series(values).to_numpy(dtype="float64", na_value=np.nan),
        }
    )
    frame = frame[np.isfinite(frame["v"].to_numpy())]
    # sort and pair on integer codes of the names (sorted factorisation keeps their order)
    gcode, gnames = pd.factorize(frame["g"], sort=True)
    scode, snames = pd.factorize(frame["s"], sort=True)
    order = np.lexsort((scode, frame["v"].to_numpy(), gcode))
    frame = frame.iloc[order].reset_index(drop=True)
    gcode, scode = gcode[order], scode[order]
    n_total = len(frame)
    gsize = np.bincount(gcode, minlength=len(gnames)).astype(np.int64)
    gstart = np.concatenate([[0], np.cumsum(gsize)[:-1]]).astype(np.int64)
    pos = np.arange(n_total, dtype=np.int64) - gstart[gcode] if n_total else gcode
    pkey, pcode = np.unique(gcode.astype(np.int64) * len(snames) + scode, return_inverse=True)
    pnames = pd.MultiIndex.from_arrays(
        [gnames[pkey // max(len(snames), 1)], snames[pkey % max(len(snames), 1)]]
    )
    order = np.lexsort((pos, pcode))  # rows by pair, then by position in their group
    pc = pcode[order]
    psize = np.bincount(pc, minlength=len(pnames)).astype(np.int64)
    pstart = np.concatenate([[0], np.cumsum(psize)[:-1]]).astype(np.int64)
    rank = np.arange(n_total, dtype=np.int64) - pstart[pc] if n_total else pc
    t = pos[order] - rank
    big = n_total + 1
    keys = pc * big + t
    pair_group = gcode[order][pstart] if len(pnames) else np.zeros(0, dtype=np.int64)
    m = gsize[pair_group] - psize  # size of each complement
    sorted_values = frame["v"].to_numpy()
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
    result = pd.DataFrame(out, index=pnames if len(pnames) else _no_pairs(frame))
    result.index.names = ["group", "subgroup"]
    result["n_other"] = m
    return result


def _no_pairs(frame: pd.DataFrame) -> pd.MultiIndex:
    """The empty (group, subgroup) index of a frame without values."""
    return pd.MultiIndex.from_arrays([frame["g"][:0], frame["s"][:0]], names=["group", "subgroup"])
