"""Events prepared once for the dossier features: sorted, cut at each dossier's time, and
turned into numpy arrays (codes, instants, office time).

Every dossier feature module reads a :class:`DossierEvents`; building one is the only
step that touches strings and the calendar, so the features themselves are integer and
float segment operations. :func:`expand_prefixes` turns one into the prefixes of its
dossiers (one segment per (dossier, cut)) without a Python loop per dossier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.segments import Segments, segment_searchsorted

NAT = np.iinfo(np.int64).min

#: Dossier-level columns carried per segment (first non-null value among the used rows).
DOSSIER_LEVEL = (
    s.PROCEDURE_CODE,
    s.JURISDICTION,
    s.APPLICANT_ID,
    s.SUBMITTER_ID,
    s.CHANNEL,
    s.DUE_AT,
)


@dataclass(frozen=True)
class DossierEvents:
    """The used events of a log as arrays, in canonical order, grouped in segments.

    A segment is a dossier (or, after :func:`expand_prefixes`, one prefix of a dossier).
    ``cut`` is each segment's cut instant (UTC ns), or ``None`` for closed history.
    """

    seg: Segments
    rows: np.ndarray  # row of the input frame for each used event
    t: np.ndarray  # event instants, UTC ns
    w: np.ndarray  # office time W of the events, ns
    office: np.ndarray  # event inside office hours of a working day
    holiday: np.ndarray  # event on a public holiday
    activity: np.ndarray  # codes into activity_names
    activity_names: np.ndarray
    vocab: np.ndarray  # index into schema.ACTIVITIES, -1 for foreign activities
    agency: np.ndarray  # codes into agency_names (-1 missing)
    agency_names: np.ndarray
    officer: np.ndarray  # codes (-1 missing)
    target: np.ndarray  # target agency codes into agency_names (-1 missing)
    recorded: np.ndarray  # recorded_at UTC ns (NAT missing)
    rating: np.ndarray  # float, NaN missing
    via: np.ndarray | None  # channel codes of a ``via`` attribute (index into CHANNELS)
    dossier: pd.DataFrame  # per segment: DOSSIER_LEVEL columns
    cut: np.ndarray | None  # per segment cut instant (UTC ns)
    cut_w: np.ndarray | None  # per segment office time of the cut, ns
    day_ns: int  # office ns in one working day

    def __len__(self) -> int:
        return len(self.t)

    def is_activity(self, *names: str) -> np.ndarray:
        """Rows whose activity is one of ``names`` (vocabulary or foreign)."""
        wanted = np.flatnonzero(np.isin(self.activity_names, list(names)))
        return np.isin(self.activity, wanted)


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy(dtype=np.int64)
        return codes, values.cat.categories.astype(str).to_numpy()
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=str)


def _instants(values: pd.Series) -> np.ndarray:
    """UTC ns of a tz-aware column (NAT for missing)."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        if values.isna().all():
            return np.full(len(values), NAT, dtype=np.int64)
        raise s.EventSchemaError(f"must be tz-aware, got {values.dtype}", column=str(values.name))
    return values.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)


#: Instants located per chunk: the calendar's per-instant temporaries stay cache-sized and
#: reused instead of being fresh full-log arrays.
CHUNK = 1 << 19


