"""The normal process learned from history, for logs without a catalogue (issue 4, item 5).

:class:`NormalProcess` learns, from dossiers of a training period, how often each activity
follows each other one (with a start and an end state, Laplace-smoothed) and how long the
gap between each pair of activities usually is (median and MAD of log seconds, or log
office seconds with a calendar). :func:`process_features` scores dossiers against it:
unlikely or never-seen transitions, unusually early or late steps, repeated and unknown
activities. Leakage-safe by construction: the model holds only training statistics, and a
dossier's features use only its own events (up to its cut).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from features.calendar import WorkingCalendar
from features.dossier_events import DossierEvents, prepare
from features.registry import FeatureSpec
from features.schema import GiamSatError
from features.segments import seen_before

FAMILY = "process"

SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "process_loglik_mean",
        "Average log-probability of the dossier's steps following each other, "
        "by the learned normal process",
        "score",
        FAMILY,
    ),
    FeatureSpec(
        "process_loglik_min",
        "Log-probability of the dossier's least likely step transition",
        "score",
        FAMILY,
    ),
    FeatureSpec(
        "rare_transitions",
        "Step transitions that rarely happen in the normal process",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "unseen_transitions",
        "Step transitions never seen in the normal process",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "timing_z_max",
        "Largest deviation of a time between two steps from its usual value",
        "z-score",
        FAMILY,
    ),
    FeatureSpec(
        "timing_z_mean",
        "Average deviation of the times between steps from their usual values",
        "z-score",
        FAMILY,
    ),
    FeatureSpec(
        "timing_outliers",
        "Times between steps more than 3 robust deviations from usual",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "repeated_activities",
        "Steps whose activity already happened earlier in the dossier (any activity)",
        "count",
        FAMILY,
    ),
    FeatureSpec(
        "unseen_activities",
        "Steps with an activity never seen in the normal process",
        "count",
        FAMILY,
    ),
)

#: Robust deviations beyond which a gap between two steps is an outlier.
OUTLIER_Z = 3.0
#: Floor of a pair's robust spread in log units, so identical training gaps do not give
#: infinite deviations.
MIN_SCALE = 0.5
MAD_TO_SD = 1.4826


class NotFittedError(GiamSatError, AttributeError):
    """A NormalProcess used before ``fit``."""


def check_is_fitted(process: NormalProcess, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``process`` has been fitted."""
    if not hasattr(process, attribute):
        raise NotFittedError("this NormalProcess is not fitted yet: call fit(events) first")


