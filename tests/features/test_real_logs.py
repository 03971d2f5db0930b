"""Every real log in ../shared/data ingests with the counts its README gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from features import schema as s
from features.ingest import IngestOptions, load_events
from tests.conftest import TEST_KEY

DRYERS = {"dossier_id": "ID", "activity": "Title", "timestamp": "Date"}

#: file, mapping, zone, (dossiers, events, activities) as the data README states them.
#: The labelled BPIC15 logs carry the injected events too, so they hold more events.
LOGS = [
    ("receipt.xes", {}, "Europe/Amsterdam", (1434, 8577, 27)),
    ("receipt.csv", {}, "Europe/Amsterdam", (1434, 8577, 27)),
    ("traffic_fines_full.csv.gz", {}, "Europe/Rome", (150370, 561470, 11)),
    ("roadtraffic100traces.xes", {}, "Europe/Rome", (100, 390, 10)),
    ("running-example.xes", {}, "UTC", (6, 42, 8)),
    ("bpic15/BPIC15_1.xes.gz", {}, "Europe/Amsterdam", (1199, 52217, 398)),
    ("bpic15/BPIC15_2.xes.gz", {}, "Europe/Amsterdam", (832, 44354, 410)),
    ("bpic15_labelled/bpic15-0.3-1.events.csv.gz", {}, "Europe/Amsterdam", (1199, None, None)),
    ("bpic15_labelled/bpic15-0.3-2.events.csv.gz", {}, "Europe/Amsterdam", (832, None, None)),
    ("helpdesk.xes.gz", {}, "Europe/Rome", (4580, 21348, 14)),
    ("dryers_fond_grants.csv", DRYERS, "Europe/Copenhagen", (587, 12151, 34)),
]


@pytest.mark.parametrize(("name", "mapping", "tz", "counts"), LOGS, ids=[x[0] for x in LOGS])
def test_real_log_ingests_with_the_right_counts(
    data_dir: Path, name: str, mapping: dict, tz: str, counts: tuple
) -> None:
    events = load_events(
        data_dir / name,
        IngestOptions(mapping=mapping, tz=tz),
        pseudonym_key=TEST_KEY,
        pseudonym_key_id="t1",
    )
    dossiers, n_events, activities = counts
    assert events[s.DOSSIER_ID].nunique() == dossiers
    if n_events is not None:
        assert len(events) == n_events
        assert events[s.ACTIVITY].nunique() == activities
    assert events[s.EVENT_ID].is_unique
    assert str(events[s.TIMESTAMP].dt.tz) == tz
    s.validate_events(events)


def test_xes_and_csv_exports_of_one_log_give_the_same_events(data_dir: Path) -> None:
    options = IngestOptions(tz="Europe/Amsterdam")
    xes = load_events(
        data_dir / "receipt.xes", options, pseudonym_key=TEST_KEY, pseudonym_key_id="t1"
    )
    csv = load_events(
        data_dir / "receipt.csv", options, pseudonym_key=TEST_KEY, pseudonym_key_id="t1"
    )
    assert set(xes[s.EVENT_ID]) == set(csv[s.EVENT_ID])
    channels = set(xes[s.CHANNEL].astype(str))
    assert {"online", "in_person", "postal"} <= channels and "Internet" not in channels
    assert xes[s.DUE_AT].notna().all()
