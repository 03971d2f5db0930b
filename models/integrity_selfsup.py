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

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from models.integrity_flow import FlowDetector, _pairs, _relation, _steps, _tail_table, _Traces

__all__ = ["FEATURES", "SelfSupervisedFlow"]

FEATURES: tuple[str, ...] = (
    "order_1", "order_2", "order_3", "order_sum", "order_over_2", "order_over_4",
    "order_unseen", "direction_1", "direction_2", "direction_3", "direction_sum",
    "direction_over_2", "repeat_1", "repeat_2", "repeat_kinds", "repeat_extra",
    "missing_1", "missing_2", "missing_3", "missing_over_80",
    "foreign_1", "foreign_2", "foreign_over_3",
    "follow_1", "follow_2", "follow_3", "follow_sum", "follow_over_3",
    "precede_1", "precede_2", "precede_sum", "skip_1", "skip_2", "skip_sum",
    "length", "distinct",
)  # fmt: skip


@dataclass(frozen=True)
class _Log:
    """Traces as flat arrays in event order: trace number, step code, time (int64 ns)."""

    case: np.ndarray
    code: np.ndarray
    time: np.ndarray
    n: int


def _first(log: _Log, a1: int) -> _Traces:
    """The first-occurrence table :class:`FlowDetector` counts on."""
    key = log.case.astype(np.int64) * a1 + log.code
    _, first, inverse, counts = np.unique(
        key, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.sort(first)
    fcase = log.case[order]
    starts = np.flatnonzero(np.r_[True, fcase[1:] != fcase[:-1]]) if len(fcase) else fcase
    ids = np.arange(log.n)
    return _Traces(ids, fcase, log.code[order], log.time[order], counts[inverse[order]], starts)


def _subset(log: _Log, keep: np.ndarray) -> _Log:
    """The traces ``keep`` (a boolean per trace), renumbered in order."""
    new = np.cumsum(keep) - 1
    rows = keep[log.case]
    return _Log(new[log.case[rows]], log.code[rows], log.time[rows], int(keep.sum()))


def _follows(log: _Log, a1: int, lag: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Keys ``earlier * (a1 + 2) + later`` of the events ``lag`` apart in every trace,
    padded with ``lag`` start markers (``a1``) and end markers (``a1 + 1``), and the
    trace of each (pairs of two markers left out)."""
    length = np.bincount(log.case, minlength=log.n)
    size = length + 2 * lag
    case = np.repeat(np.arange(log.n), size)
    pos = np.arange(len(case)) - np.repeat(np.cumsum(size) - size, size)
    inner = (pos >= lag) & (pos < lag + length[case])
    code = np.where(pos < lag, a1, a1 + 1).astype(np.int64)
    code[inner] = log.code  # the log is in trace, then event order
    head = np.flatnonzero(pos < size[case] - lag)
    tail = head + lag
    keep = inner[head] | inner[tail]
    head, tail = head[keep], tail[keep]
    return code[head] * (a1 + 2) + code[tail], case[head]


def _top(values: np.ndarray, group: np.ndarray, n: int, k: int) -> np.ndarray:
    """The ``k`` largest values of each group (0 where a group has fewer); ``group`` comes
    sorted, so each round is one segment maximum."""
    out = np.zeros((n, k))
    if not len(values):
        return out
    v = values.astype(np.float64, copy=True)
    heads = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    size = np.diff(np.r_[heads, len(v)])
    idx = np.arange(len(v))
    for r in range(k):
        top = np.maximum.reduceat(v, heads)
        out[group[heads], r] = np.where(np.isfinite(top), top, 0.0)
        hit = v == np.repeat(top, size)
        first = np.minimum.reduceat(np.where(hit, idx, len(v)), heads)
        v[first[first < len(v)]] = -np.inf
    return out


class _Stats:
    """The flow counts of a set of original traces, and the features of any traces
    against them."""

    def __init__(
        self,
        detector: FlowDetector,
        fkeys: np.ndarray,
        fcounts: np.ndarray,
        skeys: np.ndarray,
        scounts: np.ndarray,
    ) -> None:
        self.det = detector
        self.fkeys, self.fcounts = fkeys, fcounts
        self.skeys, self.scounts = skeys, scounts

    @classmethod
    def build(cls, log: _Log, vocab: pd.Index, params: dict[str, Any]) -> _Stats:
        det = FlowDetector(**params)
        det.vocabulary_ = vocab
        a1 = len(vocab) + 1
        tr = _first(log, a1)
        i, j = _pairs(tr.starts, len(tr.code), det.window)
        key, rel = _relation(tr, i, j, a1, det._edges())
        classes = 2 * len(det.gap_days) + 4
        det.pair_keys_, where = np.unique(key, return_inverse=True)
        flat = np.bincount(where * classes + rel, minlength=len(det.pair_keys_) * classes)
        det.pair_counts_ = flat.reshape(len(det.pair_keys_), classes)
        m = det.max_repeat + 1
        k = np.minimum(tr.count, det.max_repeat)
        hist = np.bincount(tr.code * m + k, minlength=a1 * m).reshape(a1, m)
        det.repeats_ = hist[:, ::-1].cumsum(axis=1)[:, ::-1]
        det.n_dossiers_ = log.n
        fkeys, fcounts = np.unique(_follows(log, a1)[0], return_counts=True)
        skeys, scounts = np.unique(_follows(log, a1, 2)[0], return_counts=True)
        return cls(det, fkeys, fcounts, skeys, scounts)

    def _lookup(self, keys: np.ndarray, table: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if not len(table):
            return np.zeros(len(keys))
        at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where(table[at] == keys, counts[at], 0).astype(np.float64)

    def features(self, log: _Log) -> np.ndarray:
        """One row of :data:`FEATURES` per trace of ``log`` (none of them counted)."""
        det, n = self.det, log.n
        a1 = len(det.vocabulary_) + 1
        prior = det.prior
        tr = _first(log, a1)
        cols: dict[str, np.ndarray] = {}
        # order and timing: every pair's surprise, not just the largest
        i, j = _pairs(tr.starts, len(tr.code), det.window)
        key, rel = _relation(tr, i, j, a1, det._edges())
        counts = det._counts(key).astype(np.float64)
        total = counts.sum(axis=1)
        seen = counts[np.arange(len(rel)), rel]
        sur = -np.log((seen + prior) / (total + counts.shape[1] * prior))
        top = _top(sur, tr.case[i], n, 3)
        for r in range(3):
            cols[f"order_{r + 1}"] = top[:, r]
        cols["order_sum"] = np.bincount(tr.case[i], sur, minlength=n)
        cols["order_over_2"] = np.bincount(tr.case[i], sur > 2.0, minlength=n)
        cols["order_over_4"] = np.bincount(tr.case[i], sur > 4.0, minlength=n)
        cols["order_unseen"] = np.bincount(tr.case[i], total == 0, minlength=n)
        # direction alone (gaps pooled): sparse pairs still tell which comes first
        tie = len(det.gap_days) + 2  # first class with the low code recorded first
        low_first = counts[:, tie:].sum(axis=1)
        same = np.where(rel >= tie, low_first, total - low_first)
        sur = -np.log((same + prior) / (total + 2 * prior))
        top = _top(sur, tr.case[i], n, 3)
        for r in range(3):
            cols[f"direction_{r + 1}"] = top[:, r]
        cols["direction_sum"] = np.bincount(tr.case[i], sur, minlength=n)
        cols["direction_over_2"] = np.bincount(tr.case[i], sur > 2.0, minlength=n)
        # repeats
        kk = np.minimum(tr.count, det.max_repeat)
        p = (det.repeats_[tr.code, kk] + prior) / (det.repeats_[tr.code, 1] + prior)
        top = _top(-np.log(np.minimum(p, 1.0)), tr.case, n, 2)
        cols["repeat_1"], cols["repeat_2"] = top[:, 0], top[:, 1]
        cols["repeat_kinds"] = np.bincount(tr.case, tr.count > 1, minlength=n)
        cols["repeat_extra"] = np.bincount(tr.case, tr.count - 1, minlength=n)
        # missing steps
        top, over = self._missing(tr, n, a1)
        for r in range(3):
            cols[f"missing_{r + 1}"] = top[:, r]
        cols["missing_over_80"] = over
        # foreign steps: the two least explained activities
        foreign = self._foreign(tr, i, j, total, n)
        top = _top(foreign, tr.case, n, 2)
        cols["foreign_1"], cols["foreign_2"] = top[:, 0], top[:, 1]
        cols["foreign_over_3"] = np.bincount(tr.case, foreign > 3.0, minlength=n)
        # direct follows over the whole sequence, both directions
        fk, fcase = _follows(log, a1)
        b = a1 + 2
        pair = self._lookup(fk, self.fkeys, self.fcounts)
        out_deg = np.bincount(self.fkeys // b, self.fcounts, minlength=b)
        in_deg = np.bincount(self.fkeys % b, self.fcounts, minlength=b)
        follow = -np.log((pair + prior) / (out_deg[fk // b] + a1 * prior))
        precede = -np.log((pair + prior) / (in_deg[fk % b] + a1 * prior))
        top = _top(follow, fcase, n, 3)
        for r in range(3):
            cols[f"follow_{r + 1}"] = top[:, r]
        cols["follow_sum"] = np.bincount(fcase, follow, minlength=n)
        cols["follow_over_3"] = np.bincount(fcase, follow > 3.0, minlength=n)
        top = _top(precede, fcase, n, 2)
        cols["precede_1"], cols["precede_2"] = top[:, 0], top[:, 1]
        cols["precede_sum"] = np.bincount(fcase, precede, minlength=n)
        # follows at distance two
        sk, scase = _follows(log, a1, 2)
        pair = self._lookup(sk, self.skeys, self.scounts)
        out_deg = np.bincount(self.skeys // b, self.scounts, minlength=b)
        skip = -np.log((pair + prior) / (out_deg[sk // b] + a1 * prior))
        top = _top(skip, scase, n, 2)
        cols["skip_1"], cols["skip_2"] = top[:, 0], top[:, 1]
        cols["skip_sum"] = np.bincount(scase, skip, minlength=n)
        cols["length"] = np.bincount(log.case, minlength=n).astype(np.float64)
        cols["distinct"] = np.bincount(tr.case, minlength=n).astype(np.float64)
        return np.column_stack([np.asarray(cols[f], dtype=np.float64) for f in FEATURES])

    def _foreign(
        self, tr: _Traces, i: np.ndarray, j: np.ndarray, together: np.ndarray, n: int
    ) -> np.ndarray:
        """Per first occurrence, the surprise of its best support by another present step
        (as :meth:`FlowDetector._foreign`, every activity rather than the worst); ``together``
        the number of counted traces holding both steps of each pair."""
        det = self.det
        holding = det.repeats_[:, 1].astype(np.float64)
        by_i = (together + det.prior) / (holding[tr.code[i]] + 2 * det.prior)
        by_j = (together + det.prior) / (holding[tr.code[j]] + 2 * det.prior)
        support = np.zeros(len(tr.code))
        np.maximum.at(support, j, by_i)
        np.maximum.at(support, i, by_j)
        alone = np.bincount(tr.case, minlength=n)[tr.case] < 2
        return np.where(alone, 0.0, -np.log(np.clip(support, 1e-12, 1.0)))

    def _missing(self, tr: _Traces, n: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        """The three largest shares of an absent step expected before a present one, and
        how many absent steps are expected with a share above 0.8."""
        share = self.det._expected_before(0.0)
        # only shares worth calling a missing step: keeps the candidate list short
        share.data[share.data < 0.2] = 0.0
        share.eliminate_zeros()
        per_row = np.diff(share.indptr)[tr.code]
        top = np.zeros((n, 3))
        over = np.zeros(n)
        bounds = np.r_[tr.starts, len(tr.code)]
        budget = np.cumsum(per_row)[bounds[1:] - 1] if len(tr.code) else np.zeros(n)
        chunk = self.det.chunk
        lo = 0
        while lo < n:
            base = budget[lo - 1] if lo else 0
            hi = min(max(int(np.searchsorted(budget, base + chunk, "right")), lo + 1), n)
            rows = np.arange(bounds[lo], bounds[hi])
            counts = per_row[rows]
            origin = np.repeat(rows, counts)
            if len(origin):
                offset = np.arange(len(origin)) - np.repeat(np.cumsum(counts) - counts, counts)
                at = share.indptr[tr.code[origin]] + offset
                cand, value = share.indices[at].astype(np.int64), share.data[at]
                dossier = tr.case[origin].astype(np.int64)
                present = np.unique(tr.case[rows].astype(np.int64) * a1 + tr.code[rows])
                ckey = dossier * a1 + cand
                pos = np.minimum(np.searchsorted(present, ckey), len(present) - 1)
                absent = present[pos] != ckey
                ckey, value = ckey[absent], value[absent]
                # the largest share of each absent step, then each dossier's top three
                order = np.lexsort((-value, ckey))
                ckey, value = ckey[order], value[order]
                head = np.r_[True, ckey[1:] != ckey[:-1]] if len(ckey) else ckey.astype(bool)
                ckey, value = ckey[head], value[head]
                top += _top(value, ckey // a1, n, 3)
                over += np.bincount(ckey // a1, value > 0.8, minlength=n)
            lo = hi
        top = np.clip(top, 0.0, 1.0)
        return -np.log1p(-top * (1 - 1e-9)), over


def _edit(log: _Log, copies: np.ndarray, rng: np.random.Generator, freq: np.ndarray) -> _Log:
    """One edited copy of each trace in ``copies`` (trace numbers, repeats allowed)."""
    starts = np.r_[0, np.flatnonzero(log.case[1:] != log.case[:-1]) + 1]
    length = np.bincount(log.case, minlength=log.n)
    src_start = starts[copies]
    L = length[copies]
    c = len(copies)
    op = rng.integers(0, 4, c)  # insert, delete, repeat, move
    op = np.where((L < 2) & ((op == 1) | (op == 3)), 0, op)
    block = rng.integers(1, 4, c)
    block = np.where(op == 1, np.minimum(block, L - 1), np.minimum(block, L))
    block = np.where(op == 3, np.minimum(block, 2), block)
    block = np.where(op == 3, np.minimum(block, L - 1), block)
    block = np.maximum(block, 1)
    at = (rng.random(c) * (L - block + 1)).astype(np.int64)  # block start
    slot = (rng.random(c) * (L + 1)).astype(np.int64)  # insert before this position
    # move: a direction with room, then a shift of 1-5 within it
    room_late, room_early = L - (at + block), at
    late = rng.random(c) < 0.5
    late = np.where(room_late == 0, False, np.where(room_early == 0, True, late))
    room = np.where(late, room_late, room_early)
    shift = np.minimum(rng.integers(1, 6, c), np.maximum(room, 1))

    # every source event of each copy, keyed by its position
    ev_copy = np.repeat(np.arange(c), L)
    pos = np.arange(len(ev_copy)) - np.repeat(np.cumsum(L) - L, L)
    src = src_start[ev_copy] + pos
    key = pos.astype(np.float64)
    edited = np.zeros(len(src), dtype=bool)
    inside = (pos >= at[ev_copy]) & (pos < at[ev_copy] + block[ev_copy])
    o = op[ev_copy]
    keep = ~((o == 1) & inside)
    moved = (o == 3) & inside
    frac = (pos - at[ev_copy] + 1) / (block[ev_copy] + 2.0)
    target = np.where(
        late[ev_copy],
        at[ev_copy] + block[ev_copy] - 1 + shift[ev_copy] + frac,
        at[ev_copy] - shift[ev_copy] - 1 + frac,
    )
    key = np.where(moved, target, key)
    edited |= moved
    # repeats: the block again, right after itself
    rep = (o == 2) & inside
    rep_copy = ev_copy[rep]
    rep_key = at[rep_copy] + block[rep_copy] - 1 + frac[rep]
    # inserts: one activity drawn from the log's frequencies
    ins_copy = np.flatnonzero(op == 0)
    ins_code = rng.choice(len(freq), size=len(ins_copy), p=freq)
    all_copy = np.r_[ev_copy[keep], rep_copy, ins_copy]
    all_key = np.r_[key[keep], rep_key, slot[ins_copy] - 0.5]
    all_code = np.r_[log.code[src[keep]], log.code[src[rep]], ins_code]
    all_time = np.r_[log.time[src[keep]], log.time[src[rep]], np.zeros(len(ins_copy), np.int64)]
    all_edit = np.r_[edited[keep], np.ones(len(rep_copy) + len(ins_copy), dtype=bool)]
    order = np.lexsort((all_key, all_copy))
    cp, code, time, ed = all_copy[order], all_code[order], all_time[order], all_edit[order]
    return _Log(cp, code, _fill_times(cp, time, ed), c)


def _fill_times(case: np.ndarray, time: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Times of edited events spread evenly between their nearest unedited neighbours in
    the trace (the neighbour's time at either end), so time follows the order."""
    n = len(case)
    idx = np.arange(n)
    head = np.r_[0, np.flatnonzero(case[1:] != case[:-1]) + 1]
    first = np.repeat(head, np.diff(np.r_[head, n]))
    last = np.repeat(np.r_[head[1:], n] - 1, np.diff(np.r_[head, n]))
    prev = np.maximum.accumulate(np.where(~edited, idx, -1))
    nxt = np.minimum.accumulate(np.where(~edited, idx, n)[::-1])[::-1]
    has_prev = prev >= first
    has_next = nxt <= last
    p = np.where(has_prev, prev, 0)
    q = np.where(has_next, nxt, 0)
    tp, tq = time[p].astype(np.float64), time[q].astype(np.float64)
    w = (idx - prev) / np.maximum(nxt - prev, 1)
    mid = tp + (tq - tp) * w
    fill = np.where(has_prev & has_next, mid, np.where(has_prev, tp, tq))
    return np.where(edited, fill.astype(np.int64), time)


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

    def _encode(self, events: pd.DataFrame) -> tuple[pd.Index, _Log]:
        params = FlowDetector(**self._flow_params()).get_params()
        ev = s.sort_events(
            events[[s.DOSSIER_ID, s.TIMESTAMP, s.SEQ]].assign(_step=_steps(events, params["by"]))
        )
        case, ids = pd.factorize(ev[s.DOSSIER_ID])
        code = self.vocabulary_.get_indexer(pd.Index(ev["_step"]))
        code[code < 0] = len(self.vocabulary_)
        time = ev[s.TIMESTAMP].dt.tz_convert("UTC").astype("int64").to_numpy()
        index = pd.Index(np.asarray(ids), name=s.DOSSIER_ID, dtype="string")
        return index, _Log(case.astype(np.int64), code.astype(np.int64), time, len(ids))

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
        self.stats_ = _Stats.build(_subset(log, keep), self.vocabulary_, self._flow_params())
        self.flow_ = FlowDetector(**self._flow_params())
        return index, out

    def _round(
        self,
        log: _Log,
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
            stats = _Stats.build(_subset(log, ~mine & keep), self.vocabulary_, self._flow_params())
            originals = _subset(log, mine)
            source = np.repeat(np.arange(originals.n), self.copies)
            edited = _edit(originals, source, rng, freq)
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
            "stats": _stats_dict(self.stats_),
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
        st = data["stats"]
        det = FlowDetector(**model._flow_params())
        det.gap_days = tuple(det.gap_days)
        det.vocabulary_ = model.vocabulary_
        det.pair_keys_ = np.asarray(st["pair_keys"], dtype=np.int64)
        classes = 2 * len(det.gap_days) + 4
        det.pair_counts_ = np.asarray(st["pair_counts"], dtype=np.int64).reshape(-1, classes)
        det.repeats_ = np.asarray(st["repeats"], dtype=np.int64).reshape(
            len(model.vocabulary_) + 1, det.max_repeat + 1
        )
        det.n_dossiers_ = int(st["n"])
        model.stats_ = _Stats(
            det,
            np.asarray(st["follow_keys"], dtype=np.int64),
            np.asarray(st["follow_counts"], dtype=np.int64),
            np.asarray(st["skip_keys"], dtype=np.int64),
            np.asarray(st["skip_counts"], dtype=np.int64),
        )
        model.boosters_ = list(data["boosters"])
        model.tables_ = {k: (list(q), list(lv)) for k, (q, lv) in data["tables"].items()}
        return model


def _stats_dict(stats: _Stats) -> dict[str, Any]:
    det = stats.det
    return {
        "pair_keys": det.pair_keys_.tolist(),
        "pair_counts": det.pair_counts_.ravel().tolist(),
        "repeats": det.repeats_.ravel().tolist(),
        "n": int(det.n_dossiers_),
        "follow_keys": stats.fkeys.tolist(),
        "follow_counts": stats.fcounts.tolist(),
        "skip_keys": stats.skeys.tolist(),
        "skip_counts": stats.scounts.tolist(),
    }
