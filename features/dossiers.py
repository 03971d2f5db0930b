"""Dossier features (issue 4, item 1): one row per dossier, numeric, from its own events.

:func:`dossier_features` is dossier-local: a dossier's row depends only on its events and
the small reference tables passed in (catalogue, agency directory, fitted normal process),
so any partition of whole dossiers gives the same rows. With ``as_of`` only the events at or
before the cut are used and open durations run up to it (what prefix features reuse).
The log is sorted once (skipped when already in canonical order) and every feature is a
numpy segment operation (:mod:`features.dossier_events`, ``dossier_timing``,
``dossier_structure``, ``dossier_conformance``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.dossier_conformance import (
    conformance_features,
    procedure_index,
    statutory_from_catalogue,
)
from features.dossier_events import NAT, DossierEvents, blocks, calendar_arrays, prepare
from features.dossier_specs import SPECS
from features.dossier_structure import structure_features
from features.dossier_timing import clock_state, time_features, vocab_mask
from features.process import NormalProcess, process_columns

__all__ = ["SPECS", "dossier_descriptors", "dossier_features", "features_of"]

AsOf = pd.Timestamp | pd.Series | None


def dossier_features(
    events: pd.DataFrame,
    calendar: WorkingCalendar,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    process: NormalProcess | None = None,
    as_of: AsOf = None,
) -> pd.DataFrame:
    """Numeric features of each dossier, indexed by dossier_id (sorted).

    ``events``: canonical events in any order (not modified). ``agencies``: an agency
    directory with columns agency_id, unit_type (used with ``catalogue``). ``process``: a
    fitted :class:`NormalProcess` (adds its conformance columns). ``as_of``: None, a
    tz-aware instant, or a Series of tz-aware cut instants indexed by dossier_id; dossiers
    with no event by their cut (or absent from the Series) have no row.
    Columns are described in the feature registry (:data:`SPECS`).
    """
    ev = prepare(events, calendar, as_of)
    return features_of(ev, calendar, catalogue=catalogue, agencies=agencies, process=process)


#: Events per block of dossiers. The features run block by block so that their many
#: per-event temporaries stay cache-sized and are reused by the allocator, instead of each
#: being a fresh full-log array (page faults cost more than the arithmetic).
BLOCK_EVENTS = 1 << 19


def features_of(
    ev: DossierEvents,
    calendar: WorkingCalendar,
    *,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    process: NormalProcess | None = None,
) -> pd.DataFrame:
    """The dossier features of prepared events (one row per segment, index = dossier ids).

    Features are segment-local, so computing them on blocks of whole segments and joining
    the blocks gives the same values.
    """
    parts = [
        _columns(part, calendar, catalogue, agencies, process) for part in blocks(ev, BLOCK_EVENTS)
    ]
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    # the joined columns are new arrays: hand them over rather than copy them into blocks
    return pd.DataFrame(columns, index=ev.seg.ids, copy=False)


def _columns(
    ev: DossierEvents,
    calendar: WorkingCalendar,
    catalogue: Catalogue | None,
    agencies: pd.DataFrame | None,
    process: NormalProcess | None,
) -> dict[str, np.ndarray]:
    """The feature columns of the segments of ``ev``."""
    statutory = _statutory(ev, calendar, catalogue)
    clock = clock_state(ev)
    columns = structure_features(ev)
    columns.update(time_features(ev, clock, statutory))
    if catalogue is not None:
        columns.update(conformance_features(ev, catalogue, agencies))
        fee = np.array([p.fee for p in catalogue] + [np.nan], dtype=np.float64)
        full = np.array([p.online_level == "full" for p in catalogue] + [False])
        proc = procedure_index(ev, catalogue)
        columns["fee_vnd"] = fee[proc]
        if "in_person_steps_online" in columns:
            columns["in_person_steps_online"] = np.where(
                full[proc], columns["in_person_steps_online"], 0
            )
    if process is not None:
        columns.update(process_columns(ev, process))
    return columns


def _statutory(
    ev: DossierEvents, calendar: WorkingCalendar, catalogue: Catalogue | None
) -> np.ndarray:
    """Statutory working days: the catalogue's, else due_at minus the first event."""
    due = ev.dossier[s.DUE_AT]
    days = np.full(len(ev.seg), np.nan)
    if isinstance(due.dtype, pd.DatetimeTZDtype) and due.notna().any():
        instants = due.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        has = instants != NAT
        w_due = np.zeros(len(instants), dtype=np.int64)
        if has.any():
            w_due[has] = calendar_arrays(calendar, instants[has])[0]
        first_w = ev.w[ev.seg.starts]
        days = np.where(has, (w_due - first_w) / ev.day_ns, np.nan)
    if catalogue is not None:
        listed = statutory_from_catalogue(ev, catalogue)
        days = np.where(np.isnan(listed), days, listed)
    return days


def dossier_descriptors(events: pd.DataFrame, *, as_of: AsOf = None) -> pd.DataFrame:
    """Join keys and descriptors of each dossier (not model features), by dossier_id.

    Columns: procedure_code, jurisdiction, channel, applicant_id, submitter_id,
    first_agency, started_at, ended_at (first terminal event, else last event), last
    activity, finished (a terminal event reached).
    """
    ev = prepare(events, None, as_of)
    seg = ev.seg
    pos = np.arange(len(ev), dtype=np.float64)
    terminal_row = seg.min(np.where(vocab_mask(ev, *s.TERMINAL_ACTIVITIES), pos, np.nan))
    finished = ~np.isnan(terminal_row)
    end_row = np.where(finished, np.nan_to_num(terminal_row), seg.ends - 1).astype(np.int64)
    tz = events[s.TIMESTAMP].dt.tz
    agency_names = np.r_[ev.agency_names, None].astype(object)
    first_agency = ev.agency[seg.starts]
    out = ev.dossier[
        [s.PROCEDURE_CODE, s.JURISDICTION, s.CHANNEL, s.APPLICANT_ID, s.SUBMITTER_ID]
    ].copy()
    out["first_agency"] = pd.array(
        agency_names[np.where(first_agency < 0, len(agency_names) - 1, first_agency)],
        dtype="string",
    )
    out["started_at"] = _times(ev.t[seg.starts], tz)
    out["ended_at"] = _times(ev.t[end_row], tz)
    out["last_activity"] = pd.array(ev.activity_names[ev.activity[seg.ends - 1]], dtype="string")
    out["finished"] = finished
    return out


def _times(ns: np.ndarray, tz: Any) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
