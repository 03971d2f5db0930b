"""Every anomaly label is true to the events (and normal dossiers do not show it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.clock import dossier_clock
from simulator import ANOMALY_TYPES, default_catalogue
from simulator.config import ENTITY_ANOMALIES
from tests.simulator.helpers import calendar, labelled, normal, statutory_days, with_units


def test_every_anomaly_type_is_injected(anomalous_log):
    counts = anomalous_log.labels_dossiers.anomaly_type.value_counts()
    for anomaly in ANOMALY_TYPES:
        assert counts.get(anomaly, 0) >= 3, anomaly
    entity_types = set(anomalous_log.labels_entities.anomaly_type)
    assert set(ENTITY_ANOMALIES) <= entity_types


def test_entities_of_labels_appear_in_the_events(anomalous_log):
    ev = anomalous_log.events
    known = {
        "officer": set(ev.officer_id.dropna().astype(str)),
        "agency": set(ev.agency_id.astype(str)),
        "intermediary": set(ev.submitter_id.dropna().astype(str)),
    }
    for row in anomalous_log.labels_entities.itertuples():
        if row.entity_type == "agency_pair":
            assert set(row.entity_id.split("->")) <= known["agency"]
        else:
            assert row.entity_id in known[row.entity_type], row


def test_clock_resets_are_late_honestly_yet_reported_on_time(anomalous_log):
    log, cal = anomalous_log, calendar()
    ids = labelled(log, "clock_reset")
    lab = log.labels_dossiers.set_index("dossier_id")
    assert lab.loc[ids, "late"].all() and lab.loc[ids, "reported_on_time"].all()
    ev = log.events[log.events.dossier_id.isin(ids)]
    days = statutory_days(log).loc[ids]
    reported = dossier_clock(ev, cal, policy="restart").elapsed_days.loc[ids]
    assert (reported <= days + 1e-6).all()
    # the truth: the last-minute request or pause is not a real stop of the agency's work
    fake = ev.activity.isin(["paused", "resumed"]) | (
        ev.activity.isin(["supplement_requested", "supplement_received"])
    )
    honest = dossier_clock(ev[~fake], cal, policy="stop").elapsed_days.loc[ids]
    stopped = dossier_clock(ev, cal, policy="stop")
    assert (honest > days).all()
    supp = ev[ev.activity == "supplement_requested"].dossier_id.unique()
    assert (stopped.elapsed_days.loc[supp] > days.loc[supp]).all()


def test_backdated_events_are_recorded_days_later(anomalous_log):
    ev = anomalous_log.events
    lag = (
        (ev.recorded_at - ev.timestamp)
        .dt.total_seconds()
        .groupby(ev.dossier_id, observed=True)
        .max()
    )
    assert (lag.loc[labelled(anomalous_log, "backdated")] >= 86_400).all()
    assert (lag.loc[normal(anomalous_log)] < 3_600).all()


def test_skipped_steps_really_lack_a_mandatory_step(anomalous_log):
    ev = with_units(anomalous_log)
    cat = default_catalogue()

    def missing(group: pd.DataFrame) -> bool:
        done = set(zip(group.activity.astype(str), group.unit, strict=True))
        proc = cat.get(str(group.procedure_code.iloc[0]))
        return any(st.mandatory and (st.activity, st.unit_type) not in done for st in proc.route)

    skipped = ev[ev.dossier_id.isin(labelled(anomalous_log, "skipped_step"))]
    assert skipped.groupby("dossier_id", observed=True).apply(missing).all()
    returned = ev[ev.dossier_id.isin(normal(anomalous_log))]
    returned = returned[
        returned.dossier_id.isin(returned.loc[returned.activity == "result_returned", "dossier_id"])
    ]
    some = returned[returned.dossier_id.isin(returned.dossier_id.unique()[:400])]
    assert not some.groupby("dossier_id", observed=True).apply(missing).any()


def test_out_of_order_steps_are_reversed(anomalous_log):
    ev = with_units(anomalous_log)
    cat = default_catalogue()

    def reversed_(group: pd.DataFrame) -> bool:
        seen = list(zip(group.activity.astype(str), group.unit, strict=True))
        route = cat.get(str(group.procedure_code.iloc[0])).approved_route()
        first = {pair: seen.index(pair) for pair in route if pair in seen}
        order = [first[p] for p in route if p in first]
        return order != sorted(order)

    ooo = ev[ev.dossier_id.isin(labelled(anomalous_log, "out_of_order"))]
    assert ooo.groupby("dossier_id", observed=True).apply(reversed_).all()


def _count(ev: pd.DataFrame, activity: str) -> pd.Series:
    mask = ev.activity == activity
    return mask.groupby(ev.dossier_id, observed=True).sum()


def test_excess_supplements_and_rework(anomalous_log):
    log = anomalous_log
    requests = _count(log.events, "supplement_requested")
    assert (requests.loc[labelled(log, "excess_supplements")] >= 3).all()
    assert (requests.loc[normal(log)] <= 1).all()
    ev = log.events
    appraised = (
        ev[ev.activity == "appraised"]
        .groupby(["dossier_id", "agency_id"], observed=True)
        .size()
        .groupby(level=0)
        .max()
    )
    received = _count(ev, "supplement_received")
    rework = labelled(log, "rework_loop")
    assert (appraised.loc[rework] > 1 + received.loc[rework]).all()
    calm = appraised.index.intersection(normal(log))
    assert (appraised.loc[calm] <= 1).all()


def _edges(ev: pd.DataFrame) -> pd.DataFrame:
    tr = ev[ev.activity == "transferred"]
    return tr.assign(edge=tr.agency_id.astype(str) + ">" + tr.target_agency_id.astype(str))


def test_ping_pong_repeats_a_transfer(anomalous_log):
    edges = _edges(anomalous_log.events)
    repeats = edges.groupby(["dossier_id", "edge"], observed=True).size().groupby(level=0).max()
    assert (repeats.loc[labelled(anomalous_log, "ping_pong")] >= 2).all()
    assert (repeats.loc[repeats.index.intersection(normal(anomalous_log))] == 1).all()


def test_off_route_transfers_leave_the_approved_route(anomalous_log):
    ev = with_units(anomalous_log)
    cat = default_catalogue()
    tr = ev[ev.activity == "transferred"]
    approved = tr.apply(
        lambda r: (r.unit, r.target_unit) in cat.approved_transfers(str(r.procedure_code)), axis=1
    )
    off = (~approved).groupby(tr.dossier_id, observed=True).any()
    assert off.loc[labelled(anomalous_log, "off_route_transfer")].all()
    assert not off.loc[off.index.intersection(normal(anomalous_log))].any()


def test_idle_then_rush(anomalous_log):
    log, cal = anomalous_log, calendar()
    ids = labelled(log, "idle_then_rush")
    ev = log.events[log.events.dossier_id.isin(ids)]
    days = statutory_days(log)
    for d, group in ev.groupby("dossier_id", observed=True):
        work = group[~group.activity.isin(["received", "paid", "rated"])]
        idle = cal.working_days_between(group.timestamp.iloc[0], work.timestamp.iloc[0])
        rush = cal.working_days_between(work.timestamp.iloc[0], work.timestamp.iloc[-1])
        assert idle >= 0.5 * days.loc[d] and rush <= 0.5, d


def test_forced_in_person_visits(anomalous_log):
    ev = anomalous_log.events
    full = {p.code for p in default_catalogue() if p.online_level == "full"}
    in_person = (ev.via == "in_person").groupby(ev.dossier_id, observed=True).any()
    forced = labelled(anomalous_log, "forced_in_person")
    assert in_person.loc[forced].all()
    first = ev.groupby("dossier_id", observed=True)[["channel", "procedure_code"]].first()
    assert (first.loc[forced, "channel"] == "online").all()
    online_full = first[(first.channel == "online") & first.procedure_code.astype(str).isin(full)]
    calm = online_full.index.intersection(normal(anomalous_log))
    assert not in_person.loc[calm].any()


def test_favouritism_is_faster_and_slowness_slower(anomalous_log):
    log = anomalous_log
    lab = log.labels_dossiers.set_index("dossier_id")
    base = lab.loc[normal(log), "late"].mean()
    assert lab.loc[labelled(log, "favouritism"), "late"].mean() <= base
    slow = labelled(log, "selective_slowness")
    assert lab.loc[slow, "late"].mean() > 3 * base
    ev = log.events
    first = ev.groupby("dossier_id", observed=True)[["applicant_id", "submitter_id"]].first()
    assert (first.loc[slow, "applicant_id"] == first.loc[slow, "submitter_id"]).all()
    assert lab.loc[labelled(log, "agency_holds"), "late"].mean() > 3 * base


def test_off_hours_approvals_are_outside_office_time(anomalous_log):
    log, cal = anomalous_log, calendar()
    ids = labelled(log, "off_hours_approvals")
    officers = log.labels_dossiers.set_index("dossier_id").loc[ids, "entity"]
    ev = log.events
    approvals = ev[(ev.activity == "approved") & ev.dossier_id.isin(ids)]
    approvals = approvals[
        approvals.officer_id.astype(str).to_numpy() == officers.loc[approvals.dossier_id].to_numpy()
    ]
    outside = ~cal.is_office_time(approvals.timestamp)
    assert pd.Series(outside).groupby(approvals.dossier_id.to_numpy()).any().all()
    normal_approvals = ev[(ev.activity == "approved") & ev.dossier_id.isin(normal(log))]
    assert cal.is_office_time(normal_approvals.timestamp).all()


def test_rating_stuffing_is_uniform_and_entered_by_officers(anomalous_log):
    ev = anomalous_log.events
    rated = ev[ev.activity == "rated"]
    stuffed = rated[rated.dossier_id.isin(labelled(anomalous_log, "rating_stuffing"))]
    assert len(stuffed) and (stuffed.rating == 5).all() and stuffed.officer_id.notna().all()
    calm = rated[rated.dossier_id.isin(normal(anomalous_log))]
    assert calm.officer_id.isna().all() and calm.rating.nunique() == 5


def test_fanout_intermediaries_file_for_many_applicants(anomalous_log):
    ev = anomalous_log.events
    ents = anomalous_log.labels_entities
    fan = set(ents.loc[ents.anomaly_type == "intermediary_fanout", "entity_id"])
    first = ev.groupby("dossier_id", observed=True)[["applicant_id", "submitter_id"]].first()
    via = first[first.applicant_id != first.submitter_id]
    distinct = via.groupby("submitter_id", observed=True).applicant_id.nunique()
    others = distinct.drop(index=[f for f in fan if f in distinct.index])
    for f in fan:
        assert distinct.loc[f] >= np.quantile(others, 0.9), f


@pytest.mark.parametrize("column", ["late", "reported_on_time", "anomaly_type", "entity"])
def test_events_never_carry_labels(anomalous_log, column):
    assert column not in anomalous_log.events.columns
