"""The summary of a log: its size, span, people, variants and how late its dossiers end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.clock import dossier_clock
from features.segments import Segments, segments, variant_hashes


def summarise(events: pd.DataFrame, calendar: WorkingCalendar) -> dict[str, Any]:
    """Key figures of a canonical, sorted event log (a dict ready for JSON).

    A dossier's duration runs from its first event to its end (its first terminal event,
    else its last event), on the working-day clock; "finished after due_at" compares that
    end with ``due_at``.
    """
    if events.empty:
        return {"dossiers": 0, "events": 0}
    seg = segments(events)
    starts, ends = seg.starts, seg.ends - 1
    stamps = events[s.TIMESTAMP]
    first = stamps.iloc[starts]
    last = _finished_at(events, seg)
    duration = calendar.working_days_between(
        first.reset_index(drop=True), last.reset_index(drop=True)
    )
    due = events[s.DUE_AT].iloc[starts].reset_index(drop=True)
    has_due = due.notna().to_numpy()
    late = (last.reset_index(drop=True) > due).to_numpy(dtype=bool, na_value=False)

    def distinct(col: str) -> int:
        return int(events[col].nunique(dropna=True))

    per_dossier = ends - starts + 1
    return {
        "dossiers": int(len(starts)),
        "events": int(len(events)),
        "activities": distinct(s.ACTIVITY),
        "first_event": stamps.min().isoformat(),
        "last_event": stamps.max().isoformat(),
        "timezone": str(stamps.dt.tz),
        "officers": distinct(s.OFFICER_ID),
        "agencies": distinct(s.AGENCY_ID),
        "procedures": distinct(s.PROCEDURE_CODE),
        "jurisdictions": distinct(s.JURISDICTION),
        "variants": int(len(np.unique(variant_hashes(events, seg)))),
        "events_per_dossier_median": float(np.median(per_dossier)),
        "duration_working_days_median": _round(np.nanmedian(duration)),
        "duration_working_days_p90": _round(np.nanpercentile(duration, 90)),
        "dossiers_with_due_at": int(has_due.sum()),
        "share_finished_after_due_at": (_round(late[has_due].mean()) if has_due.any() else None),
        "share_late_on_the_statutory_clock": _late_on_clock(events, calendar, first, due),
    }


def _late_on_clock(
    events: pd.DataFrame, calendar: WorkingCalendar, first: pd.Series, due: pd.Series
) -> float | None:
    """Share of finished dossiers whose statutory clock (stopped during supplement requests
    and pauses) ran past the statutory time, taken as the working time from the first
    event to ``due_at``."""
    has_due = due.notna().to_numpy()
    if not has_due.any():
        return None
    clock = dossier_clock(events, calendar, policy="stop")
    statutory = calendar.working_days_between(first.reset_index(drop=True), due)
    late = clock["elapsed_days"].to_numpy() > statutory + 1e-9
    done = clock["finished"].to_numpy() & has_due
    if not clock["finished"].any():  # a foreign vocabulary: each dossier ends at its last event
        done = has_due
    return _round(late[done].mean()) if done.any() else None


def _finished_at(events: pd.DataFrame, seg: Segments) -> pd.Series:
    """When each dossier ended: its first terminal event (result returned, rejected,
    withdrawn), else its last event. Ratings and payments after the result do not count."""
    stamps = events[s.TIMESTAMP]
    terminal = events[s.ACTIVITY].isin(list(s.TERMINAL_ACTIVITIES)).to_numpy()
    rows = np.where(terminal, np.arange(len(events)), len(events))
    first_terminal = np.minimum.reduceat(rows, seg.starts)
    chosen = np.where(first_terminal < seg.ends, first_terminal, seg.ends - 1)
    return stamps.iloc[chosen]


def _round(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 4)
