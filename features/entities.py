"""Entity features and baselines: per officer, agency, procedure, intermediary (submitter)
and agency pair, over rolling windows ending at a time ``as_of``.

Two stages, so that a Dask engine gives the pandas result exactly:

* stage A (:mod:`features.entity_facts`, re-exported here) reads whole dossiers and makes
  small tables: :func:`dossier_facts`, :func:`officer_touches`, :func:`transfer_edges`;
* stage B (this module) aggregates those tables, concatenated in any order:
  :func:`entity_features`, :func:`officer_submitter_pairs`, :func:`join_entity_features`.

Point in time: stage B counts only dossiers started at or before ``as_of``, and an outcome
(duration, late) only once the dossier ended by ``as_of``; a holding time only once the
receiver released the dossier by then. Stage-A fields that sum a dossier's events
(supplement requests, touches, ratings) are as of the time stage A read the events, so for
features at ``as_of`` build stage A with the same ``as_of``: then nothing after it counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from features import schema as s
from features.entity_facts import dossier_facts, officer_touches, transfer_edges
from features.entity_specs import SPECS, WINDOWS
from features.entity_stats import (
    IQR_TO_SIGMA,
    as_timestamp,
    complement_quantiles,
    object_values,
    safe_ratio,
    window_label,
)
from features.registry import UnregisteredFeatureError

__all__ = [
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

#: The column of a dossier table (:func:`dossier_facts`) naming each entity it belongs to.
ENTITY_KEYS: dict[str, str] = {
    "officer": "main_officer_id",
    "agency": "first_agency_id",
    "procedure": s.PROCEDURE_CODE,
    "submitter": s.SUBMITTER_ID,
}
#: Index name of each entity frame.
INDEX_NAMES: dict[str, str] = {
    "officer": s.OFFICER_ID,
    "agency": s.AGENCY_ID,
    "procedure": s.PROCEDURE_CODE,
    "submitter": s.SUBMITTER_ID,
    "agency_pair": "agency_pair",
}
#: Pairs with fewer dossiers do not enter an officer's ``favour_ratio_min``.
MIN_PAIR_DOSSIERS = 3
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
    return (times > as_of - pd.Timedelta(window)).to_numpy(dtype=bool, na_value=False)


# --- per-entity statistics -----------------------------------------------------------------


def _with_norms(f: pd.DataFrame) -> pd.DataFrame:
    """Duration relative to the median duration of the procedure over the same window."""
    norm = f.groupby("_proc", sort=True)["_duration"].transform("median")
    return f.assign(_speed=safe_ratio(f["_duration"], norm))


def _dossier_stats(f: pd.DataFrame, key: str) -> pd.DataFrame:
    g = f[f[key].notna()].groupby(key, sort=True)
    return pd.DataFrame(
        {
            "dossiers": g.size(),
            "finished": g["_known"].sum(),
            "speed_ratio_p50": g["_speed"].median(),
            "speed_ratio_p90": g["_speed"].quantile(0.9),
            "late_share": g["_late"].mean(),
            "supplement_rate": g["supplement_requests"].mean().astype("float64"),
            "offhours_share": g["offhours_share"].mean(),
            "approval_offhours_share": g["_approval_off"].mean(),
            "rating_mean": g["rating"].mean(),
            "rating_5star_share": g["_five"].mean(),
            "rating_count": g["rating"].count(),
            "rating_std": g["rating"].std(),
        }
    )


def _share_of_top(f: pd.DataFrame, key: str, other: str) -> pd.Series:
    """Per ``key``: the share of its dossiers whose ``other`` is its most frequent one."""
    both = f[f[key].notna() & f[other].notna()]
    top = both.groupby([key, other], sort=True).size().groupby(level=0).max()
    total = f[f[key].notna()].groupby(key, sort=True).size()
    return pd.Series(safe_ratio(top.reindex(total.index, fill_value=0), total), total.index)


def _officer_stats(f: pd.DataFrame, t: pd.DataFrame) -> pd.DataFrame:
    key = ENTITY_KEYS["officer"]
    out = _dossier_stats(f, key).drop(columns="offhours_share")
    mine = f[f[key].notna()]
    g = mine.groupby(key, sort=True)
    out["top_submitter_share"] = _share_of_top(f, key, s.SUBMITTER_ID)
    out["submitted_share"] = g["_submitted"].mean()
    direct = mine["_late"].where(~mine["_submitted"])
    out["late_share_direct"] = direct.groupby(mine[key], sort=True).mean()
    out["late_share_submitted"] = mine["_late"].where(mine["_submitted"]).groupby(mine[key]).mean()
    gt = t.groupby(s.OFFICER_ID, sort=True)
    touched = pd.DataFrame(
        {
            "touches": gt["touches"].sum(),
            "touched_dossiers": gt.size(),
            "handling_ratio_p50": gt["_hratio"].median(),
            "offhours_share": safe_ratio(gt["offhours_touches"].sum(), gt["touches"].sum()),
        }
    )
    pairs = _pairs(t)
    strong = pairs[pairs["pair_dossiers"] >= MIN_PAIR_DOSSIERS]
    touched["favour_ratio_min"] = strong.groupby(level=0)["favour_ratio"].min()
    return out.join(touched, how="outer")


def _submitter_stats(f: pd.DataFrame) -> pd.DataFrame:
    key = ENTITY_KEYS["submitter"]
    out = _dossier_stats(f, key)
    g = f[f[key].notna()].groupby(key, sort=True)
    out["applicants"] = g[s.APPLICANT_ID].nunique()
    out["procedures"] = g[s.PROCEDURE_CODE].nunique()
    out["officers"] = g[ENTITY_KEYS["officer"]].nunique()
    out["applicants_per_dossier"] = safe_ratio(out["applicants"], out["dossiers"])
    out["top_officer_share"] = _share_of_top(f, key, ENTITY_KEYS["officer"])
    return out


def _agency_stats(f: pd.DataFrame, e: pd.DataFrame) -> pd.DataFrame:
    out = _dossier_stats(f, ENTITY_KEYS["agency"])
    moves = pd.DataFrame(
        {
            "transfers_in": e.groupby("to_agency", sort=True).size(),
            "transfers_out": e.groupby("from_agency", sort=True).size(),
            "holding_days_p50": e.groupby("to_agency", sort=True)["_hold"].median(),
        }
    )
    return out.join(moves, how="outer")


def _pair_stats(e: pd.DataFrame) -> pd.DataFrame:
    g = e.groupby("agency_pair", sort=True)
    once = e.drop_duplicates(["agency_pair", s.DOSSIER_ID])
    return pd.DataFrame(
        {
            "transfers": g.size(),
            "transfer_dossiers": once.groupby("agency_pair", sort=True).size(),
            "holding_days_p50": g["_hold"].median(),
            "holding_days_p90": g["_hold"].quantile(0.9),
            "late_share": once.groupby("agency_pair", sort=True)["_late"].mean(),
        }
    )


def _with_handling_ratio(t: pd.DataFrame) -> pd.DataFrame:
    norm = t.groupby("_proc", sort=True)["handling_days"].transform("median")
    return t.assign(_hratio=safe_ratio(t["handling_days"], norm))


def _pairs(t: pd.DataFrame) -> pd.DataFrame:
    """Officer x submitter rows of :func:`officer_submitter_pairs` from prepared touches."""
    sub = t[s.SUBMITTER_ID].fillna("")
    keys = [t[s.OFFICER_ID], sub.rename("_sub")]
    g = t.groupby(keys, sort=True)
    late = t["_late"]
    own = pd.DataFrame(
        {
            "pair_dossiers": g.size(),
            "pair_handling_ratio_p50": g["_hratio"].median(),
            "_late_sum": g["_late"].sum(),
            "_late_n": g["_late"].count(),
        }
    )
    per_officer = t.groupby(s.OFFICER_ID, sort=True)
    officers = own.index.get_level_values(0)
    n_all = per_officer.size().reindex(officers).to_numpy()
    late_sum = late.groupby(t[s.OFFICER_ID]).sum().reindex(officers).to_numpy()
    late_n = late.groupby(t[s.OFFICER_ID]).count().reindex(officers).to_numpy()
    comp = complement_quantiles(t[s.OFFICER_ID], sub, t["_hratio"], (0.25, 0.5, 0.75))
    comp = comp.reindex(own.index)
    other = comp["q0.5"].to_numpy()
    iqr = (comp["q0.75"] - comp["q0.25"]).to_numpy()
    pair = own["pair_handling_ratio_p50"].to_numpy()
    out = pd.DataFrame(
        {
            "pair_dossiers": own["pair_dossiers"].to_numpy(dtype=np.int64),
            "other_dossiers": (n_all - own["pair_dossiers"].to_numpy()).astype(np.int64),
            "pair_share": safe_ratio(own["pair_dossiers"], n_all),
            "pair_handling_ratio_p50": pair,
            "other_handling_ratio_p50": other,
            "favour_ratio": safe_ratio(pair, other),
            "favour_z": (pair - other) * safe_ratio(IQR_TO_SIGMA, iqr),
            "pair_late_share": safe_ratio(own["_late_sum"], own["_late_n"]),
            "other_late_share": safe_ratio(
                late_sum - own["_late_sum"].to_numpy(), late_n - own["_late_n"].to_numpy()
            ),
        },
        index=pd.MultiIndex.from_arrays(
            [officers, own.index.get_level_values(1)], names=[s.OFFICER_ID, s.SUBMITTER_ID]
        ),
    )
    return out[out.index.get_level_values(1) != ""]


# --- public API ------------------------------------------------------------------------------


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
    t = _with_handling_ratio(_touches_at(touches, f, stamp))
    return _pairs(t)


def entity_features(
    facts: pd.DataFrame,
    touches: pd.DataFrame,
    edges: pd.DataFrame,
    as_of: datetime | str,
    *,
    windows: Iterable[str] = ("30D", "90D"),
) -> dict[str, pd.DataFrame]:
    """Features of officers, agencies, procedures, submitters and agency pairs at ``as_of``.

    ``facts``, ``touches`` and ``edges`` are the stage-A tables (any row order, e.g.
    concatenated from partitions). Each window (calendar days, one of :data:`WINDOWS`)
    covers dossiers started in ``(as_of - window, as_of]`` and handovers made in it;
    columns are suffixed with the window (``late_share_90d``). Returns a frame per entity
    type, indexed by the entity's id (an agency pair as ``"A->B"``); an officer's dossiers
    are those where they are the main officer, an agency's those it received first.
    """
    windows = tuple(windows)
    unknown = [w for w in windows if w.upper() not in WINDOWS]
    if unknown:
        raise UnregisteredFeatureError(
            f"windows {unknown} have no registered features; use some of {list(WINDOWS)}"
        )
    stamp = as_timestamp(as_of)
    f_all = _facts_at(facts, stamp)
    t_all = _touches_at(touches, f_all, stamp)
    e_all = _edges_at(edges, f_all, stamp)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in INDEX_NAMES}
    for window in windows:
        f = _with_norms(f_all[_in_window(f_all["started_at"], stamp, window)])
        t = _with_handling_ratio(t_all[_in_window(t_all["started_at"], stamp, window)])
        e = e_all[_in_window(e_all["at"], stamp, window)]
        procedure = _dossier_stats(f, ENTITY_KEYS["procedure"])
        procedure["duration_p50"] = f.groupby(s.PROCEDURE_CODE, sort=True)["_duration"].median()
        frames = {
            "officer": _officer_stats(f, t),
            "agency": _agency_stats(f, e),
            "procedure": procedure,
            "submitter": _submitter_stats(f),
            "agency_pair": _pair_stats(e),
        }
        label = window_label(window)
        for name, frame in frames.items():
            parts[name].append(frame.add_suffix(f"_{label}"))
    out = {}
    for name, frames_ in parts.items():
        joined = pd.concat(frames_, axis=1, join="outer").sort_index()
        counts = [c for c in joined.columns if c.rsplit("_", 1)[0] in _COUNTS]
        joined[counts] = joined[counts].fillna(0).astype(np.int64)
        joined.index = pd.Index(joined.index.astype("string"), name=INDEX_NAMES[name])
        out[name] = joined
    return out


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
