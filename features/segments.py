"""Vectorised per-dossier operations on events sorted by dossier: sort once, then numpy
segment operations instead of a Python loop per dossier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
        flagged = self.group[np.asarray(mask, dtype=bool)]
        return np.bincount(flagged, minlength=len(self)).astype(np.int64)

    def max(self, values: np.ndarray, empty: float = np.nan) -> np.ndarray:
        """Per-dossier maximum (``empty`` for dossiers with no finite value)."""
        filled = np.where(np.isnan(values), -np.inf, values)
        if len(self) and len(values) and bool((self.ends > self.starts).all()):
            # rows of a dossier are contiguous: reduce each run (no scattered ufunc.at)
            out = np.maximum.reduceat(filled.astype(np.float64), self.starts)
        else:
            out = np.full(len(self), -np.inf)
            np.maximum.at(out, self.group, filled)
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


def _pair_keys(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """One int64 key per row for its (dossier, code) pair: keys sort by dossier, then code.

    Negative codes share one key per dossier (after its non-negative codes).
    """
    span = int(codes.max(initial=0)) + 2
    return seg.group.astype(np.int64) * span + np.where(codes < 0, span - 1, codes)


def seen_before(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """Whether each row's code already occurred on an earlier row of its dossier.

    ``codes`` are non-negative integers (negative codes are never "seen"). A stable sort of
    the (dossier, code) keys puts each pair's earliest row first; the rest repeat it. Rows
    are already grouped by dossier, so the sort mostly merges short sorted runs.
    """
    codes = np.asarray(codes, dtype=np.int64)
    key = _pair_keys(seg, codes)
    order = np.argsort(key, kind="stable")
    ranked = key[order]
    out = np.zeros(len(key), dtype=bool)
    out[order[1:]] = ranked[1:] == ranked[:-1]
    return out & (codes >= 0)


def nunique(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """Per-dossier number of distinct non-negative codes (distinct sorted pair keys)."""
    codes = np.asarray(codes, dtype=np.int64)
    known = codes >= 0
    span = int(codes.max(initial=0)) + 1
    ranked = np.sort(seg.group[known].astype(np.int64) * span + codes[known], kind="stable")
    new = np.ones(len(ranked), dtype=bool)
    new[1:] = ranked[1:] != ranked[:-1]
    return np.bincount(ranked[new] // span, minlength=len(seg)).astype(np.int64)


def occurrence(seg: Segments, codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows of its dossier have the same code (0, 1, ...)."""
    key = _pair_keys(seg, np.asarray(codes, dtype=np.int64))
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


def canonical_segments(events: pd.DataFrame) -> tuple[pd.DataFrame, Segments]:
    """``events`` in canonical order (:func:`schema.sort_events`) and their dossier segments.

    Logs usually arrive sorted already: one pass over neighbouring rows checks it, so the
    sort (and the factorising of the string ids) is skipped, and the same comparison gives
    the dossier boundaries. Unsorted input, missing ids or missing times are sorted as usual.
    """
    ids = pa.array(events[s.DOSSIER_ID].astype("string").array)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    stamps = pd.DatetimeIndex(events[s.TIMESTAMP])
    n = len(events)
    if n < 2 or ids.null_count or stamps.hasnans:
        events = s.sort_events(events)
        return events, segments(events)
    same = pc.equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
    later = pc.greater(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
    times = stamps.asi8
    seq = events[s.SEQ].to_numpy(dtype=np.int64)
    step, seq_step = np.diff(times), np.diff(seq)
    in_order = later | (same & ((step > 0) | ((step == 0) & (seq_step >= 0))))
    if not in_order.all():
        events = s.sort_events(events)
        return events, segments(events)
    events = events.reset_index(drop=True)
    boundary = np.r_[True, ~same]
    starts = np.flatnonzero(boundary)
    ends = np.r_[starts[1:], n].astype(np.int64)
    group = np.cumsum(boundary) - 1
    position = np.arange(n) - starts[group]
    index = pd.Index(events[s.DOSSIER_ID].take(starts).to_numpy(), name=s.DOSSIER_ID)
    return events, Segments(starts, ends, group, position, index)


def first_rows(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """For each dossier, its first row where ``mask`` is true (-1 if none).

    As :func:`first_flagged`, using that a dossier's rows are contiguous.
    """
    rows = np.flatnonzero(mask)
    group = seg.group[rows]
    first = np.r_[True, group[1:] != group[:-1]] if len(rows) else np.zeros(0, dtype=bool)
    out = np.full(len(seg), -1, dtype=np.int64)
    out[group[first]] = rows[first]
    return out


def last_rows(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """For each dossier, its last row where ``mask`` is true (-1 if none)."""
    rows = np.flatnonzero(mask)
    group = seg.group[rows]
    last = np.r_[group[1:] != group[:-1], True] if len(rows) else np.zeros(0, dtype=bool)
    out = np.full(len(seg), -1, dtype=np.int64)
    out[group[last]] = rows[last]
    return out
