"""From approved routes to tasks: the steps each dossier will go through, one event per task.

A *task* is one event of a dossier together with the work or the wait that precedes it. A
route is expanded into a template per (procedure, variant): transfers are added where the
unit changes, a payment inside a route is wrapped in ``paused``/``resumed``, and the
variant adds a supplement round, a rejection, a withdrawal, a verification pause, an
upfront fee payment or a rating. Templates are tiled over every dossier of the variant at
once (no per-dossier Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features import schema as s
from features.catalogue import Catalogue, Procedure

ACT = {name: i for i, name in enumerate(s.ACTIVITIES)}

# roles: who does a task, and whether it waits in an officer's queue.
STAFF, LEADER, APPLICANT, TRANSFER, SAME = 0, 1, 2, 3, 4
QUEUED_ROLES = (STAFF, LEADER)
# waits before a task can start (besides the officer's deferral and queue).
W_NONE, W_TRANSIT, W_RESPONSE, W_PAYMENT, W_PAUSE, W_RATING, W_MINUTES, W_ONLINE = range(8)
#: the applicant-facing activities (they carry the ``via`` attribute).
FACING = frozenset(
    {s.RECEIVED, s.SUPPLEMENT_RECEIVED, s.RESULT_RETURNED, s.PAID, s.RATED, s.WITHDRAWN}
)

DEFAULT_EFFORT_HOURS = {
    s.RECEIVED: 0.25,
    s.ASSIGNED: 0.1,
    s.SITE_INSPECTED: 2.5,
    s.APPROVED: 0.2,
    s.RESULT_RETURNED: 0.1,
}
#: share of the statutory time the internal process allots to a step.
ALLOWANCE_WEIGHT = {
    s.ASSIGNED: 0.05,
    s.APPRAISED: 0.45,
    s.SITE_INSPECTED: 0.2,
    s.APPROVED: 0.15,
    s.RESULT_RETURNED: 0.05,
    s.SUPPLEMENT_REQUESTED: 0.45,
    s.REJECTED: 0.45,
}
SLOT_DESK, SLOT_COMMUNE_OFFICE, SLOT_COMMUNE_POLICE = 0, 1, 2


@dataclass(frozen=True)
class Variant:
    """How one dossier departs from the plain route."""

    supplement: bool = False
    outcome: int = 0  # 0 result returned, 1 rejected, 2 withdrawn (after a supplement request)
    pause: bool = False
    upfront_fee: bool = False
    rated: bool = False


@dataclass
class Template:
    """The task columns of one (procedure, variant), before tiling."""

    activity: np.ndarray
    slot: np.ndarray
    role: np.ndarray
    effort: np.ndarray  # mean officer effort, seconds
    allowance: np.ndarray  # share of the statutory time allotted (officer deferral)
    wait: np.ndarray  # W_* kind of the wait before the task
    step: np.ndarray  # index of the route step (-1 for added tasks)

    def __len__(self) -> int:
        return len(self.activity)


def unit_slots(catalogue: Catalogue) -> dict[str, int]:
    """Slot number of each unit type (the desk and commune units first)."""
    slots = {"one_stop_desk": SLOT_DESK, "commune_office": SLOT_COMMUNE_OFFICE}
    slots["commune_police"] = SLOT_COMMUNE_POLICE
    for unit in catalogue.unit_types():
        slots.setdefault(unit, len(slots))
    return slots


def appraisal_step(proc: Procedure) -> int:
    """The route step where supplements, rejections and pauses happen."""
    for i, step in enumerate(proc.route):
        if step.activity == s.APPRAISED:
            return i
    return next(i for i, step in enumerate(proc.route) if step.activity == s.APPROVED)


def effort_hours(proc: Procedure, index: int) -> float:
    step = proc.route[index]
    if step.effort_hours is not None:
        return step.effort_hours
    if step.activity == s.APPRAISED:
        base = 0.2 if proc.statutory_days <= 1 else 0.4
        return float(min(4.0, base + 0.12 * proc.statutory_days))
    return DEFAULT_EFFORT_HOURS.get(step.activity, 0.2)


def build_template(proc: Procedure, variant: Variant, slots: dict[str, int]) -> Template:
    """The tasks of one procedure under one variant."""
    rows: list[tuple[str, int, int, float, float, int, int]] = []
    k = appraisal_step(proc)

    def add(
        act: str, slot: int, role: int, effort: float = 0.0, wait: int = W_NONE, step: int = -1
    ) -> None:
        allowance = ALLOWANCE_WEIGHT.get(act, 0.0) if role in QUEUED_ROLES else 0.0
        rows.append((act, slot, role, effort * 3600.0, allowance, wait, step))

    prev_slot = -1
    for i, step in enumerate(proc.route):
        slot = slots[step.unit_type]
        role = LEADER if step.activity in (s.ASSIGNED, s.APPROVED) else STAFF
        effort = effort_hours(proc, i)
        if i > 0 and slot != prev_slot:
            add(s.TRANSFERRED, prev_slot, TRANSFER, wait=W_NONE)
        first_wait = W_TRANSIT if i > 0 and slot != prev_slot else W_NONE
        prev_slot = slot
        if step.activity == s.PAID:
            add(s.PAUSED, slot, SAME, wait=first_wait)
            add(s.PAID, slot, APPLICANT, wait=W_PAYMENT, step=i)
            add(s.RESUMED, slot, SAME, wait=W_MINUTES)
            continue
        if i == k and variant.supplement:
            add(s.SUPPLEMENT_REQUESTED, slot, role, effort, first_wait)
            if variant.outcome == 2:
                add(s.WITHDRAWN, slot, APPLICANT, wait=W_RESPONSE)
                break
            add(s.SUPPLEMENT_RECEIVED, slot, APPLICANT, wait=W_RESPONSE)
            first_wait = W_NONE
        if i == k and variant.outcome == 1:
            add(s.REJECTED, slot, role, effort, first_wait)
            break
        if i == 0:
            add(s.RECEIVED, slot, role, effort, W_ONLINE, step=i)
            if variant.upfront_fee:
                add(s.PAID, slot, APPLICANT, wait=W_MINUTES)
        else:
            add(step.activity, slot, role, effort, first_wait, step=i)
        if i == k and variant.pause:
            add(s.PAUSED, slot, SAME, wait=W_MINUTES)
            add(s.RESUMED, slot, SAME, wait=W_PAUSE)
    else:
        if variant.rated:
            add(s.RATED, prev_slot, APPLICANT, wait=W_RATING)
    act, slot_, role_, effort_, allowance, wait, step_ = zip(*rows, strict=True)
    allowance_arr = np.asarray(allowance, dtype=float)
    if allowance_arr.sum() > 0:
        allowance_arr = allowance_arr / allowance_arr.sum()
    return Template(
        activity=np.array([ACT[a] for a in act], dtype=np.int16),
        slot=np.asarray(slot_, dtype=np.int16),
        role=np.asarray(role_, dtype=np.int8),
        effort=np.asarray(effort_, dtype=float),
        allowance=allowance_arr,
        wait=np.asarray(wait, dtype=np.int8),
        step=np.asarray(step_, dtype=np.int16),
    )


@dataclass
class Tasks:
    """Tasks of all dossiers, sorted by dossier then position (arrays aligned)."""

    dossier: np.ndarray
    activity: np.ndarray
    slot: np.ndarray
    role: np.ndarray
    effort: np.ndarray
    allowance: np.ndarray
    wait: np.ndarray
    step: np.ndarray
    first: np.ndarray  # first task of each dossier
    count: np.ndarray  # tasks of each dossier

    def __len__(self) -> int:
        return len(self.dossier)


def expand(
    procedure: np.ndarray,
    variant_codes: np.ndarray,
    variants: list[Variant],
    catalogue: Catalogue,
    slots: dict[str, int],
) -> Tasks:
    """Tile the template of each dossier's (procedure, variant) into one task table."""
    procs = list(catalogue)
    key = procedure.astype(np.int64) * len(variants) + variant_codes
    uniq, inverse = np.unique(key, return_inverse=True)
    templates = [
        build_template(procs[k // len(variants)], variants[k % len(variants)], slots) for k in uniq
    ]
    lengths = np.array([len(t) for t in templates])
    count = lengths[inverse]
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    total = int(count.sum())
    cols: dict[str, np.ndarray] = {}
    for name, dtype in (
        ("activity", np.int16),
        ("slot", np.int16),
        ("role", np.int8),
        ("effort", float),
        ("allowance", float),
        ("wait", np.int8),
        ("step", np.int16),
    ):
        cols[name] = np.empty(total, dtype=dtype)
    dossier = np.repeat(np.arange(len(procedure)), count)
    for g, tpl in enumerate(templates):
        members = np.flatnonzero(inverse == g)
        if not len(members):
            continue
        idx = (first[members][:, None] + np.arange(len(tpl))[None, :]).ravel()
        reps = len(members)
        for name in cols:
            cols[name][idx] = np.tile(getattr(tpl, name), reps)
    return Tasks(dossier=dossier, first=first, count=count, **cols)


def draw_variants(
    procedure: np.ndarray,
    catalogue: Catalogue,
    *,
    supplement_rate: float,
    rejection_rate: float,
    withdrawal_rate: float,
    pause_rate: float,
    rating_rate: float,
    channel_online: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[Variant]]:
    """Each dossier's variant code, and the list of variants the codes index."""
    n = len(procedure)
    procs = list(catalogue)
    fee = np.array([p.fee > 0 for p in procs])[procedure]
    supplement = rng.random(n) < supplement_rate
    outcome = np.zeros(n, dtype=np.int64)
    outcome[supplement & (rng.random(n) < withdrawal_rate / max(supplement_rate, 1e-9))] = 2
    outcome[(outcome == 0) & (rng.random(n) < rejection_rate)] = 1
    pause = (outcome == 0) & (rng.random(n) < pause_rate)
    # online filings pay online at once; at the desk most pay on receipt.
    upfront = fee & (channel_online | (rng.random(n) < 0.85))
    rated = (outcome == 0) & (rng.random(n) < rating_rate)
    code = (
        supplement.astype(np.int64)
        + 2 * outcome
        + 6 * pause.astype(np.int64)
        + 12 * upfront.astype(np.int64)
        + 24 * rated.astype(np.int64)
    )
    variants = [
        Variant(
            bool(c % 2), (c // 2) % 3, bool((c // 6) % 2), bool((c // 12) % 2), bool((c // 24) % 2)
        )
        for c in range(48)
    ]
    return code, variants
