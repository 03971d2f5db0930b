"""Dossier-level integrity: one ``integrity_score`` per dossier, in [0, 1] (higher = more
suspicious), with the reasons of the strongest detectors and an alert threshold chosen
for an alert budget.

Detectors:

- the named rules of :mod:`models.integrity_rules` (route conformance to the catalogue,
  clock manipulation, backdating, off-hours approvals, forced in-person steps, ping-pong,
  off-route transfers);
- the control flow against the normal process learned from history
  (:class:`models.integrity_flow.FlowDetector`: transition likelihood and timing, rework,
  inserted, skipped and moved steps), which also covers logs without a catalogue;
- a multivariate residual (:class:`models.integrity_residual.ResidualDetector`) over the
  dossier features, per procedure, for what no rule names.

Each detector's evidence is turned into a tail probability ``p`` per procedure
(:class:`models.tails.TailTable`: how often evidence at least this strong was seen in
the training history), times the number of comparisons the detector makes. The dossier's
score is ``exp(-k * min p)`` over its ``k`` detectors: for strong evidence about
``1 - k * min p``, a Bonferroni bound on the chance that the strongest of ``k``
detectors looks this unusual by luck, so a score of 0.99 reads "evidence this strong
turns up by chance in at most 1 % of ordinary dossiers"; beyond the bound's reach (a log
where a third of the dossiers deviate) it still orders dossiers by their evidence.

The alert threshold is the score that the ``alert_share`` most suspicious training
dossiers reach: inspectors get a known number of alerts, not every oddity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from features import schema as s
from features.process import NotFittedError
from models.integrity_residual import ResidualDetector
from models.integrity_rules import RULES, Rule, rules_for
from models.tails import TailTable, procedure_groups

__all__ = ["IntegrityModel", "combine"]

FLOW = "flow"
RESIDUAL = "residual"
#: the control-flow detector's score sums many transitions' evidence into one number; it
#: counts as this many comparisons (see Rule.multiplicity).
FLOW_MULTIPLICITY = 4
#: a breach's probability is this share of the smallest tail probability training allows.
BREACH_SHARE = 0.1
#: a statistical rule whose evidence more training dossiers show than this is left out.
MAX_PREVALENCE = 0.05
#: the patterns the learned detectors point at.
LEARNED_PATTERNS = {FLOW: "process_deviation", RESIDUAL: "unusual_dossier"}
#: reasons kept per dossier.
TOP_REASONS = 2
#: detectors whose tail probability is above this say nothing in the reasons.
REASON_P = 0.05


def combine(p: np.ndarray) -> np.ndarray:
    """Per row of a (dossiers x detectors) matrix of multiplicity-adjusted tail
    probabilities (``inf`` where a detector saw nothing), the score ``exp(-k * min p)``:
    about ``1 - k * min p`` (the Bonferroni bound) for strong evidence, still ordered by
    the evidence where that bound says nothing (a log with many anomalies), and 0 without
    any evidence."""
    if p.shape[1] == 0:
        return np.zeros(p.shape[0])
    return np.exp(-p.shape[1] * p.min(axis=1))


class IntegrityModel(BaseEstimator):
    """Integrity detectors fitted on a training history, scoring any dossiers.

    ``alert_share``: share of training dossiers the alert threshold lets through (the
    alert budget); ``min_group``: dossiers a procedure needs for its own tail tables;
    ``flow`` / ``residual``: use those detectors.
    """

    def __init__(
        self,
        alert_share: float = 0.02,
        min_group: int = 200,
        flow: bool = True,
        residual: bool = True,
    ) -> None:
        self.alert_share = alert_share
        self.min_group = min_group
        self.flow = flow
        self.residual = residual

    def fit(self, table: pd.DataFrame, events: pd.DataFrame) -> IntegrityModel:
        """``table``: dossier features (closed_table) of the training dossiers; ``events``:
        their events (for the control-flow detector)."""
        if not len(table):
            raise s.EventSchemaError("no dossier to fit the integrity detectors on")
        groups = procedure_groups(table)
        self.rules_ = [r.name for r in rules_for(table.columns) if _informative(r, table)]
        # statistical evidence most dossiers of this history show is its norm, not a sign
        self.rules_ = [n for n in self.rules_ if _rare_enough(_RULES[n], table)]
        evidence: dict[str, np.ndarray] = {r.name: r.evidence(table) for r in self._rules()}
        self.flow_ = None
        if self.flow:
            from models.integrity_flow import FlowDetector

            self.flow_ = FlowDetector()
            # each training dossier against the others' counts, as new dossiers will be
            self.fitted_flow_ = _aligned(self.flow_.fit_score_samples(events), table.index)
            evidence[FLOW] = self.fitted_flow_["flow_score"].to_numpy()
        self.residual_ = None
        if self.residual:
            self.residual_ = ResidualDetector(min_group=self.min_group).fit(table)
            evidence[RESIDUAL] = self.residual_.score_samples(table)
        breaches = {r.name for r in self._rules() if r.breach}
        self.n_train_ = int(len(table))
        self.detectors_ = list(evidence)
        self.tails_ = {
            name: TailTable(self.min_group).fit(x, self._groups_for(name, groups))
            for name, x in evidence.items()
            if name not in breaches
        }
        score = combine(self._p_matrix(evidence, groups))
        self.threshold_ = float(np.quantile(score, 1.0 - self.alert_share))
        self.threshold_ = max(self.threshold_, 0.5)
        return self

    def _rules(self) -> list[Rule]:
        return [_RULES[n] for n in self.rules_]

    @property
    def detectors(self) -> list[str]:
        _check(self)
        return list(self.detectors_)

    def _flow_scores(self, events: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        assert self.flow_ is not None
        return _aligned(self.flow_.score_samples(events), index)

    def fit_score_samples(self, table: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
        """Fit on a log and score the same dossiers, the control flow of each judged
        against the other dossiers (the unsupervised protocol of the literature: finding
        anomalies in a log without a clean history)."""
        self.fit(table, events)
        return self._scored(table, events, self.fitted_flow_)

    def _multiplicity(self, name: str) -> int:
        if name == RESIDUAL:
            return len(self.residual_.columns_) if self.residual_ is not None else 1
        if name == FLOW:
            return FLOW_MULTIPLICITY
        return {r.name: r.multiplicity for r in RULES}[name]

    def _p(self, name: str, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
        if name not in self.tails_:  # a breach: below any tail probability, by its size
            floor = BREACH_SHARE / (self.n_train_ + 1.0)
            x = np.nan_to_num(x, nan=0.0)
            return np.where(x > 0, floor / (1.0 + np.log1p(np.maximum(x, 0.0))), 1.0)
        return self.tails_[name].p_values(x, self._groups_for(name, groups))

    @staticmethod
    def _groups_for(name: str, groups: np.ndarray) -> np.ndarray:
        """Rules' evidence is already relative to the procedure (shares of its statutory
        time, counts against its route), so their norms are pooled; the learned detectors
        (flow, residual) keep per-procedure norms."""
        return groups if name in (FLOW, RESIDUAL) else np.full(len(groups), "", dtype=object)

    def _p_matrix(self, evidence: dict[str, np.ndarray], groups: np.ndarray) -> np.ndarray:
        """Tail probabilities times each detector's multiplicity (``inf`` where the
        detector saw nothing)."""
        cols = []
        for n in self.detectors_:
            p = self._p(n, evidence[n], groups)
            cols.append(np.where(p < 1.0, self._multiplicity(n) * p, np.inf))
        return np.column_stack(cols) if cols else np.zeros((len(groups), 0))

    def score_samples(self, table: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
        """Per dossier of ``table`` (index dossier_id): ``integrity_score``, the tail
        probability of each detector (``p_<detector>``), ``integrity_pattern`` (the
        strongest detector's pattern) and ``integrity_reasons`` (plain language)."""
        _check(self)
        flow = None if self.flow_ is None else self._flow_scores(events, table.index)
        return self._scored(table, events, flow)

    def _scored(
        self, table: pd.DataFrame, events: pd.DataFrame, flow: pd.DataFrame | None
    ) -> pd.DataFrame:
        groups = procedure_groups(table)
        rules = self._rules()
        evidence = {r.name: r.evidence(table) for r in rules}
        if flow is not None:
            evidence[FLOW] = flow["flow_score"].to_numpy()
        if self.residual_ is not None:
            evidence[RESIDUAL] = self.residual_.score_samples(table)
        p = self._p_matrix(evidence, groups)
        names = list(self.detectors_)
        shown = np.minimum(p, 1.0)
        out = pd.DataFrame({f"p_{n}": shown[:, i] for i, n in enumerate(names)}, index=table.index)
        out.insert(0, "integrity_score", combine(p))
        patterns = {r.name: r.pattern for r in rules} | LEARNED_PATTERNS
        strongest = np.argmin(p, axis=1) if p.shape[1] else np.zeros(len(table), np.int64)
        out["integrity_pattern"] = np.where(
            out["integrity_score"] > 0, np.array([patterns[n] for n in names])[strongest], ""
        )
        out["integrity_reasons"] = self._reasons(table, p, names, rules, flow)
        return out

    def _reasons(
        self,
        table: pd.DataFrame,
        p: np.ndarray,
        names: list[str],
        rules: list[Rule],
        flow: pd.DataFrame | None,
    ) -> pd.Series:
        """The ``TOP_REASONS`` strongest detectors' sentences, for dossiers where any
        detector's evidence is rarer than ``REASON_P`` (the rest get an empty string)."""
        reasons = pd.Series("", index=table.index, dtype=object)
        if not p.shape[1]:
            return reasons
        order = np.argsort(p, axis=1)[:, :TOP_REASONS]
        worth = p.min(axis=1) < REASON_P
        texts: dict[str, pd.Series] = {}
        rows = np.flatnonzero(worth)
        if not len(rows):
            return reasons
        sub = table.iloc[rows]
        records = sub.to_dict("records")
        for rule in rules:
            said: list[str] = [rule.says(r) for r in records]
            texts[rule.name] = pd.Series(said, index=sub.index, dtype=object)
        if flow is not None:
            texts[FLOW] = flow["flow_reason"].iloc[rows].astype(str)
        if self.residual_ is not None:
            texts[RESIDUAL] = pd.Series(self.residual_.reasons(sub), index=sub.index)
        parts: list[list[str]] = [[] for _ in rows]
        for rank in range(order.shape[1]):
            for j, name in enumerate(names):
                pick = (order[rows, rank] == j) & (p[rows, j] < REASON_P)
                if not pick.any():
                    continue
                sentence = texts[name].to_numpy()[pick]
                for at, text in zip(np.flatnonzero(pick), sentence, strict=True):
                    if text:
                        parts[at].append(f"{text} (p={p[rows[at], j]:.2g})")
        reasons.iloc[rows] = pd.Series(["; ".join(x) for x in parts], index=sub.index)
        return reasons

    def to_dict(self) -> dict[str, Any]:
        _check(self)
        return {
            "params": self.get_params(),
            "rules": self.rules_,
            "detectors": self.detectors_,
            "n_train": self.n_train_,
            "threshold": self.threshold_,
            "tails": {k: v.to_dict() for k, v in self.tails_.items()},
            "flow": None if self.flow_ is None else self.flow_.to_dict(),
            "residual": None if self.residual_ is None else self.residual_.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntegrityModel:
        model = cls(**data["params"])
        model.rules_ = list(data["rules"])
        model.threshold_ = float(data["threshold"])
        model.detectors_ = list(data["detectors"])
        model.n_train_ = int(data["n_train"])
        model.tails_ = {k: TailTable.from_dict(v) for k, v in data["tails"].items()}
        model.flow_ = None
        if data.get("flow") is not None:
            from models.integrity_flow import FlowDetector

            model.flow_ = FlowDetector.from_dict(data["flow"])
        model.residual_ = None
        if data.get("residual") is not None:
            model.residual_ = ResidualDetector.from_dict(data["residual"])
        return model


def _aligned(flow: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Flow scores on the rows of a feature table (a dossier without events scores 0)."""
    return flow.reindex(index).fillna({"flow_score": 0.0, "flow_reason": ""})


_RULES = {r.name: r for r in RULES}


def _rare_enough(rule: Rule, table: pd.DataFrame) -> bool:
    """A statistical rule whose evidence more than ``MAX_PREVALENCE`` of the training
    dossiers show describes how this administration works, not what is odd in it (a
    breach of a written rule stays, however common)."""
    if rule.breach:
        return True
    return float((rule.evidence(table) > 0).mean()) <= MAX_PREVALENCE


def _informative(rule: Rule, table: pd.DataFrame) -> bool:
    """A rule whose features are all missing in training (no catalogue for the log's
    procedures, no recording times) would only ever say nothing."""
    return bool(all(table[c].notna().any() for c in rule.columns))


def _check(model: IntegrityModel) -> None:
    if not hasattr(model, "tails_"):
        raise NotFittedError("this IntegrityModel is not fitted yet: call fit first")
