"""One code path, two engines: pandas in-process and Dask on a LocalCluster agree exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.calendar import WorkingCalendar
from features.engine import EngineError, compute_features
from features.eventstore import EventStore
from features.registry import feature_registry
from simulator.config import SimulationConfig
from simulator.run import default_catalogue, simulate_frame


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    events, _, _ = simulate_frame(
        SimulationConfig(provinces=1, months=1, seed=11, dossiers_per_month=1200)
    )
    return s.sort_events(s.coerce_events(events))


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar.for_country()


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(a.dossiers, b.dossiers)
    assert a.entities.keys() == b.entities.keys()
    for name in a.entities:
        pd.testing.assert_frame_equal(a.entities[name], b.entities[name], obj=name)


def test_pandas_and_dask_agree_on_a_store(
    log: pd.DataFrame, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    store = EventStore(tmp_path / "events", buckets=4)
    store.append(log)
    catalogue = default_catalogue()
    in_process = compute_features(store, calendar, catalogue=catalogue)
    on_cluster = compute_features(store, calendar, catalogue=catalogue, engine="dask", workers=2)
    _assert_same(in_process, on_cluster)
    assert len(in_process.dossiers) == log[s.DOSSIER_ID].nunique()
    feature_registry().check(in_process.dossiers)


def test_pandas_and_dask_agree_without_a_catalogue(
    log: pd.DataFrame, calendar: WorkingCalendar
) -> None:
    sample = log[log[s.DOSSIER_ID].isin(log[s.DOSSIER_ID].unique()[:400])]
    in_process = compute_features(sample, calendar)
    on_cluster = compute_features(sample, calendar, engine="dask", workers=2, partitions=3)
    _assert_same(in_process, on_cluster)
    assert "process_loglik_mean" in in_process.dossiers.columns


def test_unknown_engine_and_unreachable_scheduler(
    log: pd.DataFrame, calendar: WorkingCalendar
) -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        compute_features(log, calendar, engine="spark")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="cannot reach"):
        compute_features(log, calendar, engine="dask", scheduler="tcp://127.0.0.1:9")
