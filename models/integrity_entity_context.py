"""What the entity detectors of :mod:`models.integrity_entity` share: the tables they read
(:class:`Context`, :func:`build_context`), their thresholds, and the helpers that turn
tests into finding rows.

Each detector (:mod:`models.integrity_entity_people`,
:mod:`models.integrity_entity_agencies`) reads the shared :class:`Context` (the stage-A
tables of the feature layer cut at ``as_of``) and returns candidate findings:
``entity_type``, ``entity_id``, ``kind``, ``p_value``, ``q_value`` (Benjamini-Hochberg
over the detector's tests), ``effect``, ``strength`` (1 = the kind's minimum effect,
:data:`MIN_EFFECT`), ``reasons``, ``dossiers`` (strongest first, at most
:data:`MAX_DOSSIERS`), ``n_dossiers``, ``jurisdiction`` and ``agency_id``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from features import schema as s
from features.engine import Reference
from features.entities import entity_tables
from features.entity_aggregates import with_handling_ratio
from features.entity_facts import dossier_facts, officer_touches, transfer_edges
from features.graph_transfers import transfer_tables
from models.integrity_entity_tests import (
    bh_qvalues,
    binomial_tests,
)

__all__ = [
    "MAX_DOSSIERS",
    "MIN_EFFECT",
    "Context",
    "agency_of",
    "binomial_table",
    "build_context",
    "findings",
    "fmt_p",
    "log_strength",
    "pct",
    "supporting",
]

#: supporting dossiers listed per finding.
MAX_DOSSIERS = 50
#: the minimum effect of each kind (a ratio of medians or shares, or a share).
MIN_EFFECT: dict[str, float] = {
    "favouritism": 0.5,  # the pair's median handling ratio at most half the officer's others
    "selective_slowness": 0.3,  # direct filers' late share 30 points above intermediated
    "off_hours_approvals": 0.05,  # at least 5 % of approvals at night / on days off
    "agency_holds": 1.5,  # the sender's dossiers held at least 1.5 times as long
    "rating_stuffing": 2.0,  # five-star ratings per returned dossier, twice other desks'
    "intermediary_fanout": 1.75,  # local share 1.75 times other intermediaries'
    "off_route_edge": 2.0,
    "ping_pong_pair": 2.0,
    "ring": 0.5,
}
#: counts below which a test is not run, or an effect does not reach strength 1.
MIN_IN = 5  # dossiers of the pair / subgroup tested
MIN_OUT = 10  # dossiers it is compared with
MIN_EVENTS = 5  # off-hours approvals, off-route or ping-pong handovers
MIN_RATINGS = 20
MIN_FANOUT_DOSSIERS = 20
#: applicants per dossier an intermediary with fan-out must have (unrelated applicants).
FANOUT_APPLICANTS_PER_DOSSIER = 0.9
#: working days added to both medians of holding times (a receiver that usually holds
#: nothing for an hour is not "infinitely" slower at two hours).
HOLD_FLOOR_DAYS = 0.1
#: within-officer p-value (direct slower than intermediated) that makes slowness selective.
SELECTIVE_P = 0.001
#: excess holding (working days, pair's median over the other senders') of a hold's minimum.
HOLD_MIN_EXCESS_DAYS = 1.0
#: late share of a held pair's dossiers at a hold's minimum.
HOLD_MIN_LATE = 0.5
#: intermediaries per officer tested for favouritism ("one or two").
FAVOURED_PER_OFFICER = 2
#: q-value of a favoured pair whose dossiers selective slowness leaves out.
PAIR_ALPHA = 0.01


class Context(NamedTuple):
    """What the detectors read, all cut at ``as_of``."""

    events: pd.DataFrame
    facts: pd.DataFrame  # entity_tables' facts, with ``_intermediated``
    touches: pd.DataFrame  # with ``_hratio`` and ``_intermediated``
    edges: pd.DataFrame  # prepared handovers (return / ping-pong / off-route marks)
    officer_agency: pd.Series  # officer -> most frequent agency
    as_of: pd.Timestamp
    cache: dict[str, pd.DataFrame]  # results shared by detectors (the officer pair tests)


def build_context(events: pd.DataFrame, ref: Reference, as_of: pd.Timestamp) -> Context:
    """The stage-A tables at ``as_of`` (events after it are dropped first)."""
    ev = events[(events[s.TIMESTAMP] <= as_of).to_numpy(dtype=bool, na_value=False)]
    ev = s.sort_events(ev)
    cal = ref.calendar
    facts = dossier_facts(ev, cal, catalogue=ref.catalogue)
    touches = officer_touches(ev, cal)
    edges = transfer_edges(ev, cal)
    tables = entity_tables(facts, touches, edges, as_of)
    f = tables.facts
    f = f.assign(_intermediated=_intermediated(f))
    flag = f.set_index(s.DOSSIER_ID)["_intermediated"]
    t = with_handling_ratio(tables.touches)
    t = t.assign(_intermediated=t[s.DOSSIER_ID].map(flag).fillna(False).astype(bool))
    prepared, _ = transfer_tables(edges, ref.catalogue, ref.agencies, as_of)
    pairs = ev[[s.OFFICER_ID, s.AGENCY_ID]].dropna().astype(str).value_counts(sort=True)
    officer_agency = (
        pairs.reset_index().drop_duplicates(s.OFFICER_ID).set_index(s.OFFICER_ID)[s.AGENCY_ID]
    )
    return Context(ev, f, t, prepared, officer_agency, as_of, {})


def _intermediated(f: pd.DataFrame) -> np.ndarray:
    sub = f[s.SUBMITTER_ID].astype("string")
    return (sub.notna() & (sub != f[s.APPLICANT_ID].astype("string"))).to_numpy(
        dtype=bool, na_value=False
    )


# --- helpers ---------------------------------------------------------------------------------


def agency_of(ctx: Context, officers: pd.Index | pd.Series) -> np.ndarray:
    """Each officer's most frequent agency (None if unknown)."""
    ids = pd.Index(pd.Series(officers).astype(str).to_numpy(dtype=object))
    return ctx.officer_agency.reindex(ids).to_numpy(dtype=object)


