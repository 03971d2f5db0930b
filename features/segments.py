"""Vectorised per-dossier operations on events sorted by dossier: sort once, then numpy
segment operations instead of a Python loop per dossier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s


@dataclass(frozen=True)
class Segments:
    """Where each dossier's rows start and end in a sorted event table."""

    starts: np.ndarray  # first row of each dossier
    ends: np.ndarray  # one past the last row of each dossier
    group: np.ndarray  # for each row, the index of its dossier (0..n_dossiers-1)
    position: np.ndarray  # for each row, its position within its dossier (0-based)
    ids: pd.Index  # the dossier ids, in order

    @property
    def sizes(self) -> np.ndarray:
        return self.ends - self.starts

    def __len__(self) -> int:
        return len(self.starts)

    def first(self, values: np.ndarray) -> np.ndarray:
        return values[self.starts]

    def last(self, values: np.ndarray) -> np.ndarray:
        return values[self.ends - 1]

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-dossier sums (0 for empty selections)."""
        return np.bincount(self.group, weights=values, minlength=len(self)).astype(
            np.result_type(values.dtype, np.float64)
        )

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per-dossier number of rows where ``mask`` is true."""
        return np.bincount(self.group, weights=mask.astype(np.int64), minlength=len(self)).astype(
            np.int64
        )

    def max(self, values: np.ndarray, empty: float = np.nan) -> np.ndarray:
        """Per-dossier maximum (``empty`` for dossiers with no finite value)."""
        out = np.full(len(self), -np.inf)
        np.maximum.at(out, self.group, np.where(np.isnan(values), -np.inf, values))
        return np.where(np.isneginf(out), empty, out)

    def min(self, values: np.ndarray, empty: float = np.nan) -> np.ndarray:
        return -self.max(-values, empty=-empty if not np.isnan(empty) else empty)

    def previous(self, values: np.ndarray, fill: object = None) -> np.ndarray:
        """Each row's previous value within its dossier (``fill`` on a dossier's first row)."""
        out = np.empty_like(values)
        out[1:] = values[:-1]
        if fill is not None:
            out[self.starts] = fill
        return out

    def is_first(self) -> np.ndarray:
        return self.position == 0


def segments(events: pd.DataFrame, key: str = s.DOSSIER_ID) -> Segments:
    """The dossier segments of ``events``, which must be sorted by ``key``."""
    codes, _ = pd.factorize(events[key], sort=False)
    n = len(codes)
    # factorize numbers groups by first appearance: rows grouped by key never go back to
    # an earlier code.
    if n and (np.diff(codes) < 0).any():
        raise ValueError(f"events must be grouped by {key} (use schema.sort_events)")
    boundary = np.r_[True, codes[1:] != codes[:-1]] if n else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(boundary)
    ends = np.r_[starts[1:], n].astype(np.int64)
    group = np.cumsum(boundary) - 1
    position = np.arange(n) - starts[group] if n else np.zeros(0, dtype=np.int64)
    ids = pd.Index(events[key].to_numpy()[starts], name=key)
    return Segments(starts, ends, group, position, ids)


def variant_hashes(events: pd.DataFrame, seg: Segments | None = None) -> np.ndarray:
    """A 64-bit fingerprint of each dossier's activity sequence (events in canonical order)."""
    seg = seg or segments(events)
    codes = events[s.ACTIVITY].astype("category").cat.codes.to_numpy().astype(np.uint64)
    codes += np.uint64(1)
    length = int(seg.position.max(initial=0)) + 1
    powers = np.ones(length, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers[1:] = np.cumprod(np.full(length - 1, 1_000_003, np.uint64))
        return np.add.reduceat(codes * powers[seg.position], seg.starts) if len(seg) else codes


def latest_flagged(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """For each row, the row of the latest flagged row of its dossier at or before it (-1)."""
    rows = np.arange(len(mask), dtype=np.int64)
    found = np.maximum.accumulate(np.where(mask, rows, -1)) if len(mask) else rows
    return np.where(found >= seg.starts[seg.group], found, -1) if len(mask) else rows


def next_flagged(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """For each row, the row of the next flagged row of its dossier strictly after it (-1)."""
    n = len(mask)
    if not n:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    after = np.empty(n, dtype=np.int64)
    after[:-1] = np.where(mask[1:], rows[1:], n)
    after[-1] = n
    found = np.minimum.accumulate(after[::-1])[::-1]
    return np.where(found < seg.ends[seg.group], found, -1)


def first_flagged(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """For each dossier, the row of its first flagged row (-1 if none)."""
    out = np.full(len(seg), np.iinfo(np.int64).max, dtype=np.int64)
    rows = np.flatnonzero(mask)
    np.minimum.at(out, seg.group[rows], rows)
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def seen_before(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """Whether each row's code already occurred on an earlier row of its dossier.

    ``codes`` are non-negative integers (negative codes are never "seen"). Up to 64
    distinct codes, a segmented prefix-OR of bit masks (log2(longest dossier) passes);
    beyond, a hash of (dossier, code).
    """
    codes = np.asarray(codes, dtype=np.int64)
    top = int(codes.max(initial=0))
    if top < 64:
        bits = np.where(codes >= 0, np.left_shift(np.uint64(1), codes.astype(np.uint64)), 0)
        bits = bits.astype(np.uint64)
        before = np.zeros_like(bits)  # OR of the earlier rows of the same dossier
        if len(bits):
            before[1:] = bits[:-1]
            before[seg.starts] = 0
        shift, longest = 1, int(seg.sizes.max(initial=0))
        while shift < longest:
            moved = np.zeros_like(before)
            moved[shift:] = before[:-shift]
            moved[seg.position < shift] = 0
            before |= moved
            shift *= 2
        return ((before & bits) != 0) & (codes >= 0)
    span = top + 2
    key = seg.group.astype(np.int64) * span + np.where(codes < 0, span - 1, codes)
    out = pd.Series(key).duplicated(keep="first").to_numpy(dtype=bool)
    return out & (codes >= 0)


def nunique(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """Per-dossier number of distinct non-negative codes."""
    codes = np.asarray(codes)
    return seg.count(~seen_before(seg, codes) & (codes >= 0))


def occurrence(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows of its dossier have the same code (0, 1, ...)."""
    codes = np.asarray(codes, dtype=np.int64)
    span = int(codes.max(initial=0)) + 2
    key = seg.group.astype(np.int64) * span + np.where(codes < 0, span - 1, codes)
    order = np.argsort(key, kind="stable")
    ranked = key[order]
    run = np.r_[True, ranked[1:] != ranked[:-1]] if len(key) else np.zeros(0, dtype=bool)
    index = np.arange(len(key))
    out = np.empty(len(key), dtype=np.int64)
    out[order] = index - np.maximum.accumulate(np.where(run, index, 0))
    return out


def running_max(seg: Segments, values: np.ndarray) -> np.ndarray:
    """Per-dossier running maximum of non-negative integers (resets at each dossier)."""
    values = np.asarray(values, dtype=np.int64)
    span = int(values.max(initial=0)) + 1
    offset = seg.group.astype(np.int64) * span
    return np.maximum.accumulate(offset + np.maximum(values, 0)) - offset


def segment_searchsorted(
    seg: Segments,
    values: np.ndarray,
    query_group: np.ndarray,
    query_value: np.ndarray,
    side: str = "right",
) -> np.ndarray:
    """Per-dossier ``searchsorted``: rows of dossier ``query_group`` with value <= query.

    ``values`` must be sorted within each dossier. Returns, for each query, the number of
    rows of its dossier with ``value <= query_value`` (``side="right"``) or ``<`` (``"left"``).
    """
    values = np.asarray(values, dtype=np.int64)
    query_value = np.asarray(query_value, dtype=np.int64)
    # Dense ranks of every value keep the combined (dossier, rank) key inside int64.
    _, inverse = np.unique(np.r_[values, query_value], return_inverse=True)
    span = int(inverse.max(initial=0)) + 1
    key = seg.group.astype(np.int64) * span + inverse[: len(values)]
    qkey = np.asarray(query_group, dtype=np.int64) * span + inverse[len(values) :]
    found = np.searchsorted(key, qkey, side="left" if side == "left" else "right")
    return found - seg.starts[np.asarray(query_group, dtype=np.int64)]
