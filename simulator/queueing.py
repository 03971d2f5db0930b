"""Queueing of tasks at officers, in office time.

Time here is ``W``, office seconds (``features.calendar``): one working day is 28,800 s
and nights, weekends and holidays do not exist, so every duration is a working duration.
Each officer serves the tasks waiting for them first come, first served; a dossier's next
task becomes ready when the previous one ends plus its wait (transit, the applicant's
reply, the officer's deferral). The simulation advances in windows of two office hours:
every task ready before the window's end is queued at once (repeatedly, until the
window holds no ready task, so that a dossier's quick steps chain within it), and the
FIFO recurrence ``C_n = max(C_(n-1), A_n) + S_n`` is solved for all officers together with segmented
cumulative sums and maxima (no per-dossier or per-task Python loop).
"""

from __future__ import annotations

import numpy as np

PASS_SECONDS = 2 * 3600
_BIG = np.int64(1) << np.int64(42)


def run_queues(
    first: np.ndarray,
    count: np.ndarray,
    start_w: np.ndarray,
    officer: np.ndarray,
    service: np.ndarray,
    wait: np.ndarray,
    n_officers: int,
) -> np.ndarray:
    """End time (W seconds) of every task.

    ``first``/``count`` locate each dossier's tasks; ``start_w`` is when the dossier
    arrives; per task, ``officer`` (-1: no queue, e.g. the applicant's own action),
    ``service`` (officer seconds) and ``wait`` (seconds before the task can start, after
    the previous task ended) are int64.
    """
    finish = np.zeros(len(officer), dtype=np.int64)
    ptr = first.astype(np.int64).copy()
    end = ptr + count
    active = count > 0
    ready = np.zeros(len(first), dtype=np.int64)
    ready[active] = start_w[active] + wait[ptr[active]]
    free = np.full(n_officers, np.iinfo(np.int64).min // 4, dtype=np.int64)
    live = np.flatnonzero(active)
    horizon = int(ready[live].min()) + PASS_SECONDS if len(live) else 0
    while len(live):
        due = ready[live] < horizon
        if not due.any():
            # the window is done (chains included): move on, skipping idle time
            horizon = max(horizon, int(ready[live].min())) + PASS_SECONDS
            continue
        sel = live[due]
        task = ptr[sel]
        arrive = ready[sel]
        done_at = arrive + service[task]
        queued = officer[task] >= 0
        if queued.any():
            done_at[queued] = _fifo(
                arrive[queued], service[task[queued]], officer[task[queued]], free
            )
        finish[task] = done_at
        ptr[sel] += 1
        more = ptr[sel] < end[sel]
        nxt = sel[more]
        ready[nxt] = done_at[more] + wait[ptr[nxt]]
        if not more.all():
            finished = np.zeros(len(first), dtype=bool)
            finished[sel[~more]] = True
            live = live[~finished[live]]
    return finish


def _fifo(
    arrive: np.ndarray, service: np.ndarray, officer: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Completion times of one batch of tasks at their officers (updates ``free``)."""
    order = np.lexsort((arrive, officer))
    a, sv, off = arrive[order], service[order], officer[order]
    n = len(a)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = off[1:] != off[:-1]
    gid = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    cs = np.cumsum(sv)
    base = np.concatenate([[0], cs])[starts][gid]
    cs_incl = cs - base
    cs_excl = cs_incl - sv
    v = a - cs_excl
    lo = v.min()
    shifted = (v - lo) + gid.astype(np.int64) * _BIG
    running = np.maximum.accumulate(shifted) - gid.astype(np.int64) * _BIG + lo
    done = cs_incl + np.maximum(free[off], running)
    last = np.r_[starts[1:] - 1, n - 1]
    free[off[last]] = done[last]
    out = np.empty(n, dtype=np.int64)
    out[order] = done
    return out
