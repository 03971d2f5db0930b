"""Structure features of dossiers: steps, people and agencies involved, handovers,
transfers and ping-pong, rework, channel, payment and rating.

Two of them count only what is waste: a step the same unit does again with no new input since
its previous occurrence (:func:`rework_without_input`; a re-appraisal after supplementary
documents arrive is needed work), and a directed transfer A -> B that already happened in
the dossier (:func:`repeated_transfers`; a route may go A -> B -> A legitimately, but
sending the dossier to B a second time means it came back for nothing).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features import schema as s
from features.dossier_events import DossierEvents
from features.dossier_timing import vocab_mask
from features.segments import Segments, nunique, seen_before

#: Activities that record the dossier's administration rather than work on it: repeating
#: them is not rework, and a route does not need to list them.
BOOKKEEPING: frozenset[str] = frozenset(
    {
        s.SUPPLEMENT_REQUESTED,
        s.SUPPLEMENT_RECEIVED,
        s.PAUSED,
        s.RESUMED,
        s.PAID,
        s.RATED,
        s.APOLOGY_ISSUED,
        s.ASSIGNED,
        s.TRANSFERRED,
    }
)


def _changes(ev: DossierEvents, codes: np.ndarray) -> np.ndarray:
    """Rows whose known code differs from the previous row's known code (same dossier)."""
    change = np.zeros(len(ev), dtype=bool)
    if len(ev):
        change[1:] = (codes[1:] != codes[:-1]) & (codes[1:] >= 0) & (codes[:-1] >= 0)
        change[ev.seg.starts] = False
    return change


def ping_pong(ev: DossierEvents) -> np.ndarray:
    """Per segment, returns to the agency held two moves before (A -> B -> A).

    Returns to the dossier's first agency (the receiving desk, which hands the result back)
    are the normal route, not ping-pong.
    """
    known = np.flatnonzero(ev.agency >= 0)
    agency, group = ev.agency[known], ev.seg.group[known]
    # keep the rows where the dossier moves to another agency (and each dossier's first)
    moved = np.ones(len(known), dtype=bool)
    moved[1:] = (agency[1:] != agency[:-1]) | (group[1:] != group[:-1])
    agency, group = agency[moved], group[moved]
    first = np.full(len(ev.seg), -1, dtype=np.int64)
    first[group[::-1]] = agency[::-1]  # the earliest write wins last
    back = np.zeros(len(agency), dtype=bool)
    back[2:] = (agency[2:] == agency[:-2]) & (group[2:] == group[:-2])
    back &= agency != first[group]
    return np.bincount(group[back], minlength=len(ev.seg)).astype(np.int64)


#: Events that bring something new into a dossier: repeating a step after one of them is
#: needed work, not rework.
NEW_INPUT: tuple[str, ...] = (s.SUPPLEMENT_RECEIVED, s.RESUMED)


#: (segment, tuple) keys stay below this (int64 with room to spare).
_KEY_LIMIT = 2**62


def _seen_in_segment(seg: Segments, rows: np.ndarray, *codes: np.ndarray) -> np.ndarray:
    """Those of ``rows`` (ascending) whose tuple of non-negative ``codes`` already occurred
    on an earlier of ``rows`` in the same segment.

    The tuple is one mixed-radix integer (compacted first in the unlikely case that it
    could overflow with the segment number), then a stable sort by (segment, tuple) puts
    each occurrence right after the previous one.
    """
    if not len(rows):
        return rows
    parts = [np.asarray(c[rows], dtype=np.int64) for c in codes]
    spans = [int(p.max()) + 1 for p in parts]
    if math.prod(spans) * len(seg) >= _KEY_LIMIT:
        parts = [np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)[1].ravel()]
        spans = [int(parts[0].max()) + 1]
    key = seg.group[rows].astype(np.int64)
    for part, span in zip(parts, spans, strict=True):
        key = key * span + part
    by_key = np.argsort(key, kind="stable")
    ranked = key[by_key]
    return rows[by_key[1:][ranked[1:] == ranked[:-1]]]


