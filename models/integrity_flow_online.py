"""The control-flow detector on one dossier, in plain Python (online scoring).

:class:`models.integrity_flow.FlowDetector` scores a log with numpy segment operations
over every dossier's pairs of activities; building those arrays costs milliseconds a
call, whatever the log's size. :class:`OnlineFlow` keeps the fitted counts as Python
dicts and lists (relation counts by pair key, repeat counts by activity, the precedence
shares by activity, the families' quantile tables) and follows ``FlowDetector._score``
step by step over one :class:`features.online.DossierTrace`: the same first occurrences,
pairs, relations, surprises, arg-maxima (first of equals), ranks and reason, so its
``flow_score`` and ``flow_reason`` are those of ``score_samples`` for that dossier in a
batch. The logarithms and exponentials go through numpy, as in the batch (its SIMD
functions and the C library's differ in the last bit, and a rank decided by ``>=``
against a fitted value may hang on it).

One reading of the batch is kept as it is: the batch labels each step with its event's
procedure code when the log has codes; here the dossier's procedure code (its first
present value, ``DossierTrace.dossier``) labels every step, when the fitted vocabulary is
labelled by procedure. Event times are nanoseconds on both sides (``tick_ns`` = 1).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted

from features import schema as s
from features.online import DossierTrace
from models.integrity_flow import (
    _NOTHING,
    _SEP,
    FAMILIES,
    FlowDetector,
    foreign_sentence,
    missing_sentence,
    order_sentence,
    repeat_sentence,
)

__all__ = ["TICK_NS", "OnlineFlow"]

#: nanoseconds per unit of the batch's event times (FlowDetector reads nanoseconds).
TICK_NS = 1
#: below this surprise (nats) the strongest family says nothing (FlowDetector._reasons).
_SAY_NATS = 0.1


class _Ecdf:
    """``FlowDetector._ecdf`` of one family for one value: ``np.interp`` over the fitted
    quantiles (the same arithmetic, slope by slope), and the exponential tail past the
    largest quantile (its exponential left to the caller, through numpy)."""

    def __init__(self, q: np.ndarray, level: np.ndarray) -> None:
        self.q = np.asarray(q, dtype=np.float64).tolist()
        self.level = np.asarray(level, dtype=np.float64).tolist()
        x, y = self.q, self.level
        self.slopes = [(y[i + 1] - y[i]) / (x[i + 1] - x[i]) for i in range(len(x) - 1)]
        self.top = x[-1]
        self.rest = 1.0 - y[-1]

    def inside(self, value: float) -> float:
        x, y = self.q, self.level
        if len(x) == 1:  # np.interp with one point
            return y[0]
        if value < x[0]:
            return y[0]
        j = bisect_right(x, value) - 1
        if j >= len(x) - 1 or x[j] == value:
            return y[min(j, len(x) - 1)]
        slope = self.slopes[j]
        out = slope * (value - x[j]) + y[j]
        if out != out:  # as np.interp: a NaN one way, the other way
            out = slope * (value - x[j + 1]) + y[j + 1]
            if out != out and y[j] == y[j + 1]:
                out = y[j]
        return out


class OnlineFlow:
    """A fitted :class:`FlowDetector` scoring one dossier's trace: ``score(trace)`` gives
    (``flow_score``, ``flow_reason``) as ``score_samples`` does in a batch."""

    def __init__(self, detector: FlowDetector, tick_ns: int = TICK_NS) -> None:
        check_is_fitted(detector, "quantiles_")
        self.detector = detector
        self.tick_ns = int(tick_ns)
        vocabulary = [str(v) for v in detector.vocabulary_]
        self._codes = {v: i for i, v in enumerate(vocabulary)}
        self._unseen = len(vocabulary)
        self._qualified = detector.by is not None and any(_SEP in v for v in vocabulary)
        self._a1 = len(vocabulary) + 1
        self._names = detector.names()
        self._prior = float(detector.prior)
        self._window = int(detector.window)
        self._max_repeat = int(detector.max_repeat)
        self._edges = detector._edges().tolist()
        self._classes = 2 * len(self._edges) + 4
        counts = detector.pair_counts_.tolist()
        self._pairs: dict[int, tuple[list[int], int]] = {
            k: (c, sum(c)) for k, c in zip(detector.pair_keys_.tolist(), counts, strict=True)
        }
        self._zero = [0] * self._classes
        self._repeats: list[list[int]] = detector.repeats_.tolist()
        # the denominators of the order surprise and of the foreign steps' supports
        self._spread = self._classes * self._prior
        self._held = [r[1] + 2 * self._prior for r in self._repeats]
        share = detector._expected_before(0.0)
        indptr, indices, data = share.indptr, share.indices.tolist(), share.data.tolist()
        self._before: list[list[tuple[int, float]]] = [
            list(zip(indices[indptr[c] : indptr[c + 1]], data[indptr[c] : indptr[c + 1]],
                     strict=True))
            for c in range(self._a1)
        ]  # fmt: skip
        self._ecdf = [_Ecdf(*detector.quantiles_[f]) for f in FAMILIES]

    # --- encoding -------------------------------------------------------------------------

    def _first_occurrences(self, trace: DossierTrace) -> tuple[list[int], list[int], list[int]]:
        """Codes, times (in ticks) and occurrence counts of each activity's first event,
        in event order (``integrity_flow._encode``)."""
        codes, unseen = self._codes, self._unseen
        prefix = ""
        if self._qualified:
            procedure = trace.dossier.get(s.PROCEDURE_CODE)
            prefix = ("" if procedure is None else str(procedure)) + _SEP
        at: dict[int, int] = {}
        code: list[int] = []
        time: list[int] = []
        count: list[int] = []
        tick = self.tick_ns
        for activity, t in zip(trace.activity, trace.t, strict=True):
            c = codes.get(prefix + str(activity), unseen)
            row = at.get(c)
            if row is None:
                at[c] = len(code)
                code.append(c)
                time.append(t // tick)
                count.append(1)
            else:
                count[row] += 1
        return code, time, count

    # --- scoring --------------------------------------------------------------------------

    def score(self, trace: DossierTrace) -> tuple[float, str]:
        """(``flow_score``, ``flow_reason``) of one dossier."""
        code, time, count = self._first_occurrences(trace)
        rows = len(code)
        prior, a1, classes = self._prior, self._a1, self._classes
        edges, n_edges = self._edges, len(self._edges)
        pairs, zero, repeats = self._pairs, self._zero, self._repeats
        # order and timing, and the foreign steps' supports, pair by pair
        ratios: list[float] = []
        facts: list[tuple[int, int, int, list[int], int, int]] = []
        support = [0.0] * rows
        held = [self._held[c] for c in code]
        spread, window = self._spread, self._window
        find, keep, note = pairs.get, ratios.append, facts.append
        for i in range(rows):
            ci, ti, held_i = code[i], time[i], held[i]
            for j in range(i + 1, min(rows, i + 1 + window)):
                cj = code[j]
                gap = time[j] - ti
                step = 1 + bisect_right(edges, float(gap)) if gap > 0 else 0
                if ci < cj:
                    rel, key = n_edges + 2 + step, ci * a1 + cj
                else:
                    rel, key = n_edges + 1 - step, cj * a1 + ci
                counts, total = find(key, (zero, 0))
                keep((counts[rel] + prior) / (total + spread))
                note((i, j, gap, counts, rel, total))
                by_i = (total + prior) / held_i  # the support of j's activity by i's
                by_j = (total + prior) / held[j]
                if by_i > support[j]:
                    support[j] = by_i
                if by_j > support[i]:
                    support[i] = by_j
        # repeats
        at_least = [repeats[c][min(k, self._max_repeat)] for c, k in zip(code, count, strict=True)]
        holding = [repeats[c][1] for c in code]
        shares = [
            min((a + prior) / (h + prior), 1.0) for a, h in zip(at_least, holding, strict=True)
        ]
        alone = rows < 2
        clipped = [min(max(x, 1e-12), 1.0) for x in support]
        logs = (-np.log(np.array(ratios + shares + clipped))).tolist()
        n_pairs = len(ratios)
        order = logs[:n_pairs]
        repeat = logs[n_pairs : n_pairs + rows]
        foreign = [0.0] * rows if alone else logs[n_pairs + rows :]
        best_pair = _first_max(order)
        best_repeat = _first_max(repeat)
        best_foreign = _first_max(foreign)
        missing_v, missing_b, missing_c = self._missing(code)
        flow_missing = float(-np.log1p(np.array([-missing_v * (1 - 1e-9)]))[0])
        evidence = [
            order[best_pair] if best_pair >= 0 else 0.0,
            repeat[best_repeat],
            flow_missing,
            foreign[best_foreign],
        ]
        tails = [-(v - e.top) for v, e in zip(evidence, self._ecdf, strict=True)]
        past = np.exp(np.array([*tails, -foreign[best_foreign]])).tolist()
        ranks = [
            1.0 - e.rest * p if v > e.top else e.inside(v)
            for v, e, p in zip(evidence, self._ecdf, past[:4], strict=True)
        ]
        family = _first_max(ranks)
        flow_score = ranks[family]
        if evidence[family] < _SAY_NATS:
            return flow_score, _NOTHING
        names = self._names
        name = FAMILIES[family]
        if name == "order":
            i, j, gap, counts, rel, total = facts[best_pair]
            usual = max(range(classes), key=counts.__getitem__)  # the first most frequent
            if code[i] >= code[j]:
                usual = classes - 1 - usual
            reason = order_sentence(
                names[code[i]],
                names[code[j]],
                float(gap),
                self.detector._relation_name(usual),
                float(total),
                float(counts[rel]),
            )
        elif name == "repeat":
            b = best_repeat
            h = holding[b]
            reason = repeat_sentence(
                names[code[b]], count[b], at_least[b] / max(h, 1) if h > 0 else 0.0
            )
        elif name == "missing":
            reason = missing_sentence(names[missing_b], names[missing_c], missing_v)
        else:
            reason = foreign_sentence(names[code[best_foreign]], past[-1])
        return flow_score, reason

    def _missing(self, code: Sequence[int]) -> tuple[float, int, int]:
        """(share, absent activity, present activity it precedes) of the absent activity
        most often done before (or with) a present one (``FlowDetector._missing``)."""
        present = set(code)
        best_v, best_b, best_c = -1.0, 0, 0
        for c in code:
            for b, value in self._before[c]:
                v = 0.0 if b in present else value
                if v > best_v:
                    best_v, best_b, best_c = v, b, c
        if best_v < 0.0:  # no candidate at all
            return 0.0, 0, 0
        return min(max(best_v, 0.0), 1.0), best_b, best_c


def _first_max(values: Sequence[float]) -> int:
    """Index of the first largest value (-1 when empty), as ``np.argmax``."""
    return max(range(len(values)), key=values.__getitem__) if values else -1
