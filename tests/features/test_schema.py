"""The canonical schema: coercion and the specific errors of validate_events."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema as s


def _events(**overrides: list) -> pd.DataFrame:
    base = {
        s.DOSSIER_ID: ["D1", "D1", "D2"],
        s.EVENT_ID: ["e1", "e2", "e3"],
        s.ACTIVITY: [s.RECEIVED, s.APPROVED, s.RECEIVED],
        s.TIMESTAMP: pd.to_datetime(["2025-03-03 08:00", "2025-03-04 09:00", "2025-03-03 10:00"]),
        s.PROCEDURE_CODE: ["P1", "P1", "P2"],
    }
    base.update(overrides)
    return s.coerce_events(pd.DataFrame(base))


def test_coerce_adds_canonical_columns_with_dtypes() -> None:
    events = _events()
    assert list(events.columns[: len(s.CANONICAL_COLUMNS)]) == list(s.CANONICAL_COLUMNS)
    assert str(events[s.TIMESTAMP].dt.tz) == s.DEFAULT_TZ
    assert isinstance(events[s.ACTIVITY].dtype, pd.CategoricalDtype)
    assert events[s.SEQ].tolist() == [0, 1, 2]
    assert s.validate_events(events) is events


def test_naive_times_are_read_in_the_zone_and_aware_times_keep_their_instant() -> None:
    aware = pd.to_datetime(["2025-03-03T01:00:00+00:00"] * 3)
    events = _events(**{s.TIMESTAMP: aware})
    assert events[s.TIMESTAMP].iloc[0] == pd.Timestamp("2025-03-03 08:00", tz=s.DEFAULT_TZ)


def test_missing_required_column_is_named() -> None:
    with pytest.raises(s.EventSchemaError, match="activity") as err:
        s.coerce_events(
            pd.DataFrame(
                {s.DOSSIER_ID: ["D1"], s.EVENT_ID: ["e"], s.TIMESTAMP: [pd.Timestamp("2025-01-02")]}
            )
        )
    assert err.value.column == s.ACTIVITY


def test_null_timestamp_names_row_and_column() -> None:
    events = _events(**{s.TIMESTAMP: pd.to_datetime(["2025-03-03", None, "2025-03-04"])})
    with pytest.raises(s.EventSchemaError) as err:
        s.validate_events(events)
    assert (err.value.row, err.value.column) == (2, s.TIMESTAMP)


def test_blank_activity_is_refused() -> None:
    with pytest.raises(s.EventSchemaError, match="empty value") as err:
        s.validate_events(_events(**{s.ACTIVITY: ["received", "  ", "x"]}))
    assert (err.value.row, err.value.column) == (2, s.ACTIVITY)


def test_rating_outside_one_to_five_is_refused() -> None:
    with pytest.raises(s.EventSchemaError, match="rating 7") as err:
        s.validate_events(_events(**{s.RATING: [None, 7, None]}))
    assert err.value.row == 2


def test_duplicate_event_id_with_different_content() -> None:
    with pytest.raises(s.DuplicateEventError, match="different content") as err:
        s.validate_events(_events(**{s.EVENT_ID: ["e1", "e1", "e3"]}))
    assert err.value.column == s.EVENT_ID


def test_dossier_rows_disagreeing_on_a_dossier_column_name_the_dossier() -> None:
    with pytest.raises(s.InconsistentDossierError) as err:
        s.validate_events(_events(**{s.PROCEDURE_CODE: ["P1", "P9", "P2"]}))
    assert err.value.dossier == "D1"
    assert err.value.column == s.PROCEDURE_CODE
    assert "D1" in str(err.value)


def test_nulls_do_not_count_as_disagreement() -> None:
    s.validate_events(_events(**{s.PROCEDURE_CODE: ["P1", None, "P2"]}))


def test_sort_breaks_timestamp_ties_by_source_order() -> None:
    same = pd.to_datetime(["2025-03-03 08:00"] * 3)
    events = _events(
        **{
            s.TIMESTAMP: same,
            s.DOSSIER_ID: ["D", "D", "D"],
            s.PROCEDURE_CODE: ["P", "P", "P"],
            s.SEQ: [2, 0, 1],
        }
    )
    assert s.sort_events(events)[s.EVENT_ID].tolist() == ["e2", "e3", "e1"]


def test_sorted_frames_are_recognised_and_unsorted_ones_sorted() -> None:
    events = _events()
    ordered = s.sort_events(events)
    assert s.is_sorted(ordered)
    assert s.sort_events(ordered)[s.EVENT_ID].tolist() == ordered[s.EVENT_ID].tolist()
    shuffled = ordered.iloc[[2, 0, 1]]
    assert not s.is_sorted(shuffled)
    assert s.sort_events(shuffled)[s.EVENT_ID].tolist() == ordered[s.EVENT_ID].tolist()
    tie = _events(
        **{
            s.DOSSIER_ID: ["D", "D", "D"],
            s.PROCEDURE_CODE: ["P", "P", "P"],
            s.TIMESTAMP: pd.to_datetime(["2025-03-03 08:00"] * 3),
            s.SEQ: [1, 0, 2],
        }
    )
    assert not s.is_sorted(tie)