def calendar_arrays(
    calendar: WorkingCalendar, instants: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Office time W (ns), office-hours flag and holiday flag of UTC ns instants.

    Locates each instant once (the three public predicates would locate it three times),
    chunk by chunk.
    """
    n = len(instants)
    w = np.empty(n, dtype=np.int64)
    office = np.empty(n, dtype=bool)
    holiday = np.empty(n, dtype=bool)
    for lo in range(0, n, CHUNK):
        part = slice(lo, lo + CHUNK)
        w[part], office[part], holiday[part] = _locate_chunk(calendar, instants[part])
    return w, office, holiday


def _locate_chunk(
    calendar: WorkingCalendar, instants: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`calendar_arrays` of one chunk. Walks the few office intervals of a day one at
    a time, as ``WorkingCalendar._w`` does with an (instants x intervals) table."""
    index = pd.DatetimeIndex(instants.astype("datetime64[ns]")).tz_localize("UTC")
    loc = calendar._locate(index)
    today = np.zeros(len(instants), dtype=np.int64)  # office ns since midnight
    inside = np.zeros(len(instants), dtype=bool)
    for open_, length in zip(calendar._open.tolist(), calendar._length.tolist(), strict=True):
        since = loc.clock - open_
        today += np.clip(since, 0, length)
        inside |= (since >= 0) & (since < length)
    working = calendar._working[loc.day]
    w = calendar._cum[loc.day] * calendar.day_ns + np.where(working, today, 0)
    return w, working & inside, calendar._holiday[loc.day]


def _dossier_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes of the dossier ids in sorted id order, and the sorted distinct ids.

    A string column already in ascending order (the canonical order) needs no hashing: the
    codes are the run numbers of equal neighbours.
    """
    if isinstance(ids.dtype, pd.StringDtype) and len(ids) > 1 and not ids.hasnans:
        values = ids.array
        later, earlier = values[1:], values[:-1]
        if not np.asarray(later < earlier, dtype=bool).any():
            boundary = np.r_[True, np.asarray(later != earlier, dtype=bool)]
            return np.cumsum(boundary) - 1, pd.Index(values[np.flatnonzero(boundary)])
    codes, uniques = pd.factorize(ids, sort=True)
    return codes, pd.Index(uniques)


def _pick(values: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """``values[rows]``, or ``values`` itself when every row is used in order (``None``)."""
    return values if rows is None else values[rows]


def _sorted_order(dossier: np.ndarray, t: np.ndarray, seq: np.ndarray) -> np.ndarray | None:
    """The canonical order of rows, or None when they are in it already."""
    if len(dossier) < 2:
        return None
    same = dossier[1:] == dossier[:-1]
    ok = bool((dossier[1:] >= dossier[:-1]).all())
    ok = ok and bool((~same | (t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (seq[1:] > seq[:-1]))).all())
    return None if ok else np.lexsort((seq, t, dossier))


def prepare(
    events: pd.DataFrame,
    calendar: WorkingCalendar | None,
    as_of: pd.Timestamp | pd.Series | None = None,
) -> DossierEvents:
    """Sort (if needed), cut at ``as_of`` and encode ``events``; the input is not modified.

    Without ``calendar`` the office-time arrays are zeros (for descriptors only).
    ``as_of``: None (closed history), one tz-aware instant, or a Series of tz-aware instants
    indexed by dossier_id (dossiers absent from it are dropped).
    """
    missing = [c for c in s.REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise s.EventSchemaError(f"missing required column(s) {missing}", column=missing[0])
    dossier_codes, dossier_ids = _dossier_codes(events[s.DOSSIER_ID])
    if (dossier_codes < 0).any():
        raise s.EventSchemaError("missing value", column=s.DOSSIER_ID)
    t = _instants(events[s.TIMESTAMP])
    if (t == NAT).any():
        raise s.EventSchemaError("missing value", column=s.TIMESTAMP)
    seq = (
        events[s.SEQ].to_numpy(dtype=np.int64)
        if s.SEQ in events.columns
        else np.arange(len(events), dtype=np.int64)
    )
    rows = _sorted_order(dossier_codes, t, seq)  # None: all rows, already in order
    cut_of_dossier: np.ndarray | None = None
    if as_of is not None:
        if isinstance(as_of, pd.Series):
            cuts = _instants(as_of)
            position = pd.Index(as_of.index).get_indexer(dossier_ids)
            cut_of_dossier = np.where(position >= 0, cuts[position], NAT)
        else:
            stamp = pd.Timestamp(as_of)
            if stamp.tz is None:
                raise s.EventSchemaError("as_of must be tz-aware", column=s.TIMESTAMP)
            cut_of_dossier = np.full(len(dossier_ids), stamp.as_unit("ns").value, np.int64)
        row_cut = cut_of_dossier[_pick(dossier_codes, rows)]
        kept = (row_cut != NAT) & (_pick(t, rows) <= row_cut)
        rows = np.flatnonzero(kept) if rows is None else rows[kept]
    group_codes = _pick(dossier_codes, rows)
    return _build(events, calendar, rows, t, group_codes, dossier_ids, cut_of_dossier)


def _build(
    events: pd.DataFrame,
    calendar: WorkingCalendar | None,
    rows: np.ndarray | None,
    instants: np.ndarray,
    group_codes: np.ndarray,
    dossier_ids: pd.Index,
    cut_of_dossier: np.ndarray | None,
) -> DossierEvents:
    """Encode the used ``rows`` of ``events`` (``None``: all, in order) as arrays."""
    n = len(group_codes)
    boundary = np.r_[True, group_codes[1:] != group_codes[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(boundary)
    ends = np.r_[starts[1:], n].astype(np.int64)
    group = np.cumsum(boundary) - 1
    position = np.arange(n) - starts[group] if n else np.zeros(0, dtype=np.int64)
    used = group_codes[starts]
    ids = pd.Index(dossier_ids[used], name=s.DOSSIER_ID)
    seg = Segments(starts, ends, group, position, ids)
    t = _pick(instants, rows)
    if calendar is None:
        w, office, holiday = np.zeros(n, np.int64), np.ones(n, bool), np.zeros(n, bool)
    else:
        w, office, holiday = calendar_arrays(calendar, t)
    activity, activity_names = _codes(events[s.ACTIVITY])
    # one extra -1 at the end: code -1 (missing activity) is foreign too
    vocab_of_name = np.r_[pd.Index(s.ACTIVITIES).get_indexer(pd.Index(activity_names)), -1]
    agency, agency_names = _agency_codes(events)
    officer = _optional_codes(events, s.OFFICER_ID)
    recorded = (
        _pick(_instants(events[s.RECORDED_AT]), rows)
        if s.RECORDED_AT in events.columns
        else np.full(n, NAT, dtype=np.int64)
    )
    rating = (
        _pick(events[s.RATING].to_numpy(dtype="float64", na_value=np.nan), rows)
        if s.RATING in events.columns
        else np.full(n, np.nan)
    )
    via = None
    if "via" in events.columns:
        via_codes, via_names = _codes(events["via"])
        spelled = pd.Series(via_names, dtype="string").str.strip().str.lower()
        channel = spelled.map(s.CHANNEL_SYNONYMS).astype(object)
        via_of_name = np.r_[
            pd.Index(s.CHANNELS).get_indexer(pd.Index(channel.where(channel.notna(), None))), -1
        ]
        via = via_of_name[_pick(via_codes, rows)]  # code -1 (missing) -> the final -1
    act = _pick(activity, rows)
    cut = cut_w = None
    if cut_of_dossier is not None:
        cut = cut_of_dossier[used]
        cut_w = (
            calendar_arrays(calendar, cut)[0]
            if len(cut) and calendar is not None
            else np.zeros(len(cut), np.int64)
        )
    return DossierEvents(
        seg=seg,
        rows=np.arange(n) if rows is None else rows,
        t=t,
        w=w,
        office=office,
        holiday=holiday,
        activity=act,
        activity_names=activity_names,
        vocab=vocab_of_name[act],
        agency=_pick(agency[0], rows),
        agency_names=agency_names,
        officer=_pick(officer, rows),
        target=_pick(agency[1], rows),
        recorded=recorded,
        rating=rating,
        via=via,
        dossier=_dossier_level(events, rows, seg),
        cut=cut,
        cut_w=cut_w,
        day_ns=calendar.day_ns if calendar is not None else 1,
    )


def _optional_codes(events: pd.DataFrame, column: str) -> np.ndarray:
    if column not in events.columns:
        return np.full(len(events), -1, dtype=np.int64)
    return _codes(events[column])[0]


def _agency_codes(events: pd.DataFrame) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Agency and target-agency codes over one shared list of agency names."""
    parts = []
    for col in (s.AGENCY_ID, s.TARGET_AGENCY_ID):
        if col in events.columns:
            parts.append(_codes(events[col]))
        else:
            parts.append((np.full(len(events), -1, np.int64), np.zeros(0, dtype=str)))
    names = pd.Index(np.r_[parts[0][1], parts[1][1]]).unique()
    remapped = []
    for codes, own in parts:
        lookup = np.r_[names.get_indexer(pd.Index(own)), -1].astype(np.int64)
        remapped.append(lookup[codes])  # code -1 (missing) -> the final -1
    return (remapped[0], remapped[1]), np.asarray(names, dtype=str)


def _dossier_level(events: pd.DataFrame, rows: np.ndarray | None, seg: Segments) -> pd.DataFrame:
    """Per segment, the first non-null value of each dossier-level column among its rows.

    ``rows``: the used rows of ``events`` in order (``None``: all of them).
    """
    out: dict[str, object] = {}
    n = len(seg.group)
    for col in DOSSIER_LEVEL:
        if col not in events.columns:
            out[col] = pd.array([pd.NA] * len(seg), dtype="string")
            continue
        present = _pick(events[col].notna().to_numpy(dtype=bool), rows)
        first = _first_present(present, seg)
        used = np.minimum(first, max(n - 1, 0))
        picked = events[col].iloc[used if rows is None else rows[used]].reset_index(drop=True)
        out[col] = (picked.where(first < n) if n else picked).array
    return pd.DataFrame(out, index=seg.ids)


def _first_present(present: np.ndarray, seg: Segments) -> np.ndarray:
    """Per segment, its first row where ``present`` (``len(present)`` if none)."""
    n = len(present)
    first = seg.starts.copy()
    if n == 0:
        return first
    # usually the segment's first row has the value; search only the others
    lacking = np.flatnonzero(~present[seg.starts])
    if len(lacking):
        candidates = np.r_[np.flatnonzero(present), n]
        found = candidates[np.searchsorted(candidates, seg.starts[lacking])]
        first[lacking] = np.where(found < seg.ends[lacking], found, n)
    return first


#: the per-event arrays of DossierEvents, selected together whenever rows are taken.
_EVENT_ARRAYS = (
    "rows", "t", "w", "office", "holiday", "activity", "vocab", "agency", "officer", "target",
    "recorded", "rating",
)  # fmt: skip


def _event_rows(ev: DossierEvents, rows: slice | np.ndarray) -> dict[str, Any]:
    """``ev``'s per-event arrays restricted to ``rows`` (views for a slice)."""
    taken: dict[str, Any] = {name: getattr(ev, name)[rows] for name in _EVENT_ARRAYS}
    taken["via"] = None if ev.via is None else ev.via[rows]
    return taken


def blocks(ev: DossierEvents, events_per_block: int) -> list[DossierEvents]:
    """``ev`` cut into runs of whole segments of about ``events_per_block`` events each.

    Each block views ``ev``'s arrays (no copy) and numbers its own segments from 0. There is
    always at least one block (an empty ``ev`` is its own block).
    """
    seg = ev.seg
    cuts = np.unique(np.searchsorted(seg.starts, np.arange(0, len(ev), events_per_block)))
    bounds = np.r_[cuts[cuts > 0], len(seg)] if len(seg) else np.zeros(1, np.int64)
    lows = np.r_[0, bounds[:-1]]
    return [segment_range(ev, int(lo), int(hi)) for lo, hi in zip(lows, bounds, strict=True)]


def segment_range(ev: DossierEvents, lo: int, hi: int) -> DossierEvents:
    """Segments ``lo`` to ``hi - 1`` of ``ev`` with their rows (views of ``ev``'s arrays)."""
    seg = ev.seg
    if lo == 0 and hi == len(seg):
        return ev
    first = int(seg.starts[lo]) if hi > lo else 0
    stop = int(seg.ends[hi - 1]) if hi > lo else 0
    rows = slice(first, stop)
    part = Segments(
        seg.starts[lo:hi] - first,
        seg.ends[lo:hi] - first,
        seg.group[rows] - lo,
        seg.position[rows],
        seg.ids[lo:hi],
    )
    return replace(
        ev,
        seg=part,
        **_event_rows(ev, rows),
        dossier=ev.dossier.iloc[lo:hi],
        cut=None if ev.cut is None else ev.cut[lo:hi],
        cut_w=None if ev.cut_w is None else ev.cut_w[lo:hi],
    )


def expand_prefixes(
    base: DossierEvents, calendar: WorkingCalendar, segment: np.ndarray, cut: np.ndarray
) -> DossierEvents:
    """One segment per (segment of ``base``, cut instant): the rows of that segment with
    timestamp <= cut. Prefixes with no row are dropped, so callers pass cuts at or after
    each dossier's first event. Returned segments keep ``base``'s dossier ids (repeated).
    """
    segment = np.asarray(segment, dtype=np.int64)
    cut = np.asarray(cut, dtype=np.int64)
    seg = base.seg
    length = segment_searchsorted(seg, base.t, segment, cut, side="right")
    keep = length > 0
    segment, cut, length = segment[keep], cut[keep], length[keep]
    total = int(length.sum())
    prefix = np.repeat(np.arange(len(segment)), length)
    starts = np.r_[0, np.cumsum(length)[:-1]].astype(np.int64) if len(length) else length
    position = np.arange(total) - starts[prefix] if total else np.zeros(0, np.int64)
    take = seg.starts[segment][prefix] + position
    new_seg = Segments(
        starts, starts + length, prefix, position, pd.Index(seg.ids[segment], name=s.DOSSIER_ID)
    )
    dossier = base.dossier.iloc[segment].copy()
    cut_w = calendar_arrays(calendar, cut)[0] if len(cut) else np.zeros(0, np.int64)
    return replace(
        base,
        seg=new_seg,
        **_event_rows(base, take),
        dossier=dossier,
        cut=cut,
        cut_w=cut_w,
    )
