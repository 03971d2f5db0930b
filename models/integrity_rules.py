"""The named integrity detectors: what each looks at in a dossier's features, and how it
says so to an inspector.

Each rule turns dossier features (``models.dataset.closed_table``: features of every
dossier as of a time) into one evidence value per dossier, >= 0, where 0 means "nothing
seen" and larger means more suspicious. :mod:`models.integrity` learns how rare each
value is per procedure and combines the rules. A rule whose columns a log lacks (route
rules without a procedure catalogue, backdating without ``recorded_at``) is left out.
Each rule's evidence and sentence also read one dossier's features as a mapping (the
online path, :mod:`models.integrity_online`), with the same values and texts.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.dossier_timing import RECORD_LAG_HOURS

__all__ = [
    "NEAR_DEADLINE_SHARE",
    "RULES",
    "ClockEvidence",
    "Evidence",
    "Rule",
    "Total",
    "rules_for",
]

#: a clock stop begun after this share of the statutory time is "close to the deadline".
NEAR_DEADLINE_SHARE = 0.75
#: supplement requests this early on the clock are the completeness check at reception
#: (Decree 61/2018/ND-CP), not a stop near a deadline.
RECEPTION_CHECK_DAYS = 0.5
#: steps entered in a different order than they happened, by less than this, are the
#: ordinary jitter of desk entry; beyond it, a step was slipped in afterwards.
RECORD_INVERSION_HOURS = 1.0
#: idle for at least this share of the statutory time before the rush: most of it wasted.
IDLE_SHARE = 0.5

Row = Mapping[Any, Any]
Reason = Callable[[Row], str]


class Evidence(Protocol):
    """A rule's evidence: over a feature table, one value per dossier (vectorised), and
    the same value for one dossier's features (a mapping of column -> value, the online
    path), both >= 0 with 0 for "nothing seen"."""

    def __call__(self, frame: pd.DataFrame) -> np.ndarray: ...

    def row(self, values: Row) -> float: ...


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.nan_to_num(frame[name].to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0)


def _num(values: Row, name: str) -> float:
    """One feature as a float, NaN when missing (None, NA, NaN)."""
    try:
        return float(values[name])
    except (TypeError, ValueError):
        return math.nan


def _value(values: Row, name: str) -> float:
    """One feature as :func:`_col` reads it: missing as 0, infinities as the largest
    floats (``np.nan_to_num``)."""
    x = _num(values, name)
    if x != x:
        return 0.0
    if math.isinf(x):
        return math.copysign(sys.float_info.max, x)
    return x


def _fmt(values: Row, name: str, spec: str = ".0f") -> str:
    return format(_num(values, name), spec)


@dataclass(frozen=True)
class Total:
    """Evidence: the sum of ``columns`` (missing counts 0), less ``minus`` (floored at 0)
    when given, and 0 unless at least ``at_least`` / above ``above`` when given."""

    columns: tuple[str, ...]
    minus: float = 0.0
    at_least: float | None = None
    above: float | None = None

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        x = _col(frame, self.columns[0])
        for name in self.columns[1:]:
            x = x + _col(frame, name)
        if self.minus:
            x = np.maximum(x - self.minus, 0.0)
        if self.at_least is not None:
            x = np.where(x >= self.at_least, x, 0.0)
        if self.above is not None:
            x = np.where(x > self.above, x, 0.0)
        return x

    def row(self, values: Row) -> float:
        x = _value(values, self.columns[0])
        for name in self.columns[1:]:
            x = x + _value(values, name)
        if self.minus:
            x = max(x - self.minus, 0.0)
        if self.at_least is not None and not x >= self.at_least:
            x = 0.0
        if self.above is not None and not x > self.above:
            x = 0.0
        return x


@dataclass(frozen=True)
class Rule:
    """One detector over dossier features.

    ``pattern``: the kind of wrongdoing it points at (shown to inspectors, and the name
    evaluation joins ground truth on); ``columns``: the features it needs; ``says``: its
    sentence for one dossier's features.
    """

    name: str
    pattern: str
    columns: tuple[str, ...]
    evidence: Evidence
    says: Reason
    #: how many comparisons the rule makes (a residual over 20 features is 20 chances
    #: to look unusual by luck, a count of skipped steps one): its p is multiplied by it.
    multiplicity: int = 1
    #: a breach of a written rule (the approved route, the recording rule, office hours,
    #: a full-online service) rather than a statistical oddity: any breach outranks every
    #: statistical finding, and more breaches outrank fewer.
    breach: bool = False

    def reason(self, frame: pd.DataFrame) -> pd.Series:
        """The sentence of each dossier of a feature table."""
        texts = [self.says(values) for values in frame.to_dict("records")]
        return pd.Series(texts, index=frame.index, dtype=object)


def _near_deadline(f: pd.DataFrame, share_column: str) -> np.ndarray:
    """The stop began close to the deadline: after ``NEAR_DEADLINE_SHARE`` of the
    statutory time, before the deadline itself (a stop after it hides nothing), and not
    at reception (the completeness check of the first half day)."""
    share = _col(f, share_column)
    near = (share >= NEAR_DEADLINE_SHARE) & (share < 1.0)
    return near & (share * _col(f, "statutory_days") >= RECEPTION_CHECK_DAYS)


def _near_deadline_row(values: Row, share_column: str) -> bool:
    """:func:`_near_deadline` of one dossier."""
    share = _value(values, share_column)
    near = NEAR_DEADLINE_SHARE <= share < 1.0
    return near and share * _value(values, "statutory_days") >= RECEPTION_CHECK_DAYS


class ClockEvidence:
    """How close to the deadline the stop that kept the dossier "on time" began (the
    share of the statutory time used), 0 when no stop did: either a request for documents
    close to the deadline whose receipt restarted the reported clock of a dossier late by
    the honest clock, or a stop close to the deadline lifted only minutes before the
    result (a pause that covered the overrun)."""

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        f = frame
        on_time = _col(f, "late_reported") == 0
        request = _near_deadline(f, "last_supplement_share_elapsed")
        hidden = request & (_col(f, "late_honest") == 1) & on_time
        after = f["work_after_last_stop_days"].to_numpy(dtype=np.float64, na_value=np.nan)
        lifted = _near_deadline(f, "last_stop_share_elapsed") & (after < 0.05) & on_time
        share = np.where(hidden, _col(f, "last_supplement_share_elapsed"), 0.0)
        return np.where(lifted, np.maximum(share, _col(f, "last_stop_share_elapsed")), share)

    def row(self, values: Row) -> float:
        on_time = _value(values, "late_reported") == 0
        request = _near_deadline_row(values, "last_supplement_share_elapsed")
        hidden = request and _value(values, "late_honest") == 1 and on_time
        after = _num(values, "work_after_last_stop_days")
        lifted = _near_deadline_row(values, "last_stop_share_elapsed") and after < 0.05
        share = _value(values, "last_supplement_share_elapsed") if hidden else 0.0
        if lifted and on_time:
            return max(share, _value(values, "last_stop_share_elapsed"))
        return share


_CLOCK = ClockEvidence()


def _clock_says(r: Row) -> str:
    return (
        "a clock stop began when "
        + format(_CLOCK.row(r), ".1%")
        + " of the statutory time was used and the dossier was reported on time ("
        + _fmt(r, "honest_clock_days", ".1f")
        + " working days on the honest clock against "
        + _fmt(r, "statutory_days", ".0f")
        + " allowed)"
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "route_missing",
        "skipped_step",
        ("missing_mandatory_steps",),
        Total(("missing_mandatory_steps",)),
        lambda r: (
            "skipped " + _fmt(r, "missing_mandatory_steps") + " mandatory step(s) of the "
            "approved route"
        ),
        breach=True,
    ),
    Rule(
        "route_order",
        "out_of_order",
        ("order_violations",),
        Total(("order_violations",)),
        lambda r: _fmt(r, "order_violations") + " route step(s) done after a later step",
        breach=True,
    ),
    Rule(
        "route_extra",
        "extra_steps",
        ("extra_steps", "wrong_unit_steps"),
        Total(("extra_steps", "wrong_unit_steps")),
        lambda r: (
            _fmt(r, "extra_steps")
            + " step(s) outside the approved route, "
            + _fmt(r, "wrong_unit_steps")
            + " by a unit the route does not assign"
        ),
        breach=True,
    ),
    Rule(
        "off_route_transfer",
        "off_route_transfer",
        ("off_route_transfers",),
        Total(("off_route_transfers",)),
        lambda r: (
            _fmt(r, "off_route_transfers") + " transfer(s) between units the approved "
            "route does not connect"
        ),
        breach=True,
    ),
    Rule(
        "ping_pong",
        "ping_pong",
        ("repeated_transfers", "ping_pong"),
        Total(("repeated_transfers",)),
        lambda r: (
            _fmt(r, "ping_pong")
            + " bounce(s) back to the previous agency, "
            + _fmt(r, "repeated_transfers")
            + " repeated transfer(s)"
        ),
    ),
    Rule(
        "repeated_supplements",
        "excess_supplements",
        ("supplement_rounds", "supplement_days"),
        Total(("supplement_rounds",), minus=1.0),
        lambda r: (
            _fmt(r, "supplement_rounds")
            + " requests for supplementary documents, "
            + _fmt(r, "supplement_days", ".1f")
            + " working days of the applicant's time (repeated "
            "requests are also how informal payments are solicited)"
        ),
    ),
    Rule(
        "rework_without_input",
        "rework_loop",
        ("rework_without_input",),
        Total(("rework_without_input",)),
        lambda r: (
            _fmt(r, "rework_without_input") + " step(s) the same unit did again with "
            "nothing new since"
        ),
    ),
    Rule(
        "idle_then_rush",
        "idle_then_rush",
        ("idle_before_rush_share",),
        Total(("idle_before_rush_share",), at_least=IDLE_SHARE),
        lambda r: (
            "untouched for "
            + _fmt(r, "idle_before_rush_share", ".0%")
            + " of the statutory time, then every remaining step rushed through"
        ),
    ),
    Rule(
        "clock_manipulation",
        "clock_reset",
        (
            "last_stop_share_elapsed",
            "work_after_last_stop_days",
            "late_honest",
            "late_reported",
            "honest_clock_days",
            "statutory_days",
        ),
        _CLOCK,
        _clock_says,
    ),  # fmt: skip
    Rule(
        "record_lag",
        "backdated",
        ("max_record_lag_hours",),
        Total(("max_record_lag_hours",), above=RECORD_LAG_HOURS),
        lambda r: (
            "a step was written to the system "
            + _fmt(r, "max_record_lag_hours", ".0f")
            + " hours after the time it claims"
        ),
        breach=True,
    ),
    Rule(
        "record_order",
        "backdated",
        ("max_record_inversion_hours", "out_of_order_events"),
        Total(("max_record_inversion_hours",), above=RECORD_INVERSION_HOURS),
        lambda r: (
            _fmt(r, "out_of_order_events") + " step(s) written to the system before the "
            "step that precedes them, the furthest "
            + _fmt(r, "max_record_inversion_hours", ".0f")
            + " hours before"
        ),
    ),
    Rule(
        "off_hours_approval",
        "off_hours_approval",
        ("off_hours_approvals",),
        Total(("off_hours_approvals",)),
        lambda r: (
            _fmt(r, "off_hours_approvals") + " approval(s) at night, at a weekend or on a holiday"
        ),
        breach=True,
    ),
    Rule(
        "forced_in_person",
        "forced_in_person",
        ("in_person_steps_online",),
        Total(("in_person_steps_online",)),
        lambda r: (
            _fmt(r, "in_person_steps_online") + " step(s) done in person on a dossier "
            "submitted for a full-online service"
        ),
        breach=True,
    ),
)


def rules_for(columns: pd.Index | list[str]) -> tuple[Rule, ...]:
    """The rules whose features are all present (and not entirely missing) in a table."""
    have = set(columns)
    return tuple(r for r in RULES if set(r.columns) <= have)
