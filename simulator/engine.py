"""One province from arrivals to labelled events: the processing dynamics.

The order is that of real life: dossiers arrive (:mod:`simulator.arrivals`), their routes
become tasks (:mod:`simulator.routes`), officers are staffed and assigned
(:mod:`simulator.staffing`), tasks queue at officers in office time
(:mod:`simulator.queueing`), and the resulting events get anomalies
(:mod:`simulator.inject_entity`, :mod:`simulator.inject_dossier`), ratings, apology
letters and final clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from simulator import inject_dossier, inject_entity
from simulator.arrivals import ONLINE, Dossiers, daily_rates, draw_dossiers, people_sizes
from simulator.config import SimulationConfig
from simulator.events import NO, Clocks, EventTable, clocks
from simulator.queueing import run_queues
from simulator.routes import (
    ACT,
    APPLICANT,
    FACING,
    LEADER,
    QUEUED_ROLES,
    SAME,
    SLOT_COMMUNE_OFFICE,
    SLOT_COMMUNE_POLICE,
    SLOT_DESK,
    TRANSFER,
    W_MINUTES,
    W_ONLINE,
    W_PAUSE,
    W_PAYMENT,
    W_RATING,
    W_RESPONSE,
    W_TRANSIT,
    Tasks,
    draw_variants,
    expand,
    unit_slots,
)
from simulator.staffing import Staff, staff
from simulator.world import People, Province, build_people, build_province

DAY = 28_800  # office seconds in a working day (features.calendar default office hours)
FACING_CODES = np.array([ACT[a] for a in FACING], dtype=np.int16)


@dataclass
class Labels:
    """Ground truth of one province: one anomaly type and entity per dossier at most."""

    anomaly: np.ndarray  # object: anomaly type or None
    entity: np.ndarray  # object: responsible entity id or None
    entities: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> Labels:
        return cls(np.full(n, None, dtype=object), np.full(n, None, dtype=object))

    def free(self) -> np.ndarray:
        return np.array([a is None for a in self.anomaly], dtype=bool)

    def mark(self, dossiers: np.ndarray, anomaly: str, entity: object) -> None:
        self.anomaly[dossiers] = anomaly
        self.entity[dossiers] = entity

    def add_entity(self, entity_type: str, entity_id: str, anomaly: str) -> None:
        self.entities.append(
            {"entity_type": entity_type, "entity_id": entity_id, "anomaly_type": anomaly}
        )


@dataclass
class ProvinceRun:
    """Everything one province's simulation produced."""

    province: Province
    people: People
    staff: Staff
    dossiers: Dossiers
    events: EventTable
    labels: Labels
    clocks: Clocks
    statutory: np.ndarray  # office seconds per dossier
    late: np.ndarray
    reported_on_time: np.ndarray


@dataclass
class World:
    """What a province's anomaly injectors may consult."""

    catalogue: Catalogue
    province: Province
    people: People
    staff: Staff
    dossiers: Dossiers
    tasks: Tasks
    task_agency: np.ndarray
    statutory: np.ndarray
    calendar: WorkingCalendar
    config: SimulationConfig
    rng: np.random.Generator


