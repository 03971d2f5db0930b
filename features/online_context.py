"""What the features of one dossier read from the other dossiers, kept up to date for
online scoring: recent outcomes per procedure and per receiving agency
(:mod:`features.recent`) and the backlogs of the unit and the officer holding a dossier
(``unit_backlog`` and ``officer_backlog`` of :mod:`features.prefixes`).

:meth:`OnlineContext.from_events` builds it from a log with the batch helpers, so it holds
what the batch pipeline sees as of a time; :meth:`OnlineContext.observe` updates it when a
dossier's events change (it finished: its outcome is added; its holder changed: its
backlog moves). A lookup is a dictionary access and two binary searches.

A dossier's own part is taken from its events at lookup time, not from the context (its
stored outcome and holder are replaced by those of the events being scored), so a
dossier scored before the context observed its latest events gets the same features as
after.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.context import context_features
from features.dossier_events import prepare
from features.dossier_timing import vocab_mask
from features.engine import Reference
from features.online import (
    DossierTrace,
    current_holders,
    is_finished,
    outcome,
    trace_of,
)
from features.prefixes import _current_agency
from features.recent import KEYS, WINDOW_DAYS

__all__ = ["OnlineContext", "Outcome"]

DAY_NS = 86_400 * 10**9
NAN = float("nan")


@dataclass(frozen=True)
class Outcome:
    """A finished dossier as the recent-outcome features count it."""

    procedure: str | None
    agency: str | None  # the receiving agency
    finished_at: int  # UTC ns of its first terminal event
    late: bool

    def key(self, name: str) -> str | None:
        return self.procedure if name == "procedure" else self.agency


@dataclass
class _Times:
    """Sorted finishing times of one key, and those of its late dossiers."""

    all: list[int] = field(default_factory=list)
    late: list[int] = field(default_factory=list)

    def add(self, item: Outcome) -> None:
        insort(self.all, item.finished_at)
        if item.late:
            insort(self.late, item.finished_at)

    def remove(self, item: Outcome) -> None:
        _discard(self.all, item.finished_at)
        if item.late:
            _discard(self.late, item.finished_at)


def _discard(values: list[int], value: int) -> None:
    at = bisect_right(values, value) - 1
    if at >= 0 and values[at] == value:
        del values[at]


def _between(values: list[int], lo: int, hi: int) -> int:
    """How many of the sorted ``values`` lie in (lo, hi]."""
    return bisect_right(values, hi) - bisect_right(values, lo)


#: (receiving procedure or agency) -> its dossiers' finishing times.
_Index = dict[tuple[str, str], _Times]


class OnlineContext:
    """Recent outcomes and current backlogs of a province's dossiers."""

    def __init__(self, window_days: int = WINDOW_DAYS) -> None:
        self.window_ns = int(window_days) * DAY_NS
        self._times: _Index = {}
        self._outcomes: dict[str, Outcome] = {}
        self._holders: dict[str, tuple[str | None, str | None]] = {}
        self._units: Counter[str] = Counter()
        self._officers: Counter[str] = Counter()

    def __len__(self) -> int:
        """Dossiers known: finished with a known outcome, or open and held."""
        return len(self._outcomes.keys() | self._holders.keys())

    # --- building -----------------------------------------------------------------------

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, ref: Reference, as_of: pd.Timestamp
    ) -> OnlineContext:
        """The context as of ``as_of`` from a log (events after it are not read), with the
        batch pipeline's own helpers (:func:`models.dataset.outcomes_of`,
        :func:`features.context.context_features`, ``prepare``)."""
        from models.dataset import outcomes_of

        stamp = pd.Timestamp(as_of)
        if stamp.tzinfo is None:
            raise s.EventSchemaError("as_of must be tz-aware", column="as_of")
        known = events[events[s.TIMESTAMP] <= stamp]
        out = cls()
        if not len(known):
            return out
        context = context_features(known, ref.agencies)
        outcomes = outcomes_of(known, ref)
        history = context.join(outcomes[["finished_at", "terminal", "final_late_honest"]])
        done = history[history["terminal"] & history["final_late_honest"].notna()]
        finished = pd.DatetimeIndex(done["finished_at"]).as_unit("ns").asi8
        for ident, proc, agency, t, late in zip(
            done.index.astype(str),
            done[s.PROCEDURE_CODE].astype(object).where(done[s.PROCEDURE_CODE].notna(), None),
            done["first_agency"].astype(object).where(done["first_agency"].notna(), None),
            finished.tolist(),
            (done["final_late_honest"].to_numpy(dtype=np.float64) > 0).tolist(),
            strict=True,
        ):
            out._add_outcome(ident, Outcome(proc, agency, int(t), bool(late)))
        out._hold_open(known)
        return out

    def _hold_open(self, known: pd.DataFrame) -> None:
        """The holders after the last event of every open dossier (as ``held`` counts
        them in :mod:`features.prefixes`)."""
        base = prepare(known, None)
        seg = base.seg
        terminal = seg.count(vocab_mask(base, *s.TERMINAL_ACTIVITIES)) > 0
        last = seg.ends - 1
        agency = _current_agency(base)[last]
        names = np.r_[base.agency_names, None].astype(object)
        officers = (
            known[s.OFFICER_ID].iloc[base.rows[last]].astype(object)
            if s.OFFICER_ID in known.columns
            else pd.Series([None] * len(last), dtype=object)
        )
        for ident, closed, unit, officer in zip(
            seg.ids.astype(str),
            terminal.tolist(),
            names[np.where(agency < 0, len(names) - 1, agency)].tolist(),
            officers.tolist(),
            strict=True,
        ):
            if not closed:
                self._hold(ident, (unit, None if pd.isna(officer) else str(officer)))

    # --- updating -----------------------------------------------------------------------

    def _add_outcome(self, ident: str, item: Outcome) -> None:
        self._outcomes[ident] = item
        for name, _ in KEYS:
            key = item.key(name)
            if key is not None:
                self._times.setdefault((name, key), _Times()).add(item)

    def _drop_outcome(self, ident: str) -> None:
        item = self._outcomes.pop(ident, None)
        if item is None:
            return
        for name, _ in KEYS:
            key = item.key(name)
            if key is not None:
                self._times[(name, key)].remove(item)

    def _hold(self, ident: str, holders: tuple[str | None, str | None]) -> None:
        self._release(ident)
        unit, officer = holders
        self._holders[ident] = holders
        if unit is not None:
            self._units[unit] += 1
        if officer is not None:
            self._officers[officer] += 1

    def _release(self, ident: str) -> None:
        held = self._holders.pop(ident, None)
        if held is None:
            return
        unit, officer = held
        if unit is not None:
            self._units[unit] -= 1
        if officer is not None:
            self._officers[officer] -= 1

    def observe(
        self,
        events: Sequence[Mapping[str, Any]],
        ref: Reference,
        as_of: pd.Timestamp | None = None,
    ) -> None:
        """Take in the events of one dossier known at ``as_of`` (default: its last event):
        its outcome once it finished, else the unit and officer now holding it."""
        trace = trace_of(events, ref.calendar, as_of or _latest(events))
        self.observe_trace(trace, ref)

    def observe_trace(self, trace: DossierTrace, ref: Reference) -> None:
        """:meth:`observe` for events already read by :func:`features.online.trace_of`."""
        ident = trace.dossier_id
        self._drop_outcome(ident)
        self._release(ident)
        if is_finished(trace):
            done = outcome(trace, ref)
            if done is not None:
                self._add_outcome(ident, self.outcome_item(trace, done))
            return
        self._hold(ident, current_holders(trace))

    @staticmethod
    def outcome_item(trace: DossierTrace, done: tuple[int, bool]) -> Outcome:
        """The :class:`Outcome` of a dossier from its trace and (finished_at, late)."""
        procedure = trace.dossier[s.PROCEDURE_CODE]
        return Outcome(
            None if procedure is None else str(procedure), trace.agency[0], done[0], done[1]
        )

    # --- lookups ------------------------------------------------------------------------

    def recent(
        self, ident: str, keys: Mapping[str, str | None], cut: int, own: Outcome | None
    ) -> dict[str, Any]:
        """The :data:`features.recent.SPECS` columns of dossier ``ident`` at ``cut`` (UTC
        ns): ``keys`` its procedure and receiving agency, ``own`` its own outcome (None
        while open), which replaces whatever the context holds for it."""
        stored = self._outcomes.get(ident)
        lo = cut - self.window_ns
        out: dict[str, Any] = {}
        for name, _ in KEYS:
            key = keys.get(name)
            total = late = 0
            if key is not None:
                times = self._times.get((name, key))
                if times is not None:
                    total = _between(times.all, lo, cut)
                    late = _between(times.late, lo, cut)
                for item, sign in ((stored, -1), (own, 1)):
                    if item is not None and item.key(name) == key and lo < item.finished_at <= cut:
                        total += sign
                        late += sign * item.late
            out[f"recent_finished_{name}"] = total
            out[f"recent_late_share_{name}"] = late / total if total > 0 else NAN
        return out

    def backlogs(self, ident: str, holders: tuple[str | None, str | None]) -> dict[str, float]:
        """``unit_backlog`` and ``officer_backlog`` of an open dossier held by ``holders``
        (unit, officer) now: the open dossiers each holds, this one included (NaN for a
        missing holder)."""
        stored = self._holders.get(ident, (None, None))
        out: dict[str, float] = {}
        for name, counts, mine, before in (
            ("unit_backlog", self._units, holders[0], stored[0]),
            ("officer_backlog", self._officers, holders[1], stored[1]),
        ):
            if mine is None:
                out[name] = NAN
                continue
            out[name] = float(counts.get(mine, 0) - (before == mine) + 1)
        return out


def _latest(events: Sequence[Mapping[str, Any]]) -> pd.Timestamp:
    if not len(events):
        raise s.EventSchemaError("no event given for the dossier", column=s.DOSSIER_ID)
    latest: pd.Timestamp | None = None
    for event in events:
        value = event.get(s.TIMESTAMP)
        if value is None or pd.isna(value):
            raise s.EventSchemaError("missing value", column=s.TIMESTAMP)
        stamp = pd.Timestamp(value)
        latest = stamp if latest is None or stamp > latest else latest
    assert latest is not None
    return latest
