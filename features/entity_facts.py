"""Stage A of the entity and graph features: small per-dossier tables built from events.

Each function reads whole dossiers only, so a Dask engine runs them per partition of
dossiers and concatenates the results; stage B (:mod:`features.entities`,
:mod:`features.graph`) aggregates the concatenated tables. Identifiers come out as
``string`` dtype (never categoricals, whose categories differ between partitions), rows in
a canonical order. With ``as_of`` only events at or before it are read, so the tables hold
nothing from the future.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.entity_stats import object_values
from features.segments import (
    Segments,
    canonical_segments,
    first_rows,
    last_rows,
    latest_flagged,
    next_flagged,
)

__all__ = ["dossier_facts", "officer_touches", "transfer_edges"]

FACT_ID_COLUMNS = (
    s.PROCEDURE_CODE,
    s.JURISDICTION,
    s.CHANNEL,
    s.APPLICANT_ID,
    s.SUBMITTER_ID,
)


def _prepared(
    events: pd.DataFrame, calendar: WorkingCalendar, as_of: datetime | None, columns: list[str]
) -> tuple[pd.DataFrame, Segments]:
    """The needed columns of the events at or before ``as_of``, in canonical order, and
    their dossier segments."""
    keep = [c for c in dict.fromkeys([s.DOSSIER_ID, s.TIMESTAMP, s.SEQ, *columns])]
    missing = [c for c in keep if c not in events.columns]
    if missing:
        raise s.EventSchemaError(f"missing column(s) {missing}", column=missing[0])
    frame = events[keep]
    if as_of is not None:
        limit = calendar._locate(as_of).times[0]
        frame = frame[(frame[s.TIMESTAMP] <= limit).to_numpy(dtype=bool, na_value=False)]
    return canonical_segments(frame)


class _Coded(NamedTuple):
    """A column as integer codes (-1 where missing) into an object array of names."""

    codes: np.ndarray
    names: np.ndarray

    @classmethod
    def of(cls, values: pd.Series) -> _Coded:
        """Categoricals keep their codes; other columns are factorised (slower)."""
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy(dtype=np.int64)
            return cls(codes, object_values(values.cat.categories))
        codes, names = pd.factorize(values)
        return cls(codes.astype(np.int64), object_values(pd.Index(names)))

    def isin(self, values: Collection[str]) -> np.ndarray:
        """Rows whose name is one of ``values``."""
        wanted = np.flatnonzero(np.isin(self.names, list(values)))
        return np.isin(self.codes, wanted)

    def named(self, rows: np.ndarray) -> ExtensionArray:
        """The names at ``rows`` (-1: missing) as a ``string`` array."""
        codes = np.where(rows >= 0, self.codes[np.maximum(rows, 0)], -1) if len(rows) else rows
        return _names(codes, self.names)


def _names(codes: np.ndarray, names: np.ndarray) -> ExtensionArray:
    """``names[codes]`` (-1: missing) as a ``string`` array, without a Python loop."""
    categories = pd.Index(names, dtype=object)
    named = pd.Series(pd.Categorical.from_codes(codes, categories)).astype("string")
    return named.array


class _Office(NamedTuple):
    """Office-time facts of event times (one location of the times serves them all)."""

    w: np.ndarray  # office ns since the calendar's epoch (the calendar's W; 0 where NaT)
    office: np.ndarray  # inside office hours of a working day
    holiday: np.ndarray  # on a public holiday or configured day off


def _office(calendar: WorkingCalendar, times: pd.DatetimeIndex) -> _Office:
    """W, ``is_office_time`` and ``is_holiday`` of ``times``, as the calendar computes them,
    locating the times once and reducing one office interval at a time (no n x k matrix)."""
    loc = calendar._locate(times)
    working = calendar._working[loc.day]
    today = np.zeros(len(loc.clock), dtype=np.int64)
    inside = np.zeros(len(loc.clock), dtype=bool)
    for opens, length in zip(calendar._open, calendar._length, strict=True):
        offset = loc.clock - opens
        today += np.clip(offset, 0, length)
        inside |= (offset >= 0) & (offset < length)
    w = calendar._cum[loc.day] * calendar.day_ns + np.where(working, today, 0)
    return _Office(w, working & inside & ~loc.nat, calendar._holiday[loc.day] & ~loc.nat)


def _first_valid(seg: Segments, values: pd.Series) -> ExtensionArray:
    """Each dossier's first non-null value, as ``string``."""
    row = first_rows(seg, values.notna().to_numpy(dtype=bool))
    picked = values.take(np.maximum(row, 0)).astype("string") if len(row) else values[:0]
    out: ExtensionArray = picked.astype("string").mask(row < 0).array
    return out


def _main_officer(officer: _Coded, approved: np.ndarray, seg: Segments) -> ExtensionArray:
    """The officer of the dossier's last approval, else its most frequent officer.

    Ties go to the officer who appears first in the dossier. Counts come from sorting one
    int64 key per (dossier, officer) row.
    """
    has = officer.codes >= 0
    last_row = last_rows(seg, has & approved)
    rows = np.flatnonzero(has)
    key = seg.group[rows] * (len(officer.names) + 1) + officer.codes[rows]
    order = np.argsort(key, kind="stable")  # rows are grouped by dossier: nearly sorted
    ranked = key[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]] if len(rows) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, len(ranked)])
    first = rows[order[starts]]  # stable: the pair's earliest row
    dossier = seg.group[first]
    # best pair of each dossier: most rows, then earliest first row
    score = (int(seg.sizes.max(initial=0)) - counts) * (len(seg.group) + 1) + first
    best = np.full(len(seg), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, dossier, score)
    top = first[score == best[dossier]]
    frequent = np.full(len(seg), -1, dtype=np.int64)
    frequent[seg.group[top]] = top
    return officer.named(np.where(last_row >= 0, last_row, frequent))


def _stop_clock_days(
    seg: Segments, activity: _Coded, w: np.ndarray, end_w: np.ndarray | None, day_ns: int
) -> np.ndarray:
    """``elapsed_days`` of :func:`features.clock.dossier_clock` (policy "stop") per dossier.

    The same rules on the already sorted rows, summed per dossier instead of as running
    sums (the stop policy never restarts, so a dossier's clock is the sum of its steps):
    a step between two events counts unless the dossier was finished or stopped after the
    earlier one; an open dossier's clock then runs to ``end_w`` (default: its last event).
    """
    finished = latest_flagged(seg, activity.isin(s.TERMINAL_ACTIVITIES)) >= 0
    stopped = np.zeros(len(w), dtype=bool)
    for stop, resume in s.CLOCK_STOPS.items():
        is_stop = activity.isin([stop])
        mark = latest_flagged(seg, is_stop | activity.isin([resume]))
        stopped |= (mark >= 0) & is_stop[np.maximum(mark, 0)]
    stopped &= ~finished
    step = np.diff(w, prepend=w[:1])
    blocked = np.r_[False, (finished | stopped)[:-1]]
    counted = np.where(blocked | seg.is_first(), 0, step)
    elapsed = np.add.reduceat(counted, seg.starts)
    last = seg.ends - 1
    tail = np.where(finished[last], 0, (w[last] if end_w is None else end_w) - w[last])
    return (elapsed + np.where(stopped[last], 0, tail)) / day_ns


