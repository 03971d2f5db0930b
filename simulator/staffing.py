"""Officers: how many each unit has, their skill and capacity, and who gets which task.

Each agency has staff (specialists, desk officers) and leaders (who assign and sign). A
unit is staffed for the work its dossiers bring at the *planned* load, at a utilisation
around ``config.utilisation``; a share of agencies are understaffed bottlenecks. Arrivals
above plan (``load_factor``), seasonal peaks and unlucky assignment then create queues:
lateness emerges from load, it is never drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.routes import LEADER, QUEUED_ROLES

GOLDEN = 0.6180339887498949


@dataclass
class Staff:
    """The officers of one province (arrays aligned by officer index)."""

    officer_id: np.ndarray  # object strings
    agency: np.ndarray
    role: np.ndarray
    skill: np.ndarray  # service speed multiplier
    capacity: np.ndarray  # share of the unit's tasks the officer is given (relative)
    #: cumulative capacity within each (agency, role) pool, offset by the pool number.
    _key: np.ndarray
    utilisation: np.ndarray  # planned utilisation of each agency

    def __len__(self) -> int:
        return len(self.officer_id)

    def assign(self, agency: np.ndarray, role: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Officer for each task: the same dossier keeps the same officer within a pool.

        ``u`` is the dossier's uniform draw; capacity weights the choice.
        """
        pool = agency.astype(np.int64) * 2 + role
        frac = np.mod(u + agency * GOLDEN + role * 0.41421356, 1.0)
        found = np.searchsorted(self._key, pool + frac, side="left")
        return np.minimum(found, len(self._key) - 1)

    def frame(self, agency_ids: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "officer_id": self.officer_id,
                "agency_id": agency_ids[self.agency],
                "role": np.where(self.role == LEADER, "leader", "staff"),
                "skill": self.skill.round(3),
                "capacity": self.capacity.round(3),
            }
        )


def staff(
    agency_ids: np.ndarray,
    task_agency: np.ndarray,
    task_role: np.ndarray,
    task_effort: np.ndarray,
    *,
    horizon_seconds: float,
    load_factor: float,
    utilisation: float,
    bottleneck_share: float,
    rng: np.random.Generator,
) -> Staff:
    """Size every (agency, role) pool for its planned work and create its officers."""
    n_agencies = len(agency_ids)
    queued = np.isin(task_role, QUEUED_ROLES)
    pool = task_agency[queued].astype(np.int64) * 2 + task_role[queued]
    work = np.bincount(pool, weights=task_effort[queued], minlength=2 * n_agencies)
    util = np.clip(utilisation * rng.uniform(0.88, 1.08, n_agencies), 0.2, 0.97)
    busy = np.flatnonzero(work.reshape(n_agencies, 2).sum(axis=1) > 0)
    n_bottleneck = int(round(bottleneck_share * len(busy)))
    if n_bottleneck:
        chosen = rng.choice(busy, size=n_bottleneck, replace=False)
        util[chosen] = rng.uniform(0.75, 0.88, n_bottleneck)
    planned = work / load_factor
    per_officer = horizon_seconds * np.repeat(util, 2)
    size = np.where(work > 0, np.maximum(1, np.ceil(planned / per_officer)), 0).astype(np.int64)
    pools = np.repeat(np.arange(2 * n_agencies), size)
    agency = pools // 2
    role = (pools % 2).astype(np.int8)
    n = len(pools)
    skill = np.clip(rng.normal(1.0, 0.18, n), 0.6, 1.5)
    capacity = skill * rng.lognormal(0.0, 0.15, n)
    # capacities normalised within each pool, cumulated and offset by the pool number.
    starts = np.concatenate([[0], np.cumsum(size)])[:-1][size > 0]
    totals = np.add.reduceat(capacity, starts) if n else np.zeros(0)
    share = capacity / np.repeat(totals, size[size > 0])
    cum = np.cumsum(share) - np.repeat(
        np.concatenate([[0], np.cumsum(share)])[starts], size[size > 0]
    )
    key = pools + np.minimum(cum, 1.0)
    rank = np.arange(n) - np.repeat(starts, size[size > 0])
    officer_id = np.array(
        [
            f"{agency_ids[a]}/{'LD' if r == LEADER else 'CV'}{k + 1:03d}"
            for a, r, k in zip(agency, role, rank, strict=True)
        ],
        dtype=object,
    )
    return Staff(officer_id, agency, role, skill, capacity, key, util)
