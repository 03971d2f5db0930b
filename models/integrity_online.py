"""The integrity model on one dossier, in plain Python (online scoring).

:meth:`models.integrity.IntegrityModel.score_samples` scores a log's feature table and
events with frames; on one dossier that costs milliseconds of pandas. :class:`OnlineIntegrity`
reads the fitted model once into lookup tables (each detector's tail table as sorted
lists for ``bisect``, the residual's group models as arrays, the control-flow detector's
counts as dicts, :class:`models.integrity_flow_online.OnlineFlow`) and scores one
dossier from its ``closed_table`` row (a mapping, as :class:`models.online.OnlineScorer`
builds it) and its :class:`features.online.DossierTrace`, with the batch's arithmetic
step by step: the rules' evidence and sentences are the rules' own row forms
(:class:`models.integrity_rules.Rule`), the residual goes through the batch's functions,
and the logarithms and exponentials through numpy. The result is the dossier's
``integrity_score``, ``integrity_reasons`` and ``integrity_pattern`` of a batch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from features import schema as s
from features.online import DossierTrace, is_missing
from models.explain import describe
from models.integrity import (
    BREACH_SHARE,
    FLOW,
    LEARNED_PATTERNS,
    REASON_P,
    RESIDUAL,
    TOP_REASONS,
    IntegrityModel,
)
from models.integrity_flow_online import TICK_NS, OnlineFlow
from models.integrity_residual import POOLED, ResidualDetector, residual, scaled
from models.integrity_rules import Rule
from models.tails import POOLED as TAIL_POOLED
from models.tails import TailTable, reach

__all__ = ["OnlineIntegrity"]

Row = Mapping[Any, Any]  # a closed_table row: column -> value


@dataclass(frozen=True)
class _Tail:
    """One group's survival table (``models.tails._survival``): kept values ascending,
    the rank of each (as floats) and the sample size."""

    ascending: list[float]
    ranks: list[float]
    n: int

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> _Tail:
        values = [float(v) for v in table["values"]]
        ranks = [float(r) for r in table["ranks"]]
        return cls(values[::-1], ranks, int(table["n"]))

    def p(self, x: float) -> float:
        """(fitted values >= x, +1) / (n + 1), for evidence ``x > 0``."""
        if self.n == 0:
            return 1.0
        idx = len(self.ascending) - bisect_left(self.ascending, reach(x))  # kept values >= x
        count = self.ranks[idx - 1] if idx > 0 else 0.0
        return (count + 1.0) / (self.n + 1.0)


class _Tails:
    """A :class:`TailTable`'s groups; a group it has no table of reads the pooled one."""

    def __init__(self, table: TailTable) -> None:
        self.groups = {str(k): _Tail.of(v) for k, v in table.tables_.items()}
        self.pooled = self.groups[TAIL_POOLED]

    def of(self, group: str) -> _Tail:
        return self.groups.get(group, self.pooled)


class _Residual:
    """The :class:`ResidualDetector` on one dossier's features, through its own functions
    (``scaled``, ``residual``) on a two-row array: one row would go through BLAS's
    matrix-vector product, whose last bits differ from the matrix-matrix product every
    batch of two or more dossiers gets."""

    def __init__(self, detector: ResidualDetector) -> None:
        self.columns = list(detector.columns_)
        self.models = detector.models_
        self.pooled = detector.models_[POOLED]

    def residuals(self, row: Row, group: str) -> np.ndarray:
        values = [row.get(c) for c in self.columns]
        try:  # None reads as NaN
            x = np.array([values, values], dtype=np.float64)
        except (TypeError, ValueError):  # pd.NA or other missing markers
            values = [_float(v) for v in values]
            x = np.array([values, values], dtype=np.float64)
        x = scaled(x)
        return residual(x, self.models.get(group, self.pooled))

    def score(self, r: np.ndarray) -> float:
        if not r.shape[1]:
            return 0.0
        return float(np.sqrt((r**2).mean(axis=1))[0])

    def reason(self, r: np.ndarray, row: Row, group: str) -> str:
        if not r.shape[1]:
            return ""
        j = int(np.argmax(np.abs(r[0])))
        name = self.columns[j]
        norm = float(np.expm1(self.models.get(group, self.pooled)["centre"][j]))
        return "unusual for its procedure: " + describe(name, row.get(name), norm)


