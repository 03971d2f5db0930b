"""The features of one dossier from its own events, in plain Python (online scoring).

The batch features (:mod:`features.dossiers`, :mod:`features.prefixes`,
:mod:`features.context`) are numpy segment operations over a whole log; building their
arrays costs tens of milliseconds a call, whatever the log's size. A scoring service
scores one dossier per request, so this module computes the same values for one dossier's
few events with Python loops: :func:`trace_of` reads and sorts the events once (as
:func:`features.dossier_events.prepare` does), :func:`dossier_row` gives the
:func:`features.dossiers.dossier_features` row as of a time, :func:`prefix_row` the
open-dossier features of :func:`features.prefixes.prefix_features` (the backlogs come from
an :class:`features.online_context.OnlineContext`), :func:`context_row` the
:func:`features.context.context_features` row. Each function follows its batch
counterpart step by step, and the tests compare them on thousands of dossiers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.dossier_events import DOSSIER_LEVEL
from features.dossier_structure import BOOKKEEPING, NEW_INPUT
from features.dossier_timing import (
    HOUR_NS,
    IDLE_THRESHOLD_DAYS,
    RECORD_LAG_HOURS,
    RUSH_DAYS,
    RUSH_MIN_IDLE_DAYS,
    RUSH_STEPS,
)
from features.engine import Reference
from features.online_route import route_columns, route_position

__all__ = [
    "DossierTrace",
    "OnlineEventError",
    "context_row",
    "dossier_row",
    "is_missing",
    "prefix_row",
    "trace_of",
]

NAN = math.nan
_VOCAB = frozenset(s.ACTIVITIES)
_TERMINAL = s.TERMINAL_ACTIVITIES
_BOOKKEEPING = frozenset(BOOKKEEPING)
_NEW_INPUT = frozenset(NEW_INPUT)
_STOPS = frozenset(s.CLOCK_STOPS)
_RESUMES = frozenset(s.CLOCK_STOPS.values())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IN_PERSON = s.CHANNELS.index("in_person")


class OnlineEventError(s.EventSchemaError):
    """Events of one dossier that cannot be scored (empty, several dossiers, a missing or
    naive timestamp...); the message and ``column`` name the field."""


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: what the batch path reads as a missing value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _ns(value: Any, column: str, index: int) -> int:
    """UTC nanoseconds of a tz-aware instant (a Timestamp, a datetime or int ns)."""
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None:
            raise OnlineEventError(f"event {index}: {column} must be tz-aware", column=column)
        return int(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise OnlineEventError(f"event {index}: {column} must be tz-aware", column=column)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise OnlineEventError(
        f"event {index}: {column} must be a tz-aware timestamp, got {type(value).__name__}",
        column=column,
    )


def _text(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


@dataclass(frozen=True)
class DossierTrace:
    """One dossier's events up to a cut, sorted, as Python lists (one entry per event).

    Missing codes are None; ``recorded`` None when unknown, ``rating`` NaN; ``via`` is
    None when the events carry no ``via`` field at all (as a log without the column).
    """

    dossier_id: str
    t: list[int]  # UTC ns
    w: list[int]  # office time W, ns
    office: list[bool]
    holiday: list[bool]
    activity: list[str | None]
    agency: list[str | None]
    officer: list[str | None]
    target: list[str | None]
    recorded: list[int | None]
    rating: list[float]
    via: list[int] | None  # index into schema.CHANNELS, -1 unknown
    dossier: dict[str, Any]  # DOSSIER_LEVEL: first present value of the used events
    first_time: Any  # the first event's timestamp as given (its zone gives the hour)
    cut: int  # UTC ns
    cut_w: int
    day_ns: int
    has_events_after_cut: bool

    def __len__(self) -> int:
        return len(self.t)


def trace_of(
    events: Sequence[Mapping[str, Any]], calendar: WorkingCalendar, as_of: pd.Timestamp | datetime
) -> DossierTrace:
    """Validate, sort (by timestamp, then ``seq``, else input order) and cut at ``as_of``
    the events of one dossier, given as mappings of the canonical columns.

    Raises :class:`OnlineEventError` naming the field for an empty list, events of several
    dossiers, a missing required field, a naive or missing timestamp, or no event at or
    before ``as_of``.
    """
    cut = _ns(as_of, "as_of", -1)
    if not len(events):
        raise OnlineEventError("no event given for the dossier", column=s.DOSSIER_ID)
    first = events[0]
    if not isinstance(first, Mapping):
        raise OnlineEventError("events must be mappings of column -> value", column="events")
    ident = _text(first.get(s.DOSSIER_ID))
    rows: list[tuple[int, int, int]] = []
    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise OnlineEventError(f"event {i} is not a mapping", column="events")
        for column in s.REQUIRED_COLUMNS:
            if column not in event or is_missing(event[column]):
                raise OnlineEventError(f"event {i}: missing value", column=column)
        if str(event[s.DOSSIER_ID]) != ident:
            raise OnlineEventError(
                f"event {i} is of dossier {event[s.DOSSIER_ID]!r}, not {ident!r}",
                column=s.DOSSIER_ID,
            )
        seq = event.get(s.SEQ, i)
        if is_missing(seq):
            raise OnlineEventError(f"event {i}: missing value", column=s.SEQ)
        rows.append((_ns(event[s.TIMESTAMP], s.TIMESTAMP, i), int(seq), i))
    rows.sort()
    used = [r for r in rows if r[0] <= cut]
    if not used:
        raise OnlineEventError(
            f"dossier {ident!r} has no event at or before {pd.Timestamp(cut, tz='UTC')}",
            column="as_of",
        )
    picked = [events[i] for _, _, i in used]
    located = [calendar.locate_ns(t) for t, _, _ in used]
    has_via = any("via" in e for e in events)
    dossier: dict[str, Any] = {}
    for column in DOSSIER_LEVEL:
        dossier[column] = next(
            (e[column] for e in picked if column in e and not is_missing(e[column])), None
        )
    return DossierTrace(
        dossier_id=ident or "",
        t=[t for t, _, _ in used],
        w=[x[0] for x in located],
        office=[x[1] for x in located],
        holiday=[x[2] for x in located],
        activity=[_text(e[s.ACTIVITY]) for e in picked],
        agency=[_text(e.get(s.AGENCY_ID)) for e in picked],
        officer=[_text(e.get(s.OFFICER_ID)) for e in picked],
        target=[_text(e.get(s.TARGET_AGENCY_ID)) for e in picked],
        recorded=[
            None if is_missing(e.get(s.RECORDED_AT)) else _ns(e[s.RECORDED_AT], s.RECORDED_AT, i)
            for i, e in enumerate(picked)
        ],
        rating=[NAN if is_missing(e.get(s.RATING)) else float(e[s.RATING]) for e in picked],
        via=[_via(e.get("via")) for e in picked] if has_via else None,
        dossier=dossier,
        first_time=picked[0][s.TIMESTAMP],
        cut=cut,
        cut_w=calendar.locate_ns(cut)[0],
        day_ns=calendar.day_ns,
        has_events_after_cut=len(used) < len(rows),
    )


def _via(value: Any) -> int:
    if is_missing(value):
        return -1
    channel = s.CHANNEL_SYNONYMS.get(str(value).strip().lower())
    return s.CHANNELS.index(channel) if channel in s.CHANNELS else -1


# --- the statutory clock (features.dossier_timing.clock_state) ---------------------------


@dataclass(frozen=True)
class _Clock:
    honest_at: list[int]
    honest: int
    reported: int
    supplement_ns: int
    paused_ns: int
    finished: bool
    end_w: int
    end_row: int
    step: list[int]


def _clock(tr: DossierTrace) -> _Clock:
    honest_at: list[int] = []
    step: list[int] = []
    total = origin_total = supplement = paused = 0
    finished = False
    marks = {stop: False for stop in s.CLOCK_STOPS}
    supplement_open = pause_open = stopped = False
    first_terminal = -1
    w = tr.w
    for i, act in enumerate(tr.activity):
        finished_before = finished
        if act in _TERMINAL:
            finished = True
            if first_terminal < 0:
                first_terminal = i
        if act in _STOPS:
            marks[act] = True
        elif act == s.SUPPLEMENT_RECEIVED:
            marks[s.SUPPLEMENT_REQUESTED] = False
        elif act == s.RESUMED:
            marks[s.PAUSED] = False
        was_supplement, was_paused, stopped_before = supplement_open, pause_open, stopped
        supplement_open = marks[s.SUPPLEMENT_REQUESTED] and not finished
        pause_open = marks[s.PAUSED] and not finished
        stopped = supplement_open or pause_open
        restart = act == s.SUPPLEMENT_RECEIVED and was_supplement and not finished_before
        gap = w[i] - w[i - 1] if i else 0
        step.append(gap)
        counting = not finished_before
        if counting and not stopped_before:
            total += gap
        if counting and was_supplement:
            supplement += gap
        if counting and was_paused:
            paused += gap
        honest_at.append(total)
        if i == 0 or restart:
            origin_total = total
    last = len(w) - 1
    tail = 0 if finished else tr.cut_w - w[last]
    running_tail = 0 if stopped else tail
    done = first_terminal >= 0
    end_row = first_terminal if done else last
    return _Clock(
        honest_at=honest_at,
        honest=total + running_tail,
        reported=total - origin_total + running_tail,
        supplement_ns=supplement + (tail if supplement_open else 0),
        paused_ns=paused + (tail if pause_open else 0),
        finished=finished,
        end_w=w[end_row] if done else tr.cut_w,
        end_row=end_row,
        step=step,
    )


def _ratio(num: float, den: float) -> float:
    """``num / den`` where ``den > 0``, else NaN (dossier_timing._safe_ratio)."""
    return num / den if den > 0 else NAN


def _time_columns(tr: DossierTrace, clock: _Clock, statutory: float) -> dict[str, Any]:
    """features.dossier_timing.time_features for one dossier (cut set: an open dossier has
    not ended)."""
    day = float(tr.day_ns)
    honest = clock.honest / day
    reported = clock.reported / day
    known = statutory == statutory
    ended = clock.finished

    def late(value: float) -> float:
        if known and value > statutory:
            return 1.0
        return 0.0 if known and ended else NAN

    out: dict[str, Any] = {
        "elapsed_days": float(clock.end_w - tr.w[0]) / day,
        "honest_clock_days": honest,
        "reported_clock_days": reported,
        "statutory_days": statutory,
        "honest_clock_ratio": _ratio(honest, statutory),
        "reported_clock_ratio": _ratio(reported, statutory),
        "late_honest": late(honest),
        "late_reported": late(reported),
        "clock_gap_days": honest - reported,
    }
    acts = tr.activity
    requested = [i for i, a in enumerate(acts) if a == s.SUPPLEMENT_REQUESTED]
    at = [x / day for x in clock.honest_at]
    for which, row in (("first", 0), ("last", -1)):
        clock_at = at[requested[row]] if requested else NAN
        out[f"{which}_supplement_days_before_deadline"] = statutory - clock_at
        out[f"{which}_supplement_share_elapsed"] = _ratio(clock_at, statutory)
    stops = [i for i, a in enumerate(acts) if a in _STOPS]
    resumes = [i for i, a in enumerate(acts) if a in _RESUMES]
    out["last_stop_share_elapsed"] = _ratio(at[stops[-1]] if stops else NAN, statutory)
    out["work_after_last_stop_days"] = honest - (at[resumes[-1]] if resumes else NAN)
    rounds = len(requested)
    out["supplement_rounds"] = rounds
    out["supplement_days"] = clock.supplement_ns / day
    out["supplement_turnaround_days"] = _ratio(clock.supplement_ns / day, rounds)
    out["pauses"] = acts.count(s.PAUSED)
    out["paused_days"] = clock.paused_ns / day
    gaps = [g / day for g in clock.step[1:]]
    out["longest_idle_days"] = max(gaps) if gaps else 0.0
    excess = 0.0
    for g in gaps:
        excess += max(g - IDLE_THRESHOLD_DAYS, 0.0)
    out["idle_excess_days"] = excess
    out["idle_before_rush_share"] = _idle_before_rush(tr, clock, statutory, ended)
    n = float(len(tr))
    off = [not x for x in tr.office]
    out["off_hours_events"] = sum(off)
    out["off_hours_share"] = out["off_hours_events"] / n
    out["holiday_events"] = sum(tr.holiday)
    out["holiday_share"] = out["holiday_events"] / n
    out["off_hours_approvals"] = sum(
        1 for o, a in zip(off, acts, strict=True) if o and a == s.APPROVED
    )
    out.update(_recording(tr))
    return out


def _idle_before_rush(tr: DossierTrace, clock: _Clock, statutory: float, ended: bool) -> float:
    day = float(tr.day_ns)
    waited = [0] + [b - a for a, b in zip(clock.honest_at, clock.honest_at[1:], strict=False)]
    longest = max(waited)
    share = _ratio(longest / day, statutory)
    if share != share:
        return NAN
    at = next((i for i, x in enumerate(waited) if x == longest and x > 0), -1)
    row = max(at, 0)
    rushed = (
        at >= 0
        and longest / day >= RUSH_MIN_IDLE_DAYS
        and clock.end_row - row + 1 >= RUSH_STEPS
        and float(clock.end_w - tr.w[row]) / day <= RUSH_DAYS
        and clock.honest <= statutory * day
        and ended
    )
    return share if rushed else 0.0


def _recording(tr: DossierTrace) -> dict[str, Any]:
    lags = [float(r - t) / HOUR_NS for r, t in zip(tr.recorded, tr.t, strict=True) if r is not None]
    inversions = [0.0]
    out_of_order = 0
    for prev, this in zip(tr.recorded, tr.recorded[1:], strict=False):
        if prev is not None and this is not None and this < prev:
            out_of_order += 1
            inversions.append(float(prev - this) / HOUR_NS)
    return {
        "max_record_lag_hours": max(lags) if lags else NAN,
        "late_records": sum(1 for x in lags if x > RECORD_LAG_HOURS),
        "out_of_order_events": out_of_order,
        "max_record_inversion_hours": max(inversions),
    }


# --- structure (features.dossier_structure.structure_features) ---------------------------


def _changes(codes: list[str | None]) -> int:
    return sum(
        1
        for a, b in zip(codes, codes[1:], strict=False)
        if a is not None and b is not None and a != b
    )


def _ping_pong(agency: list[str | None]) -> int:
    moved: list[str] = []
    for a in agency:
        if a is not None and (not moved or moved[-1] != a):
            moved.append(a)
    if not moved:
        return 0
    first = moved[0]
    return sum(1 for k in range(2, len(moved)) if moved[k] == moved[k - 2] and moved[k] != first)


def _structure_columns(tr: DossierTrace) -> dict[str, Any]:
    acts = tr.activity
    seen: set[str] = set()
    rework = 0
    inputs = 0
    work: set[tuple[int, str, str | None]] = set()
    again = 0
    for act, agency in zip(acts, tr.agency, strict=True):
        if act is None:
            continue
        bookkeeping = act in _BOOKKEEPING
        if act in seen and not bookkeeping:
            rework += 1
        seen.add(act)
        if not bookkeeping:
            key = (inputs, act, agency)
            again += key in work
            work.add(key)
        inputs += act in _NEW_INPUT
    sent: set[tuple[str, str]] = set()
    repeated = 0
    for act, agency, target in zip(acts, tr.agency, tr.target, strict=True):
        if act == s.TRANSFERRED and agency is not None and target is not None:
            repeated += (agency, target) in sent
            sent.add((agency, target))
    ratings = [r for r in tr.rating if r == r]
    total = 0.0
    for r in ratings:
        total += r
    out: dict[str, Any] = {
        "events": len(tr),
        "distinct_activities": len(seen),
        "distinct_officers": len({o for o in tr.officer if o is not None}),
        "distinct_agencies": len({a for a in tr.agency if a is not None}),
        "handovers": _changes(tr.officer),
        "transfers": acts.count(s.TRANSFERRED),
        "agency_changes": _changes(tr.agency),
        "ping_pong": _ping_pong(tr.agency),
        "rework": rework,
        "rework_without_input": again,
        "repeated_transfers": repeated,
        "apologies": acts.count(s.APOLOGY_ISSUED),
        "payments": acts.count(s.PAID),
        "rating_mean": total / len(ratings) if ratings else NAN,
        "rating_min": min(ratings) if ratings else NAN,
        "ratings": len(ratings),
    }
    channel = tr.dossier[s.CHANNEL]
    lowered = None if channel is None else str(channel).lower()
    for name in s.CHANNELS:
        out[f"channel_{name}"] = int(lowered == name)
    if tr.via is not None:
        in_person = tr.via.count(_IN_PERSON)
        out["in_person_steps_online"] = in_person if out["channel_online"] else 0
    return out


# --- the rows ----------------------------------------------------------------------------


def _statutory(tr: DossierTrace, calendar: WorkingCalendar, listed: float) -> float:
    """The catalogue's statutory days, else due_at minus the first event (office time)."""
    if listed == listed:
        return listed
    due = tr.dossier[s.DUE_AT]
    if due is None:
        return NAN
    w_due = calendar.locate_ns(_ns(due, s.DUE_AT, 0))[0]
    return float(w_due - tr.w[0]) / tr.day_ns


