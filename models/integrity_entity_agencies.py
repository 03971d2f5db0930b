"""Entity detectors about agencies: a receiver holding one sender's dossiers, rating
stuffing at a desk, off-route and ping-pong agency pairs. See
:mod:`models.integrity_entity` for the statistics of each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from models.integrity_entity_context import (
    HOLD_FLOOR_DAYS,
    HOLD_MIN_EXCESS_DAYS,
    HOLD_MIN_LATE,
    MIN_EFFECT,
    MIN_IN,
    MIN_OUT,
    MIN_RATINGS,
    Context,
    binomial_table,
    findings,
    fmt_p,
    log_strength,
    pct,
    supporting,
)
from models.integrity_entity_tests import bh_qvalues, rank_sum_tests

__all__ = ["agency_holds", "off_route_edge", "ping_pong_pair", "rating_stuffing"]


def _hold_tests(group: np.ndarray, pair: np.ndarray, share: np.ndarray, e: pd.DataFrame,
                late: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """Holding-share tests of each pair within ``group``, indexed by pair."""
    g, sub = pd.Series(group), pd.Series(pair)
    tests = rank_sum_tests(g, sub, pd.Series(share), alternative="greater")
    tests = tests[(tests["n_in"] >= MIN_IN) & (tests["n_out"] >= MIN_OUT)].copy()
    days = rank_sum_tests(g, sub, e["holding_days"].reset_index(drop=True), alternative="greater")
    days = days.reindex(tests.index)
    tests["excess_days"] = (days["median_in"] - days["median_out"]).to_numpy()
    frame = pd.DataFrame({"g": group, "s": pair, "l": late}).dropna()
    k = frame.groupby(["g", "s"])["l"].agg(["sum", "count"]).reindex(tests.index)
    tot = frame.groupby("g")["l"].agg(["sum", "count"]).reindex(tests.index.get_level_values(0))
    tests["late_in"] = (k["sum"] / k["count"]).to_numpy()
    tests["late_out"] = (tot["sum"].to_numpy() - k["sum"].to_numpy()) / np.maximum(
        tot["count"].to_numpy() - k["count"].to_numpy(), 1
    )
    tests = tests.droplevel(0).sort_values("p_value", kind="stable")
    return tests[~tests.index.duplicated()]


def agency_holds(ctx: Context) -> pd.DataFrame:
    """A receiver that holds the dossiers of one sender much longer than its others'.

    Holding times are compared as shares of the procedure's statutory time, among the
    receiver's first arrivals or among its returns (a dossier coming back to sign is
    held for less than one arriving to be appraised, whoever sends it). A receiver with
    too few arrivals from other senders (one sender for a procedure) is compared with
    every pair of the province instead. Beyond the ratio, a hold must cost at least
    :data:`HOLD_MIN_EXCESS_DAYS` and leave most of the pair's dossiers late
    (:data:`HOLD_MIN_LATE`).
    """
    e = ctx.edges.reset_index(drop=True)
    statutory = ctx.facts.set_index(s.DOSSIER_ID)["statutory_days"].astype("float64")
    days = e[s.DOSSIER_ID].map(statutory).to_numpy(dtype="float64")
    share = (e["holding_days"].to_numpy(dtype="float64") + HOLD_FLOOR_DAYS) / np.where(
        days > 0, days, np.nan
    )
    arrival = np.where(e["_return"].to_numpy(dtype=bool), ":return", ":first")
    receiver = e["to_agency"].astype(str).to_numpy(dtype=object)
    pair = (e["from_agency"].astype(str) + "->" + e["to_agency"].astype(str)).to_numpy()
    late = (
        e[s.DOSSIER_ID]
        .map(ctx.facts.set_index(s.DOSSIER_ID)["_late"])
        .to_numpy(dtype="float64", na_value=np.nan)
    )
    local = _hold_tests(receiver + arrival, pair, share, e, late)
    wide = _hold_tests(arrival.astype(object), pair, share, e, late)
    tests = pd.concat([local, wide[~wide.index.isin(local.index)]])
    if not len(tests):
        return pd.DataFrame()
    tests["q_value"] = bh_qvalues(tests["p_value"].to_numpy())
    tests["effect"] = tests["median_in"] / tests["median_out"]
    tests["strength"] = np.minimum.reduce(
        [
            log_strength(tests["effect"].to_numpy(), MIN_EFFECT["agency_holds"]),
            np.nan_to_num(tests["excess_days"].to_numpy() / HOLD_MIN_EXCESS_DAYS),
            np.nan_to_num(tests["late_in"].to_numpy() / HOLD_MIN_LATE),
        ]
    )
    recv = np.array([p.split("->")[1] for p in tests.index], dtype=object)
    send = np.array([p.split("->")[0] for p in tests.index], dtype=object)
    whom = np.where(tests.index.isin(local.index), "its other senders", "all agency pairs")
    med = pd.Series(e["holding_days"].to_numpy(dtype="float64")).groupby(pair).median()
    tests["agency_id"] = recv
    tests["reasons"] = [
        f"Agency {r} held {int(x['n_in'])} dossiers from {g} for a median "
        f"{100 * x['median_in']:.0f} % of their statutory time ({m:.1f} working days), "
        f"against {100 * x['median_out']:.0f} % for {int(x['n_out'])} from {w}; "
        f"{100 * x['late_in']:.0f} % of them late against {100 * x['late_out']:.0f} % ({p})."
        for r, g, x, m, w, p in zip(
            recv, send, tests.to_dict("records"), med.reindex(tests.index), whom,
            fmt_p(tests["p_value"]), strict=True,
        )
    ]  # fmt: skip
    order = -np.nan_to_num(share, nan=-1.0)
    support = supporting(ctx, pd.Series(pair), e[s.DOSSIER_ID], order)
    return findings("agency_pair", "agency_holds", tests, support)


def rating_stuffing(ctx: Context) -> pd.DataFrame:
    """A desk whose dossiers are nearly all rated, and rated five stars."""
    ev = ctx.events
    act = ev[s.ACTIVITY].astype(str)
    rating = ev[s.RATING].to_numpy(dtype="float64", na_value=np.nan)
    rated = ev[(act == s.RATED).to_numpy() & np.isfinite(rating)]
    desk = rated[s.AGENCY_ID].astype(str)
    five = rated[s.RATING].to_numpy(dtype="float64") >= 5 - 1e-9
    returned = ev[(act == s.RESULT_RETURNED).to_numpy()]
    n_ret = returned.drop_duplicates(s.DOSSIER_ID).groupby(returned[s.AGENCY_ID].astype(str)).size()
    n_rated = desk.groupby(desk.to_numpy()).size()
    n_five = pd.Series(five).groupby(desk.to_numpy()).sum()
    by_officer = pd.Series(rated[s.OFFICER_ID].notna().to_numpy()).groupby(desk.to_numpy()).mean()
    share = binomial_table(n_five, n_rated, "rating_stuffing")
    desks = n_rated.index.union(n_ret.index)
    n_ret = n_ret.reindex(desks).fillna(0)
    cover = binomial_table(n_rated.reindex(desks).clip(upper=n_ret), n_ret, "rating_stuffing")
    per = binomial_table(n_five.reindex(desks).clip(upper=n_ret), n_ret, "rating_stuffing")
    table = per[per["k"] > 0].copy()
    table["p_value"] = np.fmax(
        share["p_value"].reindex(table.index), cover["p_value"].reindex(table.index)
    )
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy())
    table["strength"] = np.minimum(
        table["strength"], n_rated.reindex(table.index).to_numpy() / MIN_RATINGS
    )
    table["reasons"] = [
        f"Desk {a}: {int(r['k'])} of {int(r['n'])} returned dossiers rated five stars "
        f"({sh}, against {b} at other desks); {sf} of its ratings are five stars, "
        f"{off} entered with an officer's id ({p})."
        for a, r, sh, b, sf, off, p in zip(
            table.index,
            table.to_dict("records"),
            pct(table["share"]),
            pct(table["base"]),
            pct(share["share"].reindex(table.index)),
            pct(by_officer.reindex(table.index).fillna(0)),
            fmt_p(table["p_value"]),
            strict=True,
        )
    ]
    table["agency_id"] = table.index.to_numpy(dtype=object)
    top = rated[five]
    order = (~top[s.OFFICER_ID].notna()).to_numpy(dtype="float64")
    support = supporting(ctx, top[s.AGENCY_ID].astype(str), top[s.DOSSIER_ID], order)
    return findings("agency", "rating_stuffing", table, support)


def _edge_rate(ctx: Context, flag: str, kind: str, per_sender: bool, what: str) -> pd.DataFrame:
    e = ctx.edges
    marked = e[flag].to_numpy(dtype="float64")
    known = np.isfinite(marked)
    e, marked = e[known], marked[known]
    if not len(e):
        return pd.DataFrame()
    pair = (e["from_agency"].astype(str) + "->" + e["to_agency"].astype(str)).to_numpy()
    k = pd.Series(marked).groupby(pair).sum()
    k = k[k > 0]
    if per_sender:
        sender = e["from_agency"].astype(str).to_numpy()
        out_n = pd.Series(1, index=range(len(e))).groupby(sender).size()
        n = pd.Series(out_n.reindex([p.split("->")[0] for p in k.index]).to_numpy(), k.index)
    else:
        n = pd.Series(1, index=range(len(e))).groupby(pair).size().reindex(k.index)
    table = binomial_table(k, n, kind)
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy())
    table["agency_id"] = [p.split("->")[1] for p in table.index]
    table["reasons"] = [
        f"Pair {pr}: {int(r['k'])} {what} among {int(r['n'])} handovers ({sh}, against {b} "
        f"across all pairs; {p})."
        for pr, r, sh, b, p in zip(
            table.index, table.to_dict("records"), pct(table["share"]), pct(table["base"]),
            fmt_p(table["p_value"]), strict=True,
        )
    ]  # fmt: skip
    hit = e[marked > 0]
    hit_pair = hit["from_agency"].astype(str) + "->" + hit["to_agency"].astype(str)
    order = -pd.DatetimeIndex(hit["at"]).asi8.astype("float64")
    support = supporting(ctx, hit_pair, hit[s.DOSSIER_ID], order)
    return findings("agency_pair", kind, table, support)


def off_route_edge(ctx: Context) -> pd.DataFrame:
    """Handovers on no approved route of the dossier's procedure (needs the catalogue)."""
    return _edge_rate(
        ctx, "_offroute", "off_route_edge", True, "handovers off every approved route"
    )


def ping_pong_pair(ctx: Context) -> pd.DataFrame:
    """A pair of agencies that bounce dossiers back and forth.

    Counted: ping-pong handovers (:mod:`features.graph_transfers`) that the dossier had
    already made once (A -> B again after B -> A). The feature's ping-pong also marks a
    return on the approved route (justice -> police -> justice -> desk), which is normal.
    """
    e = ctx.edges
    again = e.groupby([s.DOSSIER_ID, "from_agency", "to_agency"], sort=False, observed=True)
    repeat = again.cumcount().to_numpy() > 0
    bounce = e["_pingpong"].to_numpy(dtype=bool) & repeat
    e = e.assign(_pp=bounce.astype("float64"))
    return _edge_rate(ctx._replace(edges=e), "_pp", "ping_pong_pair", False, "repeated bounces")