def _float(value: Any) -> float:
    return np.nan if is_missing(value) else float(value)


class OnlineIntegrity:
    """A fitted :class:`IntegrityModel` scoring one dossier at a time.

    ``tick_ns``: the resolution of the event times the batch's control-flow detector
    reads (see :mod:`models.integrity_flow_online`).
    """

    def __init__(self, model: IntegrityModel, tick_ns: int = TICK_NS) -> None:
        self.detectors = model.detectors  # raises NotFittedError when not fitted
        self.threshold = float(model.threshold_)
        rules = {r.name: r for r in model._rules()}
        self._rules: dict[int, Rule] = {
            k: rules[n] for k, n in enumerate(self.detectors) if n in rules
        }
        self._multiplicity = [float(model._multiplicity(n)) for n in self.detectors]
        self._tails = {n: _Tails(t) for n, t in model.tails_.items()}
        self._floor = BREACH_SHARE / (model.n_train_ + 1.0)
        self._patterns = [
            rules[n].pattern if n in rules else LEARNED_PATTERNS[n] for n in self.detectors
        ]
        self._flow = None if model.flow_ is None else OnlineFlow(model.flow_, tick_ns)
        self._residual = None if model.residual_ is None else _Residual(model.residual_)

    def score(self, row: Row, trace: DossierTrace) -> tuple[float, str, str]:
        """(``integrity_score``, ``integrity_reasons``, ``integrity_pattern``) of the
        dossier whose ``closed_table`` row is ``row`` and events ``trace``."""
        procedure = row.get(s.PROCEDURE_CODE)
        group = "" if is_missing(procedure) else str(procedure)
        evidence: dict[str, float] = {}
        for rule in self._rules.values():
            evidence[rule.name] = rule.evidence.row(row)
        flow_reason = ""
        if self._flow is not None:
            evidence[FLOW], flow_reason = self._flow.score(trace)
        r = None
        if self._residual is not None:
            r = self._residual.residuals(row, group)
            evidence[RESIDUAL] = self._residual.score(r)
        p = self._p([evidence[n] for n in self.detectors], group)
        if not p:
            return 0.0, "", ""
        least = min(p)
        score = float(np.exp(np.array([-len(p) * least]))[0])
        pattern = self._patterns[p.index(least)] if score > 0 else ""
        if not least < REASON_P:
            return score, "", pattern
        parts = []
        for j in np.argsort(np.array(p))[:TOP_REASONS].tolist():
            if not p[j] < REASON_P:
                continue
            name = self.detectors[j]
            if name == FLOW:
                text = flow_reason
            elif name == RESIDUAL:
                assert self._residual is not None and r is not None
                text = self._residual.reason(r, row, group)
            else:
                text = self._rules[j].says(row)
            if text:
                parts.append(f"{text} (p={p[j]:.2g})")
        return score, "; ".join(parts), pattern

    def _p(self, x: list[float], group: str) -> list[float]:
        """Each detector's tail probability times its multiplicity (``inf`` where it saw
        nothing): ``IntegrityModel._p_matrix`` of one dossier."""
        breaches = [k for k, n in enumerate(self.detectors) if n not in self._tails and x[k] > 0]
        logs = np.log1p(np.array([x[k] for k in breaches])).tolist() if breaches else []
        breach = dict(zip(breaches, logs, strict=True))
        out = []
        for k, name in enumerate(self.detectors):
            v = x[k]
            if not v > 0:  # nothing seen (NaN counts as 0)
                out.append(np.inf)
                continue
            if k in breach:
                p = self._floor / (1.0 + breach[k])
            else:
                tails = self._tails[name]
                p = tails.of(group if name in (FLOW, RESIDUAL) else "").p(v)
            out.append(self._multiplicity[k] * p if p < 1.0 else np.inf)
        return out
