"""Route conformance of dossiers against the approved internal process of the catalogue:
missing mandatory steps, extra steps, steps out of order, steps done by the wrong kind of
unit and transfers off the approved route.

Each event of a route activity is matched to a route step: by (activity, unit type) when
the agency directory tells the unit type of its agency, else by occurrence (the second
``appraised`` of a dossier is the route's second ``appraised`` step). Every route is laid
out in one (procedure x activity x ...) lookup table, so matching is array indexing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.catalogue import Catalogue
from features.dossier_events import DossierEvents
from features.dossier_structure import BOOKKEEPING
from features.dossier_timing import vocab_mask
from features.segments import occurrence, running_max

#: Outcomes that end a dossier off the route (not extra steps).
_OUTCOMES = frozenset({s.REJECTED, s.WITHDRAWN})


def procedure_index(ev: DossierEvents, catalogue: Catalogue) -> np.ndarray:
    """Per segment, the index of its procedure in ``catalogue.codes`` (-1 unknown)."""
    codes, uniques = pd.factorize(ev.dossier[s.PROCEDURE_CODE], use_na_sentinel=True)
    lookup = np.r_[pd.Index(catalogue.codes).get_indexer(pd.Index(uniques).astype(str)), -1]
    return lookup[np.where(codes < 0, len(lookup) - 1, codes)].astype(np.int64)


def statutory_from_catalogue(ev: DossierEvents, catalogue: Catalogue) -> np.ndarray:
    """Per segment statutory working days of its procedure (NaN when not catalogued)."""
    days = np.array([p.statutory_days for p in catalogue] + [np.nan], dtype=np.float64)
    return days[procedure_index(ev, catalogue)]


def _unit_codes(
    ev: DossierEvents, agencies: pd.DataFrame | None, units: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row unit-type codes of the event's agency and of its transfer target (-1)."""
    if agencies is None:
        none = np.full(len(ev), -1, dtype=np.int64)
        return none, none
    directory = agencies.drop_duplicates("agency_id").set_index("agency_id")["unit_type"]
    unit_of_name = pd.Index(units).get_indexer(
        pd.Index(directory.reindex(pd.Index(ev.agency_names)).to_numpy(dtype=object))
    )
    unit_of_name = np.r_[unit_of_name, -1]  # code -1 (missing agency) -> -1

    def lookup(codes: np.ndarray) -> np.ndarray:
        return unit_of_name[np.where(codes < 0, len(unit_of_name) - 1, codes)]

    return lookup(ev.agency), lookup(ev.target)


