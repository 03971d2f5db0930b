"""Online scoring: the scores of one dossier (or a few) from its own events, with the
features and scores batch scoring (:func:`models.scoring.score_log`) gives it.

:meth:`OnlineScorer.features` computes the dossier's rows of ``closed_table`` (the waste
and integrity models' input) and, while it is open, of ``open_table`` (the delay model's)
in plain Python (:mod:`features.online`), with what they read of other dossiers from an
:class:`features.online_context.OnlineContext`. :meth:`OnlineScorer.score` predicts with
the bundle's native LightGBM boosters on one float64 row (categories coded as
:meth:`models.matrix.FeatureMatrix.array` codes them), explains the delay risk with
LightGBM's contributions as the batch path does, and applies the bundle's thresholds:
one :class:`OnlineScore` holds every column of :data:`models.scoring.SCORE_COLUMNS`.
:meth:`OnlineScorer.score_many` scores a batch with one booster call per model.

The integrity model scores each dossier from its ``closed_table`` row and its trace in
plain Python too (:class:`models.integrity_online.OnlineIntegrity`: the batch detectors'
lookup tables read once, the same arithmetic step by step).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.engine import Reference
from features.online import (
    DossierTrace,
    context_row,
    current_holders,
    dossier_row,
    is_finished,
    outcome_of,
    prefix_row,
    trace_of,
)
from features.online_context import OnlineContext
from models.bundle import ModelBundle
from models.explain import Reason, describe, reasons_of
from models.integrity_online import OnlineIntegrity
from models.matrix import FeatureMatrix
from models.online_predict import RowPredictor
from models.scoring import KINDS, SCORE_COLUMNS
from models.waste import TOUCH_DAYS, _waste_text

__all__ = ["OnlineFeatures", "OnlineScore", "OnlineScorer"]

NAN = float("nan")
Events = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class OnlineFeatures:
    """One dossier's feature rows as of a time: ``closed`` its ``closed_table`` row (every
    dossier), ``open`` its ``open_table`` row (None once it finished)."""

    dossier_id: str
    closed: dict[str, Any]
    open: dict[str, Any] | None
    trace: DossierTrace = field(repr=False)

    @property
    def finished(self) -> bool:
        return bool(self.closed["finished"])


@dataclass(frozen=True)
class OnlineScore:
    """The :data:`models.scoring.SCORE_COLUMNS` of one dossier, its reasons kind by kind
    (the delay ones structured) and its features."""

    dossier_id: str
    status: str
    procedure_code: str | None
    first_agency: str | None
    jurisdiction: str | None
    delay_risk: float
    remaining_days_p50: float
    remaining_days_p90: float
    remaining_honest_days: float
    waste_days: float
    waste_touches: float
    waste_score: float
    integrity_score: float
    risk_score: float
    alert: int
    alert_kinds: str
    reasons: str
    delay_reasons: list[Reason]
    waste: dict[str, float]  # models.waste.WASTE_COLUMNS
    waste_reasons: str
    integrity_reasons: str
    integrity_pattern: str
    features: OnlineFeatures = field(repr=False)

    def row(self) -> dict[str, Any]:
        """The scores.csv row: the SCORE_COLUMNS, in order."""
        return {c: getattr(self, c) for c in SCORE_COLUMNS}


class _Matrix:
    """A fitted :class:`FeatureMatrix` as a row encoder: numbers as float64, categories
    as their codes (NaN when missing or unseen), as :meth:`FeatureMatrix.array`."""

    def __init__(self, matrix: FeatureMatrix) -> None:
        self.numeric = list(matrix.numeric)
        self.categories = [
            (c, {v: float(i) for i, v in enumerate(values)})
            for c, values in matrix.categories.items()
        ]
        self.width = len(matrix.columns)
        self.columns = matrix.columns

    def row(self, values: Mapping[str, Any]) -> np.ndarray:
        out = [_number(values[c]) for c in self.numeric]
        for c, codes in self.categories:
            value = values[c]
            out.append(NAN if value is None else codes.get(str(value), NAN))
        return np.array(out, dtype=np.float64)


def _number(value: Any) -> float:
    if value is None:
        return NAN
    return float(value)


@dataclass(frozen=True)
class _Predictors:
    """One thread's one-row predictors of a bundle."""

    late: RowPredictor  # the delay booster's raw score
    p50: RowPredictor
    p90: RowPredictor
    contrib: RowPredictor  # the delay booster's contributions (TreeSHAP)
    expected: RowPredictor  # the waste regressor


