"""Batch scoring, the contract other tools rely on: one row per dossier (``scores.csv``)
and one row per alert (``alerts.csv``), from a log and a model bundle, as of a time.

Only events with timestamp <= ``as_of`` are read, so scoring a log as of last Tuesday
gives what the system would have said last Tuesday. Open dossiers (no terminal step yet)
get a delay risk and remaining-time quantiles; every dossier gets its waste (so far). All
scores are in [0, 1], higher = worse; ``risk_score`` is the highest of the scores a
dossier has. The same bundle and input always give the same output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.dossiers import dossier_descriptors
from features.engine import Reference
from models.bundle import ModelBundle
from models.dataset import closed_table, open_table, outcomes_of
from models.explain import reasons_of
from models.integrity_entity import ALPHA, MAX_ALERTS_PER_SCOPE, detect_entities

__all__ = [
    "ALERT_COLUMNS",
    "SCORE_COLUMNS",
    "EntityBudget",
    "Scores",
    "alert_id",
    "dossier_alerts",
    "score_log",
]

SCORE_COLUMNS = (
    s.DOSSIER_ID,
    "status",
    s.PROCEDURE_CODE,
    "first_agency",
    s.JURISDICTION,
    "delay_risk",
    "remaining_days_p50",
    "remaining_days_p90",
    "remaining_honest_days",
    "waste_days",
    "waste_touches",
    "waste_score",
    "integrity_score",
    "risk_score",
    "alert",
    "alert_kinds",
    "reasons",
)
ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "subject_type",
    "subject_id",
    "score",
    "severity",
    s.JURISDICTION,
    "agency_id",
    "reasons",
    "pattern",
    "dossiers",
)
#: alert kinds, in the order ``alert_kinds`` lists them.
KINDS = ("delay", "waste", "integrity")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class EntityBudget:
    """Entity alerts: the false discovery rate a finding must pass, and at most how many
    alerts per province and pattern."""

    alpha: float = ALPHA
    max_alerts: int = MAX_ALERTS_PER_SCOPE


@dataclass(frozen=True)
class Scores:
    """The two tables of a scoring run, and the time they are as of."""

    scores: pd.DataFrame
    alerts: pd.DataFrame
    as_of: pd.Timestamp


def alert_id(kind: str, subject_type: str, subject_id: str) -> str:
    """A stable id: the same kind of alert about the same subject keeps its id, so a
    re-run updates an alert instead of raising a second one."""
    digest = hashlib.sha256(f"{kind}|{subject_type}|{subject_id}".encode()).hexdigest()
    return f"{kind[:1].upper()}{digest[:15]}"


def severity(score: np.ndarray) -> np.ndarray:
    """high from 0.8, medium from 0.5, else low."""
    return np.where(score >= 0.8, "high", np.where(score >= 0.5, "medium", "low"))


def _known(events: pd.DataFrame, as_of: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.Timestamp]:
    if as_of is None:
        return events, pd.Timestamp(events[s.TIMESTAMP].max())
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is None:
        raise s.EventSchemaError("the scoring time (as_of) must be tz-aware", column="as_of")
    return events[events[s.TIMESTAMP] <= stamp], stamp


def score_log(
    bundle: ModelBundle,
    events: pd.DataFrame,
    ref: Reference,
    *,
    as_of: pd.Timestamp | None = None,
    progress: Progress | None = None,
    entity_budget: EntityBudget | None = None,
) -> Scores:
    """Scores and alerts of every dossier started by ``as_of`` (default: the last event);
    ``entity_budget``: the entity alerts' false discovery rate and cap (default
    :data:`models.integrity_entity.ALPHA` and ``MAX_ALERTS_PER_SCOPE``)."""
    say = progress or (lambda _: None)
    known, stamp = _known(events, as_of)
    if not len(known):
        raise s.EventSchemaError(f"no event at or before {stamp.isoformat()}", column="as_of")
    say("dossier features")
    outcomes = outcomes_of(known, ref)  # once, for both tables' recent-outcome features
    closed = closed_table(known, ref, stamp, outcomes)
    desc = dossier_descriptors(known)
    say("waste")
    waste = bundle.waste.transform(closed)
    waste_reasons = pd.Series(bundle.waste.reasons(waste, k=2), index=closed.index)
    say("open dossiers and delay risk")
    opened = open_table(known, ref, stamp, outcomes)
    risk = bundle.delay.risk(opened)
    p50, p90 = bundle.delay.remaining(opened)
    delay_reasons = pd.Series(
        [reasons_of(r) for r in bundle.delay.explain(opened, k=3)], index=opened.index, dtype=object
    )

    out = pd.DataFrame(index=closed.index)
    out["status"] = np.where(closed["finished"].astype(bool), "closed", "open")
    out[s.PROCEDURE_CODE] = closed[s.PROCEDURE_CODE].astype("string")
    out["first_agency"] = closed["first_agency"].astype("string")
    out[s.JURISDICTION] = desc[s.JURISDICTION].reindex(out.index).astype("string")
    on = pd.DataFrame(
        {
            "delay_risk": risk,
            "remaining_days_p50": p50,
            "remaining_days_p90": p90,
            "remaining_honest_days": opened["remaining_honest_days"].to_numpy(),
        },
        index=opened.index,
    )
    out = out.join(on)
    out["waste_days"] = waste["waste_days"]
    out["waste_touches"] = waste["waste_touches"]
    out["waste_score"] = waste["waste_score"]
    integrity = _integrity(bundle, closed, known, say)
    out["integrity_score"] = integrity["integrity_score"]
    out["risk_score"] = out[["delay_risk", "waste_score", "integrity_score"]].max(axis=1)
    thresholds = {
        "delay": bundle.delay_threshold,
        "waste": bundle.waste_threshold,
        "integrity": bundle.integrity.threshold_ if bundle.integrity is not None else np.inf,
    }
    flags = {
        kind: (out[f"{kind}_score" if kind != "delay" else "delay_risk"] >= thresholds[kind])
        .fillna(False)
        .to_numpy(bool)
        for kind in KINDS
    }
    out["alert"] = np.logical_or.reduce(list(flags.values())).astype(np.int8)
    out["alert_kinds"] = _kinds(flags)
    texts = {
        "delay": delay_reasons,
        "waste": waste_reasons,
        "integrity": integrity["integrity_reasons"],
    }
    out["reasons"] = _reasons(out, texts)
    out = out.reset_index().rename(columns={"index": s.DOSSIER_ID})
    scores = out[list(SCORE_COLUMNS)].sort_values(s.DOSSIER_ID, ignore_index=True)
    patterns = integrity["integrity_pattern"]
    alerts = dossier_alerts(scores, texts, patterns)
    if bundle.integrity is not None:
        say("entities")
        budget = entity_budget or EntityBudget()
        found = detect_entities(
            known, ref, as_of=stamp, alpha=budget.alpha, max_alerts=budget.max_alerts
        )
        alerts = _with_entities(alerts, found)
    return Scores(scores, alerts, stamp)


def _integrity(
    bundle: ModelBundle, closed: pd.DataFrame, known: pd.DataFrame, say: Progress
) -> pd.DataFrame:
    """Integrity scores, reasons and patterns of every dossier (empty without a model)."""
    if bundle.integrity is None:
        return pd.DataFrame(
            {"integrity_score": np.nan, "integrity_reasons": "", "integrity_pattern": ""},
            index=closed.index,
        )
    say("integrity")
    return bundle.integrity.score_samples(closed, known)


def _kinds(flags: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(flags.values())))
    out = np.full(n, "", dtype=object)
    for kind in KINDS:
        out = np.where(flags[kind], np.where(out == "", kind, out + "+" + kind), out)
    return out


def _reasons(out: pd.DataFrame, texts: dict[str, pd.Series]) -> pd.Series:
    """One line per dossier: the reasons of each kind that has any, kind by kind."""
    risk = out["delay_risk"]
    head = {
        "delay": np.where(risk.notna(), "late risk " + risk.map("{:.2f}".format) + ": ", ""),
        "waste": np.full(len(out), "waste: ", dtype=object),
        "integrity": np.full(len(out), "integrity: ", dtype=object),
    }
    line = pd.Series("", index=out.index, dtype=object)
    for kind in KINDS:
        text = texts[kind].reindex(out.index).fillna("").astype(str)
        part = np.where(text != "", head[kind] + text, "")
        joined = np.where((line != "") & (part != ""), line + " | " + part, line + part)
        line = pd.Series(joined, index=out.index, dtype=object)
    return line


def dossier_alerts(
    scores: pd.DataFrame, texts: dict[str, pd.Series], patterns: pd.Series
) -> pd.DataFrame:
    """The dossier alerts of a scores table (``alert_kinds``), with each kind's reasons
    (``texts``: per kind, by dossier id) and the integrity pattern (by dossier id); the
    online scorer's re-scoring makes its alerts here too."""
    columns = {"delay": "delay_risk", "waste": "waste_score", "integrity": "integrity_score"}
    parts = []
    for kind in KINDS:
        wanted = scores["alert_kinds"].str.contains(kind, regex=False).to_numpy(bool)
        rows = scores[wanted]
        if not len(rows):
            continue
        ids = rows[s.DOSSIER_ID].astype(str)
        score = rows[columns[kind]].to_numpy(dtype=np.float64)
        pattern = patterns.reindex(ids).fillna("").to_numpy() if kind == "integrity" else kind
        parts.append(
            pd.DataFrame(
                {
                    "alert_id": [alert_id(kind, "dossier", i) for i in ids],
                    "kind": kind,
                    "subject_type": "dossier",
                    "subject_id": ids.to_numpy(),
                    "score": score,
                    "severity": severity(score),
                    s.JURISDICTION: rows[s.JURISDICTION].to_numpy(),
                    "agency_id": rows["first_agency"].to_numpy(),
                    "reasons": texts[kind].reindex(ids).fillna("").to_numpy(),
                    "pattern": pattern,
                    "dossiers": ids.to_numpy(),
                }
            )
        )
    return _sorted(parts)