def simulate_province(
    index: int, config: SimulationConfig, catalogue: Catalogue, calendar: WorkingCalendar
) -> ProvinceRun:
    """Simulate province ``index`` over the configured period."""
    rng = np.random.default_rng([config.seed, index])
    province = build_province(
        index, catalogue, config.communes_per_province, config.branches_per_province, rng
    )
    scale = 1.0 if index == 0 else float(np.clip(rng.lognormal(0.0, 0.25), 0.6, 1.6))
    per_month = config.dossiers_per_month * scale * config.load_factor
    procs = list(catalogue)
    business = sum(p.demand for p in procs if p.applicant == "business") / sum(
        p.demand for p in procs
    )
    expected = per_month * config.months
    sizes = people_sizes(int(expected / config.load_factor), int(expected * business))
    brokers, agents = max(40, int(expected / 250)), max(10, int(expected / 1000))
    people = build_people(province, *sizes, brokers, agents, rng)
    dossiers = draw_dossiers(
        province,
        catalogue,
        sizes,
        (brokers, agents),
        start=config.start,
        months=config.months,
        per_month=per_month,
        calendar=calendar,
        rng=rng,
    )
    n = len(dossiers)
    labels = Labels.empty(n)
    inject_entity.fanout(dossiers, people, config.anomalies.intermediary_fanout, labels, rng)
    codes, variants = draw_variants(
        dossiers.procedure,
        catalogue,
        supplement_rate=config.supplement_rate,
        rejection_rate=config.rejection_rate,
        withdrawal_rate=config.withdrawal_rate,
        pause_rate=config.pause_rate,
        rating_rate=config.rating_rate,
        channel_online=dossiers.channel == ONLINE,
        rng=rng,
    )
    slots = unit_slots(catalogue)
    tasks = expand(dossiers.procedure, codes, variants, catalogue, slots)
    agency = _resolve_agencies(tasks, dossiers, province, slots)
    statutory = np.array([p.statutory_days for p in procs])[dossiers.procedure] * DAY
    _, _, working = daily_rates(config.start, config.months, calendar)
    officers = staff(
        province.agencies["agency_id"].to_numpy(),
        agency,
        tasks.role,
        tasks.effort,
        horizon_seconds=float(working.sum() * DAY),
        load_factor=config.load_factor,
        utilisation=config.utilisation,
        bottleneck_share=config.bottleneck_share,
        rng=rng,
    )
    queued = np.isin(tasks.role, QUEUED_ROLES)
    u = rng.random(n)
    officer = np.full(len(tasks), NO, dtype=np.int64)
    officer[queued] = officers.assign(agency[queued], tasks.role[queued], u[tasks.dossier[queued]])
    world = World(
        catalogue,
        province,
        people,
        officers,
        dossiers,
        tasks,
        agency,
        statutory,
        calendar,
        config,
        rng,
    )
    service, wait = _durations(world, officer)
    queue_officer = officer.copy()
    inject_entity.before_queueing(world, officer, queue_officer, service, wait, labels)
    arrival = pd.DatetimeIndex(dossiers.arrival_ns.astype("datetime64[ns]")).tz_localize("UTC")
    start_w = np.rint(calendar.working_seconds(arrival)).astype(np.int64)
    finish = run_queues(
        tasks.first, tasks.count, start_w, queue_officer, service, wait, len(officers)
    )
    events = _events(world, officer, finish)
    events = inject_dossier.skip_optional_steps(world, events)
    events, fake = inject_dossier.inject(world, events, labels)
    events, fake = inject_entity.after_queueing(world, events, fake, labels)
    clock = clocks(events, n, ignore=fake)  # the truth: a fake pause is no stop
    reported = clocks(events, n)  # what the agency reports from its events
    late = clock.honest > statutory
    reported_on_time = reported.reported <= statutory
    events, fake = _apologies(events, fake, reported, statutory, reported_on_time, rng)
    _ratings(events, late, labels, rng)
    return ProvinceRun(
        province,
        people,
        officers,
        dossiers,
        events,
        labels,
        clock,
        statutory,
        late,
        reported_on_time,
    )


def _resolve_agencies(
    tasks: Tasks, dossiers: Dossiers, province: Province, slots: dict[str, int]
) -> np.ndarray:
    table = np.full(max(slots.values()) + 1, NO, dtype=np.int64)
    for unit, slot in slots.items():
        if unit in province.unit_agency:
            table[slot] = province.unit_agency[unit]
    agency = table[tasks.slot]
    d = tasks.dossier
    for slot, values in (
        (SLOT_DESK, dossiers.desk),
        (SLOT_COMMUNE_OFFICE, province.commune_agency["commune_office"][dossiers.commune]),
        (SLOT_COMMUNE_POLICE, province.commune_agency["commune_police"][dossiers.commune]),
    ):
        mask = tasks.slot == slot
        agency[mask] = values[d[mask]]
    return agency


