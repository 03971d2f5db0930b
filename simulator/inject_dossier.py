"""Dossier-level anomalies, injected into the events of chosen dossiers.

Each type draws its dossiers among those without a label yet (one anomaly per dossier),
with the preconditions that make the anomaly meaningful (a clock reset needs a late
dossier, a skipped step a mandatory step...). Insertions delay the rest of the dossier
(the time really spent), so every other trace stays consistent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from features import schema as s
from simulator.arrivals import ONLINE
from simulator.events import EventTable, clocks
from simulator.routes import ACT, appraisal_step

if TYPE_CHECKING:
    from simulator.engine import Labels, World

DAY = 28_800
WORK_STEPS = (s.ASSIGNED, s.APPRAISED, s.SITE_INSPECTED, s.APPROVED)


def skip_optional_steps(world: World, events: EventTable) -> EventTable:
    """Optional route steps are done for about half the dossiers (normal behaviour)."""
    procs = list(world.catalogue)
    width = max(len(p.route) for p in procs)
    optional = np.zeros((len(procs), width + 1), dtype=bool)
    for i, p in enumerate(procs):
        for j, step in enumerate(p.route):
            optional[i, j] = not step.mandatory
    proc = world.dossiers.procedure[events.dossier]
    skip = optional[proc, np.where(events.step >= 0, events.step, width)]
    coin = world.rng.random(len(world.dossiers)) < 0.5
    return events.take(np.flatnonzero(~(skip & coin[events.dossier])))


def _choose(mask: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    k = int(round(rate * len(mask)))
    pool = np.flatnonzero(mask)
    if k <= 0 or not len(pool):
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))


def _row_at(events: EventTable, dossiers: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Last row of each dossier with ``w`` at or before the given time."""
    key = events.dossier * (1 << 40) + events.w
    return np.searchsorted(key, dossiers * (1 << 40) + w, side="right") - 1


