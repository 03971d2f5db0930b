"""Waste: per dossier, the citizen waiting days and officer touches that were not needed.

Waste is what a dossier did that it did not need to (the columns of :data:`WASTE_COLUMNS`):

* ``extra_supplement_rounds``: requests for supplementary documents after the first, and
  ``extra_supplement_days``, the applicant's time they took (the dossier's supplement
  waiting, pro rata of its rounds);
* ``extra_rework``: steps the same unit did again with no new input since (feature
  ``rework_without_input``; re-appraising after the papers arrive is needed work);
* ``extra_ping_pong``: transfers repeating a move between two agencies already made
  (``repeated_transfers``); ``extra_transfers``: needless transfers, the larger of that
  count and the transfers off the approved route (a transfer can be both);
* ``idle_before_rush_days``: the wait of a dossier left untouched for at least
  ``rush_share`` of its statutory time, then rushed through in half a working day
  (``idle_before_rush_share``);
* ``excess_days``: the honest duration minus ``expected_days``, what a dossier like this
  usually takes: a LightGBM median regressor given procedure, receiving unit, channel,
  season, time of day and the recent load of the procedure and unit, learned from the
  training dossiers that show no waste pattern (so waste does not become the norm). Idle
  time beyond the norm, and the time rework and needless transfers cost, show up here.

``waste_days`` = ``extra_supplement_days + excess_days``: working days of the applicant's
waiting that were not needed (supplement time is off the honest clock, so the two do not
overlap; the wait before a rush is part of the excess, not added again).
``waste_touches`` = ``extra_supplement_rounds + extra_rework + extra_transfers``: officer
actions that were not needed. ``waste_share`` = ``waste_days`` / elapsed working days.
``waste_pattern`` is 1 when a dossier shows an identified waste pattern (a needless touch
or idle-then-rush), 0 when it was only slower than expected.

``waste_score`` (higher = more waste, in [0, 1)) = ``0.5 * waste_pattern + 0.5 * cost /
(cost + scale_)`` with ``cost = waste_days + TOUCH_DAYS * waste_touches`` and ``scale_``
the 90th percentile of the training cost. So every dossier with a waste pattern ranks
above every dossier that was only slow: a longer duration than predicted may be queueing
(a delay, which the delay model watches) or model error, whereas a pattern is waste by
definition. Within each half the score grows with the cost; 0.25 and 0.75 mean as costly
as the costliest tenth of the training period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.context import CATEGORICAL as CONTEXT_CATEGORICAL
from features.recent import SPECS as RECENT_SPECS
from models.boosting import booster_from_text, read_json, train_booster, write_json
from models.dataset import EmptyTableError
from models.matrix import FeatureMatrix

__all__ = ["WASTE_COLUMNS", "WasteModel", "waste_by"]

#: officer effort of one needless touch, in working days, to weigh touches against days.
TOUCH_DAYS = 0.5
#: inputs of the expected-duration regressor: what a dossier is, where and when it came in.
EXPECTED_INPUTS = (
    *CONTEXT_CATEGORICAL,
    "start_month",
    "start_weekday",
    "start_hour",
    "statutory_days",
    *(spec.name for spec in RECENT_SPECS),
)
WASTE_COLUMNS = (
    "extra_supplement_rounds",
    "extra_supplement_days",
    "extra_rework",
    "extra_transfers",
    "extra_ping_pong",
    "idle_before_rush_days",
    "expected_days",
    "excess_days",
    "waste_days",
    "waste_touches",
    "waste_share",
    "waste_pattern",
    "waste_score",
)


def _values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A feature column as floats, 0 where missing (a log without the vocabulary or the
    catalogue that the feature needs shows no such waste)."""
    if column not in table:
        return np.zeros(len(table))
    return np.nan_to_num(pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64))