class OnlineScorer:
    """Scores dossiers one at a time (or in small batches) with a bundle's models.

    ``ref``: the reference data the bundle was trained with (``ModelBundle.reference``);
    its process defaults to the bundle's.
    """

    def __init__(self, bundle: ModelBundle, ref: Reference) -> None:
        if ref.process is None and bundle.process is not None:
            ref = Reference(ref.calendar, ref.catalogue, ref.agencies, bundle.process)
        self.bundle = bundle
        self.ref = ref
        delay, waste = bundle.delay, bundle.waste
        self._delay = _Matrix(delay.matrix_)
        self._waste = _Matrix(waste.matrix_)
        self._local = threading.local()  # each thread's predictors (see _predictors)
        integrity = bundle.integrity
        self._integrity_model = None if integrity is None else OnlineIntegrity(integrity)
        self._thresholds = {
            "delay": bundle.delay_threshold,
            "waste": bundle.waste_threshold,
            "integrity": integrity.threshold_ if integrity is not None else np.inf,
        }

    # --- predictors, one set a thread ---------------------------------------------------

    def _predictors(self) -> _Predictors:
        """This thread's one-row predictors: a :class:`RowPredictor` keeps one output
        buffer, so threads scoring at once (the service's) each need their own."""
        mine: _Predictors | None = getattr(self._local, "predictors", None)
        if mine is None:
            delay, width = self.bundle.delay, self._delay.width
            mine = _Predictors(
                late=RowPredictor(delay.booster_, width, "raw"),
                p50=RowPredictor(delay.quantiles_[0.5], width),
                p90=RowPredictor(delay.quantiles_[0.9], width),
                contrib=RowPredictor(delay.booster_, width, "contrib"),
                expected=RowPredictor(self.bundle.waste.booster_, self._waste.width),
            )
            self._local.predictors = mine
        return mine

    @property
    def _expected(self) -> RowPredictor:
        return self._predictors().expected

    # --- features -----------------------------------------------------------------------

    def features(
        self, events: Events, as_of: pd.Timestamp | datetime, context: OnlineContext
    ) -> OnlineFeatures:
        """The dossier's ``closed_table`` row and, while open, its ``open_table`` row as of
        ``as_of`` (events after it are not read)."""
        trace = trace_of(events, self.ref.calendar, as_of)
        return self._features(trace, context)

    def _features(self, trace: DossierTrace, context: OnlineContext) -> OnlineFeatures:
        ref = self.ref
        own = dossier_row(trace, ref)
        ctx = context_row(trace, ref)
        finished = is_finished(trace)
        done = outcome_of(trace, own) if finished else None
        mine = None if done is None else OnlineContext.outcome_item(trace, done)
        keys = {"procedure": ctx[s.PROCEDURE_CODE], "agency": ctx["first_agency"]}
        ident = trace.dossier_id
        closed = {**own, **ctx}
        closed["finished"] = finished
        closed["started_at"] = _started_at(trace, ref)
        closed.update(context.recent(ident, keys, trace.t[0], mine))
        opened = None
        if not finished:
            opened = {**own, **prefix_row(trace, ref, own)}
            opened.update(context.backlogs(ident, current_holders(trace)))
            opened.update(ctx)
            opened.update(context.recent(ident, keys, trace.cut, mine))
        return OnlineFeatures(ident, closed, opened, trace)

    # --- scores -------------------------------------------------------------------------

    def score(
        self, events: Events, as_of: pd.Timestamp | datetime, context: OnlineContext
    ) -> OnlineScore:
        """The scores of one dossier as of ``as_of``."""
        return self.score_many([events], as_of, context)[0]

    def score_many(
        self, dossiers: Sequence[Events], as_of: pd.Timestamp | datetime, context: OnlineContext
    ) -> list[OnlineScore]:
        """The scores of several dossiers (each a list of its events) as of ``as_of``; one
        booster call per model for the batch."""
        return self.scores_of([self.features(events, as_of, context) for events in dossiers])

    def scores_of(self, feats: list[OnlineFeatures]) -> list[OnlineScore]:
        """The scores of dossiers from their :meth:`features`. Reads no context: it may run
        outside the context's lock, in several threads at once (the native predictions
        release the GIL, so one thread's overlap another's Python)."""
        delay = self._delay_scores([f.open for f in feats])
        waste_x = [self._waste.row(f.closed) for f in feats]
        expected = (
            [float(self._expected(x)[0]) for x in waste_x]
            if len(feats) == 1
            else np.asarray(self.bundle.waste.booster_.predict(np.vstack(waste_x))).tolist()
        )
        integrity = self._integrity(feats)
        out = []
        for f, d, e, (score, reasons, pattern) in zip(
            feats, delay, expected, integrity, strict=True
        ):
            out.append(self._assemble(f, d, max(e, 0.0), score, reasons, pattern))
        return out

    def _delay_scores(
        self, rows: list[dict[str, Any] | None]
    ) -> list[tuple[float, float, float, list[Reason]] | None]:
        """(risk, p50, p90, reasons) of each open row; None for finished dossiers."""
        at = [i for i, r in enumerate(rows) if r is not None]
        out: list[tuple[float, float, float, list[Reason]] | None] = [None] * len(rows)
        if not at:
            return out
        X = np.vstack([self._delay.row(rows[i]) for i in at])  # type: ignore[arg-type]
        model = self.bundle.delay
        predict = self._predictors()
        if len(at) == 1:
            raw = predict.late(X[0])
            q50, q90 = predict.p50(X[0]), predict.p90(X[0])
        else:
            raw = np.asarray(model.booster_.predict(X, raw_score=True))
            q50 = np.asarray(model.quantiles_[0.5].predict(X))
            q90 = np.asarray(model.quantiles_[0.9].predict(X))
        risk = np.clip(model.calibration_.transform(raw), 0.0, 1.0)
        p50 = np.maximum(q50, 0.0)
        p90 = np.maximum(q90, p50)
        for k, i in enumerate(at):
            row = rows[i]
            assert row is not None
            contrib = predict.contrib(X[k])[: self._delay.width]
            out[i] = (float(risk[k]), float(p50[k]), float(p90[k]), self._reasons(contrib, row))
        return out

    def _reasons(self, contrib: np.ndarray, row: Mapping[str, Any], k: int = 3) -> list[Reason]:
        """:func:`models.explain.top_reasons` of one row."""
        norms = self.bundle.delay.norms_
        columns = self._delay.columns
        procedure = row.get(s.PROCEDURE_CODE)
        picked: list[Reason] = []
        for j in np.argsort(-contrib, kind="stable")[: min(k, len(contrib))]:
            weight = float(contrib[j])
            if weight <= 0:
                break
            name = columns[j]
            value = row[name]
            norm = norms.of(name, None if procedure is None else str(procedure))
            picked.append(Reason(name, value, norm, weight, describe(name, value, norm)))
        return picked

    def _integrity(self, feats: list[OnlineFeatures]) -> list[tuple[float, str, str]]:
        """(score, reasons, pattern) of each dossier by the bundle's integrity model."""
        model = self._integrity_model
        if model is None:
            return [(NAN, "", "")] * len(feats)
        return [model.score(f.closed, f.trace) for f in feats]

    def _assemble(
        self,
        f: OnlineFeatures,
        delay: tuple[float, float, float, list[Reason]] | None,
        expected: float,
        integrity: float,
        integrity_reasons: str,
        pattern: str,
    ) -> OnlineScore:
        closed = f.closed
        waste = _waste(closed, expected, self.bundle.waste.rush_share, self.bundle.waste.scale_)
        waste_reasons = _waste_reasons(waste, self.bundle.waste.rush_share)
        risk, p50, p90, delay_reasons = delay if delay is not None else (NAN, NAN, NAN, [])
        scores = {"delay": risk, "waste": waste["waste_score"], "integrity": integrity}
        flagged = [kind for kind in KINDS if scores[kind] >= self._thresholds[kind]]
        texts = {
            "delay": reasons_of(delay_reasons) if delay is not None else "",
            "waste": waste_reasons,
            "integrity": integrity_reasons,
        }
        head = {
            "delay": f"late risk {risk:.2f}: " if risk == risk else "",
            "waste": "waste: ",
            "integrity": "integrity: ",
        }
        present = [v for v in scores.values() if v == v]
        opened = f.open
        return OnlineScore(
            dossier_id=f.dossier_id,
            status="closed" if f.finished else "open",
            procedure_code=closed[s.PROCEDURE_CODE],
            first_agency=closed["first_agency"],
            jurisdiction=_text(f.trace.dossier[s.JURISDICTION]),
            delay_risk=risk,
            remaining_days_p50=p50,
            remaining_days_p90=p90,
            remaining_honest_days=NAN if opened is None else opened["remaining_honest_days"],
            waste_days=waste["waste_days"],
            waste_touches=waste["waste_touches"],
            waste_score=waste["waste_score"],
            integrity_score=integrity,
            risk_score=max(present) if present else NAN,
            alert=int(bool(flagged)),
            alert_kinds="+".join(flagged),
            reasons=" | ".join(head[k] + texts[k] for k in KINDS if texts[k]),
            delay_reasons=delay_reasons,
            waste=waste,
            waste_reasons=waste_reasons,
            integrity_reasons=integrity_reasons,
            integrity_pattern=pattern,
            features=f,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _started_at(trace: DossierTrace, ref: Reference) -> pd.Timestamp:
    first = trace.first_time
    if isinstance(first, pd.Timestamp):
        return first
    return pd.Timestamp(trace.t[0], tz="UTC").tz_convert(ref.calendar.tz)


# --- waste of one dossier (models.waste.WasteModel.transform and reasons) ----------------


def _value(row: Mapping[str, Any], column: str) -> float:
    value = row.get(column)
    if value is None:
        return 0.0
    x = float(value)
    return 0.0 if x != x else x


def _waste(
    row: Mapping[str, Any], expected: float, rush_share: float, scale: float
) -> dict[str, float]:
    """The :data:`models.waste.WASTE_COLUMNS` of one closed_table row, given the
    expected-duration regressor's prediction (already floored at 0)."""
    rounds = _value(row, "supplement_rounds")
    extra = max(rounds - 1.0, 0.0)
    days = _value(row, "supplement_days")
    ping_pong = _value(row, "repeated_transfers")
    share = _value(row, "idle_before_rush_share")
    rushed = share >= rush_share
    out = {
        "extra_supplement_rounds": extra,
        "extra_supplement_days": days * extra / max(rounds, 1.0) if rounds > 0 else 0.0,
        "extra_rework": _value(row, "rework_without_input"),
        "extra_transfers": max(ping_pong, _value(row, "off_route_transfers")),
        "extra_ping_pong": ping_pong,
        "idle_before_rush_days": share * _value(row, "statutory_days") if rushed else 0.0,
    }
    touches = out["extra_supplement_rounds"] + out["extra_rework"] + out["extra_transfers"]
    honest = float(row["honest_clock_days"])
    excess = honest - expected
    excess = max(excess, 0.0) if excess == excess else 0.0
    waste_days = out["extra_supplement_days"] + excess
    elapsed = float(row["elapsed_days"])
    waste_share = waste_days / elapsed if elapsed > 0 else 0.0
    pattern = float(touches > 0 or rushed)
    cost = waste_days + TOUCH_DAYS * touches
    out.update(
        expected_days=expected,
        excess_days=excess,
        waste_days=waste_days,
        waste_touches=touches,
        waste_share=min(max(waste_share, 0.0), 1.0),
        waste_pattern=pattern,
        waste_score=0.5 * pattern + 0.5 * cost / (cost + scale),
    )
    return out


def _waste_reasons(waste: Mapping[str, float], rush_share: float, k: int = 2) -> str:
    """:meth:`models.waste.WasteModel.reasons` of one dossier (the batch path keeps two)."""
    cost = {
        "extra_supplement_rounds": waste["extra_supplement_days"]
        + TOUCH_DAYS * waste["extra_supplement_rounds"],
        "extra_rework": TOUCH_DAYS * waste["extra_rework"],
        "extra_transfers": TOUCH_DAYS * waste["extra_transfers"],
        "idle_before_rush_days": waste["idle_before_rush_days"],
    }
    values = [(c if c > 0 else -1.0) + 1.0 for c in cost.values()]
    values.append(waste["excess_days"] / (1.0 + waste["excess_days"]))
    names = [*cost, "excess_days"]
    order = np.argsort(-np.asarray(values), kind="stable")[:k]
    picked = [names[j] for j in order if values[j] > 0]
    return "; ".join(_waste_text(name, waste, rush_share) for name in picked)  # type: ignore[arg-type]
