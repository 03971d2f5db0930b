"""Stage A of the entity and graph features: small per-dossier tables built from events.

Each function reads whole dossiers only, so a Dask engine runs them per partition of
dossiers and concatenates the results; stage B (:mod:`features.entities`,
:mod:`features.graph`) aggregates the concatenated tables. Identifiers come out as
``string`` dtype (never categoricals, whose categories differ between partitions), rows in
a canonical order. With ``as_of`` only events at or before it are read, so the tables hold
nothing from the future.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.clock import dossier_clock
from features.entity_stats import object_values
from features.segments import (
    Segments,
    first_flagged,
    latest_flagged,
    next_flagged,
    segments,
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
) -> pd.DataFrame:
    """The needed columns of the events at or before ``as_of``, in canonical order."""
    keep = [c for c in dict.fromkeys([s.DOSSIER_ID, s.TIMESTAMP, s.SEQ, *columns])]
    missing = [c for c in keep if c not in events.columns]
    if missing:
        raise s.EventSchemaError(f"missing column(s) {missing}", column=missing[0])
    frame = events[keep]
    if as_of is not None:
        limit = calendar._locate(as_of).times[0]
        frame = frame[(frame[s.TIMESTAMP] <= limit).to_numpy(dtype=bool, na_value=False)]
    return s.sort_events(frame)


def _strings(values: pd.Series) -> np.ndarray:
    """Values as an object array of str / None (categoricals and strings alike)."""
    return object_values(values)


def _is(frame: pd.DataFrame, activities: set[str] | frozenset[str]) -> np.ndarray:
    return frame[s.ACTIVITY].astype("string").isin(list(activities)).to_numpy(dtype=bool)


def _first_valid(seg: Segments, values: pd.Series) -> pd.Series:
    """Each dossier's first non-null value, as ``string``."""
    present = values.notna().to_numpy(dtype=bool)
    row = first_flagged(seg, present)
    out = _strings(values)[np.maximum(row, 0)] if len(values) else np.zeros(0, dtype=object)
    out = np.asarray(out, dtype=object)
    out[row < 0] = None
    return pd.Series(out, dtype="string")


def _main_officer(frame: pd.DataFrame, seg: Segments) -> pd.Series:
    """The officer of the dossier's last approval, else its most frequent officer.

    Ties go to the officer who appears first in the dossier.
    """
    officer = frame[s.OFFICER_ID]
    has = officer.notna().to_numpy(dtype=bool)
    approver = latest_flagged(seg, has & _is(frame, {s.APPROVED}))
    last_row = approver[seg.ends - 1] if len(seg) else approver
    names = _strings(officer)
    table = pd.DataFrame({"d": seg.group[has], "o": names[has], "row": np.flatnonzero(has)})
    counts = table.groupby(["d", "o"], sort=False).agg(n=("row", "size"), first=("row", "min"))
    counts = counts.reset_index().sort_values(
        ["d", "n", "first"], ascending=[True, False, True], kind="stable"
    )
    top = counts.drop_duplicates("d").set_index("d")["o"]
    frequent = top.reindex(np.arange(len(seg))).to_numpy(dtype=object)
    approved = np.where(last_row >= 0, names[np.maximum(last_row, 0)], None)
    return pd.Series(np.where(last_row >= 0, approved, frequent), dtype="string")


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
    frame = _prepared(events, calendar, as_of, cols)
    seg = segments(frame)
    times = frame[s.TIMESTAMP]
    out = pd.DataFrame({s.DOSSIER_ID: pd.Series(np.asarray(seg.ids), dtype="string").array})
    for col in FACT_ID_COLUMNS:
        out[col] = _first_valid(seg, frame[col]).array
    out["first_agency_id"] = _first_valid(seg, frame[s.AGENCY_ID]).array
    out["main_officer_id"] = _main_officer(frame, seg).array
    stamps = pd.DatetimeIndex(times)
    out["started_at"] = stamps[seg.starts] if len(seg) else stamps[:0]
    terminal = first_flagged(seg, _is(frame, s.TERMINAL_ACTIVITIES))
    ended = stamps[np.maximum(terminal, 0)] if len(seg) else stamps[:0]
    out["ended_at"] = ended.where(terminal >= 0)
    out["last_event_at"] = stamps[seg.ends - 1] if len(seg) else stamps[:0]
    out["events"] = seg.sizes.astype(np.int64)
    clock = dossier_clock(frame, calendar, as_of=as_of)["elapsed_days"]
    out["duration_days"] = clock.reindex(seg.ids).to_numpy(dtype="float64")
    out["statutory_days"] = _statutory_days(frame, seg, out, calendar, catalogue)
    finished = terminal >= 0
    late = out["duration_days"].to_numpy() > out["statutory_days"].to_numpy() + 1e-9
    known = finished & np.isfinite(out["statutory_days"].to_numpy())
    out["late"] = pd.array(np.where(known, late, False), dtype="boolean")
    out.loc[~known, "late"] = pd.NA
    out["supplement_requests"] = seg.count(_is(frame, {s.SUPPLEMENT_REQUESTED}))
    office = calendar.is_office_time(times) if len(frame) else np.zeros(0, dtype=bool)
    out["offhours_share"] = seg.count(~office) / np.maximum(seg.sizes, 1)
    approvals = _is(frame, {s.APPROVED})
    odd = approvals & (~office | calendar.is_holiday(times) if len(frame) else approvals)
    n_approvals = seg.count(approvals)
    out["approval_offhours"] = pd.array(seg.count(odd) > 0, dtype="boolean")
    out.loc[n_approvals == 0, "approval_offhours"] = pd.NA
    rating = frame[s.RATING].to_numpy(dtype="float64", na_value=np.nan)
    rated = np.isfinite(rating)
    n_rated = seg.count(rated)
    total = seg.sum(np.where(rated, rating, 0.0))
    out["rating"] = np.where(n_rated > 0, total / np.maximum(n_rated, 1), np.nan)
    return out.sort_values(s.DOSSIER_ID, kind="stable", ignore_index=True)


