"""Empirical tail probabilities, per group with a pooled fallback: how often a value at
least this large was seen in the fitted history. Every integrity detector's evidence is
turned into such a probability, so detectors of different units (steps, hours, shares)
are compared on one scale: the rarer the evidence, the smaller ``p``.

A group's survival function is kept as a short table of (value, count of fitted values
at least that large) at geometric ranks: exact in the far tail, where alerts are decided,
and coarse in the bulk. It is JSON data (no pickle) so it lives in the model bundle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features import schema as s

__all__ = ["NOISE", "TailTable", "procedure_groups", "reach"]

#: ranks kept exactly (the largest values), then geometric steps up to the sample size.
EXACT_RANKS = 64
GEOMETRIC_POINTS = 96
POOLED = "*"
#: evidence within this relative distance below a fitted value counts as reaching it: the
#: same dossier's evidence computed in another batch, or alone (online scoring), can
#: differ in its last bits (BLAS blocks a matrix product by the number of rows), and a
#: tie with a fitted value, such as a training dossier scored again, must not hang on
#: them. Far above float noise (1e-16), far below any difference evidence makes.
NOISE = 1e-12


def _ranks(n: int) -> np.ndarray:
    exact = np.arange(1, min(n, EXACT_RANKS) + 1)
    if n <= EXACT_RANKS:
        return exact
    geo = np.geomspace(EXACT_RANKS + 1, n, GEOMETRIC_POINTS).round().astype(np.int64)
    return np.unique(np.r_[exact, geo])


def _table(values: np.ndarray) -> dict[str, Any]:
    x = np.sort(values[np.isfinite(values)])[::-1]  # descending
    n = len(x)
    if n == 0:
        return {"n": 0, "values": [], "ranks": []}
    ranks = _ranks(n)
    return {"n": int(n), "values": x[ranks - 1].tolist(), "ranks": ranks.tolist()}


def _survival(table: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """(fitted values >= x, up to float noise, +1) / (n + 1): the add-one estimate never
    says "impossible"."""
    n = int(table["n"])
    if n == 0:
        return np.ones(len(x))
    values = np.asarray(table["values"], dtype=np.float64)
    ranks = np.asarray(table["ranks"], dtype=np.float64)
    # values descend as ranks grow: the count of values >= x is the largest rank whose
    # value is still >= x (a conservative step between kept ranks)
    ascending = values[::-1]
    idx = len(values) - np.searchsorted(ascending, reach(x), side="left")  # kept values >= x
    count = np.where(idx > 0, ranks[np.maximum(idx, 1) - 1], 0.0)
    return (count + 1.0) / (n + 1.0)


def reach(x: Any) -> Any:
    """The smallest fitted value that counts as ``>= x`` (``x`` less float noise), for a
    float or an array of them."""
    return x - NOISE * abs(x)


class TailTable:
    """Per-group tail probabilities ``P(X >= x)`` learned from a sample.

    ``min_group``: groups with fewer fitted values use the pooled table. Evidence of 0
    (nothing seen) always gets ``p = 1``.
    """

    def __init__(self, min_group: int = 200) -> None:
        self.min_group = min_group
        self.tables_: dict[str, dict[str, Any]] = {}

    def fit(self, values: np.ndarray, groups: pd.Series | np.ndarray) -> TailTable:
        x = np.asarray(values, dtype=np.float64)
        g = pd.Series(np.asarray(groups, dtype=object)).fillna(POOLED).astype(str).to_numpy()
        self.tables_ = {POOLED: _table(x)}
        order = np.argsort(g, kind="stable")
        keys, starts = np.unique(g[order], return_index=True)
        bounds = np.r_[starts, len(g)]
        for i, key in enumerate(keys):
            part = x[order[bounds[i] : bounds[i + 1]]]
            if np.isfinite(part).sum() >= self.min_group and key != POOLED:
                self.tables_[str(key)] = _table(part)
        return self

    def p_values(self, values: np.ndarray, groups: pd.Series | np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        g = pd.Series(np.asarray(groups, dtype=object)).fillna(POOLED).astype(str).to_numpy()
        out = np.ones(len(x))
        keys = np.where(np.isin(g, list(self.tables_)), g, POOLED)
        for key in np.unique(keys):
            at = keys == key
            out[at] = _survival(self.tables_[str(key)], x[at])
        return np.where(x > 0, out, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"min_group": self.min_group, "tables": self.tables_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TailTable:
        table = cls(int(data["min_group"]))
        table.tables_ = {str(k): v for k, v in data["tables"].items()}
        return table


def procedure_groups(table: pd.DataFrame) -> np.ndarray:
    """Per dossier of a feature table, the procedure its norms are learned per."""
    if s.PROCEDURE_CODE in table:
        return table[s.PROCEDURE_CODE].astype("string").fillna("").to_numpy(dtype=object)
    return np.full(len(table), "", dtype=object)