def _durations(world: World, officer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Officer service seconds and the wait before each task (deferral, transit, replies)."""
    tasks, rng, d = world.tasks, world.rng, world.tasks.dossier
    n = len(tasks)
    skill = np.where(officer >= 0, world.staff.skill[np.maximum(officer, 0)], 1.0)
    service = tasks.effort * rng.lognormal(0.0, 0.45, n) / skill
    transfer = tasks.role == TRANSFER
    service[transfer] = rng.uniform(120, 1800, int(transfer.sum()))
    pace = rng.uniform(0.55, 1.25, world.province.n_agencies)
    deferral = tasks.allowance * world.statutory[d] * rng.beta(1.6, 3.4, n)
    deferral *= pace[world.task_agency]
    # same-day services are worked through at once: little room for deferral
    deferral *= np.where(world.statutory[d] <= DAY, 0.5, 1.0)
    online = world.dossiers.channel[d] == ONLINE
    wait = deferral
    kind = tasks.wait
    draws = {
        # hand-overs scale with the statutory time: a same-day service moves within the hour
        W_TRANSIT: np.minimum(
            np.where(online, 0.3, 1.0) * rng.uniform(0.01, 0.08, n) * world.statutory[d], DAY
        ),
        W_RESPONSE: np.minimum(rng.lognormal(np.log(3.0), 0.7, n), 30) * DAY,
        W_PAYMENT: np.minimum(rng.lognormal(np.log(2.0), 0.6, n), 20) * DAY,
        W_PAUSE: np.minimum(rng.lognormal(np.log(4.0), 0.5, n), 20) * DAY,
        W_RATING: rng.exponential(0.15, n) * DAY,
        W_MINUTES: rng.uniform(60, 1200, n),
        W_ONLINE: np.where(
            online, rng.exponential(1.0, n) * np.minimum(0.2 * DAY, 0.08 * world.statutory[d]), 0.0
        ),
    }
    for code, values in draws.items():
        mask = kind == code
        wait = np.where(mask, wait + values, wait)
    return np.rint(service).astype(np.int64), np.rint(wait).astype(np.int64)


def _events(world: World, officer: np.ndarray, finish: np.ndarray) -> EventTable:
    """One event per task, at the task's end."""
    tasks, dossiers = world.tasks, world.dossiers
    n = len(tasks)
    pos = np.arange(n)
    queued = officer >= 0
    # transfers and pauses are done by the officer of the dossier's last queued task
    last = np.maximum.accumulate(np.where(queued, pos, -1))
    inherit = np.isin(tasks.role, (TRANSFER, SAME)) & (last >= 0)
    inherit &= tasks.dossier[np.maximum(last, 0)] == tasks.dossier
    actor = np.where(queued, officer, NO)
    actor[inherit] = officer[last[inherit]]
    actor[tasks.role == APPLICANT] = NO
    target = np.full(n, NO, dtype=np.int64)
    is_transfer = tasks.role == TRANSFER
    target[is_transfer] = world.task_agency[np.minimum(pos[is_transfer] + 1, n - 1)]
    channel = dossiers.channel[tasks.dossier].astype(np.int8)
    via = np.where(np.isin(tasks.activity, FACING_CODES), channel, NO).astype(np.int8)
    levels = np.array([p.online_level for p in world.catalogue], dtype=object)
    partial = (levels[dossiers.procedure] != "full")[tasks.dossier] & (channel == ONLINE)
    in_person_back = partial & np.isin(tasks.activity, [ACT[s.RESULT_RETURNED], ACT[s.RATED]])
    via[in_person_back] = 1
    events = EventTable.new(
        tasks.dossier,
        tasks.activity,
        finish,
        agency=world.task_agency,
        officer=actor,
        target=target,
        via=via,
        ord=pos.astype(np.float64),
        step=tasks.step,
    )
    return events.sort()


def _apologies(
    events: EventTable,
    fake: np.ndarray,
    clock: Clocks,
    statutory: np.ndarray,
    on_time: np.ndarray,
    rng: np.random.Generator,
) -> tuple[EventTable, np.ndarray]:
    """Apology letters: most late dossiers get one when their (reported) deadline passes."""
    n = len(statutory)
    returned = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n) >= 0
    late = np.flatnonzero(~on_time & returned & (rng.random(n) < 0.9))
    if not len(late):
        return events, fake
    due_w = clock.end_w[late] - (clock.reported[late] - statutory[late])
    # the letter comes from the unit holding the dossier at its deadline
    holder = (
        np.searchsorted(
            events.dossier * (1 << 40) + events.w, late * (1 << 40) + due_w, side="right"
        )
        - 1
    )
    add = EventTable.new(
        late,
        ACT[s.APOLOGY_ISSUED],
        due_w,
        agency=events.agency[holder],
        officer=events.officer[holder],
        ord=events.ord[holder] + 0.5,
    )
    merged = events.append(add)
    flags = np.concatenate([fake, np.zeros(len(add), dtype=bool)])
    order = np.lexsort(
        (
            np.concatenate([events.ord, add.ord]),
            np.concatenate([events.w, add.w]),
            np.concatenate([events.dossier, add.dossier]),
        )
    )
    return merged, flags[order]


RATING_ON_TIME = np.array([0.03, 0.03, 0.08, 0.22, 0.64])
RATING_LATE = np.array([0.15, 0.15, 0.22, 0.23, 0.25])


def _ratings(
    events: EventTable, late: np.ndarray, labels: Labels, rng: np.random.Generator
) -> None:
    """QR ratings: mostly 4-5 stars, lower when the dossier was late."""
    rated = (events.activity == ACT[s.RATED]) & (events.rating == 0)
    rows = np.flatnonzero(rated)
    is_late = late[events.dossier[rows]]
    values = np.where(
        is_late,
        rng.choice(5, size=len(rows), p=RATING_LATE),
        rng.choice(5, size=len(rows), p=RATING_ON_TIME),
    )
    events.rating[rows] = values + 1
    del labels


__all__ = ["DAY", "LEADER", "Labels", "ProvinceRun", "World", "simulate_province"]