def conformance_features(
    ev: DossierEvents, catalogue: Catalogue, agencies: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """Per segment route-conformance counts (NaN for procedures not in the catalogue)."""
    seg, n = ev.seg, len(ev)
    procs = list(catalogue)
    vocab = list(s.ACTIVITIES)
    units = sorted({step.unit_type for p in procs for step in p.route})
    n_proc, n_act, n_unit = len(procs), len(vocab), len(units)
    length = max(len(p.route) for p in procs)
    # lookup tables; the extra last procedure row stands for "not catalogued"
    by_unit = np.full((n_proc + 1, n_act, n_unit), -1, dtype=np.int64)
    by_occ = np.full((n_proc + 1, n_act, length), -1, dtype=np.int64)
    mandatory = np.zeros((n_proc + 1, length), dtype=bool)
    in_route = np.zeros((n_proc + 1, n_act), dtype=bool)
    step_unit = np.full((n_proc + 1, length), -1, dtype=np.int64)
    approved = np.zeros((n_proc + 1, n_unit, n_unit), dtype=bool)
    for i, p in enumerate(procs):
        seen: dict[int, int] = {}
        for r, step in enumerate(p.route):
            a, u = vocab.index(step.activity), units.index(step.unit_type)
            if by_unit[i, a, u] < 0:
                by_unit[i, a, u] = r
            by_occ[i, a, seen.get(a, 0)] = r
            seen[a] = seen.get(a, 0) + 1
            mandatory[i, r] = step.mandatory
            in_route[i, a] = True
            step_unit[i, r] = u
        for a_unit, b_unit in p.approved_transfers():
            approved[i, units.index(a_unit), units.index(b_unit)] = True
    proc_of_seg = procedure_index(ev, catalogue)
    known = proc_of_seg >= 0
    proc = np.where(known, proc_of_seg, n_proc)[seg.group] if n else np.zeros(0, np.int64)
    act = np.maximum(ev.vocab, 0)
    is_vocab = ev.vocab >= 0
    unit, target_unit = _unit_codes(ev, agencies, units)
    occ = np.minimum(occurrence(seg, ev.vocab), length - 1)
    rank = np.where(is_vocab, by_occ[proc, act, occ], -1)
    unit_rank = np.where(is_vocab & (unit >= 0), by_unit[proc, act, np.maximum(unit, 0)], -1)
    # with a known unit the step must match (activity, unit type); else by occurrence
    rank = np.where(unit >= 0, unit_rank, rank)
    matched = rank >= 0
    bookkeeping = vocab_mask(ev, *BOOKKEEPING)
    # steps out of order: a route step done after a later route step was reached
    reached = running_max(seg, rank + 1) - 1  # furthest step at or before each row
    before = np.full(n, -1, dtype=np.int64)
    if n:
        before[1:] = reached[:-1]
        before[seg.starts] = -1
    # payments, assignments and transfers may come at several points of a route
    order = matched & (rank < before) & ~bookkeeping
    present = np.zeros((len(seg), length), dtype=bool)
    present[seg.group[matched], rank[matched]] = True
    furthest = seg.max(np.where(matched, rank, np.nan).astype(np.float64), empty=-1.0)
    cols = np.arange(length)[None, :]
    skipped = mandatory[np.where(known, proc_of_seg, n_proc)] & ~present
    missing = (skipped & (cols < furthest[:, None])).sum(axis=1)
    in_route_row = is_vocab & in_route[proc, act]
    outcome = vocab_mask(ev, *(BOOKKEEPING | _OUTCOMES))
    extra = ~in_route_row & ~outcome
    out: dict[str, np.ndarray] = {
        "missing_mandatory_steps": missing.astype(np.float64),
        "extra_steps": seg.count(extra).astype(np.float64),
        "order_violations": seg.count(order).astype(np.float64),
    }
    if agencies is not None:
        wrong = in_route_row & (unit >= 0) & (unit_rank < 0) & ~bookkeeping
        prev_unit = np.full(n, -1, dtype=np.int64)
        if n:
            prev_unit[1:] = unit[:-1]
            prev_unit[seg.starts] = -1
        moved = (prev_unit >= 0) & (unit >= 0) & (prev_unit != unit)
        off_route = moved & ~approved[proc, np.maximum(prev_unit, 0), np.maximum(unit, 0)]
        sent = vocab_mask(ev, s.TRANSFERRED) & (unit >= 0) & (target_unit >= 0)
        sent &= unit != target_unit
        sent &= ~approved[proc, np.maximum(unit, 0), np.maximum(target_unit, 0)]
        out["wrong_unit_steps"] = seg.count(wrong).astype(np.float64)
        out["off_route_transfers"] = seg.count(off_route | sent).astype(np.float64)
    for name in out:
        out[name] = np.where(known, out[name], np.nan)
    return out


def route_position(ev: DossierEvents, catalogue: Catalogue) -> np.ndarray:
    """Per segment, the 1-based route step of its last matched event (NaN if none)."""
    seg = ev.seg
    vocab = list(s.ACTIVITIES)
    procs = list(catalogue)
    length = max(len(p.route) for p in procs)
    by_occ = np.full((len(procs) + 1, len(vocab), length), -1, dtype=np.int64)
    for i, p in enumerate(procs):
        seen: dict[int, int] = {}
        for r, step in enumerate(p.route):
            a = vocab.index(step.activity)
            by_occ[i, a, seen.get(a, 0)] = r
            seen[a] = seen.get(a, 0) + 1
    proc_of_seg = procedure_index(ev, catalogue)
    proc = np.where(proc_of_seg >= 0, proc_of_seg, len(procs))[seg.group]
    occ = np.minimum(occurrence(seg, ev.vocab), length - 1)
    rank = np.where(ev.vocab >= 0, by_occ[proc, np.maximum(ev.vocab, 0), occ], -1)
    pos = np.arange(len(ev), dtype=np.float64)
    row = seg.max(np.where(rank >= 0, pos, np.nan))
    return np.where(np.isnan(row), np.nan, rank[np.nan_to_num(row).astype(np.int64)] + 1.0)
