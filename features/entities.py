"""Entity features and baselines: per officer, agency, procedure, intermediary (submitter)
and agency pair, over rolling windows ending at a time ``as_of``.

Two stages, so that a Dask engine gives the pandas result exactly:

* stage A (:mod:`features.entity_facts`, re-exported here) reads whole dossiers and makes
  small tables: :func:`dossier_facts`, :func:`officer_touches`, :func:`transfer_edges`;
* stage B (this module) aggregates those tables, concatenated in any order:
  :func:`entity_features`, :func:`officer_submitter_pairs`, :func:`join_entity_features`.
  Its steps are separate functions so that an engine can run them as tasks: the tables
  are prepared once (:func:`entity_tables`), each window is one call
  (:func:`entity_window`, statistics in :mod:`features.entity_aggregates`) and the windows
  are put side by side (:func:`combine_windows`).

Windows are calendar days ending at ``as_of`` (``90D``) or all history up to it (``all``):
on a sparse log whose last year starts no dossier only ``all`` has rows.

Point in time: stage B counts only dossiers started at or before ``as_of``, and an outcome
(duration, late) only once the dossier ended by ``as_of``; a holding time only once the
receiver released the dossier by then. Stage-A fields that sum a dossier's events
(supplement requests, touches, ratings) are as of the time stage A read the events, so for
features at ``as_of`` build stage A with the same ``as_of``: then nothing after it counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from features import schema as s
from features.entity_aggregates import (
    ENTITY_KEYS,
    agency_stats,
    dossier_stats,
    officer_pairs,
    officer_stats,
    pair_stats,
    submitter_stats,
    with_handling_ratio,
    with_norms,
)
from features.entity_facts import dossier_facts, officer_touches, transfer_edges
from features.entity_specs import ALL_HISTORY, DEFAULT_WINDOWS, SPECS, WINDOWS
from features.entity_stats import (
    as_timestamp,
    object_values,
    window_label,
)
from features.registry import UnregisteredFeatureError

__all__ = [
    "DEFAULT_WINDOWS",
    "ENTITY_KEYS",
    "SPECS",
    "WINDOWS",
    "dossier_facts",
    "entity_features",
    "join_entity_features",
    "officer_submitter_pairs",
    "officer_touches",
    "transfer_edges",
]

#: Index name of each entity frame.
INDEX_NAMES: dict[str, str] = {
    "officer": s.OFFICER_ID,
    "agency": s.AGENCY_ID,
    "procedure": s.PROCEDURE_CODE,
    "submitter": s.SUBMITTER_ID,
    "agency_pair": "agency_pair",
}
_COUNTS = {
    "dossiers",
    "finished",
    "rating_count",
    "touches",
    "touched_dossiers",
    "applicants",
    "procedures",
    "officers",
    "transfers_in",
    "transfers_out",
    "transfers",
    "transfer_dossiers",
}


# --- preparing the stage-A tables ----------------------------------------------------------


def _facts_at(facts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Dossiers started by ``as_of``, canonical order, with outcomes masked until known."""
    f = facts[(facts["started_at"] <= as_of).to_numpy(dtype=bool, na_value=False)]
    f = f.sort_values(s.DOSSIER_ID, kind="stable", ignore_index=True)
    known = (f["ended_at"] <= as_of).to_numpy(dtype=bool, na_value=False)
    late = f["late"].to_numpy(dtype="float64", na_value=np.nan)
    rating = f["rating"].to_numpy(dtype="float64", na_value=np.nan)
    approval = f["approval_offhours"].to_numpy(dtype="float64", na_value=np.nan)
    return f.assign(
        _known=known,
        _duration=np.where(known, f["duration_days"].to_numpy(dtype="float64"), np.nan),
        _late=np.where(known, late, np.nan),
        _proc=f[s.PROCEDURE_CODE].fillna(""),
        _five=np.where(np.isfinite(rating), (rating >= 5 - 1e-9).astype(float), np.nan),
        _approval_off=approval,
        _submitted=f[s.SUBMITTER_ID].notna().to_numpy(dtype=bool),
    )


