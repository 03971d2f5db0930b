"""Ingestion of CSV, Parquet and XES into canonical events, and its errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.ingest import IngestOptions, load_events
from tests.conftest import TEST_KEY

HEADER = "case_id;activity;timestamp;resource;applicant_id;channel;amount\n"
ROWS = [
    "D1;received;2025-03-03 08:00:00;o1;001234567890;Internet;10\n",
    "D1;approved;2025-03-04 09:30:00;o2;001234567890;Internet;\n",
    "D2;received;2025-03-03 10:00:00;o1;009999999999;Desk;5\n",
]


def _load(path: Path, **kw: object) -> pd.DataFrame:
    return load_events(
        path,
        IngestOptions(**kw),
        pseudonym_key=TEST_KEY,  # type: ignore[arg-type]
        pseudonym_key_id="t1",
    )


def _write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_semicolons_maps_automatically(tmp_path: Path) -> None:
    events = _load(_write(tmp_path, HEADER + "".join(ROWS)))
    assert len(events) == 3 and events[s.DOSSIER_ID].nunique() == 2
    assert events[s.OFFICER_ID].tolist() == ["o1", "o2", "o1"]
    assert str(events[s.TIMESTAMP].dt.tz) == "Asia/Ho_Chi_Minh"
    assert events[s.TIMESTAMP].iloc[0] == pd.Timestamp("2025-03-03 08:00", tz="Asia/Ho_Chi_Minh")
    assert events[s.CHANNEL].tolist() == ["online", "online", "in_person"]
    assert events["amount"].tolist()[0] == 10  # attributes kept as they are


@pytest.mark.parametrize("sep", [",", "\t", "|"])
def test_any_delimiter(tmp_path: Path, sep: str) -> None:
    text = (HEADER + "".join(ROWS)).replace(";", sep)
    assert len(_load(_write(tmp_path, text))) == 3


def test_identities_are_pseudonymised_and_raw_values_never_kept(tmp_path: Path) -> None:
    events = _load(_write(tmp_path, HEADER + "".join(ROWS)))
    applicants = events[s.APPLICANT_ID].tolist()
    assert all(a.startswith("t1:") for a in applicants)
    assert applicants[0] == applicants[1] != applicants[2]
    assert not events.astype(str).apply(lambda c: c.str.contains("001234567890")).any().any()


def test_event_ids_are_stable_across_runs_and_formats(tmp_path: Path) -> None:
    csv_path = _write(tmp_path, HEADER + "".join(ROWS))
    first, second = _load(csv_path), _load(csv_path)
    assert first[s.EVENT_ID].tolist() == second[s.EVENT_ID].tolist()
    assert first[s.EVENT_ID].is_unique
    parquet = tmp_path / "log.parquet"
    pd.read_csv(csv_path, sep=";", dtype=str).to_parquet(parquet)
    assert sorted(_load(parquet)[s.EVENT_ID]) == sorted(first[s.EVENT_ID])


def test_identical_rows_stay_distinct_events(tmp_path: Path) -> None:
    events = _load(_write(tmp_path, HEADER + ROWS[0] + ROWS[0]))
    assert len(events) == 2 and events[s.EVENT_ID].is_unique


def test_equal_timestamps_keep_input_order(tmp_path: Path) -> None:
    rows = "D1;b;2025-03-03 08:00;o;;;\nD1;a;2025-03-03 08:00;o;;;\n"
    assert _load(_write(tmp_path, HEADER + rows))[s.ACTIVITY].tolist() == ["b", "a"]


def test_explicit_mapping_and_trailing_delimiter(tmp_path: Path) -> None:
    text = "ID;Event;Date;\nA;start;2013-12-25 12:36:38.983;\nA;end;2013-12-26 08:00:00;\n"
    events = _load(
        _write(tmp_path, text),
        mapping={"dossier_id": "ID", "activity": "Event", "timestamp": "Date"},
    )
    assert events[s.ACTIVITY].tolist() == ["start", "end"]
    assert not [c for c in events.columns if c.startswith("_unnamed")]


def test_offsets_convert_to_the_zone(tmp_path: Path) -> None:
    text = "case_id,activity,timestamp\nA,x,2011-10-11T13:45:40.276+02:00\n"
    events = _load(_write(tmp_path, text), tz="Europe/Amsterdam")
    assert events[s.TIMESTAMP].iloc[0].hour == 13


# --- bad input: a clear error that names file, row and column -------------------------


def test_missing_required_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "case_id,when\nA,2025-01-02\n")
    with pytest.raises(s.EventSchemaError, match="--map activity") as err:
        _load(path)
    assert err.value.file == str(path) and err.value.column == s.ACTIVITY


def test_unparsable_timestamp_names_row_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + ROWS[0] + "D1;approved;not a date;o2;;;\n")
    with pytest.raises(s.EventSchemaError, match="not a date") as err:
        _load(path)
    assert (err.value.file, err.value.row, err.value.column) == (str(path), 2, s.TIMESTAMP)


def test_mixed_naive_and_aware_timestamps_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + ROWS[0] + "D1;approved;2025-03-04T09:30:00+07:00;o;;;\n")
    with pytest.raises(s.EventSchemaError, match="mixed") as err:
        _load(path)
    assert err.value.row == 2


@pytest.mark.parametrize("text", ["", "\n\n", HEADER])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(s.EventSchemaError, match="empty file|no events") as err:
        _load(_write(tmp_path, text))
    assert err.value.file is not None


def test_wrong_encoding_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + ROWS[0]).encode() + b"D2;received;2025-03-03;ng\xe0y;;;\n")
    with pytest.raises(s.EventSchemaError, match="UTF-8") as err:
        _load(path)
    assert err.value.row == 2


def test_duplicate_event_ids_with_different_content(tmp_path: Path) -> None:
    text = "event_id,case_id,activity,timestamp\nE1,A,x,2025-01-02\nE1,A,y,2025-01-03\n"
    with pytest.raises(s.DuplicateEventError) as err:
        _load(_write(tmp_path, text))
    assert err.value.row == 2 and err.value.column == s.EVENT_ID


def test_inconsistent_dossier_names_the_dossier_and_source_row(tmp_path: Path) -> None:
    text = (
        "case_id,activity,timestamp,procedure_code\nA,x,2025-01-02,P1\nB,x,2025-01-02,P2\n"
        "A,y,2025-01-03,P9\n"
    )
    with pytest.raises(s.InconsistentDossierError) as err:
        _load(_write(tmp_path, text))
    assert err.value.dossier == "A" and err.value.column == s.PROCEDURE_CODE
    assert err.value.row == 3


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(s.EventSchemaError, match="unknown log format"):
        _load(_write(tmp_path, "x", name="log.json"))
    with pytest.raises(s.EventSchemaError, match="no such file"):
        _load(tmp_path / "absent.csv")


def test_mapping_onto_a_missing_source_column(tmp_path: Path) -> None:
    with pytest.raises(s.EventSchemaError, match="no column 'Nope'"):
        _load(_write(tmp_path, HEADER + ROWS[0]), mapping={"activity": "Nope"})


# --- XES ----------------------------------------------------------------------------------

XES = """<?xml version="1.0" encoding="UTF-8" ?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <global scope="event"><string key="concept:name" value="UNKNOWN"/></global>
  <trace>
    <string key="concept:name" value="case-1"/>
    <date key="deadline" value="2025-03-10T17:00:00+07:00"/>
    <event>
      <string key="concept:name" value="received"/>
      <string key="org:resource" value="o1"/>
      <date key="time:timestamp" value="2025-03-03T08:00:00.000+07:00"/>
      <int key="pages" value="3"/>
      <boolean key="urgent" value="true"/>
    </event>
    <event>
      <string key="concept:name" value="approved"/>
      <date key="time:timestamp" value="2025-03-04T08:00:00.000+07:00"/>
      <float key="cost" value="1.5"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="case-2"/>
    <event>
      <string key="concept:name" value="received"/>
      <date key="time:timestamp" value="2025-03-05T08:00:00.000+07:00"/>
    </event>
  </trace>
