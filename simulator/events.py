"""The event table of one province while it is being built, and the dossiers' clocks.

Columns are numpy arrays of codes (activity, agency, officer indices) so that anomaly
injection and clock computation stay vectorised; :mod:`simulator.output` turns the table
into the canonical schema. Times are ``w`` (office seconds, ``features.calendar`` W) until
the end, where they become wall-clock instants; ``t_override`` pins an event to a wall-clock
instant that W cannot express (an approval at night or on a holiday).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from features import schema as s
from simulator.routes import ACT

NO = -1
STOP_STARTS = np.array([ACT[s.SUPPLEMENT_REQUESTED], ACT[s.PAUSED]], dtype=np.int16)
STOP_ENDS = np.array([ACT[s.SUPPLEMENT_RECEIVED], ACT[s.RESUMED]], dtype=np.int16)
TERMINALS = np.array([ACT[a] for a in s.TERMINAL_ACTIVITIES], dtype=np.int16)


@dataclass
class EventTable:
    """Events of one province, sorted by (dossier, w, ord)."""

    dossier: np.ndarray  # int64
    activity: np.ndarray  # int16 code into schema.ACTIVITIES
    agency: np.ndarray  # int64 agency index
    officer: np.ndarray  # int64 officer index, -1 none
    target: np.ndarray  # int64 agency index of a transfer's target, -1 none
    via: np.ndarray  # int8 channel code of an applicant-facing event, -1 none
    w: np.ndarray  # int64 office seconds
    ord: np.ndarray  # float64 tie-breaker within a dossier
    step: np.ndarray  # int16 route step, -1 for added events
    rating: np.ndarray  # int8, 0 none
    t_override: np.ndarray  # int64 UTC ns, -1 none
    late_record: np.ndarray  # int64 seconds recorded after the event (backdating), 0 none

    def __len__(self) -> int:
        return len(self.dossier)

    def take(self, index: np.ndarray) -> EventTable:
        return EventTable(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def sort(self) -> EventTable:
        order = np.lexsort((self.ord, self.w, self.dossier))
        return self.take(order)

    def append(self, other: EventTable) -> EventTable:
        """Both tables' events, re-sorted."""
        merged = EventTable(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in fields(self)
            }
        )
        return merged.sort()

    @classmethod
    def new(
        cls, dossier: np.ndarray, activity: np.ndarray | int, w: np.ndarray, **cols: object
    ) -> EventTable:
        """Events to insert; unspecified columns take their 'none' value."""
        n = len(dossier)
        defaults: dict[str, tuple[object, type]] = {
            "agency": (NO, np.int64),
            "officer": (NO, np.int64),
            "target": (NO, np.int64),
            "via": (NO, np.int8),
            "ord": (0.0, np.float64),
            "step": (NO, np.int16),
            "rating": (0, np.int8),
            "t_override": (NO, np.int64),
            "late_record": (0, np.int64),
        }
        values: dict[str, np.ndarray] = {
            "dossier": np.asarray(dossier, dtype=np.int64),
            "activity": np.broadcast_to(np.asarray(activity, dtype=np.int16), (n,)).copy(),
            "w": np.asarray(w, dtype=np.int64),
        }
        for name, (default, dtype) in defaults.items():
            value = cols.get(name, default)
            values[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()
        return cls(**values)

    # --- per-dossier helpers ----------------------------------------------------------

    def bounds(self, n_dossiers: int) -> tuple[np.ndarray, np.ndarray]:
        """First row and row count of each dossier (count 0 for a dossier without events)."""
        count = np.bincount(self.dossier, minlength=n_dossiers)
        first = np.concatenate([[0], np.cumsum(count)[:-1]])
        return first, count

    def first_of(self, mask: np.ndarray, n_dossiers: int) -> np.ndarray:
        """Row of the first event of each dossier where ``mask`` holds (-1 when none)."""
        rows = np.flatnonzero(mask)
        out = np.full(n_dossiers, NO, dtype=np.int64)
        d = self.dossier[rows]
        keep = np.r_[True, d[1:] != d[:-1]] if len(rows) else np.zeros(0, dtype=bool)
        out[d[keep]] = rows[keep]
        return out

    def last_of(self, mask: np.ndarray, n_dossiers: int) -> np.ndarray:
        """Row of the last event of each dossier where ``mask`` holds (-1 when none)."""
        rows = np.flatnonzero(mask)
        out = np.full(n_dossiers, NO, dtype=np.int64)
        out[self.dossier[rows]] = rows  # later rows overwrite earlier ones
        return out

    def shift_after(self, rows: np.ndarray, delta: np.ndarray) -> None:
        """Delay every event of a dossier that comes after ``rows`` (one per dossier)."""
        anchor = np.full(int(self.dossier.max()) + 1 if len(self) else 0, np.iinfo(np.int64).max)
        by = np.zeros(len(anchor), dtype=np.int64)
        anchor[self.dossier[rows]] = rows
        by[self.dossier[rows]] = delta
        later = np.arange(len(self)) > anchor[self.dossier]
        self.w = self.w + np.where(later, by[self.dossier], 0)


@dataclass
class Clocks:
    """Per-dossier statutory clocks, in office seconds."""

    received_w: np.ndarray
    end_w: np.ndarray  # first terminal event
    honest: np.ndarray  # elapsed with stops not counted
    reported: np.ndarray  # elapsed since the last supplement received (the restart rule)
    stops: np.ndarray  # stop intervals
    supplements: np.ndarray  # supplement requests


def clocks(events: EventTable, n_dossiers: int, ignore: np.ndarray | None = None) -> Clocks:
    """The honest ("stop") and reported ("restart") clock of each dossier.

    Matches :func:`features.calendar.dossier_clock` for logs whose stops do not overlap:
    the clock starts at the first event, stops between a supplement request and the
    supplement, and between a pause and its resumption, and ends at the first terminal
    event. ``ignore`` marks stop events that are not to be believed (a fake pause).
    """
    n = len(events)
    pos = np.arange(n)
    first, _ = events.bounds(n_dossiers)
    terminal_row = events.first_of(np.isin(events.activity, TERMINALS), n_dossiers)
    has_end = terminal_row >= 0
    end_row = np.where(
        has_end, terminal_row, first + np.bincount(events.dossier, minlength=n_dossiers) - 1
    )
    before_end = pos <= end_row[events.dossier]
    starts = np.isin(events.activity, STOP_STARTS) & before_end
    ends = np.isin(events.activity, STOP_ENDS) & before_end
    if ignore is not None:
        starts &= ~ignore
        ends &= ~ignore
    # stopped time: from each stop start to the next stop end (stops never nest here).
    last_start = np.maximum.accumulate(np.where(starts, pos, -1))
    same = (last_start >= 0) & (events.dossier[np.maximum(last_start, 0)] == events.dossier)
    closing = ends & same
    span = np.where(closing, events.w - events.w[np.maximum(last_start, 0)], 0)
    stopped = np.bincount(events.dossier, weights=span, minlength=n_dossiers).astype(np.int64)
    # a stop still open at the terminal event runs to it
    open_rows = events.last_of(starts, n_dossiers)
    close_rows = events.last_of(closing, n_dossiers)
    still_open = (open_rows >= 0) & (open_rows > close_rows)
    stopped += np.where(still_open, events.w[end_row] - events.w[np.maximum(open_rows, 0)], 0)
    received_w = events.w[first]
    end_w = events.w[end_row]
    honest = end_w - received_w - stopped
    supp_end = np.isin(events.activity, [ACT[s.SUPPLEMENT_RECEIVED]]) & before_end
    if ignore is not None:
        supp_end &= ~ignore
    restart_row = events.last_of(supp_end, n_dossiers)
    origin = np.where(restart_row >= 0, events.w[np.maximum(restart_row, 0)], received_w)
    pause_span = np.where(
        closing
        & (events.activity == ACT[s.RESUMED])
        & (events.w[np.maximum(last_start, 0)] >= origin[events.dossier]),
        span,
        0,
    )
    paused_after = np.bincount(events.dossier, weights=pause_span, minlength=n_dossiers)
    reported = end_w - origin - paused_after.astype(np.int64)
    reported -= np.where(
        still_open & (events.w[np.maximum(open_rows, 0)] >= origin),
        end_w - events.w[np.maximum(open_rows, 0)],
        0,
    )
    return Clocks(
        received_w=received_w,
        end_w=end_w,
        honest=honest,
        reported=reported,
        stops=np.bincount(events.dossier, weights=starts, minlength=n_dossiers).astype(np.int64),
        supplements=np.bincount(
            events.dossier,
            weights=starts & (events.activity == ACT[s.SUPPLEMENT_REQUESTED]),
            minlength=n_dossiers,
        ).astype(np.int64),
    )
