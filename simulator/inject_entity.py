"""Entity-level anomalies: officers, agencies, desks and intermediaries that behave badly.

Behaviour is injected where it happens in real life: favouritism, selective slowness and
an agency holding another's dossiers change the *queueing* (who serves a task, how long
it waits), so their traces emerge through the same dynamics as everything else; off-hours
approvals and rating stuffing change the recorded events; an intermediary's fan-out
changes who files the dossiers. Every affected dossier is labelled with the anomaly and
the entity, and the entity itself goes to the entity labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features import schema as s
from simulator.arrivals import Dossiers
from simulator.events import EventTable
from simulator.routes import ACT, LEADER, STAFF, TRANSFER
from simulator.world import People

if TYPE_CHECKING:
    from simulator.engine import Labels, World

PROVINCE_DESKS = ("one_stop_desk",)
#: agency-to-agency edges an agency may hold dossiers on (both ends provincial).
HOLD_EDGES = (
    ("land_registration_office", "tax_department"),
    ("justice_department", "police"),
    ("finance_department", "natural_resources_department"),
    ("home_affairs_department", "social_insurance"),
    ("tax_department", "natural_resources_department"),
)


def intermediary_entity(index: int) -> str:
    """Placeholder for an intermediary, replaced by its (pseudonymous) id on output."""
    return f"@intermediary:{index}"


def fanout(
    dossiers: Dossiers, people: People, count: float, labels: Labels, rng: np.random.Generator
) -> None:
    """Brokers who file for many unrelated applicants, across procedures and communes."""
    k = int(round(count))
    brokers = np.flatnonzero(people.intermediary_kind == "broker")
    if k <= 0 or not len(brokers):
        return
    chosen = rng.choice(brokers, size=min(k, len(brokers)), replace=False)
    loads = np.bincount(
        dossiers.submitter[dossiers.submitter >= 0], minlength=len(people.intermediary_ids)
    )
    busy = loads[loads > 0]
    per_broker = max(30, 2 * int(np.quantile(busy, 0.9)) if len(busy) else 30)
    pool = np.flatnonzero((dossiers.submitter < 0) & ~dossiers.is_business & labels.free())
    take = rng.choice(pool, size=min(len(pool), per_broker * len(chosen)), replace=False)
    for j, broker in enumerate(chosen):
        mine = take[j * per_broker : (j + 1) * per_broker]
        dossiers.submitter[mine] = broker
        labels.mark(mine, "intermediary_fanout", intermediary_entity(int(broker)))
        labels.add_entity("intermediary", intermediary_entity(int(broker)), "intermediary_fanout")


def before_queueing(
    world: World,
    officer: np.ndarray,
    queue_officer: np.ndarray,
    service: np.ndarray,
    wait: np.ndarray,
    labels: Labels,
) -> None:
    """Favouritism, selective slowness and agency holds (they act through the queues)."""
    rates = world.config.anomalies
    _favouritism(
        world, int(round(rates.favouritism)), officer, queue_officer, service, wait, labels
    )
    _slowness(world, int(round(rates.selective_slowness)), officer, wait, labels)
    _holds(world, int(round(rates.agency_holds)), wait, labels)


def _provincial(world: World) -> np.ndarray:
    agencies = world.province.agencies
    return (agencies["level"].to_numpy() == "province") & (
        agencies["unit_type"].to_numpy() != "one_stop_desk"
    )


def _favouritism(
    world: World,
    k: int,
    officer: np.ndarray,
    queue_officer: np.ndarray,
    service: np.ndarray,
    wait: np.ndarray,
    labels: Labels,
) -> None:
    tasks, d, rng = world.tasks, world.tasks.dossier, world.rng
    sub = world.dossiers.submitter[d]
    staff_task = (tasks.role == STAFF) & (sub >= 0) & _provincial(world)[world.task_agency]
    staff_task &= labels.free()[d]
    fanout = {e["entity_id"] for e in labels.entities if e["anomaly_type"] == "intermediary_fanout"}
    agencies_, subs_ = world.task_agency[staff_task], sub[staff_task]
    keep = np.array([intermediary_entity(int(i)) not in fanout for i in subs_], dtype=bool)
    agencies_, subs_ = agencies_[keep], subs_[keep]
    # (agency, intermediary) pairs, busiest first
    key, volume = np.unique(agencies_ * 1_000_000 + subs_, return_counts=True)
    key = key[np.argsort(-volume, kind="stable")]
    used_agencies: set[int] = set()
    for agency in key // 1_000_000:
        if k <= 0:
            break
        if agency in used_agencies:
            continue
        pool = np.flatnonzero((world.staff.agency == agency) & (world.staff.role == STAFF))
        if len(pool) < 2:
            continue
        used_agencies.add(int(agency))
        clients = key[key // 1_000_000 == agency] % 1_000_000
        favoured = clients[: int(rng.integers(1, 3))]
        x = int(rng.choice(pool))
        mask = staff_task & (world.task_agency == agency) & np.isin(sub, favoured)
        mask &= labels.free()[d]
        officer[mask] = x
        queue_officer[mask] = -1  # served at once, ahead of the queue
        wait[mask] = np.minimum(wait[mask], 900)
        service[mask] = service[mask] // 2
        oid = str(world.staff.officer_id[x])
        labels.mark(np.unique(d[mask]), "favouritism", oid)
        labels.add_entity("officer", oid, "favouritism")
        for f in favoured:
            labels.add_entity("intermediary", intermediary_entity(int(f)), "favouritism")
        k -= 1


def _slowness(world: World, k: int, officer: np.ndarray, wait: np.ndarray, labels: Labels) -> None:
    tasks, d, rng = world.tasks, world.tasks.dossier, world.rng
    candidates = (tasks.role == STAFF) & _provincial(world)[world.task_agency] & (officer >= 0)
    counts = np.bincount(officer[candidates], minlength=len(world.staff))
    eligible = (
        np.flatnonzero(counts >= np.quantile(counts[counts > 0], 0.5))
        if (counts > 0).any()
        else np.zeros(0, dtype=np.int64)
    )
    taken = {e["entity_id"] for e in labels.entities if e["entity_type"] == "officer"}
    eligible = np.array(
        [y for y in eligible if str(world.staff.officer_id[y]) not in taken], dtype=np.int64
    )
    if not len(eligible) or k <= 0:
        return
    for y in rng.choice(eligible, size=min(k, len(eligible)), replace=False):
        mask = candidates & (officer == y) & (world.dossiers.submitter[d] < 0) & labels.free()[d]
        wait[mask] += np.rint(
            world.statutory[d[mask]] * rng.uniform(0.6, 1.1, int(mask.sum()))
        ).astype(np.int64)
        oid = str(world.staff.officer_id[y])
        labels.mark(np.unique(d[mask]), "selective_slowness", oid)
        labels.add_entity("officer", oid, "selective_slowness")


def _holds(world: World, k: int, wait: np.ndarray, labels: Labels) -> None:
    tasks, d, rng = world.tasks, world.tasks.dossier, world.rng
    units = world.province.unit_agency
    prev = np.r_[-1, np.arange(len(tasks) - 1)]
    from_transfer = (tasks.role[np.maximum(prev, 0)] == TRANSFER) & (prev >= 0)
    from_transfer &= d[np.maximum(prev, 0)] == d
    options = []
    for g_unit, h_unit in HOLD_EDGES:
        if g_unit not in units or h_unit not in units:
            continue
        g, h = units[g_unit], units[h_unit]
        mask = (
            from_transfer & (world.task_agency == h) & (world.task_agency[np.maximum(prev, 0)] == g)
        )
        if mask.sum() >= 5:
            options.append((int(mask.sum()), g, h, mask))
    # the quietest edges first: a hold hurts a minority of dossiers, as in real cases
    options.sort(key=lambda o: o[0])
    ids = world.province.agencies["agency_id"].to_numpy()
    for _, g, h, mask in options[: max(k, 0)]:
        mask = mask & labels.free()[d]
        days = world.statutory[d[mask]] * rng.uniform(0.5, 0.9, int(mask.sum()))
        wait[mask] += np.rint(days + rng.uniform(1, 3, int(mask.sum())) * 28_800).astype(np.int64)
        pair = f"{ids[g]}->{ids[h]}"
        labels.mark(np.unique(d[mask]), "agency_holds", pair)
        labels.add_entity("agency_pair", pair, "agency_holds")


def after_queueing(
    world: World, events: EventTable, fake: np.ndarray, labels: Labels
) -> tuple[EventTable, np.ndarray]:
    """Off-hours approvals and rating stuffing (they change the recorded events)."""
    rates = world.config.anomalies
    _off_hours(world, events, int(round(rates.off_hours_approvals)), labels)
    return _stuffing(world, events, fake, int(round(rates.rating_stuffing)), labels)


def _off_hours(world: World, events: EventTable, k: int, labels: Labels) -> None:
    from simulator.output import wall_ns

    if k <= 0:
        return
    rng, cal = world.rng, world.calendar
    approved = (events.activity == ACT[s.APPROVED]) & (events.officer >= 0)
    approved &= labels.free()[events.dossier]
    leader = np.zeros(len(events), dtype=bool)
    leader[approved] = world.staff.role[events.officer[approved]] == LEADER
    counts = np.bincount(events.officer[leader], minlength=len(world.staff))
    eligible = np.flatnonzero(counts >= 10)
    if not len(eligible):
        return
    for z in rng.choice(eligible, size=min(k, len(eligible)), replace=False):
        rows = np.flatnonzero(leader & (events.officer == z))
        rows = rows[rng.random(len(rows)) < 0.6]
        t = wall_ns(cal, events.w[rows])
        prev = np.maximum(rows - 1, 0)
        nxt = np.minimum(rows + 1, len(events) - 1)
        same_prev = (rows > 0) & (events.dossier[prev] == events.dossier[rows])
        same_next = (rows + 1 < len(events)) & (events.dossier[nxt] == events.dossier[rows])
        t_prev = np.where(same_prev, wall_ns(cal, events.w[prev]), 0)
        t_next = np.where(same_next, wall_ns(cal, events.w[nxt]), np.iinfo(np.int64).max)
        midnight = _local_midnight(t, cal.tz)
        hour = 3_600 * 10**9
        evening = rng.uniform(19, 23, len(rows)) * hour
        daytime = rng.uniform(8, 16, len(rows)) * hour
        candidates = [
            midnight - 86_400 * 10**9 + daytime,  # the day before (kept if a day off)
            midnight + evening,  # the same evening
            midnight - 86_400 * 10**9 + evening,  # the evening before
        ]
        new = np.full(len(rows), -1, dtype=np.int64)
        for j, cand in enumerate(candidates):
            cand = cand.astype(np.int64)
            ok = (cand > t_prev) & (cand < t_next) & (new < 0)
            if j == 0:
                stamps = pd.DatetimeIndex(cand.astype("datetime64[ns]")).tz_localize("UTC")
                ok &= ~np.asarray(cal.is_working_day(stamps), dtype=bool)
            new[ok] = cand[ok]
        moved = rows[new >= 0]
        events.t_override[moved] = new[new >= 0]
        oid = str(world.staff.officer_id[z])
        labels.mark(np.unique(events.dossier[moved]), "off_hours_approvals", oid)
        labels.add_entity("officer", oid, "off_hours_approvals")


def _local_midnight(t: np.ndarray, tz: str) -> np.ndarray:
    local = pd.DatetimeIndex(t.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
    return np.asarray(local.normalize().asi8, dtype=np.int64)


def _stuffing(
    world: World, events: EventTable, fake: np.ndarray, k: int, labels: Labels
) -> tuple[EventTable, np.ndarray]:
    if k <= 0:
        return events, fake
    rng = world.rng
    n = len(world.dossiers)
    ret = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n)
    ok = (ret >= 0) & labels.free()
    desk = np.where(ok, events.agency[np.maximum(ret, 0)], -1)
    counts = np.bincount(desk[desk >= 0], minlength=world.province.n_agencies)
    ids = world.province.agencies["agency_id"].to_numpy()
    ranked = np.argsort(-counts)
    ranked = ranked[counts[ranked] >= 30]
    # a middle-sized desk (a branch or a busy commune), not the centre itself
    for a in ranked[len(ranked) // 3 :][:k]:
        mine = np.flatnonzero((desk == a) & (rng.random(n) < 0.95))
        if not len(mine):
            continue
        ret = events.first_of(events.activity == ACT[s.RESULT_RETURNED], n)  # rows move
        rated = events.first_of(events.activity == ACT[s.RATED], n)[mine]
        has = rated >= 0
        r_rows, base = rated[has], ret[mine]
        events.rating[r_rows] = 5
        events.officer[r_rows] = events.officer[base[has]]
        events.w[r_rows] = events.w[base[has]] + rng.integers(60, 600, int(has.sum()))
        missing = mine[~has]
        b = ret[missing]
        add = EventTable.new(
            missing,
            ACT[s.RATED],
            events.w[b] + rng.integers(60, 600, len(b)),
            agency=events.agency[b],
            officer=events.officer[b],
            via=events.via[b],
            ord=events.ord[b] + 0.25,
            rating=5,
        )
        order = np.lexsort(
            (np.r_[events.ord, add.ord], np.r_[events.w, add.w], np.r_[events.dossier, add.dossier])
        )
        fake = np.r_[fake, np.zeros(len(add), dtype=bool)][order]
        events = events.append(add)
        labels.mark(mine, "rating_stuffing", str(ids[a]))
        labels.add_entity("agency", str(ids[a]), "rating_stuffing")
    return events, fake
