"""Entity detectors about people: officers (favouritism, selective slowness, off-hours
approvals), intermediaries (fan-out) and officer-intermediary rings. See
:mod:`models.integrity_entity` for the statistics of each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.graph_bipartite import bipartite_features
from models.integrity_entity_context import (
    FANOUT_APPLICANTS_PER_DOSSIER,
    FAVOURED_PER_OFFICER,
    MIN_EFFECT,
    MIN_FANOUT_DOSSIERS,
    MIN_IN,
    MIN_OUT,
    PAIR_ALPHA,
    SELECTIVE_P,
    Context,
    agency_of,
    binomial_table,
    findings,
    fmt_p,
    log_strength,
    pct,
    supporting,
)
from models.integrity_entity_tests import bh_qvalues, hypergeom_tests, rank_sum_tests

__all__ = [
    "favouritism",
    "intermediary_fanout",
    "off_hours_approvals",
    "ring",
    "selective_slowness",
]


def _pair_tests(ctx: Context) -> pd.DataFrame:
    """The two fastest intermediaries of each officer, each against the officer's other
    dossiers without the other one (so two favoured clients do not hide each other).

    A first pass ranks every pair with at least :data:`MIN_IN` dossiers by its median
    handling ratio; the officer's two fastest are then tested (Mann-Whitney U, less), and
    BH runs over all pairs of the first pass (the number of pairs looked at).
    """
    if "pairs" not in ctx.cache:
        ctx.cache["pairs"] = _fastest_pairs(ctx)
    return ctx.cache["pairs"]


def _fastest_pairs(ctx: Context) -> pd.DataFrame:
    t = ctx.touches
    officer = t[s.OFFICER_ID].astype(str)
    sub = t[s.SUBMITTER_ID].astype(str).where(t["_intermediated"], "")
    first = rank_sum_tests(officer, sub, t["_hratio"], alternative="less")
    first = first[(first.index.get_level_values(1) != "") & (first["n_in"] >= MIN_IN)]
    if not len(first):
        return first.assign(q_value=[], effect=[], strength=[], passes=[])
    ranked = first.sort_values("median_in", kind="stable").reset_index()
    ranked["rank"] = ranked.groupby("group").cumcount()
    top = ranked[ranked["rank"] < FAVOURED_PER_OFFICER]
    key = pd.MultiIndex.from_arrays([officer, sub])
    parts = []
    for k in range(FAVOURED_PER_OFFICER):
        mine = pd.MultiIndex.from_frame(top.loc[top["rank"] == k, ["group", "subgroup"]])
        rest = pd.MultiIndex.from_frame(top.loc[top["rank"] != k, ["group", "subgroup"]])
        keep = ~key.isin(rest)
        label = pd.Series(np.where(key.isin(mine), sub, ""))[keep]
        tests = rank_sum_tests(officer[keep], label, t["_hratio"][keep], alternative="less")
        parts.append(tests[tests.index.isin(mine)])
    tests = pd.concat(parts)
    tests = tests[(tests["n_in"] >= MIN_IN) & (tests["n_out"] >= MIN_OUT)].copy()
    p = tests["p_value"].to_numpy()
    tests["q_value"] = np.minimum(bh_qvalues(np.r_[p, np.ones(len(first) - len(p))])[: len(p)], 1)
    tests["effect"] = tests["median_in"] / tests["median_out"]
    tests["strength"] = log_strength(tests["effect"].to_numpy(), MIN_EFFECT["favouritism"])
    tests["passes"] = (tests["q_value"] < PAIR_ALPHA) & (tests["strength"] >= 1)
    return tests


def favouritism(ctx: Context) -> pd.DataFrame:
    """An officer much faster for one or two intermediaries than for their other dossiers."""
    tests = _pair_tests(ctx).reset_index()
    if not len(tests):
        return pd.DataFrame()
    tests = tests.sort_values(["q_value", "effect"], kind="stable")
    t = ctx.touches
    rows = []
    for etype, key in (
        ("officer", "group"),
        ("intermediary", "subgroup"),
    ):
        best = tests.drop_duplicates(key)
        best.index = pd.Index(best[key].to_numpy(dtype=object))
        who = "Officer" if etype == "officer" else "Intermediary"
        reasons = [
            f"{who} {e}: officer {r['group']} handled {int(r['n_in'])} dossiers of "
            f"intermediary {r['subgroup']} in a median {r['median_in']:.2f} times the "
            f"procedure's usual handling time, against {r['median_out']:.2f} for "
            f"{int(r['n_out'])} other dossiers ({p})."
            for e, r, p in zip(
                best.index, best.to_dict("records"), fmt_p(best["p_value"]), strict=True
            )
        ]
        best["reasons"] = reasons
        if etype == "officer":
            best["agency_id"] = agency_of(ctx, best.index)
        else:
            best["agency_id"] = agency_of(ctx, best["group"])
        # support: the passing pairs of the entity (else its best one), fastest first
        chosen = tests[tests["passes"]]
        chosen = pd.concat([chosen, tests.drop_duplicates(key)]).drop_duplicates(
            ["group", "subgroup"]
        )
        link = t.assign(
            group=t[s.OFFICER_ID].astype(str), subgroup=t[s.SUBMITTER_ID].astype(str)
        ).merge(chosen[["group", "subgroup"]], on=["group", "subgroup"])
        link = link[link["_intermediated"].to_numpy(dtype=bool)]
        support = supporting(ctx, link[key], link[s.DOSSIER_ID], link["_hratio"].to_numpy())
        rows.append(findings(etype, "favouritism", best, support))
    return pd.concat(rows, ignore_index=True)


def selective_slowness(ctx: Context) -> pd.DataFrame:
    """An officer whose dossiers filed without an intermediary are the slow ones.

    The test (``p_value``): the officer's direct dossiers against the direct dossiers of
    the other officers of their agency (Mann-Whitney U on handling ratios, greater). The
    effect, what makes the slowness *selective*: the late share of the officer's direct
    dossiers minus that of their dossiers filed through an intermediary (pairs found
    favoured left out), less the same gap among the colleagues of their agency; it counts
    only if the officer's gap is itself significant (Fisher exact, one-sided
    p < :data:`SELECTIVE_P`) and the direct dossiers are slower than the colleagues',
    else the strength is 0.
    """
    t = ctx.touches
    pairs = _pair_tests(ctx)
    passing = pairs[pairs["passes"]].index
    key = pd.MultiIndex.from_arrays([t[s.OFFICER_ID].astype(str), t[s.SUBMITTER_ID].astype(str)])
    t = t[~(key.isin(passing) & t["_intermediated"].to_numpy(dtype=bool))]
    via = t["_intermediated"].to_numpy(dtype=bool)
    side = pd.Series(np.where(via, "via", "direct"))
    officer = t[s.OFFICER_ID].astype(str)
    within = rank_sum_tests(officer, side, t["_hratio"], alternative="greater")
    if not len(within) or "direct" not in within.index.get_level_values(1):
        return pd.DataFrame()
    within = pd.DataFrame(within.xs("direct", level=1))
    within = within[(within["n_in"] >= MIN_OUT) & (within["n_out"] >= MIN_IN)]
    direct = t[~via]
    agency = direct[s.OFFICER_ID].astype(str).map(ctx.officer_agency).fillna("")
    peers = rank_sum_tests(
        agency, direct[s.OFFICER_ID].astype(str), direct["_hratio"], alternative="greater"
    )
    peers = peers[peers["n_out"] >= MIN_OUT].droplevel(0)
    peer_cols = peers[["p_value", "median_out", "n_out"]].add_suffix("_peers")
    tests = within.join(peer_cols, how="inner")
    if not len(tests):
        return pd.DataFrame()
    frame = t.assign(_side=side.to_numpy(), _o=officer.to_numpy())
    counts = frame.groupby(["_o", "_side"])["_late"].agg(["sum", "count"])
    d = counts.xs("direct", level=1).reindex(tests.index).fillna(0)
    v = counts.xs("via", level=1).reindex(tests.index).fillna(0) if via.any() else d * 0
    tests["p_within"] = hypergeom_tests(d["sum"], d["count"], v["sum"], v["count"])
    tests = tests.drop(columns="p_value").rename(columns={"p_value_peers": "p_value"})
    tests["q_value"] = bh_qvalues(tests["p_value"].to_numpy())
    direct_late = d["sum"] / d["count"].where(d["count"] > 0)
    via_late = v["sum"] / v["count"].where(v["count"] > 0)
    # the same gap among the colleagues (intermediaries file other procedures, often
    # later-prone ones for citizens filing alone): only the officer's excess counts
    home = pd.Series(agency_of(ctx, counts.index.get_level_values(0)), index=counts.index)
    by_agency = counts.groupby([home.to_numpy(), counts.index.get_level_values(1)]).sum()
    mine = agency_of(ctx, tests.index)
    gap = []
    for side_name, own in (("direct", d), ("via", v)):
        keys = pd.MultiIndex.from_arrays([mine, np.full(len(mine), side_name)])
        total = by_agency.reindex(keys)
        rest_n = total["count"].to_numpy() - own["count"].to_numpy()
        rest = (total["sum"].to_numpy() - own["sum"].to_numpy()) / np.where(
            rest_n > 0, rest_n, np.nan
        )
        gap.append(rest)
    colleagues_gap = np.nan_to_num(gap[0] - gap[1], nan=0.0)
    tests["colleagues_gap"] = colleagues_gap
    tests["effect"] = (direct_late - via_late).to_numpy() - colleagues_gap
    strength = np.nan_to_num(tests["effect"].to_numpy() / MIN_EFFECT["selective_slowness"])
    ratio_ok = tests["median_in"] > tests["median_out_peers"]
    tests["strength"] = np.where((tests["p_within"] < SELECTIVE_P) & ratio_ok, strength, 0.0)
    tests["reasons"] = [
        f"Officer {o}: {int(r['n_in'])} dossiers filed without an intermediary took a median "
        f"{r['median_in']:.2f} times the procedure's usual handling time ({dl} late), against "
        f"{r['median_out']:.2f} for {int(r['n_out'])} filed through one ({vl} late; "
        f"Fisher p = {r['p_within']:.3g}; a gap of {100 * r['colleagues_gap']:.0f} points "
        f"among colleagues) and {r['median_out_peers']:.2f} for "
        f"{int(r['n_out_peers'])} direct dossiers of colleagues ({p})."
        for o, r, dl, vl, p in zip(
            tests.index,
            tests.to_dict("records"),
            pct(direct_late),
            pct(via_late),
            fmt_p(tests["p_value"]),
            strict=True,
        )
    ]
    tests["agency_id"] = agency_of(ctx, tests.index)
    support = supporting(
        ctx, direct[s.OFFICER_ID].astype(str), direct[s.DOSSIER_ID], -direct["_hratio"].to_numpy()
    )
    return findings("officer", "selective_slowness", tests, support)


def off_hours_approvals(ctx: Context) -> pd.DataFrame:
    """An officer approving at night, at weekends or on holidays."""
    f = ctx.facts
    off = f["_approval_off"].to_numpy(dtype="float64")
    known = np.isfinite(off)
    officer = f["main_officer_id"].astype(str)[known]
    n = officer.groupby(officer.to_numpy()).size()
    k = pd.Series(off[known]).groupby(officer.to_numpy()).sum()
    table = binomial_table(k, n, "off_hours_approvals", ratio=False)
    table = table[table["k"] > 0]
    table["reasons"] = [
        f"Officer {o} approved {int(r['k'])} of {int(r['n'])} dossiers outside office hours "
        f"or on a day off ({sh}), against {b} for all other officers ({p})."
        for o, r, sh, b, p in zip(
            table.index,
            table.to_dict("records"),
            pct(table["share"]),
            pct(table["base"]),
            fmt_p(table["p_value"]),
            strict=True,
        )
    ]
    table["agency_id"] = agency_of(ctx, table.index)
    odd = f[(f["_approval_off"] == 1).to_numpy(dtype=bool, na_value=False)]
    order = -pd.DatetimeIndex(odd["started_at"]).asi8.astype("float64")
    support = supporting(ctx, odd["main_officer_id"].astype(str), odd[s.DOSSIER_ID], order)
    return findings("officer", "off_hours_approvals", table, support)


def intermediary_fanout(ctx: Context) -> pd.DataFrame:
    """An intermediary filing for many unrelated applicants across local jurisdictions."""
    f = ctx.facts[ctx.facts["_intermediated"]]
    if not len(f):
        return pd.DataFrame()
    jur = f[s.JURISDICTION].astype(str)
    local = (jur != jur.value_counts().index[0]).to_numpy()
    sub = f[s.SUBMITTER_ID].astype(str).to_numpy()
    n = pd.Series(1, index=f.index).groupby(sub).size()
    k = pd.Series(local.astype(float)).groupby(sub).sum()
    table = binomial_table(k, n, "intermediary_fanout")
    apd = f.groupby(sub)[s.APPLICANT_ID].nunique() / n
    places = f[local].groupby(sub[local])[s.JURISDICTION].nunique().reindex(n.index).fillna(0)
    table["strength"] = np.where(
        apd >= FANOUT_APPLICANTS_PER_DOSSIER,
        np.minimum(table["strength"], n / MIN_FANOUT_DOSSIERS),
        0.0,
    )
    table = table[table["k"] > 0]
    table["reasons"] = [
        f"Intermediary {i} filed {int(r['n'])} dossiers for {int(a * r['n'])} distinct "
        f"applicants, {int(r['k'])} of them ({sh}) in {int(pl)} local jurisdictions, "
        f"against {b} for other intermediaries ({p})."
        for i, r, a, sh, pl, b, p in zip(
            table.index,
            table.to_dict("records"),
            apd.reindex(table.index),
            pct(table["share"]),
            places.reindex(table.index),
            pct(table["base"]),
            fmt_p(table["p_value"]),
            strict=True,
        )
    ]
    first = f.groupby(sub)["first_agency_id"].agg(lambda a: a.value_counts().index[0])
    table["agency_id"] = first.reindex(table.index).astype(object)
    mine = f[local]
    support = supporting(
        ctx, mine[s.SUBMITTER_ID].astype(str), mine[s.DOSSIER_ID], np.zeros(len(mine))
    )
    return findings("intermediary", "intermediary_fanout", table, support)


def ring(ctx: Context) -> pd.DataFrame:
    """A community of officers and intermediaries whose dossiers go through faster."""
    people = bipartite_features(ctx.facts)
    oc = people["officer"]["community_id"].astype("Int64").astype("string")
    sc = people["submitter"]["community_id"].astype("Int64").astype("string")
    t = ctx.touches
    mine = t[s.OFFICER_ID].astype(str).map(oc)
    theirs = t[s.SUBMITTER_ID].astype(str).map(sc)
    inside = (mine == theirs).to_numpy(dtype=bool, na_value=False) & t["_intermediated"]
    t = t.assign(_c=mine, _in=np.where(inside, "in", "out"))
    t = t[t["_c"].notna()]
    ins = t[t["_in"] == "in"]
    officers = ins.groupby("_c")[s.OFFICER_ID].nunique()
    subs = ins.groupby("_c")[s.SUBMITTER_ID].nunique()
    rings = officers.index[(officers >= 2) & (subs.reindex(officers.index) >= 2)]
    t = t[t["_c"].isin(rings)]
    if not len(t):
        return pd.DataFrame()
    tests = rank_sum_tests(t["_c"], t["_in"], t["_hratio"], alternative="less")
    if "in" not in tests.index.get_level_values(1):
        return pd.DataFrame()
    tests = pd.DataFrame(tests.xs("in", level=1))
    tests = tests[(tests["n_in"] >= MIN_OUT) & (tests["n_out"] >= MIN_OUT)].copy()
    if not len(tests):
        return pd.DataFrame()
    tests["q_value"] = bh_qvalues(tests["p_value"].to_numpy())
    tests["effect"] = tests["median_in"] / tests["median_out"]
    tests["strength"] = log_strength(tests["effect"].to_numpy(), MIN_EFFECT["ring"])
    ins = t[t["_in"] == "in"]
    names = ins.groupby("_c").agg(
        o=(s.OFFICER_ID, lambda x: sorted(set(map(str, x)))),
        i=(s.SUBMITTER_ID, lambda x: sorted(set(map(str, x)))),
    )
    ids = {
        c: _ring_id(list(o), list(i))
        for c, o, i in zip(names.index, names["o"], names["i"], strict=True)
    }
    busiest = ins.groupby("_c")[s.OFFICER_ID].agg(lambda x: x.astype(str).value_counts().index[0])
    tests["agency_id"] = busiest.reindex(tests.index).map(ctx.officer_agency)
    tests["reasons"] = [
        f"Ring of officers {_names_of(names.loc[c, 'o'])} and intermediaries "
        f"{_names_of(names.loc[c, 'i'])}: {int(r['n_in'])} of their dossiers handled in a "
        f"median {r['median_in']:.2f} times the usual time, against {r['median_out']:.2f} "
        f"for {int(r['n_out'])} of the officers' other dossiers ({p})."
        for c, r, p in zip(
            tests.index, tests.to_dict("records"), fmt_p(tests["p_value"]), strict=True
        )
    ]
    support = supporting(ctx, ins["_c"], ins[s.DOSSIER_ID], ins["_hratio"].to_numpy())
    found = findings("ring", "ring", tests, support)
    found["entity_id"] = found["entity_id"].map(ids)
    return found


def _ring_id(officers: list[str], intermediaries: list[str]) -> str:
    """A readable id: up to three officers and three intermediaries, and how many more."""
    shown = officers[:3] + intermediaries[:3]
    more = len(officers) + len(intermediaries) - len(shown)
    return "ring:" + ",".join(shown) + (f",+{more}" if more else "")


def _names_of(values: pd.Series, limit: int = 5) -> str:
    names = list(values)
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )
