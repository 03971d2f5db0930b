"""The Parquet event store: idempotent, all-or-nothing appends, whole dossiers per bucket."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import features.eventstore as es
from features import schema as s


def _events(n_dossiers: int = 40, offset: int = 0) -> pd.DataFrame:
    rows = []
    for d in range(offset, offset + n_dossiers):
        for k, act in enumerate([s.RECEIVED, s.APPRAISED, s.APPROVED]):
            rows.append(
                {
                    s.DOSSIER_ID: f"D{d}",
                    s.EVENT_ID: f"D{d}-{k}",
                    s.ACTIVITY: act,
                    s.TIMESTAMP: pd.Timestamp("2025-03-03 08:00") + pd.Timedelta(hours=k),
                }
            )
    return s.coerce_events(pd.DataFrame(rows))


def test_append_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    store = es.EventStore(tmp_path / "ev", buckets=4)
    first = store.append(_events())
    second = store.append(_events())
    assert (first.added, second.added, second.already_stored) == (120, 0, 120)
    assert second.version == first.version
    assert len(store.read()) == 120


def test_append_new_events_keeps_old_ones(tmp_path: Path) -> None:
    store = es.EventStore(tmp_path / "ev", buckets=4)
    store.append(_events(40))
    report = store.append(pd.concat([_events(40), _events(10, offset=40)], ignore_index=True))
    assert report.added == 30 and report.already_stored == 120
    stored = store.read()
    assert len(stored) == 150 and stored[s.EVENT_ID].is_unique
    assert len(list((tmp_path / "ev").iterdir())) == 2  # _CURRENT and one live version


def test_each_dossier_lives_in_one_bucket(tmp_path: Path) -> None:
    store = es.EventStore(tmp_path / "ev", buckets=4)
    store.append(_events())
    seen: dict[str, Path] = {}
    for f in store.bucket_files():
        for d in pd.read_parquet(f)[s.DOSSIER_ID].unique():
            assert seen.setdefault(d, f) == f
    assert len(seen) == 40


def test_a_crash_mid_write_leaves_the_previous_version_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = es.EventStore(tmp_path / "ev", buckets=4)
    store.append(_events(40))
    before = store.version()
    calls = {"n": 0}
    real = es._write_parquet

    def crash_on_second(frame: pd.DataFrame, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(frame, path)

    monkeypatch.setattr(es, "_write_parquet", crash_on_second)
    with pytest.raises(OSError):
        store.append(_events(40, offset=40))
    assert store.version() == before
    assert len(store.read()) == 120
    assert not [p for p in (tmp_path / "ev").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(es, "_write_parquet", real)
    assert store.append(_events(40, offset=40)).added == 120


def test_reusing_a_stored_event_id_for_other_content_is_refused(tmp_path: Path) -> None:
    store = es.EventStore(tmp_path / "ev", buckets=2)
    store.append(_events(5))
    changed = _events(5)
    changed[s.TIMESTAMP] = changed[s.TIMESTAMP] + pd.Timedelta(days=1)
    with pytest.raises(s.DuplicateEventError, match="different timestamp"):
        store.append(changed)
    assert len(store.read()) == 15


def test_empty_store_reads_as_empty_canonical_frame(tmp_path: Path) -> None:
    frame = es.EventStore(tmp_path / "none").read()
    assert frame.empty and list(frame.columns) == list(s.CANONICAL_COLUMNS)
