"""Recent outcomes as of a cut: how many dossiers of the same procedure, and of the same
receiving agency, finished in the 30 days before the cut, and what share of them ended
late on the honest clock. A surge or a struggling unit shows here before it shows in the
dossier itself.

Point in time: a dossier counts at cut T only if it finished in (T - window, T], when its
outcome was known; nothing after T is read. Counted with sorted keys and
``searchsorted``, no loop over dossiers or cuts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.registry import FeatureSpec

__all__ = ["KEYS", "SPECS", "recent_outcomes"]

FAMILY = "recent_outcomes"
WINDOW_DAYS = 30
#: (feature suffix, context column): whose recent outcomes a dossier is compared with.
KEYS = (("procedure", s.PROCEDURE_CODE), ("agency", "first_agency"))
SPECS: tuple[FeatureSpec, ...] = tuple(
    spec
    for name, _ in KEYS
    for spec in (
        FeatureSpec(
            f"recent_finished_{name}",
            f"Dossiers of the same {name} finished in the last {WINDOW_DAYS} days",
            "count",
            FAMILY,
        ),
        FeatureSpec(
            f"recent_late_share_{name}",
            f"Share of the same {name}'s dossiers finished in the last {WINDOW_DAYS} days "
            "that ended late",
            "share",
            FAMILY,
        ),
    )
)


def _ns(times: pd.Series | pd.Index) -> np.ndarray:
    values = pd.DatetimeIndex(times).as_unit("ns").asi8
    return np.asarray(values, dtype=np.int64)


def _window_counts(
    key_hist: np.ndarray, t_hist: np.ndarray, key_q: np.ndarray, t_q: np.ndarray, window: int
) -> np.ndarray:
    """For each query, history rows with its key and a time in (t_q - window, t_q]: the
    (key, time rank) pairs are sorted once and both window ends searched."""
    keep = key_hist >= 0
    key_hist, t_hist = key_hist[keep].astype(np.int64), t_hist[keep]
    values, inverse = np.unique(np.r_[t_hist, t_q, t_q - window], return_inverse=True)
    span = np.int64(len(values) + 1)
    n, m = len(t_hist), len(t_q)
    hist = np.sort(key_hist * span + inverse[:n])
    key = np.maximum(key_q, 0).astype(np.int64) * span
    hi = np.searchsorted(hist, key + inverse[n : n + m], side="right")
    lo = np.searchsorted(hist, key + inverse[n + m :], side="right")
    return np.where(key_q >= 0, hi - lo, 0)


def recent_outcomes(
    history: pd.DataFrame, queries: pd.DataFrame, *, window_days: int = WINDOW_DAYS
) -> pd.DataFrame:
    """The :data:`SPECS` columns for each row of ``queries``.

    ``history``: one row per dossier with the :data:`KEYS` context columns, ``finished_at``
    (NaT if not finished) and ``late`` (0/1, NaN unknown). ``queries``: the same context
    columns and ``cut`` (tz-aware). Returns a frame aligned with ``queries``.
    """
    window = int(window_days) * 86_400_000_000_000
    done = history[history["finished_at"].notna() & history["late"].notna()]
    t_hist = _ns(done["finished_at"])
    late = done["late"].to_numpy(dtype=np.float64) > 0
    t_q = _ns(queries["cut"])
    out = pd.DataFrame(index=queries.index)
    for name, column in KEYS:
        codes, uniques = pd.factorize(
            pd.concat([done[column], queries[column]]).astype("string"), use_na_sentinel=True
        )
        k_hist, k_q = codes[: len(done)], codes[len(done) :]
        total = _window_counts(k_hist, t_hist, k_q, t_q, window)
        lates = _window_counts(k_hist[late], t_hist[late], k_q, t_q, window)
        out[f"recent_finished_{name}"] = total
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"recent_late_share_{name}"] = np.where(total > 0, lates / total, np.nan)
    return out
