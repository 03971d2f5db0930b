"""Per-entity statistics of one window of prepared stage-A tables (the dossiers, touches
and handovers of :func:`features.entities.entity_tables` in the window): the aggregations
behind :func:`features.entities.entity_features` and its officer-intermediary pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.entity_stats import IQR_TO_SIGMA, complement_quantiles, safe_ratio

__all__ = [
    "ENTITY_KEYS",
    "agency_stats",
    "dossier_stats",
    "officer_pairs",
    "officer_stats",
    "pair_stats",
    "submitter_stats",
    "with_handling_ratio",
    "with_norms",
]

#: The column of a dossier table (:func:`dossier_facts`) naming each entity it belongs to.
ENTITY_KEYS: dict[str, str] = {
    "officer": "main_officer_id",
    "agency": "first_agency_id",
    "procedure": s.PROCEDURE_CODE,
    "submitter": s.SUBMITTER_ID,
}
#: Pairs with fewer dossiers do not enter an officer's ``favour_ratio_min``.
MIN_PAIR_DOSSIERS = 3


def with_norms(f: pd.DataFrame) -> pd.DataFrame:
    """Duration relative to the median duration of the procedure over the same window."""
    norm = f.groupby("_proc", sort=True)["_duration"].transform("median")
    return f.assign(_speed=safe_ratio(f["_duration"], norm))


def dossier_stats(f: pd.DataFrame, key: str) -> pd.DataFrame:
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


def share_of_top(f: pd.DataFrame, key: str, other: str) -> pd.Series:
    """Per ``key``: the share of its dossiers whose ``other`` is its most frequent one."""
    both = f[f[key].notna() & f[other].notna()]
    top = both.groupby([key, other], sort=True).size().groupby(level=0).max()
    total = f[f[key].notna()].groupby(key, sort=True).size()
    return pd.Series(safe_ratio(top.reindex(total.index, fill_value=0), total), total.index)


def officer_stats(f: pd.DataFrame, t: pd.DataFrame) -> pd.DataFrame:
    key = ENTITY_KEYS["officer"]
    out = dossier_stats(f, key).drop(columns="offhours_share")
    mine = f[f[key].notna()]
    g = mine.groupby(key, sort=True)
    out["top_submitter_share"] = share_of_top(f, key, s.SUBMITTER_ID)
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
    pairs = officer_pairs(t)
    strong = pairs[pairs["pair_dossiers"] >= MIN_PAIR_DOSSIERS]
    touched["favour_ratio_min"] = strong.groupby(level=0)["favour_ratio"].min()
    return out.join(touched, how="outer")


def submitter_stats(f: pd.DataFrame) -> pd.DataFrame:
    key = ENTITY_KEYS["submitter"]
    out = dossier_stats(f, key)
    g = f[f[key].notna()].groupby(key, sort=True)
    out["applicants"] = g[s.APPLICANT_ID].nunique()
    out["procedures"] = g[s.PROCEDURE_CODE].nunique()
    out["officers"] = g[ENTITY_KEYS["officer"]].nunique()
    out["applicants_per_dossier"] = safe_ratio(out["applicants"], out["dossiers"])
    out["top_officer_share"] = share_of_top(f, key, ENTITY_KEYS["officer"])
    return out


def agency_stats(f: pd.DataFrame, e: pd.DataFrame) -> pd.DataFrame:
    out = dossier_stats(f, ENTITY_KEYS["agency"])
    moves = pd.DataFrame(
        {
            "transfers_in": e.groupby("to_agency", sort=True).size(),
            "transfers_out": e.groupby("from_agency", sort=True).size(),
            "holding_days_p50": e.groupby("to_agency", sort=True)["_hold"].median(),
        }
    )
    return out.join(moves, how="outer")


def pair_stats(e: pd.DataFrame) -> pd.DataFrame:
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


def with_handling_ratio(t: pd.DataFrame) -> pd.DataFrame:
    norm = t.groupby("_proc", sort=True)["handling_days"].transform("median")
    return t.assign(_hratio=safe_ratio(t["handling_days"], norm))


def officer_pairs(t: pd.DataFrame) -> pd.DataFrame:
    """Officer x submitter rows of :func:`features.entities.officer_submitter_pairs`."""
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