def _patterns(table: pd.DataFrame, rush_share: float) -> pd.DataFrame:
    """The waste-pattern columns of each dossier (everything but the expected duration)."""
    out = pd.DataFrame(index=table.index)
    rounds = _values(table, "supplement_rounds")
    extra = np.maximum(rounds - 1.0, 0.0)
    out["extra_supplement_rounds"] = extra
    days = _values(table, "supplement_days")
    out["extra_supplement_days"] = np.where(rounds > 0, days * extra / np.maximum(rounds, 1), 0.0)
    out["extra_rework"] = _values(table, "rework_without_input")
    out["extra_ping_pong"] = _values(table, "repeated_transfers")
    out["extra_transfers"] = np.maximum(
        out["extra_ping_pong"].to_numpy(), _values(table, "off_route_transfers")
    )
    share = _values(table, "idle_before_rush_share")
    rushed = share >= rush_share
    out["idle_before_rush_days"] = np.where(rushed, share * _values(table, "statutory_days"), 0.0)
    touches = out["extra_supplement_rounds"] + out["extra_rework"] + out["extra_transfers"]
    out["waste_touches"] = touches
    out["waste_pattern"] = ((touches.to_numpy() > 0) | rushed).astype(np.float64)
    return out


class WasteModel(BaseEstimator):
    """Waste patterns and the expected duration; :meth:`transform` gives
    :data:`WASTE_COLUMNS`. ``rush_share``: the share of the statutory time a dossier must
    sit untouched before a final rush for that to count as waste (three quarters)."""

    def __init__(
        self, rounds: int = 200, num_leaves: int = 31, seed: int = 0, rush_share: float = 0.75
    ) -> None:
        self.rounds = rounds
        self.num_leaves = num_leaves
        self.seed = seed
        self.rush_share = rush_share

    def fit(self, closed: pd.DataFrame) -> WasteModel:
        """Learn from finished dossiers (a :func:`models.dataset.closed_table`)."""
        closed = closed[closed["finished"].astype(bool)] if "finished" in closed else closed
        if len(closed) < 20:
            raise EmptyTableError("the waste model needs at least 20 finished dossiers")
        inputs = [c for c in EXPECTED_INPUTS if c in closed]
        self.matrix_ = FeatureMatrix.fit(
            closed[inputs], categorical=[c for c in CONTEXT_CATEGORICAL if c in inputs]
        )
        y = closed["honest_clock_days"].to_numpy(dtype=np.float64)
        plain = _patterns(closed, self.rush_share)["waste_pattern"].to_numpy() == 0
        known = np.isfinite(y) & plain
        if known.sum() < 20:
            known = np.isfinite(y)
        self.booster_ = train_booster(
            self.matrix_.transform(closed[known]),
            y[known],
            objective="quantile",
            rounds=self.rounds,
            seed=self.seed,
            params={"alpha": 0.5, "num_leaves": self.num_leaves},
        )
        cost = self._cost(self._raw(closed))
        self.scale_ = float(max(np.nanquantile(cost, 0.9), 1e-3)) if len(cost) else 1.0
        return self

    def _raw(self, table: pd.DataFrame) -> pd.DataFrame:
        out = _patterns(table, self.rush_share)
        expected = np.maximum(np.asarray(self.booster_.predict(self.matrix_.array(table))), 0)
        honest = table["honest_clock_days"].to_numpy(dtype=np.float64)
        out["expected_days"] = expected
        out["excess_days"] = np.nan_to_num(np.maximum(honest - expected, 0.0))
        out["waste_days"] = out["extra_supplement_days"] + out["excess_days"]
        elapsed = table["elapsed_days"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(elapsed > 0, out["waste_days"] / elapsed, 0.0)
        out["waste_share"] = np.clip(share, 0.0, 1.0)
        return out

    @staticmethod
    def _cost(raw: pd.DataFrame) -> np.ndarray:
        return (raw["waste_days"] + TOUCH_DAYS * raw["waste_touches"]).to_numpy(np.float64)

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """The :data:`WASTE_COLUMNS` of each dossier of ``table`` (open or closed)."""
        check_is_fitted(self, "booster_")
        raw = self._raw(table)
        cost = self._cost(raw)
        raw["waste_score"] = 0.5 * raw["waste_pattern"] + 0.5 * cost / (cost + self.scale_)
        return raw[list(WASTE_COLUMNS)]

    def reasons(self, waste: pd.DataFrame, k: int = 3) -> list[str]:
        """Up to ``k`` waste components of each dossier as text: its patterns first (the
        costliest first), then the days beyond the expected duration; "" without waste."""
        cost = pd.DataFrame(
            {
                "extra_supplement_rounds": waste["extra_supplement_days"]
                + TOUCH_DAYS * waste["extra_supplement_rounds"],
                "extra_rework": TOUCH_DAYS * waste["extra_rework"],
                "extra_transfers": TOUCH_DAYS * waste["extra_transfers"],
                "idle_before_rush_days": waste["idle_before_rush_days"],
            },
            index=waste.index,
        )
        # patterns (+1) rank above the excess (below 1) whatever their size, as in the score
        cost = cost.where(cost > 0, -1.0) + 1.0
        cost["excess_days"] = waste["excess_days"] / (1.0 + waste["excess_days"])
        names = list(cost.columns)
        values = cost.to_numpy(np.float64)
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        out = []
        for i, row in enumerate(order):
            picked = [names[j] for j in row if values[i, j] > 0]
            texts = (_waste_text(name, waste.iloc[i], self.rush_share) for name in picked)
            out.append("; ".join(texts))
        return out

    def save(self, path: Path) -> Path:
        check_is_fitted(self, "booster_")
        path.mkdir(parents=True, exist_ok=True)
        (path / "expected_duration.txt").write_text(self.booster_.model_to_string())
        write_json(
            path / "waste.json",
            {"params": self.get_params(), "matrix": self.matrix_.to_dict(), "scale": self.scale_},
        )
        return path

    @classmethod
    def load(cls, path: Path) -> WasteModel:
        meta = read_json(path / "waste.json")
        model = cls(**meta["params"])
        model.matrix_ = FeatureMatrix.from_dict(meta["matrix"])
        model.scale_ = float(meta["scale"])
        model.booster_ = booster_from_text((path / "expected_duration.txt").read_text())
        return model


def _plural(n: float, one: str, many: str) -> str:
    return f"{n:.0f} {one if round(n) == 1 else many}"


def _waste_text(name: str, row: pd.Series, rush_share: float) -> str:
    if name == "excess_days":
        return (
            f"{row['excess_days']:.1f} working days longer than a dossier like this usually "
            f"takes ({row['expected_days']:.1f})"
        )
    if name == "extra_supplement_rounds":
        return (
            f"{_plural(row[name], 'supplement round', 'supplement rounds')} after the first, "
            f"{row['extra_supplement_days']:.1f} working days of the applicant's time"
        )
    if name == "extra_rework":
        steps = _plural(row[name], "step", "steps")
        return f"{steps} done again by the same unit with nothing new since"
    if name == "extra_transfers":
        if row["extra_ping_pong"] >= row[name]:
            moves = _plural(row[name], "transfer", "transfers")
            return f"{moves} repeating a move between agencies already made (ping-pong)"
        moves = _plural(row[name], "needless transfer", "needless transfers")
        return f"{moves} (outside the approved route or repeated)"
    return (
        f"left untouched for {row[name]:.1f} working days ({rush_share:.0%} or more of its "
        "statutory time), then every remaining step rushed through in half a day"
    )


def waste_by(dossiers: pd.DataFrame, waste: pd.DataFrame, key: str) -> pd.DataFrame:
    """Waste per entity (``key`` a column of ``dossiers``: first_agency, procedure_code,
    main_officer_id...): dossiers, those with a waste pattern, waste days and touches, and
    waste as a share of the working days its dossiers took. Rows of ``waste`` align with
    rows of ``dossiers``; dossiers without a ``key`` value are left out."""
    frame = pd.DataFrame(
        {
            key: dossiers[key].astype("string").to_numpy(),
            "waste_days": waste["waste_days"].to_numpy(),
            "waste_touches": waste["waste_touches"].to_numpy(),
            "waste_pattern": waste["waste_pattern"].to_numpy(),
            "elapsed_days": dossiers["elapsed_days"].to_numpy(dtype=np.float64),
        }
    ).dropna(subset=[key])
    out = frame.groupby(key).agg(
        dossiers=("waste_days", "size"),
        with_pattern=("waste_pattern", "sum"),
        waste_days=("waste_days", "sum"),
        waste_touches=("waste_touches", "sum"),
        elapsed_days=("elapsed_days", "sum"),
    )
    out["with_pattern"] = out["with_pattern"].astype(np.int64)
    out["waste_share"] = np.where(out["elapsed_days"] > 0,
                                  out["waste_days"] / out["elapsed_days"], 0.0)  # fmt: skip
    return out.sort_values("waste_days", ascending=False)