def inject(world: World, events: EventTable, labels: Labels) -> tuple[EventTable, np.ndarray]:
    """Inject every dossier-level anomaly; returns the events and the fake-stop flags."""
    n = len(world.dossiers)
    rates, rng, stat = world.config.anomalies, world.rng, world.statutory
    clock = clocks(events, n)
    result = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n) >= 0
    quiet = result & (clock.stops == 0)
    adds: list[EventTable] = []
    fakes: list[np.ndarray] = []

    def free() -> np.ndarray:
        return labels.free() & result

    # --- clock reset: a last-minute supplement request or pause hides a late dossier ---
    margin = clock.honest - stat
    cand = free() & quiet & (margin > 0) & (margin < 0.5 * stat) & (stat >= DAY)
    chosen = _choose(cand, rates.clock_reset, rng)
    if len(chosen):
        delta = rng.uniform(0.05, 0.25, len(chosen)) * np.minimum(stat[chosen], 2 * DAY)
        r = (clock.received_w[chosen] + stat[chosen] - delta).astype(np.int64)
        anchor = _row_at(events, chosen, r)
        nxt = anchor + 1
        who = np.where(events.officer[nxt] >= 0, events.officer[nxt], events.officer[anchor])
        where = events.agency[nxt]
        pause = rng.random(len(chosen)) < 0.25
        sup = ~pause
        gap = (rng.uniform(1, 4, int(sup.sum())) * DAY).astype(np.int64)
        via = world.dossiers.channel[chosen[sup]]
        adds.append(
            EventTable.new(
                chosen[sup],
                ACT[s.SUPPLEMENT_REQUESTED],
                r[sup],
                agency=where[sup],
                officer=who[sup],
                ord=events.ord[anchor[sup]] + 0.3,
            )
        )
        adds.append(
            EventTable.new(
                chosen[sup],
                ACT[s.SUPPLEMENT_RECEIVED],
                r[sup] + gap,
                agency=where[sup],
                via=via,
                ord=events.ord[anchor[sup]] + 0.6,
            )
        )
        fakes += [np.zeros(int(sup.sum()), bool), np.zeros(int(sup.sum()), bool)]
        events.shift_after(anchor[sup], gap)
        # the pause variant: paused before the deadline, "resumed" just before the result
        pc = chosen[pause]
        end_row = events.first_of(np.isin(events.activity, [ACT[s.RESULT_RETURNED]]), n)[pc]
        floor = np.maximum(events.w[end_row - 1], r[pause])
        resume = np.maximum(events.w[end_row] - rng.integers(300, 1800, len(pc)), floor)
        adds.append(
            EventTable.new(
                pc,
                ACT[s.PAUSED],
                r[pause],
                agency=where[pause],
                officer=who[pause],
                ord=events.ord[anchor[pause]] + 0.3,
            )
        )
        adds.append(
            EventTable.new(
                pc,
                ACT[s.RESUMED],
                resume,
                agency=where[pause],
                officer=who[pause],
                ord=events.ord[end_row] - 0.5,
            )
        )
        fakes += [np.ones(len(pc), bool), np.ones(len(pc), bool)]
        labels.mark(chosen, "clock_reset", None)
        _entity_from(labels, chosen, who, world)

    # --- backdating: the approval written days after the time it claims -----------------
    chosen = _choose(free(), rates.backdated, rng)
    if len(chosen):
        row = events.first_of(events.activity == ACT[s.APPROVED], n)[chosen]
        events.late_record[row] = (rng.uniform(2, 20, len(row)) * 86_400).astype(np.int64)
        labels.mark(chosen, "backdated", None)
        _entity_from(labels, chosen, events.officer[row], world)

    procs = list(world.catalogue)
    proc = world.dossiers.procedure
    # --- skipped mandatory step --------------------------------------------------------
    skippable = [
        [
            j
            for j, st in enumerate(p.route)
            if st.mandatory and st.activity in (s.ASSIGNED, s.APPRAISED, s.SITE_INSPECTED)
        ]
        for p in procs
    ]
    has_skip = np.array([bool(x) for x in skippable])[proc]
    chosen = _choose(free() & has_skip & (clock.supplements == 0), rates.skipped_step, rng)
    if len(chosen):
        step = np.array([rng.choice(skippable[proc[d]]) for d in chosen])
        target = np.full(n, -2, dtype=np.int64)
        target[chosen] = step
        drop = events.step == target[events.dossier]
        row = events.first_of(drop, n)[chosen]
        labels.mark(chosen, "skipped_step", None)
        _entity_from(labels, chosen, events.officer[row + 1], world)
        keep = np.flatnonzero(~drop)
        events = events.take(keep)

    # --- steps out of order: two consecutive steps at one unit done the other way round -
    pairs = [
        [
            j
            for j in range(len(p.route) - 1)
            if p.route[j].unit_type == p.route[j + 1].unit_type
            and p.route[j].activity in WORK_STEPS
            and p.route[j + 1].activity in WORK_STEPS
            and p.route[j].activity != p.route[j + 1].activity
            and p.route[j].mandatory
            and p.route[j + 1].mandatory
        ]
        for p in procs
    ]
    has_pair = np.array([bool(x) for x in pairs])[proc]
    chosen = _choose(free() & has_pair & (clock.supplements == 0), rates.out_of_order, rng)
    if len(chosen):
        j = np.array([rng.choice(pairs[proc[d]]) for d in chosen])
        first = np.full(n, -2, dtype=np.int64)
        first[chosen] = j
        a = events.first_of(events.step == first[events.dossier], n)[chosen]
        b = events.first_of(events.step == first[events.dossier] + 1, n)[chosen]
        found = (a >= 0) & (b >= 0)
        chosen, a, b = chosen[found], a[found], b[found]
        for col in ("activity", "step", "officer"):
            values = getattr(events, col)
            values[a], values[b] = values[b].copy(), values[a].copy()
        labels.mark(chosen, "out_of_order", None)
        _entity_from(labels, chosen, events.officer[a], world)

    appraisal = np.array([appraisal_step(p) for p in procs])[proc]
    at_appraisal = events.step == appraisal[events.dossier]
    # --- excess supplement rounds ------------------------------------------------------
    chosen = _choose(free() & quiet, rates.excess_supplements, rng)
    if len(chosen):
        e = events.first_of(at_appraisal, n)[chosen]
        ok = e > 0
        chosen, e = chosen[ok], e[ok]
        rounds = rng.integers(3, 5, len(chosen))
        base_w = events.w[e]
        total = np.zeros(len(chosen), dtype=np.int64)
        for i in range(4):
            on = rounds > i
            req = base_w + total
            reply = (rng.uniform(1, 5, len(chosen)) * DAY).astype(np.int64)
            redo = (rng.uniform(0.3, 2, len(chosen)) * DAY).astype(np.int64)
            adds.append(
                EventTable.new(
                    chosen[on],
                    ACT[s.SUPPLEMENT_REQUESTED],
                    req[on],
                    agency=events.agency[e[on]],
                    officer=events.officer[e[on]],
                    ord=events.ord[e[on]] - 0.9 + 0.2 * i,
                )
            )
            adds.append(
                EventTable.new(
                    chosen[on],
                    ACT[s.SUPPLEMENT_RECEIVED],
                    (req + reply)[on],
                    agency=events.agency[e[on]],
                    via=world.dossiers.channel[chosen[on]],
                    ord=events.ord[e[on]] - 0.8 + 0.2 * i,
                )
            )
            fakes += [np.zeros(int(on.sum()), bool)] * 2
            total += np.where(on, reply + redo, 0)
        events.shift_after(e - 1, total)
        labels.mark(chosen, "excess_supplements", None)
        _entity_from(labels, chosen, events.officer[e], world)

    events, rework_adds = _rework(world, events, labels, free(), at_appraisal)
    adds += rework_adds
    fakes += [np.zeros(len(a), bool) for a in rework_adds]
    transfer_adds = _transfers(world, events, labels, free())
    adds += transfer_adds
    fakes += [np.zeros(len(a), bool) for a in transfer_adds]
    _idle_then_rush(world, events, labels, free() & quiet & (clock.honest < 0.8 * stat))

    # --- forced in-person visit for a full-online dossier ------------------------------
    full = np.array([p.online_level == "full" for p in procs])[proc]
    chosen = _choose(
        free() & full & (world.dossiers.channel == ONLINE), rates.forced_in_person, rng
    )
    if len(chosen):
        row = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n)[chosen]
        events.via[row] = 1
        labels.mark(chosen, "forced_in_person", None)
        _entity_from(labels, chosen, events.officer[row], world)

    fake = np.zeros(len(events), dtype=bool)
    for add, flags in zip(adds, _group(fakes, adds), strict=True):
        merged_fake = np.r_[fake, flags]
        order = np.lexsort(
            (np.r_[events.ord, add.ord], np.r_[events.w, add.w], np.r_[events.dossier, add.dossier])
        )
        events = events.append(add)
        fake = merged_fake[order]
    return events, fake


