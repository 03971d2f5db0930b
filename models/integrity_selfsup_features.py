"""Per-trace summaries of the control-flow evidence of
:class:`models.integrity_flow.FlowDetector`, counted on one set of traces and measured on
any others: the top surprises of each family, how many pair relations pass a surprise
level, direction-only order surprises, direct-follows (lag 1 and 2) surprises, length.
The features of :class:`models.integrity_selfsup.SelfSupervisedFlow`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.integrity_flow import FlowDetector, _pairs, _relation, _Traces
from models.trace_edits import TraceLog

__all__ = ["FEATURES", "FlowCounts"]

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


def _first(log: TraceLog, a1: int) -> _Traces:
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


def _follows(log: TraceLog, a1: int, lag: int = 1) -> tuple[np.ndarray, np.ndarray]:
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


class FlowCounts:
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
    def build(cls, log: TraceLog, vocab: pd.Index, params: dict[str, Any]) -> FlowCounts:
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

    def features(self, log: TraceLog) -> np.ndarray:
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable counts (the vocabulary and parameters are the caller's)."""
        det = self.det
        return {
            "pair_keys": det.pair_keys_.tolist(),
            "pair_counts": det.pair_counts_.ravel().tolist(),
            "repeats": det.repeats_.ravel().tolist(),
            "n": int(det.n_dossiers_),
            "follow_keys": self.fkeys.tolist(),
            "follow_counts": self.fcounts.tolist(),
            "skip_keys": self.skeys.tolist(),
            "skip_counts": self.scounts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], vocab: pd.Index, params: dict[str, Any]) -> FlowCounts:
        """The counts :meth:`to_dict` described, over ``vocab`` with the flow ``params``."""
        det = FlowDetector(**params)
        det.gap_days = tuple(det.gap_days)
        det.vocabulary_ = vocab
        classes = 2 * len(det.gap_days) + 4
        det.pair_keys_ = np.asarray(data["pair_keys"], dtype=np.int64)
        det.pair_counts_ = np.asarray(data["pair_counts"], dtype=np.int64).reshape(-1, classes)
        det.repeats_ = np.asarray(data["repeats"], dtype=np.int64).reshape(
            len(vocab) + 1, det.max_repeat + 1
        )
        det.n_dossiers_ = int(data["n"])
        return cls(
            det,
            np.asarray(data["follow_keys"], dtype=np.int64),
            np.asarray(data["follow_counts"], dtype=np.int64),
            np.asarray(data["skip_keys"], dtype=np.int64),
            np.asarray(data["skip_counts"], dtype=np.int64),
        )
