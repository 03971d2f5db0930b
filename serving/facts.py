"""Dashboard facts: per dossier, the figures scorecards aggregate, refreshed with its scores.

:func:`refresh_facts` is called in the transaction that writes a scoring result (the batch
run :func:`serving.rescoring.rescore_all` and the live re-scoring of :mod:`serving.live`),
so the dashboards (:mod:`serving.scorecards`) and the public lookup
(:mod:`serving.routes.public`) never disagree with the scores. It derives, from the same
events the scorer read and as of the same time:

- who and what: the receiving agency, procedure, jurisdiction and main officer
  (:func:`features.entity_facts.dossier_facts`);
- the clocks (:func:`features.dossiers.dossier_features`): statutory days, the honest clock
  (supplement and pause time not counted) and the clock as the handling system reports it
  (restarted when supplementary papers arrive), their ratio to the statutory time, and
  ``late_honest`` / ``late_reported`` of a closed dossier;
- the service-index inputs: submitted online (the dossier's ``channel``), a payment and
  whether it was made online (a ``paid`` event whose ``via`` attribute says ``online``;
  NULL when the log does not say how), digitised records (an event attribute
  ``digitised``/``digitized`` true; NULL when no event carries it), the mean rating;
- the citizen's view: the stage (processing, awaiting documents, paused, closed), the
  deadline and, while open, the forecast end (scoring time + the delay model's median
  remaining working days);
- the handovers between agencies with their holding times
  (:func:`features.entity_facts.transfer_edges`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features import schema as s
from features.dossiers import dossier_features
from features.engine import Reference
from features.entity_facts import dossier_facts, transfer_edges
from models.scoring import Scores
from serving.bulk import bulk_insert
from serving.tables import dossier_facts as facts_table
from serving.tables import dossier_transfers

__all__ = [
    "DIGITISED_ATTRIBUTES",
    "STAGES",
    "Facts",
    "day_of",
    "facts_of",
    "refresh_facts",
    "scored_facts",
    "upsert_facts",
]

#: event attributes that say a dossier's records were digitised (any true value counts).
DIGITISED_ATTRIBUTES = ("digitised", "digitized")
#: the event attribute giving how an applicant-facing step (a payment) was made.
VIA = "via"
STAGES = ("processing", "awaiting_documents", "paused", "closed")
OUTCOMES = {s.RESULT_RETURNED: "returned", s.REJECTED: "rejected", s.WITHDRAWN: "withdrawn"}
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
_CHUNK = 1000


@dataclass(frozen=True)
class Facts:
    """One row per dossier (``dossier_facts``' columns) and one per handover."""

    dossiers: pd.DataFrame
    transfers: pd.DataFrame


def day_of(stamps: pd.Series | pd.DatetimeIndex, tz: str) -> np.ndarray:
    """``YYYYMMDD`` integers of tz-aware instants in ``tz`` (-1 where missing)."""
    index = pd.DatetimeIndex(stamps).tz_convert(tz)
    out = index.year * 10_000 + index.month * 100 + index.day
    return np.where(index.isna(), -1, np.asarray(out, dtype=np.float64)).astype(np.int64)


def facts_of(
    events: pd.DataFrame,
    ref: Reference,
    as_of: pd.Timestamp,
    scores: pd.DataFrame | None = None,
) -> Facts:
    """The facts of every dossier of ``events`` (canonical, whole dossiers) as of ``as_of``.

    ``scores``: the scoring result (``models.scoring.SCORE_COLUMNS``) giving waste days and
    the remaining-time forecast; None leaves them missing."""
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is None:
        raise s.EventSchemaError("the facts' time (as_of) must be tz-aware", column="as_of")
    known = events[(events[s.TIMESTAMP] <= stamp).to_numpy(dtype=bool, na_value=False)]
    if not len(known):
        return Facts(_empty(facts_table), _empty(dossier_transfers))
    calendar, tz = ref.calendar, str(ref.calendar.tz)
    base = dossier_facts(known, calendar, catalogue=ref.catalogue).set_index(s.DOSSIER_ID)
    ids = base.index
    feats = dossier_features(known, calendar, catalogue=ref.catalogue, as_of=stamp)
    feats = feats.set_axis(feats.index.astype(str)).reindex(ids)
    flags = _event_flags(known).reindex(ids)
    closed = base["ended_at"].notna().to_numpy()
    received = pd.DatetimeIndex(base["started_at"])
    ended = pd.DatetimeIndex(base["ended_at"])
    statutory = feats["statutory_days"].to_numpy(dtype=np.float64)
    due = flags["due_at"]
    from_statutory = calendar.add_working_days(received, np.where(np.isnan(statutory), np.nan,
                                               np.maximum(statutory, 0)))  # fmt: skip
    due_at = pd.DatetimeIndex(due).where(due.notna().to_numpy(), from_statutory)
    waste = np.full(len(ids), np.nan)
    expected = pd.DatetimeIndex([pd.NaT] * len(ids), tz=UTC)
    if scores is not None and len(scores):
        by_id = scores.set_index(scores[s.DOSSIER_ID].astype(str)).reindex(ids)
        waste = by_id["waste_days"].to_numpy(dtype=np.float64, na_value=np.nan)
        left = by_id["remaining_days_p50"].to_numpy(dtype=np.float64, na_value=np.nan)
        left = np.where(closed, np.nan, np.maximum(left, 0.0))
        expected = pd.DatetimeIndex(calendar.add_working_days(stamp, left))
    late_h = _flag(np.where(closed, feats["late_honest"].to_numpy(dtype=np.float64), np.nan))
    late_r = _flag(np.where(closed, feats["late_reported"].to_numpy(dtype=np.float64), np.nan))
    channel = base[s.CHANNEL].astype("string").str.lower().map(s.CHANNEL_SYNONYMS)
    online = np.where(channel.isna(), np.nan, (channel == "online").astype(np.float64))
    stage = np.where(closed, "closed", flags["stage"].fillna("processing").to_numpy(dtype=object))
    outcome = flags["outcome"].to_numpy(dtype=object)
    rows = pd.DataFrame(
        {
            s.DOSSIER_ID: ids.astype(str),
            "agency_id": base["first_agency_id"].to_numpy(dtype=object),
            "procedure_code": base[s.PROCEDURE_CODE].to_numpy(dtype=object),
            "jurisdiction": base[s.JURISDICTION].to_numpy(dtype=object),
            "officer_id": base["main_officer_id"].to_numpy(dtype=object),
            "received_at": received,
            "received_day": day_of(received, tz),
            "closed_at": ended,
            "closed_day": np.where(closed, day_of(ended, tz), np.array(None, dtype=object)),
            "outcome": np.where(closed, outcome, np.array(None, dtype=object)),
            "stage": stage,
            "due_at": due_at,
            "expected_at": expected,
            "statutory_days": statutory,
            "honest_days": feats["honest_clock_days"].to_numpy(dtype=np.float64),
            "reported_days": feats["reported_clock_days"].to_numpy(dtype=np.float64),
            "duration_ratio": feats["honest_clock_ratio"].to_numpy(dtype=np.float64),
            "late_honest": late_h,
            "late_reported": late_r,
            "online": _flag(online),
            "paid": flags["paid"].fillna(0).to_numpy(dtype=np.int64),
            "paid_online": _flag(flags["paid_online"].to_numpy(dtype=np.float64)),
            "digitised": _flag(flags["digitised"].to_numpy(dtype=np.float64)),
            "supplement_requests": base["supplement_requests"].to_numpy(dtype=np.int64),
            "transfers": feats["transfers"].fillna(0).to_numpy(dtype=np.int64),
            "waste_days": waste,
            "rating": base["rating"].to_numpy(dtype=np.float64),
            "as_of": stamp,
        }
    )
    return Facts(rows, _transfers(known, ref, base, tz))


def _flag(values: np.ndarray) -> np.ndarray:
    """0/1 with None where unknown (NaN), as objects (what the driver stores)."""
    out = np.where(np.isnan(values), 0, values).astype(np.int64).astype(object)
    out[np.isnan(values)] = None
    return out


def _truthy(value: Any) -> float:
    """1/0 for a digitised attribute's value, NaN when it says nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value != 0)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return np.nan


def _event_flags(known: pd.DataFrame) -> pd.DataFrame:
    """Per dossier: the log's deadline, payments (and online ones), digitised records, the
    clock-stop stage and the outcome, by dossier id."""
    ids = known[s.DOSSIER_ID].astype(str).to_numpy()
    activity = known[s.ACTIVITY].astype("string").to_numpy(dtype=object, na_value="")
    frame = pd.DataFrame({"id": ids, "activity": activity})
    paid = activity == s.PAID
    frame["paid"] = paid.astype(np.int64)
    if VIA in known.columns:
        via = known[VIA].astype("string").str.strip().str.lower().map(s.CHANNEL_SYNONYMS)
        said = paid & via.notna().to_numpy()
        frame["paid_said"] = said.astype(np.float64)
        frame["paid_online"] = (said & (via == "online").to_numpy()).astype(np.float64)
    else:
        frame["paid_said"] = 0.0
        frame["paid_online"] = 0.0
    digit = np.full(len(known), np.nan)
    for name in DIGITISED_ATTRIBUTES:
        if name in known.columns:
            values = np.array([_truthy(v) for v in known[name].to_numpy(dtype=object)])
            digit = np.where(np.isnan(digit), values, np.fmax(digit, values))
    frame["digitised"] = digit
    if s.DUE_AT in known.columns:
        frame["due_at"] = known[s.DUE_AT].to_numpy()
    else:
        frame["due_at"] = pd.NaT
    stops = {s.SUPPLEMENT_REQUESTED: "awaiting_documents", s.PAUSED: "paused",
             s.SUPPLEMENT_RECEIVED: "processing", s.RESUMED: "processing"}  # fmt: skip
    frame["stage"] = frame["activity"].map(stops)
    frame["outcome"] = frame["activity"].map(OUTCOMES)
    grouped = frame.groupby("id", sort=True)
    out = pd.DataFrame(
        {
            "paid": grouped["paid"].max(),
            "paid_said": grouped["paid_said"].max(),
            "paid_online": grouped["paid_online"].max(),
            "digitised": grouped["digitised"].max(),
            "due_at": grouped["due_at"].first(),
            "stage": grouped["stage"].last(),
            "outcome": grouped["outcome"].first(),
        }
    )
    # online payment is known only for dossiers that paid and whose log says how
    out["paid_online"] = out["paid_online"].where((out["paid"] > 0) & (out["paid_said"] > 0))
    return out


def _transfers(known: pd.DataFrame, ref: Reference, base: pd.DataFrame, tz: str) -> pd.DataFrame:
    edges = transfer_edges(known, ref.calendar)
    if not len(edges):
        return _empty(dossier_transfers)
    ids = edges[s.DOSSIER_ID].astype(str)
    n = ids.groupby(ids).cumcount().to_numpy(dtype=np.int64)
    at = pd.DatetimeIndex(edges["at"])
    return pd.DataFrame(
        {
            s.DOSSIER_ID: ids.to_numpy(),
            "n": n,
            "from_agency": edges["from_agency"].astype(str).to_numpy(),
            "to_agency": edges["to_agency"].astype(str).to_numpy(),
            "jurisdiction": base[s.JURISDICTION].reindex(ids).to_numpy(dtype=object),
            "procedure_code": edges[s.PROCEDURE_CODE].to_numpy(dtype=object),
            "at": at,
            "day": day_of(at, tz),
            "holding_days": edges["holding_days"].to_numpy(dtype=np.float64),
        }
    )


def _empty(table: sa.Table) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=object) for c in table.columns})


def _value(value: Any) -> Any:
    """A frame's cell as the driver wants it (None for missing; Python scalars; UTC)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime(warn=False).astimezone(UTC)  # stored to the microsecond
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = list(frame.columns)
    values = [frame[c].astype(object).tolist() for c in columns]
    return [
        {c: _value(v) for c, v in zip(columns, row, strict=True)}
        for row in zip(*values, strict=True)
    ]


def upsert_facts(session: Session, facts: Facts) -> int:
    """Make ``facts`` the stored facts of their dossiers (their handovers replaced);
    returns the number of dossiers written."""
    rows = _records(facts.dossiers)
    if not rows:
        return 0
    rows.sort(key=lambda r: r[s.DOSSIER_ID])
    sets = ", ".join(f"{k} = excluded.{k}" for k in rows[0] if k != s.DOSSIER_ID)
    bulk_insert(session, facts_table, rows, f"ON CONFLICT (dossier_id) DO UPDATE SET {sets}")
    ids = [r[s.DOSSIER_ID] for r in rows]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(
            sa.delete(dossier_transfers).where(dossier_transfers.c.dossier_id.in_(chunk))
        )
    moves = _records(facts.transfers)
    bulk_insert(session, dossier_transfers, moves)
    return len(rows)


def scored_facts(
    events: pd.DataFrame,
    ref: Reference,
    scored: Scores,
    dossier_ids: Sequence[str] | None = None,
) -> Facts:
    """The facts of the dossiers of a scoring result, from the events the scorer read, as
    of the result's time. ``dossier_ids``: only these (default: those the result scored)."""
    ids = dossier_ids
    if ids is None:
        ids = scored.scores[s.DOSSIER_ID].astype(str).tolist()
    if not ids or not len(events):
        return Facts(_empty(facts_table), _empty(dossier_transfers))
    mine = events[events[s.DOSSIER_ID].astype(str).isin(set(ids)).to_numpy()]
    return facts_of(mine, ref, scored.as_of, scored.scores)


def refresh_facts(session: Session, events: pd.DataFrame, ref: Reference, scored: Scores) -> int:
    """Compute (:func:`scored_facts`) and store the facts of a scoring result's dossiers in
    the caller's transaction: the hook of :func:`serving.rescoring.rescore_all`. (The live
    re-scoring computes them before its short write transaction and stores them in it.)"""
    return upsert_facts(session, scored_facts(events, ref, scored))


def facts_row(session: Session, dossier_id: str) -> Mapping[str, Any] | None:
    """One dossier's stored facts, or None."""
    stmt = sa.select(facts_table).where(facts_table.c.dossier_id == dossier_id)
    row = session.execute(stmt).mappings().first()
    return None if row is None else dict(row)