def rework_without_input(ev: DossierEvents, bookkeeping: np.ndarray) -> np.ndarray:
    """Per segment, work steps repeated by the same unit with no new input
    (:data:`NEW_INPUT`) since the previous occurrence of that (activity, agency).

    ``bookkeeping``: the rows of :data:`BOOKKEEPING` activities (never rework). A step
    is such a repeat when its (activity, agency) already occurred since the dossier's
    latest input, i.e. with the same count of inputs before it.
    """
    seg = ev.seg
    inputs = vocab_mask(ev, *NEW_INPUT).astype(np.int64)
    before = np.cumsum(inputs) - inputs  # inputs on earlier rows of the log
    epoch = before - before[seg.starts][seg.group] if len(ev) else before
    work = np.flatnonzero(~bookkeeping & (ev.activity >= 0))
    again = _seen_in_segment(seg, work, epoch, ev.activity, ev.agency + 1)
    return np.bincount(seg.group[again], minlength=len(seg)).astype(np.int64)


def repeated_transfers(ev: DossierEvents) -> np.ndarray:
    """Per segment, transfers A -> B (both agencies known) that already happened in it."""
    sent = np.flatnonzero(vocab_mask(ev, s.TRANSFERRED) & (ev.agency >= 0) & (ev.target >= 0))
    again = _seen_in_segment(ev.seg, sent, ev.agency, ev.target)
    return np.bincount(ev.seg.group[again], minlength=len(ev.seg)).astype(np.int64)


def _channels(ev: DossierEvents) -> dict[str, np.ndarray]:
    """Per segment one-hot channel columns (the channel's distinct spellings, lowered)."""
    codes, spellings = pd.factorize(ev.dossier[s.CHANNEL], use_na_sentinel=True)
    lowered = pd.Series(spellings).astype("string").str.lower()
    out = {}
    for name in s.CHANNELS:
        # code -1 (missing) picks the final False
        is_name = np.r_[lowered.eq(name).fillna(False).to_numpy(dtype=bool), False]
        out[f"channel_{name}"] = is_name[codes].astype(np.int64)
    return out


def structure_features(ev: DossierEvents) -> dict[str, np.ndarray]:
    """Per segment counts of the dossier's shape and handling."""
    seg = ev.seg
    bookkeeping = vocab_mask(ev, *BOOKKEEPING)
    seen = seen_before(seg, ev.activity)
    repeated = seen & ~bookkeeping
    out: dict[str, np.ndarray] = {
        "events": seg.sizes.astype(np.int64),
        "distinct_activities": seg.count(~seen & (ev.activity >= 0)),
        "distinct_officers": nunique(seg, ev.officer),
        "distinct_agencies": nunique(seg, ev.agency),
        "handovers": seg.count(_changes(ev, ev.officer)),
        "transfers": seg.count(vocab_mask(ev, s.TRANSFERRED)),
        "agency_changes": seg.count(_changes(ev, ev.agency)),
        "ping_pong": ping_pong(ev),
        "rework": seg.count(repeated),
        "rework_without_input": rework_without_input(ev, bookkeeping),
        "repeated_transfers": repeated_transfers(ev),
        "apologies": seg.count(vocab_mask(ev, s.APOLOGY_ISSUED)),
        "payments": seg.count(vocab_mask(ev, s.PAID)),
    }
    rated = ~np.isnan(ev.rating)
    count = seg.count(rated)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rating_mean"] = np.where(
            count > 0, seg.sum(np.where(rated, ev.rating, 0)) / count, np.nan
        )
    out["rating_min"] = seg.min(ev.rating)
    out["ratings"] = count
    out.update(_channels(ev))
    if ev.via is not None:
        in_person = ev.via == s.CHANNELS.index("in_person")
        online = out["channel_online"].astype(bool)
        out["in_person_steps_online"] = np.where(online, seg.count(in_person), 0)
    return out
