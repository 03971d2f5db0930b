"""The tables models learn from and score: open-dossier prefixes and closed dossiers, with
their context, their labels, and temporal splits.

A prefix row is a dossier as seen at a cut T (only events with timestamp <= T), so its
features are what a live system knows then. Labels come from the whole dossier and are
kept in separate columns (``LABELS``) that no model reads as a feature. A temporal split
only keeps, for each period, dossiers whose label was settled (the dossier finished)
before the next period starts: a live system training at that time knows no other labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.context import context_features
from features.dossiers import dossier_descriptors, dossier_features
from features.engine import Reference
from features.prefixes import prefix_features, prefixes_at, training_prefixes
from features.recent import recent_outcomes

__all__ = [
    "LABELS",
    "Split",
    "closed_table",
    "half_time_cuts",
    "open_table",
    "prefix_table",
    "temporal_split",
]

#: label and bookkeeping columns of the tables; never model inputs.
LABELS = (
    "finished_at",
    "final_late_honest",
    "final_honest_days",
    "remaining_work_days",
    "started_at",
    "cut",
)
#: features that restate the label of a finished dossier (never inputs of the delay model).
OUTCOME_FEATURES = ("late_honest", "late_reported")


class EmptyTableError(s.GiamSatError, ValueError):
    """A table a model needs has no row (no dossier, or none settled in a period)."""


def _with_context(frame: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    ids = frame.index.get_level_values(s.DOSSIER_ID)
    ctx = context.reindex(ids).set_axis(frame.index)
    return pd.concat([frame, ctx], axis=1)


def _with_recent(
    frame: pd.DataFrame, outcomes: pd.DataFrame, context: pd.DataFrame, cut: pd.Series
) -> pd.DataFrame:
    """Adds :mod:`features.recent` columns: outcomes known at each row's cut. Only dossiers
    that reached a terminal step count (a foreign log's last event is no known end)."""
    history = context.join(outcomes[["finished_at", "terminal", "final_late_honest"]])
    history["finished_at"] = history["finished_at"].where(history["terminal"])
    history = history.rename(columns={"final_late_honest": "late"})
    queries = frame[[c for c in context.columns if c in frame]].copy()
    # .array keeps the tz-aware times (to_numpy gives Timestamp objects, slow to parse back)
    queries["cut"] = pd.Series(cut).array
    recent = recent_outcomes(history, queries)
    # the rows are aligned by construction: assigning skips concat's index comparison,
    # which materialises a (dossier_id, cut) MultiIndex
    return frame.assign(**{c: recent[c].to_numpy() for c in recent.columns})


def outcomes_of(events: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Per dossier: when it ended (first terminal event, else its last event), whether it
    ended late on the honest clock, and its final honest duration in working days."""
    full = dossier_features(
        events, ref.calendar, catalogue=ref.catalogue, agencies=ref.agencies, process=None
    )
    desc = dossier_descriptors(events)
    return pd.DataFrame(
        {
            "finished_at": desc["ended_at"],
            "terminal": desc["finished"],
            "started_at": desc["started_at"],
            "final_late_honest": full["late_honest"],
            "final_honest_days": full["honest_clock_days"],
        },
        index=desc.index,
    )


def _labelled(frame: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    ids = frame.index.get_level_values(s.DOSSIER_ID)
    out = outcomes.reindex(ids).set_axis(frame.index)
    frame = frame.drop(columns=[c for c in ("finished_at", "final_late_honest") if c in frame])
    for column in ("finished_at", "final_late_honest", "final_honest_days", "started_at"):
        frame[column] = out[column]
    remaining = out["final_honest_days"] - frame["honest_clock_days"]
    frame["remaining_work_days"] = remaining.clip(lower=0.0)
    frame["cut"] = frame.index.get_level_values("cut")
    return frame


def prefix_table(
    events: pd.DataFrame,
    ref: Reference,
    *,
    max_events: int = 10,
    fractions: Sequence[float] = (0.25, 0.5, 0.75),
) -> pd.DataFrame:
    """Training prefixes (several cuts per dossier) with context and labels, indexed by
    (dossier_id, cut). See :func:`features.prefixes.training_prefixes` for the cuts."""
    frame = training_prefixes(
        events,
        ref.calendar,
        max_events=max_events,
        fractions=fractions,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        process=ref.process,
    )
    return _finish(frame, events, ref)


def _finish(frame: pd.DataFrame, events: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Context, recent outcomes at each cut, and labels for a (dossier_id, cut) frame."""
    context = context_features(events, ref.agencies)
    outcomes = outcomes_of(events, ref)
    frame = _with_context(frame, context)
    cut = pd.Series(frame.index.get_level_values("cut"), index=frame.index)
    frame = _with_recent(frame, outcomes, context, cut)
    return _labelled(frame, outcomes)


def half_time_cuts(events: pd.DataFrame, ref: Reference, fraction: float = 0.5) -> pd.Series:
    """For each dossier with a statutory time, the instant when ``fraction`` of it has
    passed since its first event (office time), as a Series indexed by dossier_id."""
    full = dossier_features(events, ref.calendar, catalogue=ref.catalogue, agencies=ref.agencies)
    desc = dossier_descriptors(events)
    statutory = full["statutory_days"]
    known = statutory.notna() & (statutory > 0)
    when = ref.calendar.add_working_days(
        pd.DatetimeIndex(desc.loc[known, "started_at"]), statutory[known].to_numpy() * fraction
    )
    return pd.Series(pd.DatetimeIndex(when), index=statutory.index[known], name="cut")


def cut_table(events: pd.DataFrame, ref: Reference, cuts: pd.Series) -> pd.DataFrame:
    """Prefix features at the given cuts (dossier_id -> time) with context and labels."""
    frame = prefixes_at(
        events,
        ref.calendar,
        cuts,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        process=ref.process,
    )
    return _finish(frame, events, ref)


def open_table(
    events: pd.DataFrame,
    ref: Reference,
    as_of: pd.Timestamp,
    outcomes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Dossiers open at ``as_of`` with their features as of then (index dossier_id). Pass
    only events known at ``as_of``: outcomes for recent-outcome features come from them
    (``outcomes``: :func:`outcomes_of` those events, when the caller has it already)."""
    frame = prefix_features(
        events,
        ref.calendar,
        as_of,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        process=ref.process,
    )
    context = context_features(events, ref.agencies)
    frame = _with_context(frame, context)
    cut = pd.Series(pd.DatetimeIndex([as_of] * len(frame)), index=frame.index)
    known = outcomes if outcomes is not None else outcomes_of(events, ref)
    return _with_recent(frame, known, context, cut)


def closed_table(
    events: pd.DataFrame,
    ref: Reference,
    as_of: pd.Timestamp | None = None,
    outcomes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Dossier features of every dossier (as of ``as_of``: events after it unread) with
    context, recent outcomes at its start (the load it came in with), ``finished`` (a
    terminal event by then) and ``started_at`` (index dossier_id). ``outcomes``:
    :func:`outcomes_of` the events up to ``as_of``, when the caller has it already."""
    frame = dossier_features(
        events,
        ref.calendar,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        process=ref.process,
        as_of=as_of,
    )
    desc = dossier_descriptors(events, as_of=as_of)
    context = context_features(events, ref.agencies)
    frame = _with_context(frame, context)
    frame["finished"] = desc["finished"].reindex(frame.index).to_numpy()
    frame["started_at"] = desc["started_at"].reindex(frame.index)
    if outcomes is None:
        known = events if as_of is None else events[events[s.TIMESTAMP] <= as_of]
        outcomes = outcomes_of(known, ref)
    return _with_recent(frame, outcomes, context, frame["started_at"])


@dataclass(frozen=True)
class Split:
    """Period boundaries on dossier start times: train < ``calibrate_from`` <= calibrate <
    ``test_from`` <= test."""

    calibrate_from: pd.Timestamp
    test_from: pd.Timestamp

    def period(self, started: pd.Series) -> np.ndarray:
        """0 (train), 1 (calibrate) or 2 (test) for each start time."""
        t = pd.DatetimeIndex(started)
        return np.where(t < self.calibrate_from, 0, np.where(t < self.test_from, 1, 2))

    def settled(self, table: pd.DataFrame, period: int) -> pd.DataFrame:
        """Rows of ``period`` whose dossier finished before the next period starts (the
        test period: finished at all)."""
        rows = self.period(table["started_at"]) == period
        finished = table["finished_at"].notna() & table["final_late_honest"].notna()
        if period == 0:
            finished &= table["finished_at"] < self.calibrate_from
        elif period == 1:
            finished &= table["finished_at"] < self.test_from
        return table[rows & finished.to_numpy()]


def temporal_split(started: pd.Series, shares: tuple[float, float] = (0.6, 0.2)) -> Split:
    """Boundaries at the ``shares`` quantiles of dossier start times (train, calibrate;
    the rest is the test period)."""
    t = pd.Series(pd.DatetimeIndex(started.dropna())).sort_values(ignore_index=True)
    if len(t) < 3:
        raise EmptyTableError("a temporal split needs three dossiers at least")
    first, second = shares
    return Split(t.iloc[int(len(t) * first)], t.iloc[int(len(t) * (first + second))])