def _group(fakes: list[np.ndarray], adds: list[EventTable]) -> list[np.ndarray]:
    assert len(fakes) == len(adds), (len(fakes), len(adds))
    return fakes


def _entity_from(labels: Labels, chosen: np.ndarray, officer: np.ndarray, world: World) -> None:
    """The officer who did the anomalous step is the entity of a dossier-level label."""
    ids = world.staff.officer_id
    labels.entity[chosen] = np.where(officer >= 0, ids[np.maximum(officer, 0)], None)


def _rework(
    world: World, events: EventTable, labels: Labels, free: np.ndarray, at_appraisal: np.ndarray
) -> tuple[EventTable, list[EventTable]]:
    """A step done again and again without any new input from the applicant."""
    n, rng = len(world.dossiers), world.rng
    chosen = _choose(free, world.config.anomalies.rework_loop, rng)
    e = events.first_of(at_appraisal & (events.activity == ACT[s.APPRAISED]), n)[chosen]
    chosen, e = chosen[e >= 0], e[e >= 0]
    adds = []
    total = np.zeros(len(chosen), dtype=np.int64)
    repeats = rng.integers(2, 4, len(chosen))
    for i in range(3):
        on = repeats > i
        total += np.where(on, (rng.uniform(0.3, 2, len(chosen)) * DAY).astype(np.int64), 0)
        adds.append(
            EventTable.new(
                chosen[on],
                ACT[s.APPRAISED],
                (events.w[e] + total)[on],
                agency=events.agency[e[on]],
                officer=events.officer[e[on]],
                step=events.step[e[on]],
                ord=events.ord[e[on]] + 0.1 * (i + 1),
            )
        )
    events.shift_after(e, total)
    labels.mark(chosen, "rework_loop", None)
    _entity_from(labels, chosen, events.officer[e], world)
    return events, adds