def _with_entities(alerts: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Entity alerts (the findings within the entity budget), one per entity and
    pattern, listing the dossiers that support them."""
    found = findings[findings["alert"].astype(bool)]
    if not len(found):
        return alerts
    ids = found["entity_id"].astype(str).to_numpy()
    types = found["entity_type"].astype(str).to_numpy()
    kinds = found["kind"].astype(str).to_numpy()
    score = found["score"].to_numpy(dtype=np.float64)
    entity = pd.DataFrame(
        {
            "alert_id": [
                alert_id(f"integrity:{k}", t, i) for k, t, i in zip(kinds, types, ids, strict=True)
            ],
            "kind": "integrity",
            "subject_type": types,
            "subject_id": ids,
            "score": score,
            "severity": severity(score),
            s.JURISDICTION: found["jurisdiction"].to_numpy(),
            "agency_id": found["agency_id"].to_numpy(),
            "reasons": found["reasons"].astype(str).to_numpy(),
            "pattern": kinds,
            "dossiers": [";".join(map(str, d)) for d in found["dossiers"]],
        }
    )
    return _sorted([alerts, entity] if len(alerts) else [entity])


def _sorted(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    alerts = pd.concat(parts, ignore_index=True)[list(ALERT_COLUMNS)]
    return alerts.sort_values(["score", "alert_id"], ascending=[False, True], ignore_index=True)
