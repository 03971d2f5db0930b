"""Structure features of dossiers: steps, people and agencies involved, handovers,
transfers and ping-pong, rework, channel, payment and rating."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.dossier_events import DossierEvents
from features.dossier_timing import vocab_mask
from features.segments import nunique, seen_before

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