def dossier_row(tr: DossierTrace, ref: Reference) -> dict[str, Any]:
    """The :func:`features.dossiers.dossier_features` row of the dossier as of its cut,
    columns in the batch order (ints for counts, floats, NaN for missing)."""
    route = route_columns(tr, ref.catalogue, ref.agencies)
    statutory = _statutory(tr, ref.calendar, route.statutory)
    clock = _clock(tr)
    out = _structure_columns(tr)
    out.update(_time_columns(tr, clock, statutory))
    if ref.catalogue is not None:
        out.update(route.columns)
        out["fee_vnd"] = route.fee
        if "in_person_steps_online" in out and not route.full_online:
            out["in_person_steps_online"] = 0
    if ref.process is not None:
        from features.online_process import process_row

        out.update(process_row(tr, ref.process))
    return out


def prefix_row(tr: DossierTrace, ref: Reference, row: Mapping[str, Any]) -> dict[str, Any]:
    """The open-dossier columns of :func:`features.prefixes.prefix_features` but the two
    backlogs (which read other dossiers: see :mod:`features.online_context`). ``row``:
    the dossier's :func:`dossier_row`."""
    statutory = row["statutory_days"]
    out: dict[str, Any] = {
        "remaining_honest_days": statutory - row["honest_clock_days"],
        "remaining_reported_days": statutory - row["reported_clock_days"],
        "current_step": tr.activity[-1],
    }
    if ref.catalogue is not None:
        out["current_route_step"] = route_position(tr, ref.catalogue)
    out["waiting_days"] = float(tr.cut_w - tr.w[-1]) / tr.day_ns
    return out


