"""Baselines the control-flow integrity detector must beat, scored on the same events.

* :class:`BigramLikelihood`: surprise ``-log P(next | previous)`` of the dossier's least
  likely directly-follows step (start and end markers included) under add-``alpha``
  smoothed bigram frequencies;
* :class:`VariantRarity`: how rare the dossier's exact activity sequence is
  (``-log`` of its share of the fitted dossiers, unseen variants as once-seen);
* :class:`ActivityCountForest`: an :class:`~sklearn.ensemble.IsolationForest` on the
  dossier's activity counts and directly-follows counts.

Every ``score_samples`` returns a Series indexed by dossier id, higher = more anomalous
(not bounded: these are for ranking in evaluations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from features import schema as s

__all__ = ["ActivityCountForest", "BigramLikelihood", "VariantRarity"]

_START, _END = "\x02start", "\x03end"


def _sequences(events: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Dossier ids, and per event its dossier number and activity name (canonical order)."""
    ev = s.sort_events(events[[s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP, s.SEQ]])
    case, ids = pd.factorize(ev[s.DOSSIER_ID])
    return pd.Index(ids, name=s.DOSSIER_ID), case, ev[s.ACTIVITY].astype(str).to_numpy()


def _bigrams(case: np.ndarray, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directly-follows steps with start and end markers: dossier, from, to."""
    first = np.r_[True, case[1:] != case[:-1]]
    last = np.r_[case[1:] != case[:-1], True]
    inner = ~last
    src = np.r_[np.full(first.sum(), _START, dtype=object), acts[inner], acts[last]]
    dst = np.r_[acts[first], acts[1:][inner[:-1]], np.full(last.sum(), _END, dtype=object)]
    who = np.r_[case[first], case[inner], case[last]]
    return who, src.astype(str), dst.astype(str)


class BigramLikelihood(BaseEstimator):
    """Surprise ``-log P(next | previous)`` of the dossier's least likely step."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def fit(self, events: pd.DataFrame) -> BigramLikelihood:
        _, case, acts = _sequences(events)
        _, src, dst = _bigrams(case, acts)
        pairs = pd.Series(1, index=pd.MultiIndex.from_arrays([src, dst])).groupby(level=[0, 1])
        self.pairs_ = pairs.sum()
        self.out_ = self.pairs_.groupby(level=0).sum()
        self.n_symbols_ = len(set(src) | set(dst))
        return self

    def score_samples(self, events: pd.DataFrame) -> pd.Series:
        check_is_fitted(self, "pairs_")
        ids, case, acts = _sequences(events)
        who, src, dst = _bigrams(case, acts)
        seen = self.pairs_.reindex(pd.MultiIndex.from_arrays([src, dst])).fillna(0).to_numpy()
        out = self.out_.reindex(src).fillna(0).to_numpy()
        nll = -np.log((seen + self.alpha) / (out + self.alpha * self.n_symbols_))
        score = pd.Series(nll).groupby(who).max().reindex(range(len(ids)), fill_value=0.0)
        return pd.Series(score.to_numpy(), index=ids, name="bigram_surprise")


def _variants(events: pd.DataFrame) -> pd.Series:
    ids, case, acts = _sequences(events)
    joined = pd.Series(acts).groupby(case, sort=True).agg("\x1f".join)
    return pd.Series(joined.to_numpy(), index=ids)


class VariantRarity(BaseEstimator):
    """``-log`` of the share of fitted dossiers that followed exactly this sequence."""

    def fit(self, events: pd.DataFrame) -> VariantRarity:
        variants = _variants(events)
        self.counts_ = variants.value_counts()
        self.n_dossiers_ = len(variants)
        return self

    def score_samples(self, events: pd.DataFrame) -> pd.Series:
        check_is_fitted(self, "counts_")
        variants = _variants(events)
        seen = self.counts_.reindex(variants.to_numpy()).fillna(1).to_numpy()
        score = -np.log(seen / self.n_dossiers_)
        return pd.Series(score, index=variants.index, name="variant_rarity")


class ActivityCountForest(BaseEstimator):
    """Isolation forest on per-dossier activity counts and directly-follows counts."""

    def __init__(self, n_estimators: int = 200, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _matrix(self, events: pd.DataFrame) -> tuple[pd.Index, sparse.csr_matrix]:
        ids, case, acts = _sequences(events)
        who, src, dst = _bigrams(case, acts)
        tokens = np.r_[acts, np.char.add(np.char.add(src, "->"), dst)]
        rows = np.r_[case, who]
        cols = self.columns_.get_indexer(tokens)
        keep = cols >= 0
        m = sparse.csr_matrix(
            (np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(len(ids), len(self.columns_))
        )
        return ids, m

    def fit(self, events: pd.DataFrame) -> ActivityCountForest:
        _, case, acts = _sequences(events)
        _, src, dst = _bigrams(case, acts)
        tokens = np.r_[acts, np.char.add(np.char.add(src, "->"), dst)]
        self.columns_ = pd.Index(pd.unique(tokens))
        _, m = self._matrix(events)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(m)
        return self

    def score_samples(self, events: pd.DataFrame) -> pd.Series:
        check_is_fitted(self, "forest_")
        ids, m = self._matrix(events)
        return pd.Series(-self.forest_.score_samples(m), index=ids, name="count_forest")
