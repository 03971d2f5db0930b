"""Events prepared once for the dossier features: sorted, cut at each dossier's time, and
turned into numpy arrays (codes, instants, office time).

Every dossier feature module reads a :class:`DossierEvents`; building one is the only
step that touches strings and the calendar, so the features themselves are integer and
float segment operations. :func:`expand_prefixes` turns one into the prefixes of its
dossiers (one segment per (dossier, cut)) without a Python loop per dossier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def calendar_arrays(
    calendar: WorkingCalendar, instants: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Office time W (ns), office-hours flag and holiday flag of UTC ns instants.

    Locates each instant once (the three public predicates would locate it three times).
    """
    index = pd.DatetimeIndex(instants.astype("datetime64[ns]")).tz_localize("UTC")
    loc = calendar._locate(index)
    w = calendar._w(loc)
    offset = loc.clock[:, None] - calendar._open[None, :]
    inside = ((offset >= 0) & (offset < calendar._length[None, :])).any(axis=1)
    office = calendar._working[loc.day] & inside
    holiday = calendar._holiday[loc.day]
    return w, office, holiday


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
    dossier_codes, dossier_ids = pd.factorize(events[s.DOSSIER_ID], sort=True)
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
    order = _sorted_order(dossier_codes, t, seq)
    rows = np.arange(len(events)) if order is None else order
    cut_of_dossier: np.ndarray | None = None
    if as_of is not None:
        if isinstance(as_of, pd.Series):
            cuts = _instants(as_of)
            position = pd.Index(as_of.index).get_indexer(pd.Index(dossier_ids))
            cut_of_dossier = np.where(position >= 0, cuts[position], NAT)
        else:
            stamp = pd.Timestamp(as_of)
            if stamp.tz is None:
                raise s.EventSchemaError("as_of must be tz-aware", column=s.TIMESTAMP)
            cut_of_dossier = np.full(len(dossier_ids), stamp.as_unit("ns").value, np.int64)
        row_cut = cut_of_dossier[dossier_codes[rows]]
        rows = rows[(row_cut != NAT) & (t[rows] <= row_cut)]
    group_codes = dossier_codes[rows]
    return _build(events, calendar, rows, group_codes, pd.Index(dossier_ids), cut_of_dossier)


def _build(
    events: pd.DataFrame,
    calendar: WorkingCalendar | None,
    rows: np.ndarray,
    group_codes: np.ndarray,
    dossier_ids: pd.Index,
    cut_of_dossier: np.ndarray | None,
) -> DossierEvents:
    n = len(rows)
    boundary = np.r_[True, group_codes[1:] != group_codes[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(boundary)
    ends = np.r_[starts[1:], n].astype(np.int64)
    group = np.cumsum(boundary) - 1
    position = np.arange(n) - starts[group] if n else np.zeros(0, dtype=np.int64)
    used = group_codes[starts]
    ids = pd.Index(dossier_ids[used], name=s.DOSSIER_ID)
    seg = Segments(starts, ends, group, position, ids)
    t = _instants(events[s.TIMESTAMP])[rows]
    if calendar is None:
        w, office, holiday = np.zeros(n, np.int64), np.ones(n, bool), np.zeros(n, bool)
    else:
        w, office, holiday = calendar_arrays(calendar, t)
    activity, activity_names = _codes(events[s.ACTIVITY])
    vocab_of_name = pd.Index(s.ACTIVITIES).get_indexer(pd.Index(activity_names))
    agency, agency_names = _agency_codes(events)
    officer = _optional_codes(events, s.OFFICER_ID)
    recorded = (
        _instants(events[s.RECORDED_AT])[rows]
        if s.RECORDED_AT in events.columns
        else np.full(n, NAT, dtype=np.int64)
    )
    rating = (
        events[s.RATING].to_numpy(dtype="float64", na_value=np.nan)[rows]
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
        via = via_of_name[np.where(via_codes < 0, len(via_of_name) - 1, via_codes)][rows]
    act = activity[rows]
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
        rows=rows,
        t=t,
        w=w,
        office=office,
        holiday=holiday,
        activity=act,
        activity_names=activity_names,
        vocab=np.where(act >= 0, vocab_of_name[np.maximum(act, 0)], -1),
        agency=agency[0][rows],
        agency_names=agency_names,
        officer=officer[rows],
        target=agency[1][rows],
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
        remapped.append(lookup[np.where(codes < 0, len(lookup) - 1, codes)])
    return (remapped[0], remapped[1]), np.asarray(names, dtype=str)


def _dossier_level(events: pd.DataFrame, rows: np.ndarray, seg: Segments) -> pd.DataFrame:
    """Per segment, the first non-null value of each dossier-level column among its rows."""
    out: dict[str, object] = {}
    n = len(rows)
    for col in DOSSIER_LEVEL:
        if col not in events.columns:
            out[col] = pd.array([pd.NA] * len(seg), dtype="string")
            continue
        values = events[col].iloc[rows].reset_index(drop=True)
        present = values.notna().to_numpy(dtype=bool)
        pos = np.where(present, np.arange(n), n)
        first = np.full(len(seg), n, dtype=np.int64)
        np.minimum.at(first, seg.group, pos)
        picked = values.iloc[np.minimum(first, max(n - 1, 0))].reset_index(drop=True)
        out[col] = (picked.where(first < n) if n else picked).array
    return pd.DataFrame(out, index=seg.ids)


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
        rows=base.rows[take],
        t=base.t[take],
        w=base.w[take],
        office=base.office[take],
        holiday=base.holiday[take],
        activity=base.activity[take],
        vocab=base.vocab[take],
        agency=base.agency[take],
        officer=base.officer[take],
        target=base.target[take],
        recorded=base.recorded[take],
        rating=base.rating[take],
        via=None if base.via is None else base.via[take],
        dossier=dossier,
        cut=cut,
        cut_w=cut_w,
    )
