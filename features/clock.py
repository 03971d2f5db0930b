"""The statutory clock of dossiers: office time from the first event, stopped while the
agency waits for supplementary documents or has paused processing.

See :func:`dossier_clock` for the rules and the two supplement policies, and
``docs/calendar.md`` for the inspector's version. Built on :mod:`features.calendar`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.calendar import WorkingCalendar
from features.schema import (
    ACTIVITY,
    CLOCK_STOPS,
    DOSSIER_ID,
    SEQ,
    SUPPLEMENT_REQUESTED,
    TERMINAL_ACTIVITIES,
    TIMESTAMP,
    EventSchemaError,
    sort_events,
)

__all__ = ["Policy", "dossier_clock", "event_clock"]

Policy = Literal["stop", "restart"]


# --- the statutory clock of dossiers --------------------------------------------------------


class _Clock(NamedTuple):
    """Per-event clock state of one sorted log (shared by the two clock features)."""

    times: pd.DatetimeIndex  # event times in the calendar's zone
    ids: pd.Series  # dossier ids, sorted
    first: NDArray[np.intp]  # first row of each dossier
    last: NDArray[np.intp]  # last row of each dossier
    w: NDArray[np.int64]  # W of each event, ns
    stopped: NDArray[np.bool_]  # clock stopped just after the event
    finished: NDArray[np.bool_]  # terminal event reached at or before the event
    elapsed: NDArray[np.int64]  # running office ns since the clock's (re)start
    halted: NDArray[np.int64]  # stopped office ns since the dossier's first event
    stops: NDArray[np.int64]  # stop intervals begun at or before the event (running count)
    origin: NDArray[np.intp]  # row from which the clock counts


def _previous(flags: NDArray[np.bool_], start: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The flag of the previous event of the same dossier (False on a dossier's first)."""
    out = np.zeros_like(flags)
    out[1:] = flags[:-1]
    out[start] = False
    return out


def _clock(
    events: pd.DataFrame, calendar: WorkingCalendar, policy: Policy, as_of: datetime | None
) -> _Clock:
    if policy not in ("stop", "restart"):
        raise ValueError(f"policy must be 'stop' or 'restart', got {policy!r}")
    frame = events[[DOSSIER_ID, TIMESTAMP, SEQ, ACTIVITY]]  # a new frame: the input stays as is
    if as_of is not None:
        limit = calendar._locate(as_of).times[0]
        frame = frame[(frame[TIMESTAMP] <= limit).to_numpy(dtype=bool, na_value=False)]
    frame = sort_events(frame)
    if frame[TIMESTAMP].isna().any():
        raise EventSchemaError("missing value", column=TIMESTAMP)
    n = len(frame)
    pos = np.arange(n)
    dossiers, _ = pd.factorize(frame[DOSSIER_ID])
    start = np.ones(n, dtype=bool)
    start[1:] = dossiers[1:] != dossiers[:-1]
    head = np.maximum.accumulate(np.where(start, pos, 0))  # first row of the row's dossier
    loc = calendar._locate(frame[TIMESTAMP])
    w = calendar._w(loc)

    codes, names = pd.factorize(frame[ACTIVITY])  # one pass over the strings, then ints

    def marks(activities: Iterable[str]) -> NDArray[np.bool_]:
        return np.isin(codes, np.flatnonzero(np.isin(np.asarray(names), list(activities))))

    def latest(flags: NDArray[np.bool_]) -> NDArray[np.intp]:
        """Row of the latest flagged event of the same dossier at or before each row (-1)."""
        found = np.maximum.accumulate(np.where(flags, pos, -1))
        return np.where(found >= head, found, -1)

    finished = latest(marks(TERMINAL_ACTIVITIES)) >= 0
    finished_before = _previous(finished, start)
    stopped = np.zeros(n, dtype=bool)
    restarts = np.zeros(n, dtype=bool)
    for stop, resume in CLOCK_STOPS.items():
        is_stop, is_resume = marks([stop]), marks([resume])
        mark = latest(is_stop | is_resume)
        open_ = (mark >= 0) & is_stop[np.maximum(mark, 0)]  # each stop kind is a flag
        stopped |= open_
        if policy == "restart" and stop == SUPPLEMENT_REQUESTED:
            restarts = is_resume & _previous(open_, start) & ~finished_before
    stopped &= ~finished  # a finished dossier's clock is over, not stopped
    stopped_before = _previous(stopped, start)
    step = np.zeros(n, dtype=np.int64)
    step[1:] = np.diff(w)
    step[start] = 0
    counting = ~finished_before
    running = np.where(counting & ~stopped_before, step, 0).cumsum()
    halted = np.where(counting & stopped_before, step, 0).cumsum()
    stops = (stopped & ~stopped_before).cumsum()
    origin = np.maximum.accumulate(np.where(start | restarts, pos, 0))
    first = np.flatnonzero(start)
    last = (np.append(first[1:], n) - 1 if n else first).astype(np.intp)
    # cumulative sums reset at dossier starts (and at restarts for the running clock).
    before_head = np.concatenate([[0], stops])[head]
    return _Clock(
        times=loc.times,
        ids=frame[DOSSIER_ID],
        first=first,
        last=last,
        w=w,
        stopped=stopped,
        finished=finished,
        elapsed=running - running[origin],
        halted=halted - halted[head],
        stops=stops - before_head,
        origin=origin,
    )


