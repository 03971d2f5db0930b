"""The named integrity detectors: what each looks at in a dossier's features, and how it
says so to an inspector.

Each rule turns dossier features (``models.dataset.closed_table``: features of every
dossier as of a time) into one evidence value per dossier, >= 0, where 0 means "nothing
seen" and larger means more suspicious. :mod:`models.integrity` learns how rare each
value is per procedure and combines the rules. A rule whose columns a log lacks (route
rules without a procedure catalogue, backdating without ``recorded_at``) is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.dossier_timing import RECORD_LAG_HOURS

__all__ = ["NEAR_DEADLINE_SHARE", "RULES", "Rule", "rules_for"]

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

Evidence = Callable[[pd.DataFrame], np.ndarray]
Reason = Callable[[pd.DataFrame], pd.Series]


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.nan_to_num(frame[name].to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0)


def _fmt(frame: pd.DataFrame, name: str, spec: str = ".0f") -> pd.Series:
    return frame[name].astype("float64").map(("{:" + spec + "}").format)


@dataclass(frozen=True)
class Rule:
    """One detector over dossier features.

    ``pattern``: the kind of wrongdoing it points at (shown to inspectors, and the name
    evaluation joins ground truth on); ``columns``: the features it needs.
    """

    name: str
    pattern: str
    columns: tuple[str, ...]
    evidence: Evidence
    reason: Reason
    #: how many comparisons the rule makes (a residual over 20 features is 20 chances
    #: to look unusual by luck, a count of skipped steps one): its p is multiplied by it.
    multiplicity: int = 1
    #: a breach of a written rule (the approved route, the recording rule, office hours,
    #: a full-online service) rather than a statistical oddity: any breach outranks every
    #: statistical finding, and more breaches outrank fewer.
    breach: bool = False


def _near_deadline(f: pd.DataFrame, share_column: str) -> np.ndarray:
    """The stop began close to the deadline: after ``NEAR_DEADLINE_SHARE`` of the
    statutory time, before the deadline itself (a stop after it hides nothing), and not
    at reception (the completeness check of the first half day)."""
    share = _col(f, share_column)
    near = (share >= NEAR_DEADLINE_SHARE) & (share < 1.0)
    return near & (share * _col(f, "statutory_days") >= RECEPTION_CHECK_DAYS)


def _clock_evidence(f: pd.DataFrame) -> np.ndarray:
    """How close to the deadline the stop that kept the dossier "on time" began (the
    share of the statutory time used), 0 when no stop did: either a request for documents
    close to the deadline whose receipt restarted the reported clock of a dossier late by
    the honest clock, or a stop close to the deadline lifted only minutes before the
    result (a pause that covered the overrun)."""
    on_time = _col(f, "late_reported") == 0
    request = _near_deadline(f, "last_supplement_share_elapsed")
    hidden = request & (_col(f, "late_honest") == 1) & on_time
    after = f["work_after_last_stop_days"].to_numpy(dtype=np.float64, na_value=np.nan)
    lifted = _near_deadline(f, "last_stop_share_elapsed") & (after < 0.05) & on_time
    share = np.where(hidden, _col(f, "last_supplement_share_elapsed"), 0.0)
    return np.where(lifted, np.maximum(share, _col(f, "last_stop_share_elapsed")), share)


def _clock_reason(f: pd.DataFrame) -> pd.Series:
    share = pd.Series(_clock_evidence(f), index=f.index).map("{:.1%}".format)
    return (
        "a clock stop began when "
        + share
        + " of the statutory time was used and the dossier was reported on time ("
        + _fmt(f, "honest_clock_days", ".1f")
        + " working days on the honest clock against "
        + _fmt(f, "statutory_days", ".0f")
        + " allowed)"
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "route_missing",
        "skipped_step",
        ("missing_mandatory_steps",),
        lambda f: _col(f, "missing_mandatory_steps"),
        lambda f: (
            "skipped " + _fmt(f, "missing_mandatory_steps") + " mandatory step(s) of the "
            "approved route"
        ),
        breach=True,
    ),
    Rule(
        "route_order",
        "out_of_order",
        ("order_violations",),
        lambda f: _col(f, "order_violations"),
        lambda f: _fmt(f, "order_violations") + " route step(s) done after a later step",
        breach=True,
    ),
    Rule(
        "route_extra",
        "extra_steps",
        ("extra_steps", "wrong_unit_steps"),
        lambda f: _col(f, "extra_steps") + _col(f, "wrong_unit_steps"),
        lambda f: (
            _fmt(f, "extra_steps")
            + " step(s) outside the approved route, "
            + _fmt(f, "wrong_unit_steps")
            + " by a unit the route does not assign"
        ),
        breach=True,
    ),
    Rule(
        "off_route_transfer",
        "off_route_transfer",
        ("off_route_transfers",),
        lambda f: _col(f, "off_route_transfers"),
        lambda f: (
            _fmt(f, "off_route_transfers") + " transfer(s) between units the approved "
            "route does not connect"
        ),
        breach=True,
    ),
    Rule(
        "ping_pong",
        "ping_pong",
        ("repeated_transfers", "ping_pong"),
        lambda f: _col(f, "repeated_transfers"),
        lambda f: (
            _fmt(f, "ping_pong")
            + " bounce(s) back to the previous agency, "
            + _fmt(f, "repeated_transfers")
            + " repeated transfer(s)"
        ),
    ),
    Rule(
        "repeated_supplements",
        "excess_supplements",
        ("supplement_rounds", "supplement_days"),
        lambda f: np.maximum(_col(f, "supplement_rounds") - 1.0, 0.0),
        lambda f: (
            _fmt(f, "supplement_rounds")
            + " requests for supplementary documents, "
            + _fmt(f, "supplement_days", ".1f")
            + " working days of the applicant's time (repeated "
            "requests are also how informal payments are solicited)"
        ),
    ),
    Rule(
        "rework_without_input",
        "rework_loop",
        ("rework_without_input",),
        lambda f: _col(f, "rework_without_input"),
        lambda f: (
            _fmt(f, "rework_without_input") + " step(s) the same unit did again with "
            "nothing new since"
        ),
    ),
    Rule(
        "idle_then_rush",
        "idle_then_rush",
        ("idle_before_rush_share",),
        lambda f: np.where(
            _col(f, "idle_before_rush_share") >= IDLE_SHARE, _col(f, "idle_before_rush_share"), 0.0
        ),
        lambda f: (
            "untouched for "
            + f["idle_before_rush_share"].astype("float64").map("{:.0%}".format)
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
        _clock_evidence,
        _clock_reason,
    ),  # fmt: skip
    Rule(
        "record_lag",
        "backdated",
        ("max_record_lag_hours",),
        lambda f: np.where(
            _col(f, "max_record_lag_hours") > RECORD_LAG_HOURS, _col(f, "max_record_lag_hours"), 0.0
        ),
        lambda f: (
            "a step was written to the system "
            + _fmt(f, "max_record_lag_hours", ".0f")
            + " hours after the time it claims"
        ),
        breach=True,
    ),
    Rule(
        "record_order",
        "backdated",
        ("max_record_inversion_hours", "out_of_order_events"),
        lambda f: np.where(
            _col(f, "max_record_inversion_hours") > RECORD_INVERSION_HOURS,
            _col(f, "max_record_inversion_hours"),
            0.0,
        ),
        lambda f: (
            _fmt(f, "out_of_order_events") + " step(s) written to the system before the "
            "step that precedes them, the furthest "
            + _fmt(f, "max_record_inversion_hours", ".0f")
            + " hours before"
        ),
    ),
    Rule(
        "off_hours_approval",
        "off_hours_approval",
        ("off_hours_approvals",),
        lambda f: _col(f, "off_hours_approvals"),
        lambda f: (
            _fmt(f, "off_hours_approvals") + " approval(s) at night, at a weekend or on a holiday"
        ),
        breach=True,
    ),
    Rule(
        "forced_in_person",
        "forced_in_person",
        ("in_person_steps_online",),
        lambda f: _col(f, "in_person_steps_online"),
        lambda f: (
            _fmt(f, "in_person_steps_online") + " step(s) done in person on a dossier "
            "submitted for a full-online service"
        ),
        breach=True,
    ),
)


def rules_for(columns: pd.Index | list[str]) -> tuple[Rule, ...]:
    """The rules whose features are all present (and not entirely missing) in a table."""
    have = set(columns)
    return tuple(r for r in RULES if set(r.columns) <= have)