class NormalProcess:
    """Transition and timing statistics of the normal process of a log.

    Follows the scikit-learn estimator contract (``__init__`` stores its arguments, ``fit``
    learns attributes ending in ``_`` and returns ``self``; ``get_params``) without depending
    on scikit-learn, which the feature layer does not need otherwise.

    Parameters: ``alpha`` Laplace smoothing of transition counts; ``rare_probability``
    below which a transition is rare; ``min_pair_count`` training gaps a pair needs before
    its timing is scored; ``calendar`` to measure gaps in office time (else seconds).

    Fitted attributes: ``activities_`` (known activity names; state ``len`` is the start,
    ``len + 1`` the end), ``counts_`` and ``probabilities_`` (from-state x to-state),
    ``frequencies_`` (activity -> share of events), ``timing_`` (DataFrame indexed by
    (from, to) with count, median and scale of log1p gap seconds).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        rare_probability: float = 0.01,
        min_pair_count: int = 5,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self.alpha = alpha
        self.rare_probability = rare_probability
        self.min_pair_count = min_pair_count
        self.calendar = calendar

    def fit(self, events: pd.DataFrame, y: Any = None) -> NormalProcess:
        """Learn the statistics from canonical ``events`` (the training period's dossiers)."""
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        ev = prepare(events, self._calendar())
        names = pd.Index(ev.activity_names)
        k = len(names)
        self.activities_ = names
        src, dst = _transitions(ev, ev.activity, k, end=True)
        counts = np.zeros((k + 2, k + 2), dtype=np.int64)
        np.add.at(counts, (src, dst), 1)
        self.counts_ = counts
        smoothed = counts[:, : k + 2].astype(np.float64) + self.alpha
        smoothed[:, k] = 0.0  # nothing goes back to the start state
        smoothed[k + 1, :] = 0.0  # nor leaves the end state
        totals = smoothed.sum(axis=1, keepdims=True)
        self.probabilities_ = np.divide(smoothed, totals, where=totals > 0, out=smoothed)
        self.frequencies_ = pd.Series(
            np.bincount(ev.activity[ev.activity >= 0], minlength=k) / max(len(ev), 1),
            index=names,
        )
        gaps = _log_gaps(ev, self._uses_calendar())
        inner = ev.seg.position > 0
        frame = pd.DataFrame(
            {"from": ev.activity[:-1][inner[1:]], "to": ev.activity[inner], "gap": gaps[inner]}
        )
        grouped = frame.groupby(["from", "to"])["gap"]
        frame["dev"] = (frame["gap"] - grouped.transform("median")).abs()
        scale = frame.groupby(["from", "to"])["dev"].median() * MAD_TO_SD
        self.timing_ = pd.DataFrame(
            {
                "count": grouped.size(),
                "median": grouped.median(),
                "scale": np.maximum(scale, MIN_SCALE),
            }
        )
        self.uses_calendar_ = self._uses_calendar()
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments (scikit-learn convention)."""
        return {
            "alpha": self.alpha,
            "rare_probability": self.rare_probability,
            "min_pair_count": self.min_pair_count,
            "calendar": self.calendar,
        }

    def _uses_calendar(self) -> bool:
        return self.calendar is not None

    def _calendar(self) -> WorkingCalendar:
        return self.calendar if self.calendar is not None else _utc_calendar()


@lru_cache(maxsize=1)
def _utc_calendar() -> WorkingCalendar:
    return WorkingCalendar.for_country("VN", tz="UTC")


def _transitions(
    ev: DossierEvents, codes: np.ndarray, start: int, *, end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(from, to) state pairs of each segment: start -> first, consecutive, last -> end.

    ``codes`` are the rows' states; ``start`` and ``start + 1`` the start and end states.
    """
    prev = np.empty_like(codes)
    if len(codes):
        prev[1:] = codes[:-1]
        prev[ev.seg.starts] = start
    src, dst = prev, codes
    if end:
        src = np.r_[src, codes[ev.seg.ends - 1]]
        dst = np.r_[dst, np.full(len(ev.seg), start + 1)]
    return src, dst


def _log_gaps(ev: DossierEvents, office: bool) -> np.ndarray:
    """log1p of seconds (or office seconds) since the previous event, per row."""
    values = ev.w if office else ev.t
    step = np.zeros(len(ev), dtype=np.float64)
    if len(ev):
        step[1:] = np.diff(values) / 1e9
    return np.log1p(np.maximum(step, 0.0))


def process_features(
    events: pd.DataFrame,
    process: NormalProcess,
    calendar: WorkingCalendar | None = None,
    *,
    as_of: pd.Timestamp | pd.Series | None = None,
) -> pd.DataFrame:
    """Conformance of each dossier to the learned ``process``, indexed by dossier_id.

    ``calendar`` is needed only if the process was fitted with one (office-time gaps).
    """
    check_is_fitted(process, "counts_")
    if process.uses_calendar_ and calendar is None:
        calendar = process.calendar
    ev = prepare(events, calendar or _utc_calendar(), as_of)
    return pd.DataFrame(process_columns(ev, process), index=ev.seg.ids)


def process_columns(ev: DossierEvents, process: NormalProcess) -> dict[str, np.ndarray]:
    """The process features of prepared events (one value per segment)."""
    check_is_fitted(process, "counts_")
    seg = ev.seg
    known = process.activities_
    k = len(known)
    # log activity codes -> fitted states (k + 2 = an activity never seen in fit)
    state_of_code = np.r_[known.get_indexer(pd.Index(ev.activity_names)), -1]
    state_of_code = np.where(state_of_code < 0, k + 2, state_of_code)
    state = state_of_code[np.where(ev.activity < 0, len(state_of_code) - 1, ev.activity)]
    src, dst = _transitions(ev, state, k, end=ev.cut is None)
    group = np.r_[seg.group, np.arange(len(seg))] if ev.cut is None else seg.group
    unknown = (src >= k + 2) | (dst >= k + 2)
    probs = process.probabilities_
    uniform = 1.0 / (k + 1)
    p = np.where(unknown, uniform, probs[np.minimum(src, k + 1), np.minimum(dst, k + 1)])
    counts = process.counts_[np.minimum(src, k + 1), np.minimum(dst, k + 1)]
    loglik = np.log(np.maximum(p, 1e-300))
    n_trans = np.bincount(group, minlength=len(seg))

    def per(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=len(seg))

    out: dict[str, np.ndarray] = {
        "process_loglik_mean": np.where(n_trans > 0, per(loglik) / np.maximum(n_trans, 1), np.nan),
    }
    lmin = np.full(len(seg), np.inf)
    np.minimum.at(lmin, group, loglik)
    out["process_loglik_min"] = np.where(np.isinf(lmin), np.nan, lmin)
    out["rare_transitions"] = per((p < process.rare_probability) | unknown).astype(np.int64)
    out["unseen_transitions"] = per((counts == 0) | unknown).astype(np.int64)
    out.update(_timing(ev, process, state))
    out["repeated_activities"] = seg.count(seen_before(seg, ev.activity))
    out["unseen_activities"] = seg.count(state >= k + 2)
    return out


def _timing(ev: DossierEvents, process: NormalProcess, state: np.ndarray) -> dict[str, np.ndarray]:
    seg = ev.seg
    timing = process.timing_
    usable = timing[timing["count"] >= process.min_pair_count]
    k = len(process.activities_)
    median = np.full((k + 3, k + 3), np.nan)
    scale = np.full((k + 3, k + 3), np.nan)
    if len(usable):
        f = usable.index.get_level_values("from").to_numpy()
        t = usable.index.get_level_values("to").to_numpy()
        median[f, t] = usable["median"].to_numpy()
        scale[f, t] = usable["scale"].to_numpy()
    codes = state
    prev = np.full(len(ev), k + 2)
    if len(ev):
        prev[1:] = codes[:-1]
        prev[seg.starts] = k + 2
    gaps = _log_gaps(ev, process.uses_calendar_)
    z = np.abs(gaps - median[prev, codes]) / scale[prev, codes]
    scored = ~np.isnan(z)
    n = seg.count(scored)
    total = seg.sum(np.where(scored, z, 0.0))
    return {
        "timing_z_max": seg.max(z),
        "timing_z_mean": np.where(n > 0, total / np.maximum(n, 1), np.nan),
        "timing_outliers": seg.count(scored & (z > OUTLIER_Z)),
    }