def event_clock(
    events: pd.DataFrame, calendar: WorkingCalendar, policy: Policy = "stop"
) -> NDArray[np.float64]:
    """Working days on each dossier's statutory clock at each event.

    Rows follow ``sort_events(events)`` (the input's order when it is already sorted). See
    :func:`dossier_clock` for the clock's rules.
    """
    clock = _clock(events, calendar, policy, None)
    return clock.elapsed / calendar.day_ns


def dossier_clock(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    *,
    as_of: datetime | None = None,
    policy: Policy = "stop",
) -> pd.DataFrame:
    """The statutory clock of each dossier, from its events up to ``as_of``.

    The clock counts office time (``calendar``) from the dossier's first event. It stops
    between ``supplement_requested`` and the next ``supplement_received``, and between
    ``paused`` and the next ``resumed`` (``schema.CLOCK_STOPS``); the two kinds are tracked
    separately and the clock runs only when neither is open, so a stop while already
    stopped starts no new stop interval. It ends for good at the first terminal event
    (result returned, rejected, withdrawn): later events (payment, rating) do not move it.

    ``policy="stop"``: after a stop the clock resumes where it left off (the supplement
    time "is not counted in the processing time").
    ``policy="restart"``: a ``supplement_received`` that closes a request starts the full
    statutory time afresh (``elapsed_days`` counts from it, and ``clock_start`` moves to
    it), as handling systems count it from the receipt of the complete dossier under Decree
    61/2018/ND-CP as amended by Decree 107/2021/ND-CP; pauses only stop. The restart rule
    is what clock manipulation exploits (a request just before the deadline makes a late
    dossier "on time"), so features compare both.

    With ``as_of``, events after it are ignored and an unfinished dossier's clock runs up to
    ``as_of``: the result uses nothing from the future. Dossiers with no event by then are
    absent. Returns one row per dossier, indexed by ``dossier_id``, with ``started_at``
    (first event), ``clock_start`` (first office instant of the clock's last (re)start),
    ``elapsed_days``, ``stopped_days`` (office time spent stopped, over the whole
    dossier), ``stops`` (stop intervals), ``stopped_now`` (a stop still open at the end) and
    ``finished`` (a terminal event reached).
    """
    clock = _clock(events, calendar, policy, as_of)
    last = clock.last
    end = clock.w[last] if as_of is None else calendar._w(calendar._locate(as_of))[0]
    tail = np.where(clock.finished[last], 0, end - clock.w[last])
    stopped_now = clock.stopped[last]
    elapsed = clock.elapsed[last] + np.where(stopped_now, 0, tail)
    halted = clock.halted[last] + np.where(stopped_now, tail, 0)
    clock_start = calendar.next_office_time(clock.times[clock.origin[last]])
    return pd.DataFrame(
        {
            "started_at": clock.times[clock.first],
            "clock_start": clock_start,
            "elapsed_days": elapsed / calendar.day_ns,
            "stopped_days": halted / calendar.day_ns,
            "stops": clock.stops[last].astype(np.int64),
            "stopped_now": stopped_now,
            "finished": clock.finished[last],
        },
        index=pd.Index(clock.ids.iloc[clock.first].array, name=DOSSIER_ID),
    )