def log_strength(effect: np.ndarray, minimum: float) -> np.ndarray:
    """``log(effect) / log(minimum)``: 1 at the minimum effect, larger beyond it."""
    e = np.clip(np.asarray(effect, dtype="float64"), 1e-6, 1e6)
    return np.nan_to_num(np.log(e) / np.log(minimum), nan=0.0)


def supporting(
    ctx: Context, keys: pd.Series, dossiers: pd.Series, order: np.ndarray
) -> pd.DataFrame:
    """Per key: its dossiers strongest first (smallest ``order``), capped; their count and
    most common jurisdiction."""
    frame = pd.DataFrame(
        {
            "k": keys.to_numpy(dtype=object),
            "d": dossiers.astype(str).to_numpy(dtype=object),
            "o": np.asarray(order, dtype="float64"),
        }
    )
    frame = frame.sort_values(["k", "o", "d"], kind="stable").drop_duplicates(["k", "d"])
    jur = ctx.facts.set_index(s.DOSSIER_ID)[s.JURISDICTION].astype(str)
    frame["j"] = frame["d"].map(jur)
    g = frame.groupby("k", sort=True)
    top = frame.groupby("k", sort=True).head(MAX_DOSSIERS).groupby("k", sort=True)["d"]
    jmode = frame.groupby(["k", "j"]).size().rename("n").reset_index()
    jmode = jmode.sort_values("n", ascending=False, kind="stable")
    return pd.DataFrame(
        {
            "dossiers": top.agg(list),
            "n_dossiers": g.size(),
            "jurisdiction": jmode.drop_duplicates("k").set_index("k")["j"],
        }
    )


def findings(
    entity_type: str,
    kind: str,
    table: pd.DataFrame,
    support: pd.DataFrame,
) -> pd.DataFrame:
    """Standard finding rows from ``table`` (indexed by entity id, with ``p_value``,
    ``q_value``, ``effect``, ``strength``, ``reasons``, ``agency_id``) and its support."""
    out = table[["p_value", "q_value", "effect", "strength", "reasons", "agency_id"]].join(
        support, how="left"
    )
    out["dossiers"] = [d if isinstance(d, list) else [] for d in out["dossiers"]]
    out["n_dossiers"] = out["n_dossiers"].fillna(0).astype(np.int64)
    out.index.name = "entity_id"
    out = out.reset_index()
    out.insert(0, "entity_type", entity_type)
    out.insert(2, "kind", kind)
    return out


def pct(x: pd.Series | np.ndarray) -> list[str]:
    return [f"{100 * v:.1f} %" for v in np.asarray(x, dtype="float64")]


def fmt_p(p: pd.Series | np.ndarray) -> list[str]:
    return ["p < 0.001" if v < 0.001 else f"p = {v:.3f}" for v in np.asarray(p, dtype=float)]


def binomial_table(k: pd.Series, n: pd.Series, kind: str, *, ratio: bool = True) -> pd.DataFrame:
    """Counts ``k`` of ``n`` per entity against everyone else's pooled rate."""
    k = k.reindex(n.index).fillna(0).astype("float64")
    n = n.astype("float64")
    others = np.maximum(n.sum() - n, 1.0)
    p0: pd.Series = (k.sum() - k) / others
    share = k / n.where(n > 0)
    out = pd.DataFrame({"k": k, "n": n, "share": share, "base": p0})
    out["p_value"] = binomial_tests(k.to_numpy(), n.to_numpy(), p0.to_numpy())
    out["q_value"] = bh_qvalues(out["p_value"].to_numpy())
    out["effect"] = share / np.maximum(p0, 1e-6) if ratio else share
    size = (k / MIN_EVENTS).to_numpy()
    if ratio:
        scale = log_strength(out["effect"].to_numpy(), MIN_EFFECT[kind])
    else:
        scale = (out["effect"] / MIN_EFFECT[kind]).to_numpy()
    out["strength"] = np.minimum(np.nan_to_num(scale), size)
    return out