def _statutory_days(
    frame: pd.DataFrame,
    seg: Segments,
    facts: pd.DataFrame,
    calendar: WorkingCalendar,
    catalogue: Catalogue | None,
) -> np.ndarray:
    due_row = first_flagged(seg, frame[s.DUE_AT].notna().to_numpy(dtype=bool))
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
    frame = _prepared(events, calendar, as_of, [s.OFFICER_ID])
    seg = segments(frame)
    times = pd.DatetimeIndex(frame[s.TIMESTAMP])
    if len(frame):
        prev_times = times[np.maximum(np.arange(len(frame)) - 1, 0)]
        handling = calendar.working_days_between(prev_times, times)
        handling = np.where(seg.is_first(), 0.0, handling)
        office = calendar.is_office_time(times)
    else:
        handling, office = np.zeros(0), np.zeros(0, dtype=bool)
    table = pd.DataFrame(
        {
            s.DOSSIER_ID: _strings(frame[s.DOSSIER_ID]),
            s.OFFICER_ID: _strings(frame[s.OFFICER_ID]),
            "handling_days": handling,
            "offhours": (~office).astype(np.int64),
            "at": times,
        }
    )
    table = table[table[s.OFFICER_ID].notna()]
    out = table.groupby([s.DOSSIER_ID, s.OFFICER_ID], sort=True).agg(
        touches=("at", "size"),
        handling_days=("handling_days", "sum"),
        offhours_touches=("offhours", "sum"),
        first_touch_at=("at", "min"),
    )
    out = out.reset_index()
    for col in (s.DOSSIER_ID, s.OFFICER_ID):
        out[col] = out[col].astype("string")
    out["touches"] = out["touches"].astype(np.int64)
    out["offhours_touches"] = out["offhours_touches"].astype(np.int64)
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
    frame = _prepared(events, calendar, as_of, cols)
    seg = segments(frame)
    agency = _strings(frame[s.AGENCY_ID])
    target = _strings(frame[s.TARGET_AGENCY_ID])
    transfer = _is(frame, {s.TRANSFERRED}) & (target != None)  # noqa: E711 (object array)
    holder = np.where(transfer, target, agency)
    valid = holder != None  # noqa: E711
    terminal = first_flagged(seg, _is(frame, s.TERMINAL_ACTIVITIES))
    end_row = terminal[seg.group] if len(frame) else terminal
    rows = np.arange(len(frame))
    in_time = (end_row < 0) | (rows <= end_row)
    last_valid = latest_flagged(seg, valid)
    before = seg.previous(last_valid, fill=-1) if len(frame) else last_valid
    prev_holder = np.where(before >= 0, holder[np.maximum(before, 0)], None)
    change = valid & in_time & (prev_holder != None) & (holder != prev_holder)  # noqa: E711
    times = pd.DatetimeIndex(frame[s.TIMESTAMP])
    idx = np.flatnonzero(change)
    nxt = next_flagged(seg, change)[idx] if len(frame) else idx
    dossier = seg.group[idx]
    end_at = times[np.maximum(terminal, 0)].where(terminal >= 0) if len(seg) else times[:0]
    released = times[np.maximum(nxt, 0)].where(nxt >= 0)
    finished = end_at[dossier] if len(idx) else times[:0]
    released = released.where(nxt >= 0, finished) if len(idx) else released
    procedure = _strings(_first_valid(seg, frame[s.PROCEDURE_CODE]))
    at = times[idx]
    out = pd.DataFrame(
        {
            s.DOSSIER_ID: pd.array(_strings(frame[s.DOSSIER_ID])[idx], dtype="string"),
            s.PROCEDURE_CODE: pd.array(procedure[dossier], dtype="string"),
            "from_agency": pd.array(prev_holder[idx], dtype="string"),
            "to_agency": pd.array(holder[idx], dtype="string"),
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