def dossier_facts(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    *,
    catalogue: Catalogue | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """One row per dossier (sorted by ``dossier_id``): who, what, when and how it went.

    Columns: ``dossier_id``, the dossier columns (``procedure_code``, ``jurisdiction``,
    ``channel``, ``applicant_id``, ``submitter_id``), ``first_agency_id``,
    ``main_officer_id`` (the officer of the approval, else the most frequent one),
    ``started_at``, ``ended_at`` (first terminal event; NaT while open), ``last_event_at``,
    ``events``, ``duration_days`` (honest statutory clock, :func:`features.clock.dossier_clock`
    with policy "stop", running to ``as_of`` while open), ``statutory_days`` (the
    catalogue's, else working days from start to ``due_at``), ``late`` (finished and over its
    statutory time; NA while open or without a deadline), ``supplement_requests``,
    ``offhours_share`` (events outside office time), ``approval_offhours`` (an approval
    outside office time or on a holiday; NA without approval) and ``rating`` (mean, NaN if
    none).
    """
    cols = [s.ACTIVITY, s.AGENCY_ID, s.OFFICER_ID, s.DUE_AT, s.RATING, *FACT_ID_COLUMNS]
    frame, seg = _prepared(events, calendar, as_of, cols)
    stamps = pd.DatetimeIndex(frame[s.TIMESTAMP])
    if stamps.hasnans:
        raise s.EventSchemaError("missing value", column=s.TIMESTAMP)
    activity = _Coded.of(frame[s.ACTIVITY])
    out = pd.DataFrame({s.DOSSIER_ID: seg.ids.astype("string").array})
    for col in FACT_ID_COLUMNS:
        out[col] = _first_valid(seg, frame[col])
    out["first_agency_id"] = _first_valid(seg, frame[s.AGENCY_ID])
    approvals = activity.isin({s.APPROVED})
    out["main_officer_id"] = _main_officer(_Coded.of(frame[s.OFFICER_ID]), approvals, seg)
    out["started_at"] = stamps[seg.starts]
    terminal = first_rows(seg, activity.isin(s.TERMINAL_ACTIVITIES))
    out["ended_at"] = stamps[np.maximum(terminal, 0)].where(terminal >= 0)
    out["last_event_at"] = stamps[seg.ends - 1]
    out["events"] = seg.sizes.astype(np.int64)
    office = _office(calendar, stamps)
    end_w = None if as_of is None else calendar._w(calendar._locate(as_of))[0]
    out["duration_days"] = (
        _stop_clock_days(seg, activity, office.w, end_w, calendar.day_ns)
        if len(seg)
        else np.zeros(0)
    )
    out["statutory_days"] = _statutory_days(frame, seg, out, calendar, catalogue)
    finished = terminal >= 0
    late = out["duration_days"].to_numpy() > out["statutory_days"].to_numpy() + 1e-9
    known = finished & np.isfinite(out["statutory_days"].to_numpy())
    out["late"] = pd.array(np.where(known, late, False), dtype="boolean")
    out.loc[~known, "late"] = pd.NA
    out["supplement_requests"] = seg.count(activity.isin({s.SUPPLEMENT_REQUESTED}))
    out["offhours_share"] = seg.count(~office.office) / np.maximum(seg.sizes, 1)
    odd = approvals & (~office.office | office.holiday)
    n_approvals = seg.count(approvals)
    out["approval_offhours"] = pd.array(seg.count(odd) > 0, dtype="boolean")
    out.loc[n_approvals == 0, "approval_offhours"] = pd.NA
    rating = frame[s.RATING].to_numpy(dtype="float64", na_value=np.nan)
    rated = np.isfinite(rating)
    n_rated = seg.count(rated)
    total = seg.sum(np.where(rated, rating, 0.0))
    out["rating"] = np.where(n_rated > 0, total / np.maximum(n_rated, 1), np.nan)
    return out  # segments follow the canonical order: already sorted by dossier_id


def _statutory_days(
    frame: pd.DataFrame,
    seg: Segments,
    facts: pd.DataFrame,
    calendar: WorkingCalendar,
    catalogue: Catalogue | None,
) -> np.ndarray:
    due_row = first_rows(seg, frame[s.DUE_AT].notna().to_numpy(dtype=bool))
    due = pd.DatetimeIndex(frame[s.DUE_AT])
    due_at = due[np.maximum(due_row, 0)].where(due_row >= 0) if len(seg) else due[:0]
    from_due = (
        calendar.working_days_between(pd.DatetimeIndex(facts["started_at"]), due_at)
        if len(seg)
        else np.zeros(0)
    )
    if catalogue is None:
        return np.asarray(from_due, dtype="float64")
    days = {p.code: p.statutory_days for p in catalogue}
    listed = facts[s.PROCEDURE_CODE].map(days).to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(listed), listed, from_due)


def officer_touches(
    events: pd.DataFrame, calendar: WorkingCalendar, *, as_of: datetime | None = None
) -> pd.DataFrame:
    """One row per (dossier, officer) who acted on it, sorted by both.

    ``touches`` (events by the officer), ``handling_days`` (working days from the dossier's
    previous event to each of the officer's events, summed: the time the step waited on
    them), ``offhours_touches`` (their events outside office time) and ``first_touch_at``.
    """
    frame, seg = _prepared(events, calendar, as_of, [s.OFFICER_ID])
    times = pd.DatetimeIndex(frame[s.TIMESTAMP])
    office = _office(calendar, times)
    nat = np.asarray(times.isna(), dtype=bool)
    handling = np.diff(office.w, prepend=office.w[:1]) / calendar.day_ns
    handling = np.where(nat | np.r_[False, nat[:-1]], np.nan, handling)
    handling = np.where(seg.is_first(), 0.0, handling)
    officer = _Coded.of(frame[s.OFFICER_ID])
    rank = np.empty(len(officer.names), dtype=np.int64)
    rank[np.argsort(officer.names, kind="stable")] = np.arange(len(officer.names))
    touched = np.flatnonzero(officer.codes >= 0)
    key = seg.group[touched] * (len(rank) + 1) + rank[officer.codes[touched]]
    order = np.argsort(key, kind="stable")
    rows, key = touched[order], key[order]  # by dossier, then officer name, then time
    new = np.r_[True, key[1:] != key[:-1]] if len(rows) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    pair = np.empty(len(rows), dtype=np.int64)
    pair[order] = np.cumsum(new) - 1  # each touched row's pair, in row order
    stamp = np.where(nat, np.iinfo(np.int64).max, times.asi8)[rows]
    first_at = np.minimum.reduceat(stamp, starts) if len(rows) else stamp
    offhours = (~office.office[rows]).astype(np.int64)
    out = pd.DataFrame(
        {
            s.DOSSIER_ID: seg.ids[seg.group[rows[starts]]].astype("string").array,
            s.OFFICER_ID: officer.named(rows[starts]),
            "touches": np.diff(np.r_[starts, len(rows)]).astype(np.int64),
            # pandas' grouped sum over rows in event order: the same float sums as a groupby
            "handling_days": pd.Series(handling[touched]).groupby(pair).sum().to_numpy(),
            "offhours_touches": (
                np.add.reduceat(offhours, starts) if len(rows) else offhours
            ).astype(np.int64),
            "first_touch_at": pd.DatetimeIndex(
                np.where(first_at == np.iinfo(np.int64).max, np.iinfo(np.int64).min, first_at),
                dtype=times.dtype,
            ),
        }
    )
    return out