def current_holders(tr: DossierTrace) -> tuple[str | None, str | None]:
    """The agency holding the dossier after its last event (a transfer's target) and the
    officer of its last event: whose backlog it is in while open."""
    sent = tr.activity[-1] == s.TRANSFERRED and tr.target[-1] is not None
    return (tr.target[-1] if sent else tr.agency[-1]), tr.officer[-1]


def is_finished(tr: DossierTrace) -> bool:
    """A terminal event among the dossier's events (up to the cut)."""
    return any(a in _TERMINAL for a in tr.activity)


def outcome_of(tr: DossierTrace, row: Mapping[str, Any]) -> tuple[int, bool] | None:
    """When the dossier finished (its first terminal event, UTC ns) and whether it ended
    late on the honest clock, as :func:`models.dataset.outcomes_of` gives it to the
    recent-outcome features; None while it is open or its lateness is unknown (no
    statutory time). ``row``: its :func:`dossier_row`."""
    late = row["late_honest"]
    if late != late:
        return None
    end = next((t for t, a in zip(tr.t, tr.activity, strict=True) if a in _TERMINAL), None)
    return None if end is None else (end, late > 0)


def outcome(tr: DossierTrace, ref: Reference) -> tuple[int, bool] | None:
    """:func:`outcome_of` without the whole feature row (the clock and statutory time
    only)."""
    if not is_finished(tr):
        return None
    listed = route_columns(tr, ref.catalogue, ref.agencies).statutory
    statutory = _statutory(tr, ref.calendar, listed)
    if statutory != statutory:
        return None
    late = _clock(tr).honest / float(tr.day_ns) > statutory
    return outcome_of(tr, {"late_honest": float(late)})


