"""Entity-level integrity: officers, intermediaries, agencies and agency pairs that behave
suspiciously, each finding with a test, an effect size, a plain-language reason and the
dossiers that support it.

:func:`detect_entities` reads an event log up to ``as_of`` and returns one row per
(entity_type, entity_id, kind) finding (columns in :data:`COLUMNS`). Entity types and
kinds are the simulator's (``simulator.config.ENTITY_ANOMALIES``), so evaluation joins on
them, plus three kinds that have no simulated ground truth:

=======================  ==============  ============================================
kind                     entity_type     statistic, test, effect size
=======================  ==============  ============================================
favouritism              officer,        handling ratio (officer's handling time over
                         intermediary    the procedure's median) of each of the officer's
                                         two fastest intermediaries vs the officer's
                                         other dossiers (without the other one);
                                         Mann-Whitney U (less); ratio of medians <= 0.5
selective_slowness       officer         handling ratio of the officer's direct dossiers
                                         vs colleagues' direct dossiers (same agency);
                                         Mann-Whitney U (greater); effect = late share
                                         direct minus via an intermediary (favoured pairs
                                         left out), less the colleagues' same gap,
                                         >= 0.3; the gap itself Fisher p < 0.001
off_hours_approvals      officer         approvals at night / on days off; binomial vs
                                         all other officers' rate; effect = share
                                         >= 5 % and >= 5 such approvals
agency_holds             agency_pair     receiver's holding time as a share of the
                                         statutory time for this sender vs its other
                                         senders (first arrivals and returns apart; all
                                         pairs if it has no others); Mann-Whitney U
                                         (greater); ratio of medians >= 1.5, >= 1 working
                                         day more, >= half of the pair's dossiers late
rating_stuffing          agency          five-star ratings per returned dossier at the
                                         rating desk; binomial on both the five-star share
                                         and the rating coverage vs other desks (the
                                         larger p); ratio to other desks >= 2, >= 20
                                         ratings
intermediary_fanout      intermediary    share of its dossiers in local jurisdictions
                                         (any but the province's, the most common one of
                                         intermediated dossiers); binomial vs other
                                         intermediaries; ratio of shares >= 1.75, >= 20
                                         dossiers, >= 0.9 distinct applicants per dossier
off_route_edge           agency_pair     handovers on no approved route of the
                                         procedure, among the sender's; binomial vs the
                                         pooled rate; ratio >= 2, >= 5 handovers
ping_pong_pair           agency_pair     ping-pong handovers the dossier had already made
                                         (A -> B again after B -> A) among the pair's;
                                         binomial vs the pooled rate; ratio >= 2, >= 5
ring                     ring            Louvain community of the officer-intermediary
                                         graph (:mod:`features.graph_bipartite`), >= 2
                                         officers and >= 2 intermediaries, whose inside
                                         dossiers its officers handle faster than their
                                         others; Mann-Whitney U (less); ratio <= 0.5
=======================  ==============  ============================================

A function, not an estimator: nothing is learned from a training period; every test
compares an entity with its peers in the same log at ``as_of`` (an officer with their own
other dossiers and their colleagues, a pair with the receiver's other senders), so a
``fit`` would have no state to keep. Statistics live in :mod:`models.integrity_entity_tests`,
the shared tables and thresholds in :mod:`models.integrity_entity_context`, the detectors in
:mod:`models.integrity_entity_people` and :mod:`models.integrity_entity_agencies`.

Choices where the issue is silent, as an inspector would expect them:

* *Intermediary* = a submitter other than the applicant (the simulated logs, like the
  national portal, write the applicant as submitter of a dossier filed alone; the
  feature layer's ``submitted_share`` counts any submitter). An officer's effect is
  measured against their own other dossiers, so a slow or fast officer is not suspect
  per se; the officer tests use the feature layer's handling ratio
  (:func:`features.entity_aggregates.with_handling_ratio`), already relative to the
  procedure.
* *Reused and refined features*: the stage-A tables, the handling ratio, the prepared
  handovers with their return / ping-pong / off-route marks
  (:func:`features.graph_transfers.transfer_tables`) and the Louvain communities are
  reused as they are. The pair table's ``holding_anomaly_ratio`` is not: it compares
  raw holding days of all arrivals, so a receiver's first arrivals (to appraise) look
  "held" against its returns (to sign) and one procedure against another; the hold test
  compares shares of the statutory time, first arrivals and returns apart. The
  feature's ping-pong also marks returns on an approved route, which are normal.
* *Multiple testing*: within each detector, Benjamini-Hochberg over every test it ran
  (every officer-intermediary pair looked at, every officer, every pair, ...):
  ``q_value`` is the false discovery rate at which the finding would still be reported.
  An officer's favouritism row carries its best pair's test.
* *Score* in [0, 1]: half evidence (``-log10 q`` over :data:`SCORE_LOG10_Q`, capped at 1),
  half effect (``strength`` over 2, capped), where ``strength`` is the effect on a scale
  on which 1 is the minimum effect of the kind (:data:`MIN_EFFECT`, log scale for ratios;
  the smaller of that and the count over its minimum where counts matter). An entity's
  score is the maximum over its kinds (:func:`entity_summary`).
* *Alert budget* (scale-free): an alert needs ``q_value < alpha`` (:data:`ALPHA`) **and**
  ``strength >= 1`` (the effect beyond the kind's minimum), and at most ``max_alerts``
  (:data:`MAX_ALERTS_PER_SCOPE`) alerts per budget scope and kind, the highest scores
  first. The scope is the province: the first :data:`SCOPE_CHARS` characters of the
  alert's jurisdiction (Vietnamese administrative codes: 2 digits province, 5 commune),
  the jurisdiction being the most common one among the supporting dossiers. A larger
  province does not get more false alerts from the q-value (a rate), and an inspectorate
  does not get more alerts of one kind than it can follow up.
* Rows with ``q_value >= REPORT_Q`` are dropped (not evidence of anything); the others
  are kept, alert or not, so an inspector sees the near misses.
* ``agency_id``: an officer's most frequent agency, an intermediary's most frequent
  receiving agency, a pair's receiver, a ring's busiest officer's agency.
* Point in time: only events at or before ``as_of`` are read, and outcomes (holding
  times, lateness) count once known by then (:func:`features.entities.entity_tables`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd

from features import schema as s
from features.engine import Reference
from features.entity_stats import as_timestamp
from models.integrity_entity_agencies import (
    agency_holds,
    off_route_edge,
    ping_pong_pair,
    rating_stuffing,
)
from models.integrity_entity_context import Context, build_context
from models.integrity_entity_people import (
    favouritism,
    intermediary_fanout,
    off_hours_approvals,
    ring,
    selective_slowness,
)

__all__ = [
    "ALPHA",
    "COLUMNS",
    "DETECTORS",
    "MAX_ALERTS_PER_SCOPE",
    "detect_entities",
    "entity_summary",
]

#: false discovery rate an alert must pass (``GIAMSAT_ENTITY_ALPHA``).
ALPHA = 0.01
#: alerts per province and kind at most (``GIAMSAT_ENTITY_MAX_ALERTS``).
MAX_ALERTS_PER_SCOPE = 10
#: findings with a q-value at or above this are not reported at all.
REPORT_Q = 0.1
#: characters of the jurisdiction code that name the budget scope (the province).
SCOPE_CHARS = 2
#: ``-log10 q`` at which the evidence half of the score is full.
SCORE_LOG10_Q = 10.0
#: reasons of an entity's strongest kinds in :func:`entity_summary`.
TOP_REASONS = 2

#: the detectors by kind (each a function of the shared :class:`Context`).
DETECTORS: dict[str, Callable[[Context], pd.DataFrame]] = {
    "favouritism": favouritism,
    "selective_slowness": selective_slowness,
    "off_hours_approvals": off_hours_approvals,
    "agency_holds": agency_holds,
    "rating_stuffing": rating_stuffing,
    "intermediary_fanout": intermediary_fanout,
    "off_route_edge": off_route_edge,
    "ping_pong_pair": ping_pong_pair,
    "ring": ring,
}

COLUMNS = [
    "entity_type",
    "entity_id",
    "kind",
    "score",
    "p_value",
    "q_value",
    "effect",
    "strength",
    "reasons",
    "dossiers",
    "n_dossiers",
    "jurisdiction",
    "agency_id",
    "alert",
    "entity_score",
]


def detect_entities(
    events: pd.DataFrame,
    ref: Reference,
    *,
    as_of: datetime | str | None = None,
    alpha: float = ALPHA,
    max_alerts: int = MAX_ALERTS_PER_SCOPE,
    detectors: dict[str, Callable[[Context], pd.DataFrame]] | None = None,
) -> pd.DataFrame:
    """Entity-level integrity findings of a canonical event log at ``as_of``.

    ``as_of`` (tz-aware) defaults to the last event; events after it are ignored.
    ``detectors`` (default :data:`DETECTORS`, by kind) may run a subset. Returns one row per
    finding with the columns of :data:`COLUMNS`, the highest scores first; ``alert`` marks
    the findings within the budget (``q_value < alpha``, ``strength >= 1``, at most
    ``max_alerts`` per province and kind).
    """
    stamp = pd.Timestamp(events[s.TIMESTAMP].max()) if as_of is None else as_timestamp(as_of)
    ctx = build_context(events, ref, stamp)
    parts = [run(ctx) for run in (detectors or DETECTORS).values()]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    found = pd.concat(parts, ignore_index=True)
    found = found[found["q_value"] < REPORT_Q].reset_index(drop=True)
    return _budget(_scored(found), alpha, max_alerts)[COLUMNS]


def _scored(found: pd.DataFrame) -> pd.DataFrame:
    q = found["q_value"].to_numpy(dtype="float64")
    evidence = np.clip(-np.log10(np.maximum(q, 1e-300)) / SCORE_LOG10_Q, 0, 1)
    strength = np.nan_to_num(found["strength"].to_numpy(dtype="float64"), nan=0.0)
    effect = np.clip(strength / 2, 0, 1)
    return found.assign(score=0.5 * evidence + 0.5 * effect)


def _budget(found: pd.DataFrame, alpha: float, max_alerts: int) -> pd.DataFrame:
    """``alert``: passes the test and the minimum effect, within the scope's quota."""
    eligible = (found["q_value"] < alpha) & (found["strength"] >= 1)
    scope = found["jurisdiction"].astype("string").str.slice(0, SCOPE_CHARS).fillna("")
    found = found.assign(_scope=scope, _eligible=eligible)
    found = found.sort_values(
        ["score", "q_value", "entity_id"], ascending=[False, True, True], kind="stable"
    )
    rank = found[found["_eligible"]].groupby(["_scope", "kind"]).cumcount()
    found["alert"] = False
    found.loc[rank.index, "alert"] = (rank < max_alerts).to_numpy()
    found["entity_score"] = found.groupby(["entity_type", "entity_id"])["score"].transform("max")
    return found.drop(columns=["_scope", "_eligible"]).reset_index(drop=True)


def entity_summary(findings: pd.DataFrame, *, top: int = TOP_REASONS) -> pd.DataFrame:
    """One row per entity: its score (the maximum over its kinds), its kinds strongest
    first, the reasons of the ``top`` strongest, whether any finding is an alert, and the
    union of the supporting dossiers (strongest finding's first)."""
    f = findings.sort_values(["score", "kind"], ascending=[False, True], kind="stable")
    g = f.groupby(["entity_type", "entity_id"], sort=False)
    out = pd.DataFrame(
        {
            "score": g["score"].max(),
            "kinds": g["kind"].agg(list),
            "reasons": g["reasons"].agg(lambda r: " ".join(list(r)[:top])),
            "alert": g["alert"].any(),
            "agency_id": g["agency_id"].first(),
            "jurisdiction": g["jurisdiction"].first(),
            "dossiers": g["dossiers"].agg(
                lambda lists: list(dict.fromkeys(d for ds in lists for d in ds))
            ),
        }
    )
    return out.reset_index().sort_values("score", ascending=False, ignore_index=True)