def _touches_at(touches: pd.DataFrame, f: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    t = touches[(touches["first_touch_at"] <= as_of).to_numpy(dtype=bool, na_value=False)]
    cols = [s.DOSSIER_ID, "started_at", "_proc", s.SUBMITTER_ID, "_late"]
    t = t.merge(f[cols], on=s.DOSSIER_ID, how="inner", validate="many_to_one")
    return t.sort_values([s.DOSSIER_ID, s.OFFICER_ID], kind="stable", ignore_index=True)


def _edges_at(edges: pd.DataFrame, f: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    e = edges[(edges["at"] <= as_of).to_numpy(dtype=bool, na_value=False)]
    e = e.sort_values([s.DOSSIER_ID, "at", "from_agency", "to_agency"], kind="stable")
    released = (e["released_at"] <= as_of).to_numpy(dtype=bool, na_value=False)
    e = e.assign(
        _hold=np.where(released, e["holding_days"].to_numpy(dtype="float64"), np.nan),
        agency_pair=e["from_agency"] + "->" + e["to_agency"],
    )
    late = f.set_index(s.DOSSIER_ID)["_late"]
    return e.assign(_late=e[s.DOSSIER_ID].map(late).astype("float64")).reset_index(drop=True)


def _in_window(times: pd.Series, as_of: pd.Timestamp, window: str) -> np.ndarray:
    """Rows in ``(as_of - window, as_of]``; the tables are already cut at ``as_of``, so the
    all-history window (:data:`ALL_HISTORY`) keeps every row."""
    if window.upper() == ALL_HISTORY:
        return np.ones(len(times), dtype=bool)
    return (times > as_of - pd.Timedelta(window)).to_numpy(dtype=bool, na_value=False)


# --- public API ------------------------------------------------------------------------------


class EntityTables(NamedTuple):
    """The stage-A tables prepared at ``as_of`` (:func:`entity_tables`)."""

    facts: pd.DataFrame
    touches: pd.DataFrame
    edges: pd.DataFrame


def entity_tables(
    facts: pd.DataFrame, touches: pd.DataFrame, edges: pd.DataFrame, as_of: datetime | str
) -> EntityTables:
    """Dossiers started by ``as_of`` with outcomes known by then, and their touches and
    handovers, in canonical order: what every window of :func:`entity_features` reads."""
    stamp = as_timestamp(as_of)
    f = _facts_at(facts, stamp)
    return EntityTables(f, _touches_at(touches, f, stamp), _edges_at(edges, f, stamp))


def officer_submitter_pairs(
    facts: pd.DataFrame,
    touches: pd.DataFrame,
    as_of: datetime | str,
    *,
    window: str = "365D",
) -> pd.DataFrame:
    """How each officer treats each intermediary's dossiers compared with everyone else's.

    One row per (officer, submitter) pair over dossiers started in ``window`` before
    ``as_of``, indexed by ``officer_id`` and ``submitter_id``. The handling ratio of a
    dossier is the officer's handling time (:func:`officer_touches`) over the median
    handling time of the same procedure; ``favour_ratio`` well below 1 (or a very negative
    ``favour_z``) means the officer is much faster for this intermediary (favouritism);
    ``other_late_share`` above ``pair_late_share`` is selective slowness.
    """
    stamp = as_timestamp(as_of)
    f = _facts_at(facts, stamp)
    f = f[_in_window(f["started_at"], stamp, window)]
    return officer_pairs(with_handling_ratio(_touches_at(touches, f, stamp)))


def entity_window(
    tables: EntityTables, as_of: datetime | str, window: str
) -> dict[str, pd.DataFrame]:
    """The frames of one window of :func:`entity_features`, columns suffixed with it."""
    stamp = as_timestamp(as_of)
    f_all, t_all, e_all = tables
    f = with_norms(f_all[_in_window(f_all["started_at"], stamp, window)])
    t = with_handling_ratio(t_all[_in_window(t_all["started_at"], stamp, window)])
    e = e_all[_in_window(e_all["at"], stamp, window)]
    procedure = dossier_stats(f, ENTITY_KEYS["procedure"])
    procedure["duration_p50"] = f.groupby(s.PROCEDURE_CODE, sort=True)["_duration"].median()
    frames = {
        "officer": officer_stats(f, t),
        "agency": agency_stats(f, e),
        "procedure": procedure,
        "submitter": submitter_stats(f),
        "agency_pair": pair_stats(e),
    }
    label = window_label(window)
    return {name: frame.add_suffix(f"_{label}") for name, frame in frames.items()}


def combine_windows(windows: Sequence[Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The frames of several :func:`entity_window` calls side by side, per entity type."""
    out = {}
    for name, index_name in INDEX_NAMES.items():
        joined = pd.concat([w[name] for w in windows], axis=1, join="outer").sort_index()
        counts = [c for c in joined.columns if c.rsplit("_", 1)[0] in _COUNTS]
        joined[counts] = joined[counts].fillna(0).astype(np.int64)
        joined.index = pd.Index(joined.index.astype("string"), name=index_name)
        out[name] = joined
    return out


def checked_windows(windows: Iterable[str]) -> tuple[str, ...]:
    """``windows`` if each has registered features, else :class:`UnregisteredFeatureError`."""
    windows = tuple(windows)
    unknown = [w for w in windows if w.upper() not in WINDOWS]
    if unknown:
        raise UnregisteredFeatureError(
            f"windows {unknown} have no registered features; use some of {list(WINDOWS)}"
        )
    return windows


def entity_features(
    facts: pd.DataFrame,
    touches: pd.DataFrame,
    edges: pd.DataFrame,
    as_of: datetime | str,
    *,
    windows: Iterable[str] = DEFAULT_WINDOWS,
) -> dict[str, pd.DataFrame]:
    """Features of officers, agencies, procedures, submitters and agency pairs at ``as_of``.

    ``facts``, ``touches`` and ``edges`` are the stage-A tables (any row order, e.g.
    concatenated from partitions). Each window (calendar days, one of :data:`WINDOWS`)
    covers dossiers started in ``(as_of - window, as_of]`` and handovers made in it; the
    window ``"all"`` covers all history up to ``as_of`` (so logs sparser than a year still
    get entity features). Columns are suffixed with the window (``late_share_90d``,
    ``late_share_all``). Returns a frame per entity type, indexed by the entity's id (an
    agency pair as ``"A->B"``); an officer's dossiers are those where they are the main
    officer, an agency's those it received first.
    """
    windows = checked_windows(windows)
    tables = entity_tables(facts, touches, edges, as_of)
    return combine_windows([entity_window(tables, as_of, w) for w in windows])


def join_entity_features(
    dossier_table: pd.DataFrame,
    entity_frames: Mapping[str, pd.DataFrame],
    *,
    keys: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``dossier_table`` with the features of its entities, as ``{entity}__{feature}`` columns.

    ``keys`` maps an entity type to the column of ``dossier_table`` holding its id
    (default :data:`ENTITY_KEYS`: main officer, first agency, procedure, submitter).
    Entities absent from ``entity_frames`` or from the table are skipped; a dossier whose
    entity has no features gets missing values. Rows keep their order and index.
    """
    parts = [dossier_table]
    for entity, column in (keys or ENTITY_KEYS).items():
        frame = entity_frames.get(entity)
        if frame is None or column not in dossier_table.columns:
            continue
        ids = object_values(dossier_table[column])
        joined = frame.reindex(pd.Index(ids, dtype=object))
        joined.index = dossier_table.index
        parts.append(joined.add_prefix(f"{entity}__"))
    return pd.concat(parts, axis=1)