def _transfers(
    world: World, events: EventTable, labels: Labels, free: np.ndarray
) -> list[EventTable]:
    """Ping-pong between two agencies, and a detour through an agency off the route."""
    n, rng = len(world.dossiers), world.rng
    is_transfer = events.activity == ACT[s.TRANSFERRED]
    x_all = events.first_of(is_transfer, n)
    adds: list[EventTable] = []
    rates = world.config.anomalies
    # ping-pong: A -> B, then B -> A -> B (once or twice more) before work starts at B
    chosen = _choose(free & (x_all >= 0), rates.ping_pong, rng)
    x = x_all[chosen]
    a, b = events.agency[x], events.target[x]
    b_officer = np.where(events.agency[x + 1] == b, events.officer[x + 1], -1)
    cycles = rng.integers(1, 3, len(chosen))
    total = np.zeros(len(chosen), dtype=np.int64)
    for i in range(2):
        on = cycles > i
        back = events.w[x] + total + (rng.uniform(0.3, 1.5, len(chosen)) * DAY).astype(np.int64)
        again = back + (rng.uniform(0.2, 1.0, len(chosen)) * DAY).astype(np.int64)
        adds.append(
            EventTable.new(
                chosen[on],
                ACT[s.TRANSFERRED],
                back[on],
                agency=b[on],
                officer=b_officer[on],
                target=a[on],
                ord=events.ord[x[on]] + 0.1 + 0.2 * i,
            )
        )
        adds.append(
            EventTable.new(
                chosen[on],
                ACT[s.TRANSFERRED],
                again[on],
                agency=a[on],
                officer=events.officer[x[on]],
                target=b[on],
                ord=events.ord[x[on]] + 0.2 + 0.2 * i,
            )
        )
        total = np.where(on, again - events.w[x], total)
    events.shift_after(x, total)
    labels.mark(chosen, "ping_pong", None)
    _entity_from(labels, chosen, b_officer, world)
    # off-route: A -> C (a unit not on the route), C -> A, then on to B as approved
    agencies = world.province.agencies
    units = agencies["unit_type"].to_numpy()
    staffed = np.unique(world.staff.agency)
    provincial = staffed[
        (agencies["level"].to_numpy()[staffed] == "province") & (units[staffed] != "one_stop_desk")
    ]
    chosen = _choose(free & (x_all >= 0), rates.off_route_transfer, rng)
    if not len(chosen) or not len(provincial):
        return adds
    procs = list(world.catalogue)
    route_units = [set(p.unit_types) for p in procs]
    c = np.array(
        [
            rng.choice(
                [g for g in provincial if units[g] not in route_units[world.dossiers.procedure[d]]]
                or provincial
            )
            for d in chosen
        ]
    )
    x = x_all[chosen]
    a = events.agency[x]
    first_officer = np.searchsorted(world.staff.agency, c)
    out_w = events.w[x]
    back_w = out_w + (rng.uniform(0.5, 3, len(chosen)) * DAY).astype(np.int64)
    adds.append(
        EventTable.new(
            chosen,
            ACT[s.TRANSFERRED],
            out_w,
            agency=a,
            officer=events.officer[x],
            target=c,
            ord=events.ord[x] - 0.4,
        )
    )
    adds.append(
        EventTable.new(
            chosen,
            ACT[s.TRANSFERRED],
            back_w,
            agency=c,
            officer=first_officer,
            target=a,
            ord=events.ord[x] - 0.3,
        )
    )
    events.shift_after(x - 1, back_w - out_w + 60)
    labels.mark(chosen, "off_route_transfer", None)
    _entity_from(labels, chosen, events.officer[x], world)
    return adds


def _idle_then_rush(world: World, events: EventTable, labels: Labels, free: np.ndarray) -> None:
    """Nothing happens for most of the statutory time, then every step in a few hours."""
    n, rng, stat = len(world.dossiers), world.rng, world.statutory
    chosen = _choose(free & (stat >= 5 * DAY), world.config.anomalies.idle_then_rush, rng)
    if not len(chosen):
        return
    first, count = events.bounds(n)
    work = ~np.isin(events.activity, [ACT[s.RECEIVED], ACT[s.PAID]])
    start = events.first_of(work, n)[chosen]
    end = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n)[chosen]
    received = events.w[first[chosen]]
    due = received + stat[chosen]
    window_start = due - (0.45 * DAY)
    for k, d in enumerate(chosen):
        rows = np.arange(start[k], end[k] + 1)
        new = window_start[k] + (np.arange(len(rows)) * (0.4 * DAY / max(len(rows), 1)))
        tail = np.arange(end[k] + 1, first[d] + count[d])
        shift = int(new[-1]) - int(events.w[end[k]])
        events.w[rows] = new.astype(np.int64)
        events.w[tail] = events.w[tail] + shift
    labels.mark(chosen, "idle_then_rush", None)
    _entity_from(labels, chosen, events.officer[end], world)
