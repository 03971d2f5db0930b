"""The simulated log looks like the real reports (ranges documented in docs/simulator.md)."""

from __future__ import annotations

import numpy as np

from simulator import AnomalyRates, SimulationConfig
from tests.simulator.conftest import _simulate
from tests.simulator.helpers import statutory_days


def test_a_province_month_is_in_the_thousands(default_log):
    lab = default_log.labels_dossiers
    assert 5_000 <= len(lab) <= 20_000
    ev = default_log.events
    level = default_log.agencies.set_index("agency_id").level
    received = ev[ev.activity == "received"]
    at_centre = received.agency_id.astype(str).map(level).eq("province").sum()
    assert 2_000 <= at_centre <= 10_000  # the real centre: 6,583 dossiers in a month


def test_on_time_rates(default_log, anomalous_log):
    lab = default_log.labels_dossiers
    assert 0.95 <= lab.reported_on_time.mean() <= 0.998
    assert (~lab.late).mean() < lab.reported_on_time.mean()
    hidden = anomalous_log.labels_dossiers
    gap = hidden.reported_on_time.mean() - (~hidden.late).mean()
    assert gap > (lab.reported_on_time.mean() - (~lab.late).mean())


def test_supplements_steps_durations_and_ratings(default_log):
    ev = default_log.events
    by = ev.groupby("dossier_id", observed=True)
    supplement = by.activity.apply(lambda a: (a == "supplement_requested").any())
    assert 0.10 <= supplement.mean() <= 0.20
    assert 5 <= by.size().median() <= 14
    lab = default_log.labels_dossiers.set_index("dossier_id")
    days = statutory_days(default_log)
    from features.clock import dossier_clock
    from tests.simulator.helpers import calendar

    clock = dossier_clock(ev, calendar())
    ratio = (clock.elapsed_days / days.loc[clock.index])[days.loc[clock.index] >= 3]
    assert 0.2 <= ratio.median() <= 0.8
    assert ratio.quantile(0.99) > 1.0  # some dossiers are late
    ratings = ev.loc[ev.activity == "rated", "rating"].astype(float)
    assert 3.9 <= ratings.mean() <= 4.6
    assert 0.45 <= (ratings == 5).mean() <= 0.75
    assert 0.25 <= len(ratings) / len(lab) <= 0.45


def test_lateness_grows_with_load():
    base = SimulationConfig(
        months=1,
        seed=5,
        dossiers_per_month=4_000,
        communes_per_province=40,
        anomalies=AnomalyRates.scaled(0),
    )
    calm = _simulate(base).labels_dossiers.late.mean()
    busy = _simulate(base.with_(load_factor=1.25)).labels_dossiers.late.mean()
    assert busy > 1.5 * calm
    assert np.isfinite(calm)