def transfer_edges(
    events: pd.DataFrame, calendar: WorkingCalendar, *, as_of: datetime | None = None
) -> pd.DataFrame:
    """One row per handover of a dossier from one agency to another, in dossier order.

    The agency holding a dossier after an event is the ``target_agency_id`` of a
    ``transferred`` event, else the event's ``agency_id`` (else the previous holder); each
    change of holder up to the dossier's first terminal event is a handover. Columns:
    ``dossier_id``, ``procedure_code``, ``from_agency``, ``to_agency``, ``at``,
    ``via_transfer`` (an explicit ``transferred`` event), ``released_at`` (the next
    handover, else the end; NaT while the receiver still holds it) and ``holding_days``
    (working days the receiver held it; NaN while open).
    """
    cols = [s.ACTIVITY, s.AGENCY_ID, s.TARGET_AGENCY_ID, s.PROCEDURE_CODE]
    frame, seg = _prepared(events, calendar, as_of, cols)
    activity = _Coded.of(frame[s.ACTIVITY])
    agency = _Coded.of(frame[s.AGENCY_ID])
    target = _Coded.of(frame[s.TARGET_AGENCY_ID])
    # one code space for both agency columns
    names = pd.Index(agency.names).append(pd.Index(target.names)).unique()
    agency_codes = _recode(agency, names)
    target_codes = _recode(target, names)
    transfer = activity.isin({s.TRANSFERRED}) & (target_codes >= 0)
    holder = np.where(transfer, target_codes, agency_codes)
    valid = holder >= 0
    terminal = first_rows(seg, activity.isin(s.TERMINAL_ACTIVITIES))
    end_row = terminal[seg.group] if len(frame) else terminal
    rows = np.arange(len(frame))
    in_time = (end_row < 0) | (rows <= end_row)
    last_valid = latest_flagged(seg, valid)
    before = seg.previous(last_valid, fill=-1) if len(frame) else last_valid
    prev_holder = np.where(before >= 0, holder[np.maximum(before, 0)], -1)
    change = valid & in_time & (prev_holder >= 0) & (holder != prev_holder)
    times = pd.DatetimeIndex(frame[s.TIMESTAMP])
    idx = np.flatnonzero(change)
    nxt = next_flagged(seg, change)[idx] if len(frame) else idx
    dossier = seg.group[idx]
    end_at = times[np.maximum(terminal, 0)].where(terminal >= 0) if len(seg) else times[:0]
    released = times[np.maximum(nxt, 0)].where(nxt >= 0)
    finished = end_at[dossier] if len(idx) else times[:0]
    released = released.where(nxt >= 0, finished) if len(idx) else released
    procedure = _first_valid(seg, frame[s.PROCEDURE_CODE])
    at = times[idx]
    holder_names = np.asarray(names, dtype=object)
    out = pd.DataFrame(
        {
            s.DOSSIER_ID: seg.ids[dossier].astype("string").array,
            s.PROCEDURE_CODE: procedure.take(dossier),
            "from_agency": _names(prev_holder[idx], holder_names),
            "to_agency": _names(holder[idx], holder_names),
            "at": at,
            "via_transfer": transfer[idx],
            "released_at": released,
        }
    )
    if len(idx):
        out["holding_days"] = calendar.working_days_between(at, pd.DatetimeIndex(released))
    else:
        out["holding_days"] = np.zeros(0)
    return out


def _recode(coded: _Coded, names: pd.Index) -> np.ndarray:
    """``coded``'s codes as positions in ``names`` (-1 stays missing)."""
    where = names.get_indexer(pd.Index(coded.names, dtype=object))
    return (
        np.where(coded.codes >= 0, where[np.maximum(coded.codes, 0)], -1)
        if len(where)
        else (np.full(len(coded.codes), -1, dtype=np.int64))
    )
