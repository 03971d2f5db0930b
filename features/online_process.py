"""Conformance of one dossier to the learned normal process, in plain Python (online
scoring): :func:`features.process.process_columns` for one open prefix (no end
transition: the dossier is seen as of a cut)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from features.process import OUTLIER_Z, NormalProcess, check_is_fitted

if TYPE_CHECKING:
    from features.online import DossierTrace

__all__ = ["process_row"]

NAN = math.nan


@dataclass(frozen=True)
class _Tables:
    state: dict[str, int]  # activity -> fitted state
    k: int
    probabilities: list[list[float]]
    counts: list[list[int]]
    timing: dict[tuple[int, int], tuple[float, float]]  # (from, to) -> (median, scale)

    @classmethod
    def of(cls, process: NormalProcess) -> _Tables:
        check_is_fitted(process, "counts_")
        names = [str(a) for a in process.activities_]
        timing = process.timing_
        usable = timing[timing["count"] >= process.min_pair_count]
        pairs = zip(
            usable.index.get_level_values("from").tolist(),
            usable.index.get_level_values("to").tolist(),
            usable["median"].tolist(),
            usable["scale"].tolist(),
            strict=True,
        )
        return cls(
            {name: i for i, name in enumerate(names)},
            len(names),
            process.probabilities_.tolist(),
            process.counts_.tolist(),
            {(int(f), int(t)): (float(m), float(sc)) for f, t, m, sc in pairs},
        )


_CACHE: dict[int, tuple[NormalProcess, _Tables]] = {}


def _tables(process: NormalProcess) -> _Tables:
    cached = _CACHE.get(id(process))
    if cached is None or cached[0] is not process:
        cached = (process, _Tables.of(process))
        _CACHE[id(process)] = cached
    return cached[1]


def process_row(tr: DossierTrace, process: NormalProcess) -> dict[str, Any]:
    """The process columns of the dossier's events up to its cut."""
    tables = _tables(process)
    k = tables.k
    unseen_state = k + 2
    states = [
        tables.state.get(a, unseen_state) if a is not None else unseen_state for a in tr.activity
    ]
    uniform = 1.0 / (k + 1)
    total = 0.0
    lowest = math.inf
    rare = unseen = 0
    previous = k  # the start state
    for state in states:
        unknown = previous >= unseen_state or state >= unseen_state
        src, dst = min(previous, k + 1), min(state, k + 1)
        p = uniform if unknown else tables.probabilities[src][dst]
        loglik = math.log(max(p, 1e-300))
        total += loglik
        lowest = min(lowest, loglik)
        rare += p < process.rare_probability or unknown
        unseen += tables.counts[src][dst] == 0 or unknown
        previous = state
    n = len(states)
    values = tr.w if process.uses_calendar_ else tr.t
    z: list[float] = []
    for i in range(1, n):
        pair = tables.timing.get((states[i - 1], states[i]))
        if pair is None:
            continue
        gap = math.log1p(max((values[i] - values[i - 1]) / 1e9, 0.0))
        z.append(abs(gap - pair[0]) / pair[1])
    z_total = 0.0
    for x in z:
        z_total += x
    seen: set[str] = set()
    repeated = 0
    for a in tr.activity:
        if a is not None:
            repeated += a in seen
            seen.add(a)
    return {
        "process_loglik_mean": total / n,
        "process_loglik_min": lowest,
        "rare_transitions": rare,
        "unseen_transitions": unseen,
        "timing_z_max": max(z) if z else NAN,
        "timing_z_mean": z_total / len(z) if z else NAN,
        "timing_outliers": sum(1 for x in z if x > OUTLIER_Z),
        "repeated_activities": repeated,
        "unseen_activities": sum(1 for x in states if x >= unseen_state),
    }
