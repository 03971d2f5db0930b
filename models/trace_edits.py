"""Generic control-flow edits of traces, the operations of the process-mining literature
for making deviating copies of a log: insert an activity, delete a block, repeat a block
right after itself, move an event (or a block of 2) a few positions earlier or later.
Traces are flat arrays (activity code and time only); edited and moved events get a time
between their new neighbours, so time still follows the event order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TraceLog", "edit_traces", "subset_traces"]


@dataclass(frozen=True)
class TraceLog:
    """Traces as flat arrays in event order: trace number, step code, time (int64 ns)."""

    case: np.ndarray
    code: np.ndarray
    time: np.ndarray
    n: int


def subset_traces(log: TraceLog, keep: np.ndarray) -> TraceLog:
    """The traces ``keep`` (a boolean per trace), renumbered in order."""
    new = np.cumsum(keep) - 1
    rows = keep[log.case]
    return TraceLog(new[log.case[rows]], log.code[rows], log.time[rows], int(keep.sum()))


def edit_traces(
    log: TraceLog, copies: np.ndarray, rng: np.random.Generator, freq: np.ndarray
) -> TraceLog:
    """One edited copy of each trace in ``copies`` (trace numbers, repeats allowed), by
    one of the four operations chosen uniformly; inserted codes are drawn from ``freq``
    (a probability per code). Returns the copies numbered in the order of ``copies``."""
    starts = np.r_[0, np.flatnonzero(log.case[1:] != log.case[:-1]) + 1]
    length = np.bincount(log.case, minlength=log.n)
    src_start = starts[copies]
    L = length[copies]
    c = len(copies)
    op = rng.integers(0, 4, c)  # insert, delete, repeat, move
    op = np.where((L < 2) & ((op == 1) | (op == 3)), 0, op)
    block = rng.integers(1, 4, c)
    block = np.where(op == 1, np.minimum(block, L - 1), np.minimum(block, L))
    block = np.where(op == 3, np.minimum(block, 2), block)
    block = np.where(op == 3, np.minimum(block, L - 1), block)
    block = np.maximum(block, 1)
    at = (rng.random(c) * (L - block + 1)).astype(np.int64)  # block start
    slot = (rng.random(c) * (L + 1)).astype(np.int64)  # insert before this position
    # move: a direction with room, then a shift of 1-5 within it
    room_late, room_early = L - (at + block), at
    late = rng.random(c) < 0.5
    late = np.where(room_late == 0, False, np.where(room_early == 0, True, late))
    room = np.where(late, room_late, room_early)
    shift = np.minimum(rng.integers(1, 6, c), np.maximum(room, 1))

    # every source event of each copy, keyed by its position
    ev_copy = np.repeat(np.arange(c), L)
    pos = np.arange(len(ev_copy)) - np.repeat(np.cumsum(L) - L, L)
    src = src_start[ev_copy] + pos
    key = pos.astype(np.float64)
    edited = np.zeros(len(src), dtype=bool)
    inside = (pos >= at[ev_copy]) & (pos < at[ev_copy] + block[ev_copy])
    o = op[ev_copy]
    keep = ~((o == 1) & inside)
    moved = (o == 3) & inside
    frac = (pos - at[ev_copy] + 1) / (block[ev_copy] + 2.0)
    target = np.where(
        late[ev_copy],
        at[ev_copy] + block[ev_copy] - 1 + shift[ev_copy] + frac,
        at[ev_copy] - shift[ev_copy] - 1 + frac,
    )
    key = np.where(moved, target, key)
    edited |= moved
    # repeats: the block again, right after itself
    rep = (o == 2) & inside
    rep_copy = ev_copy[rep]
    rep_key = at[rep_copy] + block[rep_copy] - 1 + frac[rep]
    # inserts: one activity drawn from the log's frequencies
    ins_copy = np.flatnonzero(op == 0)
    ins_code = rng.choice(len(freq), size=len(ins_copy), p=freq)
    all_copy = np.r_[ev_copy[keep], rep_copy, ins_copy]
    all_key = np.r_[key[keep], rep_key, slot[ins_copy] - 0.5]
    all_code = np.r_[log.code[src[keep]], log.code[src[rep]], ins_code]
    all_time = np.r_[log.time[src[keep]], log.time[src[rep]], np.zeros(len(ins_copy), np.int64)]
    all_edit = np.r_[edited[keep], np.ones(len(rep_copy) + len(ins_copy), dtype=bool)]
    order = np.lexsort((all_key, all_copy))
    cp, code, time, ed = all_copy[order], all_code[order], all_time[order], all_edit[order]
    return TraceLog(cp, code, _fill_times(cp, time, ed), c)


def _fill_times(case: np.ndarray, time: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Times of edited events spread evenly between their nearest unedited neighbours in
    the trace (the neighbour's time at either end), so time follows the order."""
    n = len(case)
    idx = np.arange(n)
    head = np.r_[0, np.flatnonzero(case[1:] != case[:-1]) + 1]
    first = np.repeat(head, np.diff(np.r_[head, n]))
    last = np.repeat(np.r_[head[1:], n] - 1, np.diff(np.r_[head, n]))
    prev = np.maximum.accumulate(np.where(~edited, idx, -1))
    nxt = np.minimum.accumulate(np.where(~edited, idx, n)[::-1])[::-1]
    has_prev = prev >= first
    has_next = nxt <= last
    p = np.where(has_prev, prev, 0)
    q = np.where(has_next, nxt, 0)
    tp, tq = time[p].astype(np.float64), time[q].astype(np.float64)
    w = (idx - prev) / np.maximum(nxt - prev, 1)
    mid = tp + (tq - tp) * w
    fill = np.where(has_prev & has_next, mid, np.where(has_prev, tp, tq))
    return np.where(edited, fill.astype(np.int64), time)
