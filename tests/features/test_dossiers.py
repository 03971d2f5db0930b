"""Dossier features: golden tables, behaviour, clock agreement, registry, real logs."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue, load_catalogue
from features.clock import dossier_clock
from features.dossiers import dossier_descriptors, dossier_features
from features.ingest import load_events
from features.process import NormalProcess
from features.registry import feature_registry
from tests.conftest import TEST_KEY

GOLDEN = Path(__file__).resolve().parent / "golden"


def vn_events() -> pd.DataFrame:
    """The hand-written canonical events, sorted and coerced."""
    raw = pd.read_csv(GOLDEN / "vn_events.csv", dtype=str, keep_default_na=False)
    raw = raw.replace("", None)
    for col in s.TIME_COLUMNS:
        raw[col] = pd.to_datetime(raw[col], format="ISO8601")
    raw[s.RATING] = pd.to_numeric(raw[s.RATING])
    return s.sort_events(s.validate_events(s.coerce_events(raw)))


def vn_catalogue() -> Catalogue:
    return load_catalogue(GOLDEN / "vn_catalogue.yaml")


def vn_agencies() -> pd.DataFrame:
    return pd.read_csv(GOLDEN / "vn_agencies.csv", dtype=str)


@lru_cache(maxsize=1)
def calendar() -> WorkingCalendar:
    return WorkingCalendar.for_country("VN", first_year=2000, last_year=2030)


def compare_golden(frame: pd.DataFrame, name: str, update: bool) -> None:
    """Compare ``frame`` with golden/``name`` (floats rounded to 6 decimals)."""
    path = GOLDEN / name
    text = frame.round(6).to_csv(float_format="%.6f", lineterminator="\n")
    if update or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


UPDATE = os.environ.get("GIAMSAT_UPDATE_GOLDEN") == "1"


def _features(events: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    return dossier_features(
        events, calendar(), catalogue=vn_catalogue(), agencies=vn_agencies(), **kwargs
    )


def _load(path: Path) -> pd.DataFrame:
    return load_events(path, pseudonym_key=TEST_KEY, pseudonym_key_id="test")


def test_golden_vietnamese_log() -> None:
    frame = _features(vn_events())
    feature_registry().check(frame)
    compare_golden(frame, "vn_dossier_features.csv", UPDATE)


def test_golden_values_read_as_the_story_of_each_dossier() -> None:
    f = _features(vn_events())
    assert f.loc["D01", ["late_honest", "rework", "missing_mandatory_steps"]].tolist() == [0, 0, 0]
    assert f.loc["D02", "supplement_rounds"] == 1
    assert f.loc["D02", "supplement_days"] > 2
    assert f.loc["D03", "pauses"] == 1 and f.loc["D03", "payments"] == 1
    assert f.loc["D03", "transfers"] == 4 and f.loc["D03", "off_route_transfers"] == 0
    assert f.loc["D04", "ping_pong"] == 3 and f.loc["D04", "apologies"] == 1
    assert f.loc["D05", "rework"] == 2
    assert f.loc["D06", ["off_hours_approvals", "holiday_events"]].tolist() == [
        1,
        2,
    ]  # 2 May 2025 too
    assert f.loc["D06", "in_person_steps_online"] == 1
    assert f.loc["D07", "late_records"] == 1 and f.loc["D07", "out_of_order_events"] == 1
    assert f.loc["D08", "missing_mandatory_steps"] == 1  # appraised, but by the desk
    assert f.loc["D08", ["extra_steps", "order_violations", "wrong_unit_steps"]].tolist() == [
        1,
        0,
        1,
    ]
    # D09: procedure not catalogued -> statutory time from due_at, conformance unknown
    assert f.loc["D09", "statutory_days"] == pytest.approx(5 + 15 / 16)
    assert np.isnan(f.loc["D09", "missing_mandatory_steps"])
    # D10: a request after the deadline restarts the reported clock: late only honestly
    assert f.loc["D10", ["late_honest", "late_reported"]].tolist() == [1, 0]


def test_descriptors_are_join_keys() -> None:
    d = dossier_descriptors(vn_events())
    assert d.loc["D01", "first_agency"] == "DESK"
    assert bool(d.loc["D01", "finished"]) and not bool(d.loc["D09", "finished"])
    assert d.loc["D01", "last_activity"] == "rated"
    assert d.loc["D01", "ended_at"] == pd.Timestamp("2025-03-04T15:00:00+07:00")


def test_clocks_agree_with_the_statutory_clock_module() -> None:
    events = vn_events()
    f = _features(events)
    for policy, column in (("stop", "honest_clock_days"), ("restart", "reported_clock_days")):
        clock = dossier_clock(events, calendar(), policy=policy)
        np.testing.assert_allclose(f[column], clock["elapsed_days"].loc[f.index], atol=1e-12)
    cut = pd.Timestamp("2025-03-06T12:00:00+07:00")
    f = _features(events, as_of=cut)
    clock = dossier_clock(events, calendar(), policy="stop", as_of=cut)
    np.testing.assert_allclose(f["honest_clock_days"], clock["elapsed_days"].loc[f.index])


def test_input_order_does_not_matter_and_input_is_not_mutated() -> None:
    events = vn_events()
    shuffled = events.sample(frac=1.0, random_state=3)
    before = shuffled.copy()
    pd.testing.assert_frame_equal(_features(shuffled), _features(events))
    pd.testing.assert_frame_equal(shuffled, before)


def test_removing_a_mandatory_step_raises_missing_steps() -> None:
    events = vn_events()
    drop = (events[s.DOSSIER_ID] == "D01") & (events[s.ACTIVITY] == "appraised")
    assert _features(events).loc["D01", "missing_mandatory_steps"] == 0
    assert _features(events[~drop]).loc["D01", "missing_mandatory_steps"] == 1


def test_a_supplement_round_stops_the_honest_clock() -> None:
    events = vn_events()
    d01 = events[events[s.DOSSIER_ID] == "D01"]
    base = _features(d01).loc["D01"]
    extra = d01.iloc[[1, 1]].copy()
    extra[s.EVENT_ID] = ["x1", "x2"]
    extra[s.ACTIVITY] = pd.Categorical(["supplement_requested", "supplement_received"])
    extra[s.TIMESTAMP] = pd.to_datetime(["2025-03-03T15:00+07:00", "2025-03-04T08:30+07:00"])
    extra[s.SEQ] = [100, 101]
    later = _features(pd.concat([d01, extra], ignore_index=True)).loc["D01"]
    assert later["supplement_rounds"] == 1
    assert later["honest_clock_days"] < base["honest_clock_days"]
    assert later["elapsed_days"] == base["elapsed_days"]


def test_shifting_recorded_at_raises_the_lag() -> None:
    events = vn_events()
    shifted = events.copy()
    mine = (shifted[s.DOSSIER_ID] == "D01").to_numpy()
    shifted.loc[mine, s.RECORDED_AT] += pd.Timedelta(hours=30)
    before, after = _features(events).loc["D01"], _features(shifted).loc["D01"]
    assert after["max_record_lag_hours"] > before["max_record_lag_hours"] + 29
    assert after["late_records"] > before["late_records"]


def test_columns_do_not_depend_on_which_dossiers_are_in_a_partition() -> None:
    events = vn_events()
    whole = _features(events)
    ids = events[s.DOSSIER_ID]
    parts = [_features(events[ids.isin(p)]) for p in (["D01", "D04", "D09"], ["D02", "D03"])]
    for part in parts:
        pd.testing.assert_frame_equal(part, whole.loc[part.index], check_dtype=False)


@pytest.mark.realdata
def test_running_example_without_catalogue_golden(data_dir: Path) -> None:
    events = _load(data_dir / "running-example.xes")
    process = NormalProcess(min_pair_count=1).fit(events)
    frame = dossier_features(events, calendar(), process=process)
    feature_registry().check(frame)
    compare_golden(frame, "running_example_features.csv", UPDATE)


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["receipt.xes", "bpic15/BPIC15_1.xes.gz"])
def test_real_logs_compute_quickly(data_dir: Path, name: str) -> None:
    events = _load(data_dir / name)
    process = NormalProcess().fit(events)
    started = time.perf_counter()
    frame = dossier_features(events, calendar(), process=process)
    assert time.perf_counter() - started < 5
    feature_registry().check(frame)
    assert len(frame) == events[s.DOSSIER_ID].nunique()
    assert frame["events"].sum() == len(events)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name", ["helpdesk.xes.gz", "traffic_fines_full.csv.gz"])
def test_large_real_logs_compute(data_dir: Path, name: str) -> None:
    events = _load(data_dir / name)
    frame = dossier_features(events, calendar(), process=NormalProcess().fit(events))
    feature_registry().check(frame)
    assert frame["events"].sum() == len(events)


# --- waste-specific counts --------------------------------------------------------------


def test_golden_waste_counts_read_as_the_story_of_each_dossier() -> None:
    f = _features(vn_events())
    # D04: LAND and TAX each appraise twice with nothing new; D05: OFF appraises 3 times
    assert f.loc["D04", ["rework", "rework_without_input"]].tolist() == [3, 2]
    assert f.loc["D05", ["rework", "rework_without_input"]].tolist() == [2, 2]
    # D03: appraisals at two units are its route, and no transfer is made twice
    assert f.loc["D03", ["rework", "rework_without_input", "repeated_transfers"]].tolist() == [
        1,
        0,
        0,
    ]
    assert (f["repeated_transfers"] == 0).all()
    # D06: untouched 1.875 of its 3 working days, then appraised, approved and returned
    # at once (the approval at night on 30 April, the return on the 2 May holiday)
    assert f.loc["D06", "idle_before_rush_share"] == pytest.approx(1.875 / 3)
    assert f.loc["D02", "idle_before_rush_share"] == 0  # late: no rush to meet the deadline
    assert f.loc["D09", "idle_before_rush_share"] == 0  # still open


Step = tuple[str, str, str, str | None]  # activity, time, agency, target agency


def _replaced(dossier: str, steps: list[Step]) -> pd.DataFrame:
    """The golden events with ``dossier``'s events replaced by ``steps`` (dossier-level
    columns and officers copied from its golden events)."""
    events = vn_events()
    mine = events[events[s.DOSSIER_ID] == dossier]
    template = mine.iloc[[0] * len(steps)].reset_index(drop=True)
    template[s.ACTIVITY] = [activity for activity, *_ in steps]
    template[s.TIMESTAMP] = [pd.Timestamp(when) for _, when, *_ in steps]
    template[s.RECORDED_AT] = template[s.TIMESTAMP]
    template[s.AGENCY_ID] = [agency for _, _, agency, _ in steps]
    template[s.TARGET_AGENCY_ID] = [target for *_, target in steps]
    template[s.EVENT_ID] = [f"{dossier}-{i}" for i in range(len(steps))]
    template[s.SEQ] = np.arange(len(steps))
    template[s.RATING] = np.nan
    return s.sort_events(pd.concat([events[events[s.DOSSIER_ID] != dossier], template]))


def test_a_transfer_made_again_counts_as_repeated() -> None:
    # D03 goes DESK -> LAND -> TAX -> LAND -> DESK; here LAND sends it to TAX once more
    hops = [("DESK", "LAND"), ("LAND", "TAX"), ("TAX", "LAND"), ("LAND", "TAX"),
            ("TAX", "LAND"), ("LAND", "DESK")]  # fmt: skip
    steps: list[Step] = [("received", "2025-03-03T08:00+07:00", "DESK", None)]
    steps += [
        ("transferred", f"2025-03-{4 + i:02d}T10:00+07:00", a, b) for i, (a, b) in enumerate(hops)
    ]
    steps.append(("result_returned", "2025-03-10T15:00+07:00", "DESK", None))
    f = _features(_replaced("D03", steps))
    assert f.loc["D03", "transfers"] == 6
    assert f.loc["D03", "repeated_transfers"] == 2  # LAND -> TAX and TAX -> LAND again
    assert _features(vn_events()).loc["D03", "repeated_transfers"] == 0


D02_START = [
    ("received", "2025-03-03T08:00+07:00", "DESK", None),
    ("appraised", "2025-03-04T10:00+07:00", "OFF", None),
]
D02_END = [
    ("approved", "2025-03-12T10:00+07:00", "OFF", None),
    ("result_returned", "2025-03-13T10:00+07:00", "DESK", None),
]


@pytest.mark.parametrize(
    ("middle", "rework", "without_input"),
    [
        # appraised again once the papers asked for arrived: needed work
        (
            [
                ("supplement_requested", "2025-03-05T16:00+07:00", "OFF", None),
                ("supplement_received", "2025-03-10T09:00+07:00", "DESK", None),
                ("appraised", "2025-03-11T09:00+07:00", "OFF", None),
            ],
            1,
            0,
        ),
        # appraised again after a pause ended (new facts from the verification)
        (
            [
                ("paused", "2025-03-05T16:00+07:00", "OFF", None),
                ("resumed", "2025-03-10T09:00+07:00", "OFF", None),
                ("appraised", "2025-03-11T09:00+07:00", "OFF", None),
            ],
            1,
            0,
        ),
        # appraised again before the papers arrive, and again by another unit: only the
        # first is rework without input
        (
            [
                ("appraised", "2025-03-05T09:00+07:00", "OFF", None),
                ("supplement_requested", "2025-03-05T16:00+07:00", "OFF", None),
                ("supplement_received", "2025-03-10T09:00+07:00", "DESK", None),
                ("appraised", "2025-03-11T09:00+07:00", "LAND", None),
            ],
            2,
            1,
        ),
    ],
)
def test_rework_without_input_spares_steps_redone_after_new_input(
    middle: list[Step], rework: int, without_input: int
) -> None:
    f = _features(_replaced("D02", [*D02_START, *middle, *D02_END]))
    assert f.loc["D02", ["rework", "rework_without_input"]].tolist() == [rework, without_input]


def _rushed(*times: str) -> pd.DataFrame:
    """D01 (3 statutory working days) received on Monday 3 March 2025 at 08:00, then
    appraised, approved and returned at ``times``."""
    steps: list[Step] = [("received", "2025-03-03T08:00+07:00", "DESK", None)]
    for activity, when in zip(("appraised", "approved", "result_returned"), times, strict=True):
        steps.append((activity, when, "DESK" if activity == "result_returned" else "OFF", None))
    return _replaced("D01", steps)


def test_idle_then_rush_is_the_idle_share_of_the_statutory_time() -> None:
    # untouched until Wednesday 14:00 (7.5 + 8 + 5 office hours = 2.5625 working days),
    # then everything within two hours, on time
    f = _features(_rushed("2025-03-05T14:00+07:00", "2025-03-05T15:00+07:00",
                          "2025-03-05T16:00+07:00"))  # fmt: skip
    assert f.loc["D01", "idle_before_rush_share"] == pytest.approx(2.5625 / 3)
    assert f.loc["D01", "idle_before_rush_share"] == pytest.approx(
        f.loc["D01", "longest_idle_days"] / f.loc["D01", "statutory_days"]
    )
    # the same dossier seen before its result: it has not been rushed (yet)
    cut = pd.Timestamp("2025-03-05T15:30+07:00")
    events = _rushed("2025-03-05T14:00+07:00", "2025-03-05T15:00+07:00", "2025-03-05T16:00+07:00")
    assert _features(events, as_of=cut).loc["D01", "idle_before_rush_share"] == 0


@pytest.mark.parametrize(
    "times",
    [
        # the last steps spread over 7 office hours: not a rush
        ("2025-03-05T08:00+07:00", "2025-03-05T13:30+07:00", "2025-03-05T16:30+07:00"),
        # rushed, but after the deadline: late, not rushed to meet it
        ("2025-03-06T09:00+07:00", "2025-03-06T10:00+07:00", "2025-03-06T11:00+07:00"),
        # idle for half a working day only
        ("2025-03-03T14:00+07:00", "2025-03-03T15:00+07:00", "2025-03-03T16:00+07:00"),
    ],
)
def test_idle_then_rush_needs_a_long_wait_and_a_short_final_burst(times: tuple[str, ...]) -> None:
    f = _features(_rushed(*times))
    assert f.loc["D01", "longest_idle_days"] > 0.5
    assert f.loc["D01", "idle_before_rush_share"] == 0
