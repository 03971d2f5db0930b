"""Open-dossier (prefix) features as of a time T (issue 4, item 2).

A prefix is a dossier's events with timestamp <= T. Its features are the dossier features
computed on those events alone (open durations run up to T), plus the time left before
the deadline, the current step, how long it has waited there, and the backlog of the unit
holding it. Nothing after T is read: the backlog counts intervals [event, next event) of
every dossier that contain T, and an interval containing T is fixed by events <= T.

:func:`training_prefixes` builds many prefixes per dossier at once by repeating rows
(:func:`features.dossier_events.expand_prefixes`), never looping over dossiers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.dossier_conformance import route_position
from features.dossier_events import DossierEvents, expand_prefixes, prepare
from features.dossier_timing import vocab_mask
from features.dossiers import features_of
from features.process import NormalProcess
from features.registry import FeatureSpec

__all__ = ["SPECS", "backlog", "held", "prefix_features", "prefixes_at", "training_prefixes"]

FAMILY = "open_dossier"
SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "remaining_honest_days",
        "Working days left before the deadline on the honest clock (negative: overdue)",
        "working days",
        FAMILY,
    ),
    FeatureSpec(
        "remaining_reported_days",
        "Working days left before the deadline as the handling system counts them",
        "working days",
        FAMILY,
    ),
    FeatureSpec("current_step", "The last step done so far", "category", FAMILY),
    FeatureSpec(
        "current_route_step",
        "Position of the last step done in the approved route (1 = first step)",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "waiting_days",
        "Working days since the last step (waiting at the current step)",
        "working days",
        FAMILY,
    ),
    FeatureSpec(
        "unit_backlog",
        "Open dossiers held by the current unit at this time, this one included",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "officer_backlog",
        "Open dossiers whose latest step was done by the officer of this one's latest step",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "finished_at", "When the dossier ended (label, known afterwards)", "category", "label"
    ),
    FeatureSpec(
        "final_late_honest",
        "Whether the dossier ended late on the honest clock (label, known afterwards)",
        "flag",
        "label",
    ),
)

_NEVER = np.iinfo(np.int64).max


def _current_agency(ev: DossierEvents) -> np.ndarray:
    """Per row, the agency holding the dossier after the event (a transfer's target)."""
    sent = vocab_mask(ev, s.TRANSFERRED) & (ev.target >= 0)
    return np.where(sent, ev.target, ev.agency)


def backlog(base: DossierEvents, agency: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Open dossiers of ``base`` held by each ``agency`` code at each instant ``at``.

    A dossier is held by agency A over [t_i, t_i+1) when its event i left it at A, until
    its first terminal event.
    """
    return held(base, _current_agency(base), agency, at)


def held(base: DossierEvents, holder: np.ndarray, query: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Open dossiers of ``base`` whose ``holder`` code (one per event, -1 none) after their
    latest event is each ``query`` code at each instant ``at``; NaN where the query is -1.
    Counted with sorted interval ends and ``searchsorted``, no loop over dossiers.
    """
    n = len(base)
    seg = base.seg
    holder = np.asarray(holder, dtype=np.int64)
    terminal = vocab_mask(base, *s.TERMINAL_ACTIVITIES)
    pos = np.arange(n)
    head = seg.starts[seg.group] if n else pos
    seen = np.maximum.accumulate(np.where(terminal, pos, -1)) if n else pos
    live = (seen < head) & (holder >= 0)
    end = np.full(n, _NEVER, dtype=np.int64)
    if n:
        end[:-1] = base.t[1:]
        end[seg.ends - 1] = _NEVER
    start, end, holder = base.t[live], end[live], holder[live]
    code = np.asarray(query, dtype=np.int64)
    at = np.asarray(at, dtype=np.int64)
    values, inverse = np.unique(np.r_[start, end, at], return_inverse=True)
    span = len(values) + 1
    k, m = len(start), len(end)
    start_key = np.sort(holder * span + inverse[:k])
    end_key = np.sort(holder * span + inverse[k : k + m])
    key = np.maximum(code, 0) * span + inverse[k + m :]
    count = np.searchsorted(start_key, key, side="right") - np.searchsorted(
        end_key, key, side="right"
    )
    return np.where(code >= 0, count, np.nan)


def _prefix_frame(
    base: DossierEvents,
    calendar: WorkingCalendar,
    segment: np.ndarray,
    cut: np.ndarray,
    catalogue: Catalogue | None,
    agencies: pd.DataFrame | None,
    process: NormalProcess | None,
) -> pd.DataFrame:
    """Features of the open prefixes (segment of ``base``, cut); index (dossier_id, cut)."""
    ev = expand_prefixes(base, calendar, segment, cut)
    frame = features_of(ev, calendar, catalogue=catalogue, agencies=agencies, process=process)
    last = ev.seg.ends - 1
    finished = (
        ev.seg.count(vocab_mask(ev, *s.TERMINAL_ACTIVITIES)) > 0 if len(ev) else np.zeros(0, bool)
    )
    statutory = frame["statutory_days"].to_numpy()
    frame["remaining_honest_days"] = statutory - frame["honest_clock_days"].to_numpy()
    frame["remaining_reported_days"] = statutory - frame["reported_clock_days"].to_numpy()
    names = pd.Index(ev.activity_names)
    frame["current_step"] = pd.Categorical.from_codes(ev.activity[last], categories=names)
    if catalogue is not None:
        frame["current_route_step"] = route_position(ev, catalogue)
    assert ev.cut is not None and ev.cut_w is not None
    frame["waiting_days"] = (ev.cut_w - ev.w[last]) / ev.day_ns
    frame["unit_backlog"] = backlog(base, _current_agency(ev)[last], ev.cut)
    frame["officer_backlog"] = held(base, base.officer, ev.officer[last], ev.cut)
    cuts = pd.DatetimeIndex(ev.cut.astype("datetime64[ns]")).tz_localize("UTC")
    frame.index = pd.MultiIndex.from_arrays(
        [ev.seg.ids, cuts.tz_convert(calendar.tz)], names=[s.DOSSIER_ID, "cut"]
    )
    return frame[~finished]


def prefix_features(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    as_of: pd.Timestamp,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    process: NormalProcess | None = None,
) -> pd.DataFrame:
    """Features of the dossiers open at ``as_of`` (started by then, no terminal event yet),
    indexed by dossier_id. Only events with timestamp <= ``as_of`` are read.
    """
    stamp = pd.Timestamp(as_of)
    if stamp.tz is None:
        raise s.EventSchemaError("as_of must be tz-aware", column=s.TIMESTAMP)
    base = prepare(events, calendar)
    started = np.flatnonzero(base.t[base.seg.starts] <= stamp.as_unit("ns").value)
    cut = np.full(len(started), stamp.as_unit("ns").value, dtype=np.int64)
    frame = _prefix_frame(base, calendar, started, cut, catalogue, agencies, process)
    return frame.droplevel("cut")


def prefixes_at(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    cuts: pd.Series,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    process: NormalProcess | None = None,
) -> pd.DataFrame:
    """Open-dossier features at given instants: ``cuts`` maps dossier ids (repeatable) to
    tz-aware times. Indexed by (dossier_id, cut); a cut before the dossier's first event or
    at or after its first terminal event gives no row. Only events up to each cut are read.
    """
    if len(cuts) and not isinstance(cuts.dtype, pd.DatetimeTZDtype):
        raise s.EventSchemaError("cut times must be tz-aware", column="cut")
    base = prepare(events, calendar)
    segment = base.seg.ids.get_indexer(cuts.index)
    ns = cuts.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    known = (segment >= 0) & (ns != np.iinfo(np.int64).min)
    pairs = pd.DataFrame({"segment": segment[known], "cut": ns[known]})
    pairs = pairs.drop_duplicates().sort_values(["segment", "cut"], kind="stable")
    return _prefix_frame(
        base,
        calendar,
        pairs["segment"].to_numpy(),
        pairs["cut"].to_numpy(),
        catalogue,
        agencies,
        process,
    )


def training_prefixes(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    *,
    max_events: int = 10,
    fractions: Sequence[float] = (0.25, 0.5, 0.75),
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    process: NormalProcess | None = None,
) -> pd.DataFrame:
    """Open-dossier features at several cuts per dossier, indexed by (dossier_id, cut).

    Cuts: the time of event k for k = 1..``max_events`` (before the dossier's last event),
    and the instants when ``fractions`` of its statutory time have passed since its first
    event (calendar office time, clock stops aside) if that is before its last event. Only
    prefixes still open at their cut are kept. Adds the labels ``finished_at`` (first
    terminal event, NaT if none) and ``final_late_honest`` (of the whole dossier).
    """
    base = prepare(events, calendar)
    seg = base.seg
    full = features_of(base, calendar, catalogue=catalogue, agencies=agencies, process=process)
    last_t = base.t[seg.ends - 1]
    by_event = (seg.position < max_events) & (seg.position < seg.sizes[seg.group] - 1)
    parts_seg, parts_cut = [seg.group[by_event]], [base.t[by_event]]
    statutory = full["statutory_days"].to_numpy()
    first = pd.DatetimeIndex(base.t[seg.starts].astype("datetime64[ns]")).tz_localize("UTC")
    for fraction in fractions:
        known = np.flatnonzero(~np.isnan(statutory) & (statutory > 0))
        if not len(known):
            break
        when = calendar.add_working_days(first[known], statutory[known] * fraction)
        ns = pd.DatetimeIndex(when).as_unit("ns").asi8
        early = ns < last_t[known]
        parts_seg.append(known[early])
        parts_cut.append(ns[early])
    pairs = pd.DataFrame({"segment": np.concatenate(parts_seg), "cut": np.concatenate(parts_cut)})
    pairs = pairs.drop_duplicates().sort_values(["segment", "cut"], kind="stable")
    frame = _prefix_frame(
        base,
        calendar,
        pairs["segment"].to_numpy(),
        pairs["cut"].to_numpy(),
        catalogue,
        agencies,
        process,
    )
    terminal = vocab_mask(base, *s.TERMINAL_ACTIVITIES)
    end_row = seg.min(np.where(terminal, np.arange(len(base)), np.nan).astype(np.float64))
    ended = (
        pd.DatetimeIndex(
            np.where(
                np.isnan(end_row),
                np.datetime64("NaT"),
                base.t[np.nan_to_num(end_row).astype(np.int64)].astype("datetime64[ns]"),
            )
        )
        .tz_localize("UTC")
        .tz_convert(calendar.tz)
    )
    position = seg.ids.get_indexer(frame.index.get_level_values(s.DOSSIER_ID))
    frame["finished_at"] = ended[position]
    frame["final_late_honest"] = full["late_honest"].to_numpy()[position]
    return frame