</log>
"""


@pytest.mark.parametrize("gzipped", [False, True])
def test_xes_with_namespace_types_and_trace_attributes(tmp_path: Path, gzipped: bool) -> None:
    path = tmp_path / ("log.xes.gz" if gzipped else "log.xes")
    data = XES.encode()
    path.write_bytes(gzip.compress(data) if gzipped else data)
    events = _load(path)
    assert events[s.DOSSIER_ID].tolist() == ["case-1", "case-1", "case-2"]
    assert events[s.OFFICER_ID].iloc[0] == "o1" and pd.isna(events[s.OFFICER_ID].iloc[1])
    assert events["pages"].iloc[0] == 3 and bool(events["urgent"].iloc[0]) is True
    assert events["cost"].iloc[1] == 1.5
    assert events[s.DUE_AT].notna().tolist() == [True, True, False]  # case:deadline


def test_malformed_xes_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, XES[: XES.index("</trace>")], name="broken.xes")
    with pytest.raises(s.EventSchemaError, match="malformed XML") as err:
        _load(path)
    assert err.value.file == str(path)


def test_bad_typed_xes_value(tmp_path: Path) -> None:
    path = _write(tmp_path, XES.replace('value="3"', 'value="three"'), name="bad.xes")
    with pytest.raises(s.EventSchemaError, match="not a valid int") as err:
        _load(path)
    assert err.value.row == 1 and err.value.column == "pages"
