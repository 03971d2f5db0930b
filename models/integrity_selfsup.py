"""Self-supervised re-ranking of the control-flow evidence: learn what a departure from
this log's own process looks like by contrasting the log with edited copies of itself.

Copies of the log's traces (activity and time only) are edited with the generic
control-flow operations of the process-mining literature: insert an activity drawn from
the log's frequencies, delete a block of 1-3 events, repeat a block of 1-3 events right
after itself, move an event (or a block of 2) 1-5 positions earlier or later. Edited and
moved events get a time between their new neighbours, so time still follows the order.

Each trace, original or copy, is described by summaries of the flow evidence of
:class:`models.integrity_flow.FlowDetector` (the top surprises of each family, how many
pair relations pass a surprise level, direct-follows surprises, length), counted on the
*other* folds' original traces. A LightGBM classifier learns original (0) versus edited
(1); the classifier scoring a fold's originals never saw them. ``selfsup_score`` is its
probability that a dossier is an edit of the normal process: higher = more suspicious,
in [0, 1]; ``selfsup_mix`` averages it with the flow score (both as shares of the fitted
dossiers below). Labels are never read; officer, resource and every other attribute are
ignored.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from models.integrity_flow import FlowDetector, _steps, _tail_table
from models.integrity_selfsup_features import FEATURES, FlowCounts
from models.trace_edits import TraceLog, edit_traces, subset_traces

__all__ = ["SelfSupervisedFlow"]


class SelfSupervisedFlow(BaseEstimator):
    """Probability that a dossier is an edit of the log's own process (higher = more
    suspicious, in [0, 1]), from a classifier of original versus edited traces.

    Parameters: ``copies`` edited copies per trace; ``folds`` the cross-fitting folds;
    ``rounds``, ``learning_rate``, ``num_leaves``, ``min_leaf`` the LightGBM classifier;
    ``random_state`` the seed of the edits, folds and classifier; ``flow`` the
    :class:`FlowDetector` parameters (``None``: its defaults).

    ``fit_score_samples(events)`` scores the log itself, each dossier by a classifier that
    never saw it, against counts of the other folds; ``fit`` then ``score_samples`` scores
    new dossiers against the whole fitted log, with the mean of the folds' classifiers.
    Output: index ``dossier_id``, ``selfsup_score``, ``selfsup_mix`` (the mean of the
    self-supervised and the flow score, each as the share of fitted dossiers below it:
    the two rank dossiers differently, and their mean ranks better than either) and the
    columns of :meth:`FlowDetector.fit_score_samples` (``score_samples``: of its
    ``score_samples``).
    """

    def __init__(
        self,
        copies: int = 4,
        folds: int = 5,
        rounds: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_leaf: int = 20,
        trim: float = 0.0,
        random_state: int = 0,
        flow: dict[str, Any] | None = None,
    ) -> None:
        self.trim = trim
        self.copies = copies
        self.folds = folds
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_leaf = min_leaf
        self.random_state = random_state
        self.flow = flow

    def _flow_params(self) -> dict[str, Any]:
        return dict(self.flow or {})

    def _encode(self, events: pd.DataFrame) -> tuple[pd.Index, TraceLog]:
        params = FlowDetector(**self._flow_params()).get_params()
        ev = s.sort_events(
            events[[s.DOSSIER_ID, s.TIMESTAMP, s.SEQ]].assign(_step=_steps(events, params["by"]))
        )
        case, ids = pd.factorize(ev[s.DOSSIER_ID])
        code = self.vocabulary_.get_indexer(pd.Index(ev["_step"]))
        code[code < 0] = len(self.vocabulary_)
        time = ev[s.TIMESTAMP].dt.tz_convert("UTC").astype("int64").to_numpy()
        index = pd.Index(np.asarray(ids), name=s.DOSSIER_ID, dtype="string")
        return index, TraceLog(case.astype(np.int64), code.astype(np.int64), time, len(ids))

    def _params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_leaf,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "num_threads": 1,
            "seed": self.random_state,
            "deterministic": True,
            "verbosity": -1,
        }

    def _cross_fit(self, events: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
        """Learn the state; return the dossiers and each one's out-of-fold probability."""
        s.validate_events(events, check_event_ids=False)
        by = FlowDetector(**self._flow_params()).by
        self.vocabulary_ = pd.Index(pd.unique(_steps(events, by)), dtype="string")
        index, log = self._encode(events)
        rng = np.random.default_rng(self.random_state)
        fold = rng.permutation(np.arange(log.n) % self.folds)
        freq = np.bincount(log.code, minlength=len(self.vocabulary_) + 1).astype(np.float64)
        freq /= freq.sum()
        keep = np.ones(log.n, dtype=bool)
        out = self._round(log, fold, keep, rng, freq)
        if self.trim > 0:
            # a second round without the most suspicious originals: neither counted as
            # the normal process nor shown to the classifier as originals
            keep = out < np.quantile(out, 1.0 - self.trim)
            out = self._round(log, fold, keep, rng, freq)
        self.stats_ = FlowCounts.build(
            subset_traces(log, keep), self.vocabulary_, self._flow_params()
        )
        self.flow_ = FlowDetector(**self._flow_params())
        return index, out

    def _round(
        self,
        log: TraceLog,
        fold: np.ndarray,
        keep: np.ndarray,
        rng: np.random.Generator,
        freq: np.ndarray,
    ) -> np.ndarray:
        """Out-of-fold probabilities of every original, counting and training on the
        originals ``keep`` only (every original is scored and edited)."""
        parts = []
        for k in range(self.folds):
            mine = fold == k
            stats = FlowCounts.build(
                subset_traces(log, ~mine & keep), self.vocabulary_, self._flow_params()
            )
            originals = subset_traces(log, mine)
            source = np.repeat(np.arange(originals.n), self.copies)
            edited = edit_traces(originals, source, rng, freq)
            x = np.vstack([stats.features(originals), stats.features(edited)])
            y = np.r_[np.zeros(originals.n), np.ones(edited.n)]
            use = np.r_[keep[mine], np.ones(edited.n, dtype=bool)]
            parts.append((x, y, use, np.flatnonzero(mine)))
        self.boosters_: list[str] = []
        out = np.zeros(log.n)
        for k in range(self.folds):
            x = np.vstack([parts[m][0][parts[m][2]] for m in range(self.folds) if m != k])
            y = np.concatenate([parts[m][1][parts[m][2]] for m in range(self.folds) if m != k])
            data = lgb.Dataset(x, y, feature_name=list(FEATURES), free_raw_data=True)
            booster = lgb.train(self._params(), data, num_boost_round=self.rounds)
            xk, yk, _, rows = parts[k]
            out[rows] = booster.predict(xk[yk == 0])
            self.boosters_.append(booster.model_to_string())
        return out

    def fit(self, events: pd.DataFrame) -> SelfSupervisedFlow:
        """Learn the classifiers (cross-fitted), the whole log's counts and the flow
        detector, to score new dossiers."""
        index, prob = self._cross_fit(events)
        flow = self.flow_.fit_score_samples(events)
        self._fit_tables(prob, flow.reindex(index)["flow_score"].to_numpy())
        return self

    def _fit_tables(self, prob: np.ndarray, flow: np.ndarray) -> None:
        """Quantile tables of the fitted log's out-of-fold probabilities and flow scores,
        which put both on one scale (share of fitted dossiers below) for the mix."""
        self.tables_ = {
            name: tuple(np.asarray(x).tolist() for x in _tail_table(v))
            for name, v in (("selfsup", prob), ("flow", flow))
        }

    def _rank(self, name: str, values: np.ndarray) -> np.ndarray:
        q, level = (np.asarray(x, dtype=np.float64) for x in self.tables_[name])
        return np.interp(values, q, level, left=0.0, right=1.0)

    def _output(self, index: pd.Index, prob: np.ndarray, flow: pd.DataFrame) -> pd.DataFrame:
        flow = flow.reindex(index)
        mix = (self._rank("selfsup", prob) + self._rank("flow", flow["flow_score"].to_numpy())) / 2
        out = pd.DataFrame(
            {"selfsup_score": np.clip(prob, 0.0, 1.0), "selfsup_mix": mix}, index=index
        )
        return out.join(flow)

    def fit_score_samples(self, events: pd.DataFrame) -> pd.DataFrame:
        """Fit on ``events`` and score the same dossiers, each by the classifier of the
        folds it is not in, against the counts of those folds."""
        index, prob = self._cross_fit(events)
        flow = self.flow_.fit_score_samples(events)
        self._fit_tables(prob, flow.reindex(index)["flow_score"].to_numpy())
        return self._output(index, prob, flow)

    def score_samples(self, events: pd.DataFrame) -> pd.DataFrame:
        """Score any dossiers against the fitted log (mean of the folds' classifiers)."""
        check_is_fitted(self, "tables_")
        index, log = self._encode(events)
        x = self.stats_.features(log)
        boosters = [lgb.Booster(model_str=m) for m in self.boosters_]
        prob = np.mean([b.predict(x) for b in boosters], axis=0) if log.n else np.zeros(0)
        return self._output(index, prob, self.flow_.score_samples(events))

    # --- state -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: parameters, counts, the flow detector's state and the
        classifiers as LightGBM model text."""
        check_is_fitted(self, "tables_")
        return {
            "params": self.get_params(),
            "vocabulary": [str(v) for v in self.vocabulary_],
            "stats": self.stats_.to_dict(),
            "flow": self.flow_.to_dict(),
            "boosters": list(self.boosters_),
            "tables": {k: [list(x) for x in v] for k, v in self.tables_.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelfSupervisedFlow:
        """The model :meth:`to_dict` described."""
        model = cls(**data["params"])
        model.vocabulary_ = pd.Index(data["vocabulary"], dtype="string")
        model.flow_ = FlowDetector.from_dict(data["flow"])
        model.stats_ = FlowCounts.from_dict(data["stats"], model.vocabulary_, model._flow_params())
        model.boosters_ = list(data["boosters"])
        model.tables_ = {k: (list(q), list(lv)) for k, (q, lv) in data["tables"].items()}
        return model
