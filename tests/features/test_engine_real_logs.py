"""The whole feature engine (dossier, process, entity and graph features) on every real log."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.calendar import WorkingCalendar
from features.engine import compute_features
from features.ingest import IngestOptions, load_events
from features.registry import feature_registry
from tests.conftest import TEST_KEY
from tests.features.test_real_logs import LOGS

COUNTRY = {"Europe/Amsterdam": "NL", "Europe/Rome": "IT", "Europe/Copenhagen": "DK", "UTC": "NL"}
#: the larger logs take minutes through the whole engine: run them with -m slow.
SLOW = {"traffic_fines_full.csv.gz", "helpdesk.xes.gz"}


@pytest.mark.parametrize(
    ("name", "mapping", "tz"),
    [
        pytest.param(name, mapping, tz, marks=[pytest.mark.slow] if name in SLOW else [])
        for name, mapping, tz, _ in LOGS
    ],
    ids=[x[0] for x in LOGS],
)
def test_features_compute_on_the_real_log(
    data_dir: Path, name: str, mapping: dict, tz: str
) -> None:
    events = load_events(
        data_dir / name, IngestOptions(mapping=mapping, tz=tz),
        pseudonym_key=TEST_KEY, pseudonym_key_id="t1",
    )  # fmt: skip
    calendar = WorkingCalendar.for_country(COUNTRY[tz], tz=tz)
    result = compute_features(events, calendar)
    assert len(result.dossiers) == events["dossier_id"].nunique()
    feature_registry().check(result.dossiers)
    assert result.dossiers["process_loglik_mean"].notna().all()


@pytest.mark.parametrize("name", ["roadtraffic100traces.xes", "bpic15/BPIC15_1.xes.gz"])
def test_sparse_foreign_logs_get_all_history_entity_features(data_dir: Path, name: str) -> None:
    """No dossier starts in the last 365 days of these multi-year logs: only the all-history
    window has rows, and it reaches the dossiers through their main officer."""
    tz = "Europe/Amsterdam"
    events = load_events(
        data_dir / name, IngestOptions(tz=tz), pseudonym_key=TEST_KEY, pseudonym_key_id="t1"
    )
    result = compute_features(events, WorkingCalendar.for_country("NL", tz=tz))
    assert events["officer_id"].notna().any()
    officer = result.entities["officer"]
    assert officer.shape[0] > 0
    assert officer["dossiers_all"].sum() > 0
    assert officer["dossiers_90d"].eq(0).all()
    assert result.dossiers["officer__dossiers_all"].gt(0).any()
    feature_registry().check(officer, "officer")
