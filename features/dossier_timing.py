"""Time features of dossiers: the honest and reported statutory clocks, supplement and
pause timing, idle gaps, idle-then-rush, off-hours and holiday work, and recording lag
(backdating).

The clock follows :func:`features.clock.dossier_clock` exactly (the tests check it) but runs
on the prepared arrays of :mod:`features.dossier_events`, so the log is sorted once for all
features instead of once per clock policy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from features import schema as s
from features.dossier_events import NAT, DossierEvents
from features.segments import first_rows

#: Gaps between consecutive events longer than this count as idle time.
IDLE_THRESHOLD_DAYS = 2.0
#: Idle-then-rush: a wait of at least RUSH_MIN_IDLE_DAYS on the clock, then at least
#: RUSH_STEPS events (the one ending the wait included) done within RUSH_DAYS to the end.
RUSH_MIN_IDLE_DAYS = 1.0
RUSH_DAYS = 0.5
RUSH_STEPS = 3
#: Events written to the system later than this after their timestamp are late records.
RECORD_LAG_HOURS = 24.0
HOUR_NS = 3_600 * 10**9

_VOCAB = {name: i for i, name in enumerate(s.ACTIVITIES)}


def vocab_mask(ev: DossierEvents, *names: str) -> np.ndarray:
    """Rows whose activity is one of the vocabulary ``names``."""
    table = np.zeros(len(s.ACTIVITIES) + 1, dtype=bool)  # last entry: foreign (-1)
    table[[_VOCAB[n] for n in names]] = True
    return table[ev.vocab]


class ClockState(NamedTuple):
    """Per-row and per-segment clock quantities shared by the time features."""

    honest_at: np.ndarray  # honest clock at each row, ns
    honest: np.ndarray  # per segment, honest clock at the end, ns
    reported: np.ndarray  # per segment, reported clock at the end, ns
    supplement_ns: np.ndarray  # per segment, office time waiting for supplements
    paused_ns: np.ndarray  # per segment, office time paused
    finished: np.ndarray  # per segment, a terminal event reached
    end_w: np.ndarray  # per segment, W of the end (first terminal event, cut or last event)
    end_row: np.ndarray  # per segment, row of the first terminal event, else its last row
    step: np.ndarray  # per row, office ns since the previous event (0 on first rows)


def _previous(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    out = np.zeros_like(flags)
    out[1:] = flags[:-1]
    out[first] = False
    return out


def clock_state(ev: DossierEvents) -> ClockState:
    """The statutory clock of every segment under both policies (see features.clock)."""
    seg, n = ev.seg, len(ev)
    pos = np.arange(n)
    first = seg.position == 0
    head = seg.starts[seg.group] if n else np.zeros(0, np.int64)

    def latest(flags: np.ndarray) -> np.ndarray:
        found = np.maximum.accumulate(np.where(flags, pos, -1)) if n else pos
        return np.where(found >= head, found, -1)

    terminal = vocab_mask(ev, *s.TERMINAL_ACTIVITIES)
    finished_row = latest(terminal) >= 0
    finished_before = _previous(finished_row, first)
    opened = {}
    for stop, resume in s.CLOCK_STOPS.items():
        is_stop, is_resume = vocab_mask(ev, stop), vocab_mask(ev, resume)
        mark = latest(is_stop | is_resume)
        opened[stop] = (mark >= 0) & is_stop[np.maximum(mark, 0)] & ~finished_row
    supplement_open = opened[s.SUPPLEMENT_REQUESTED]
    pause_open = opened[s.PAUSED]
    stopped = supplement_open | pause_open
    stopped_before = _previous(stopped, first)
    restarts = (
        vocab_mask(ev, s.SUPPLEMENT_RECEIVED) & _previous(supplement_open, first) & ~finished_before
    )
    step = np.zeros(n, dtype=np.int64)
    if n:
        step[1:] = np.diff(ev.w)
    step[first] = 0
    counting = ~finished_before
    running = np.where(counting & ~stopped_before, step, 0)
    total = running.cumsum()
    base = np.r_[0, total][head] if n else total
    honest_at = total - base
    origin = np.maximum.accumulate(np.where(first | restarts, pos, 0)) if n else pos
    last = seg.ends - 1
    finished = finished_row[last] if n else finished_row
    if ev.cut_w is not None:
        tail = np.where(finished, 0, ev.cut_w - ev.w[last])
    else:
        tail = np.zeros(len(seg), dtype=np.int64)
    running_tail = np.where(stopped[last], 0, tail)

    def stopped_time(open_: np.ndarray) -> np.ndarray:
        inside = np.where(counting & _previous(open_, first), step, 0)
        return seg.sum(inside).astype(np.int64) + np.where(open_[last], tail, 0)

    first_terminal = seg.min(np.where(terminal, pos, np.nan).astype(np.float64))
    end_w = ev.w[last] if ev.cut_w is None else ev.cut_w.copy()
    done = ~np.isnan(first_terminal)
    end_row = np.where(done, np.nan_to_num(first_terminal), last).astype(np.int64)
    end_w = np.where(done, ev.w[end_row], end_w)
    return ClockState(
        honest_at=honest_at,
        honest=honest_at[last] + running_tail,
        reported=total[last] - total[origin[last]] + running_tail,
        supplement_ns=stopped_time(supplement_open),
        paused_ns=stopped_time(pause_open),
        finished=finished.astype(bool),
        end_w=end_w,
        end_row=end_row,
        step=step,
    )


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def time_features(
    ev: DossierEvents, clock: ClockState, statutory: np.ndarray
) -> dict[str, np.ndarray]:
    """Duration, clock, lateness, supplement, pause, idle, off-hours and lag features."""
    seg, day = ev.seg, float(ev.day_ns)
    n = len(ev)
    pos = np.arange(n, dtype=np.float64)
    first_w = ev.w[seg.starts]
    honest = clock.honest / day
    reported = clock.reported / day
    foreign = seg.count(ev.vocab >= 0) == 0
    ended = clock.finished | (foreign & (ev.cut is None))
    known = ~np.isnan(statutory)

    def late(value: np.ndarray) -> np.ndarray:
        over = known & (value > statutory)
        return np.where(over, 1.0, np.where(known & ended, 0.0, np.nan))

    out: dict[str, np.ndarray] = {
        "elapsed_days": (clock.end_w - first_w) / day,
        "honest_clock_days": honest,
        "reported_clock_days": reported,
        "statutory_days": statutory,
        "honest_clock_ratio": _safe_ratio(honest, statutory),
        "reported_clock_ratio": _safe_ratio(reported, statutory),
        "late_honest": late(honest),
        "late_reported": late(reported),
        "clock_gap_days": honest - reported,
    }
    requested = vocab_mask(ev, s.SUPPLEMENT_REQUESTED)
    rounds = seg.count(requested)
    at = clock.honest_at / day
    for which, reduce in (("first", seg.min), ("last", seg.max)):
        row = reduce(np.where(requested, pos, np.nan))
        clock_at = np.where(np.isnan(row), np.nan, at[np.nan_to_num(row).astype(np.int64)])
        out[f"{which}_supplement_days_before_deadline"] = statutory - clock_at
        out[f"{which}_supplement_share_elapsed"] = _safe_ratio(clock_at, statutory)
    out.update(_last_stop(ev, clock, statutory))
    out["supplement_rounds"] = rounds
    out["supplement_days"] = clock.supplement_ns / day
    out["supplement_turnaround_days"] = _safe_ratio(clock.supplement_ns / day, rounds)
    out["pauses"] = seg.count(vocab_mask(ev, s.PAUSED))
    out["paused_days"] = clock.paused_ns / day
    gaps = np.where(seg.position > 0, clock.step / day, np.nan)
    out["longest_idle_days"] = np.nan_to_num(seg.max(gaps), nan=0.0)
    excess = np.maximum(np.nan_to_num(gaps) - IDLE_THRESHOLD_DAYS, 0.0)
    out["idle_excess_days"] = seg.sum(excess)
    out["idle_before_rush_share"] = idle_before_rush(ev, clock, statutory, ended)
    size = seg.sizes.astype(np.float64)
    off = ~ev.office
    out["off_hours_events"] = seg.count(off)
    out["off_hours_share"] = out["off_hours_events"] / size
    out["holiday_events"] = seg.count(ev.holiday)
    out["holiday_share"] = out["holiday_events"] / size
    out["off_hours_approvals"] = seg.count(off & vocab_mask(ev, s.APPROVED))
    out.update(_recording(ev))
    return out


def idle_before_rush(
    ev: DossierEvents, clock: ClockState, statutory: np.ndarray, ended: np.ndarray
) -> np.ndarray:
    """Per segment, its longest wait on the clock as a share of the statutory time when
    that wait was followed by a rush (see ``RUSH_*``) that ended within the statutory time;
    0 otherwise (an open dossier has not been rushed yet), NaN without a statutory time.

    The wait is measured on the honest clock, so time waiting for the applicant's papers
    or in a pause is not idleness.
    """
    seg, day, n = ev.seg, float(ev.day_ns), len(ev)
    # the clock's increments: nothing while it is stopped, nor after the dossier ended
    waited = np.zeros(n, dtype=np.int64)
    if n:
        waited[1:] = np.diff(clock.honest_at)
    waited[seg.starts] = 0
    longest = seg.max(waited.astype(np.float64), empty=0.0)
    at = first_rows(seg, (waited == longest[seg.group]) & (waited > 0))
    row = np.maximum(at, 0)
    rushed = (
        (at >= 0)
        & (longest / day >= RUSH_MIN_IDLE_DAYS)
        & (clock.end_row - row + 1 >= RUSH_STEPS)
        & ((clock.end_w - ev.w[row]) / day <= RUSH_DAYS)
        & (clock.honest <= statutory * day)
        & ended
    )
    share = _safe_ratio(longest / day, statutory)
    return np.where(np.isnan(share), np.nan, np.where(rushed, share, 0.0))


def _last_stop(
    ev: DossierEvents, clock: ClockState, statutory: np.ndarray
) -> dict[str, np.ndarray]:
    """Where the last clock stop (supplement request or pause) began on the honest clock,
    and the honest working days the dossier still ran after the last stop ended: a stop
    just before the deadline followed by an immediate result is how a late dossier is made
    to look on time (clock manipulation)."""
    seg, day = ev.seg, float(ev.day_ns)
    pos = np.arange(len(ev), dtype=np.float64)
    at = clock.honest_at / day
    stop = vocab_mask(ev, *s.CLOCK_STOPS)
    resume = vocab_mask(ev, *s.CLOCK_STOPS.values())
    out: dict[str, np.ndarray] = {}
    stop_row = seg.max(np.where(stop, pos, np.nan))
    stop_at = np.where(np.isnan(stop_row), np.nan, at[np.nan_to_num(stop_row).astype(np.int64)])
    out["last_stop_share_elapsed"] = _safe_ratio(stop_at, statutory)
    end_row = seg.max(np.where(resume, pos, np.nan))
    end_at = np.where(np.isnan(end_row), np.nan, at[np.nan_to_num(end_row).astype(np.int64)])
    out["work_after_last_stop_days"] = clock.honest / day - end_at
    return out


def _recording(ev: DossierEvents) -> dict[str, np.ndarray]:
    seg = ev.seg
    has = ev.recorded != NAT
    lag = np.where(has, (ev.recorded - ev.t) / HOUR_NS, np.nan)
    before = np.zeros(len(ev), dtype=bool)
    if len(ev):
        prev = ev.recorded[:-1]
        before[1:] = (ev.recorded[1:] < prev) & has[1:] & (prev != NAT)
        before[seg.starts] = False
    inversion = np.zeros(len(ev), dtype=np.float64)
    if len(ev):
        inversion[1:] = (ev.recorded[:-1] - ev.recorded[1:]) / HOUR_NS
    inversion = np.where(before, inversion, 0.0)
    return {
        "max_record_lag_hours": seg.max(lag),
        "late_records": seg.count(lag > RECORD_LAG_HOURS),
        "out_of_order_events": seg.count(before),
        "max_record_inversion_hours": seg.max(inversion, empty=0.0),
    }