def context_row(tr: DossierTrace, ref: Reference) -> dict[str, Any]:
    """The :func:`features.context.context_features` row: procedure, channel, receiving
    agency and its unit type (None when missing), month, weekday and hour received."""
    first_agency = tr.agency[0]
    first = tr.first_time
    when = (
        first
        if isinstance(first, datetime)
        else pd.Timestamp(tr.t[0], tz="UTC").tz_convert(ref.calendar.tz)
    )
    return {
        s.PROCEDURE_CODE: _text(tr.dossier[s.PROCEDURE_CODE]),
        s.CHANNEL: _text(tr.dossier[s.CHANNEL]),
        "first_agency": first_agency,
        "first_unit_type": _unit_types(ref).get(first_agency) if first_agency else None,
        "start_month": when.month,
        "start_weekday": when.weekday(),
        "start_hour": when.hour,
    }


_UNIT_TYPES: dict[int, tuple[pd.DataFrame, dict[str, str]]] = {}


def _unit_types(ref: Reference) -> dict[str, str]:
    """agency_id -> unit_type of the reference's agency directory (first row of each id),
    built once per directory."""
    agencies = ref.agencies
    if agencies is None or not len(agencies):
        return {}
    cached = _UNIT_TYPES.get(id(agencies))
    if cached is None or cached[0] is not agencies:
        first = agencies.drop_duplicates(s.AGENCY_ID)
        types = {
            str(a): str(u)
            for a, u in zip(first[s.AGENCY_ID], first["unit_type"], strict=True)
            if not is_missing(a) and not is_missing(u)
        }
        cached = (agencies, types)
        _UNIT_TYPES[id(agencies)] = cached
    return cached[1]
