"""Fixtures shared by the feature tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.calendar import WorkingCalendar
from features.ingest import IngestOptions, load_events
from tests.conftest import TEST_KEY


@pytest.fixture
def receipt(data_dir: Path) -> tuple[pd.DataFrame, WorkingCalendar]:
    """The real receipt log (Dutch permits) in its own zone, and a Dutch calendar."""
    events = load_events(
        data_dir / "receipt.xes",
        IngestOptions(tz="Europe/Amsterdam"),
        pseudonym_key=TEST_KEY,
        pseudonym_key_id="t1",
    )
    cal = WorkingCalendar.for_country("NL", tz="Europe/Amsterdam", first_year=2009, last_year=2013)
    return events, cal
