"""The working-day clock: calendar facts, office-time arithmetic and the statutory clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import holidays
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import schema as s
from features.calendar import (
    CalendarError,
    NaiveTimestampError,
    OutOfCalendarRangeError,
    WorkingCalendar,
)

TZ = s.DEFAULT_TZ
CAL = WorkingCalendar.for_country()
OFFICE = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
# the autouse settings fixture of tests/conftest.py is function-scoped but harmless here.
PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def at(text: str, tz: str = TZ) -> pd.Timestamp:
    return pd.Timestamp(text, tz=tz)


# --- an independent oracle: the holidays library and a per-day loop --------------------------

_LIB = holidays.country_holidays("VN", years=range(2019, 2032))


def _lib_working(d: date) -> bool:
    if d.weekday() >= 5:
        return d in _LIB.weekend_workdays
    return d not in _LIB


def _oracle_days(a: pd.Timestamp, b: pd.Timestamp) -> float:
    """Office time between a <= b, day by day, in working days."""
    total = 0.0
    d = a.date()
    while d <= b.date():
        if _lib_working(d):
            for open_, close in OFFICE:
                lo = max(a, at(datetime.combine(d, open_).isoformat()))
                hi = min(b, at(datetime.combine(d, close).isoformat()))
                total += max((hi - lo).total_seconds(), 0.0)
        d += timedelta(days=1)
    return total / (8 * 3600)


NON_WORKING = [
    d
    for d in (date(2020, 1, 1) + timedelta(days=i) for i in range(11 * 365))
    if not _lib_working(d)
]
BASE = at("2020-01-01")
SPAN_US = int((at("2030-12-31") - BASE) / pd.Timedelta(microseconds=1))
instants = st.integers(0, SPAN_US).map(lambda us: BASE + pd.Timedelta(microseconds=us))
# the microsecond-level agreement the module promises, in working days.
EPS = 1e-9


# --- calendar facts ---------------------------------------------------------------------------


def test_tet_2025_is_not_worked_and_the_week_after_is() -> None:
    tet = pd.DatetimeIndex(pd.date_range("2025-01-27 09:00", "2025-01-31 09:00", tz=TZ))
    assert not CAL.is_working_day(tet).any()
    assert CAL.is_holiday(tet).all()
    assert CAL.is_working_day(at("2025-02-03 09:00"))


def test_national_day_2025_is_two_holidays() -> None:
    days = pd.DatetimeIndex([at("2025-09-01 10:00"), at("2025-09-02 10:00")])
    assert CAL.is_holiday(days).all()
    assert not CAL.is_working_day(days).any()
    assert CAL.is_working_day(at("2025-09-03 10:00"))


def test_a_plain_weekend_is_not_a_holiday_but_a_holiday_on_a_saturday_is() -> None:
    assert not CAL.is_holiday(at("2025-03-08 10:00"))
    assert CAL.is_holiday(at("2025-02-01 10:00"))  # fourth day of Tết, a Saturday


def test_compensatory_saturday_is_a_working_day() -> None:
    # 2 May 2025 was given off in exchange for working Saturday 26 April.
    assert "weekend_workdays" in dir(_LIB) and date(2025, 4, 26) in _LIB.weekend_workdays
    assert CAL.is_working_day(at("2025-04-26 08:00"))
    assert not CAL.is_holiday(at("2025-04-26 08:00"))
    assert not CAL.is_working_day(at("2025-05-02 08:00"))
    assert CAL.add_working_days(at("2025-04-25 10:00"), 1) == at("2025-04-26 10:00")


def test_office_time_is_half_open() -> None:
    times = pd.DatetimeIndex([at(f"2025-03-10 {h}") for h in ("07:29", "07:30", "11:30", "13:00")])
    assert CAL.is_office_time(times).tolist() == [False, True, False, True]
    assert not CAL.is_office_time(at("2025-03-08 09:00"))


def test_configured_days_override_the_library() -> None:
    cal = WorkingCalendar.for_country(
        extra_days_off=["2025-03-10"], working_days=[date(2025, 3, 8), "2025-09-02"]
    )
    assert not cal.is_working_day(at("2025-03-10 09:00"))
    assert cal.is_holiday(at("2025-03-10 09:00"))
    assert cal.is_working_day(at("2025-03-08 09:00"))
    assert cal.is_working_day(at("2025-09-02 09:00"))
    assert not cal.is_holiday(at("2025-09-02 09:00"))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(CalendarError, match="both"):
        WorkingCalendar.for_country(extra_days_off=["2025-03-10"], working_days=["2025-03-10"])
    with pytest.raises(CalendarError, match="XX"):
        WorkingCalendar.for_country("XX")
    with pytest.raises(CalendarError, match="office_hours"):
        WorkingCalendar.for_country(office_hours=[(time(13), time(17)), (time(8), time(12))])
    with pytest.raises(OutOfCalendarRangeError, match="1990-01-01"):
        WorkingCalendar.for_country(working_days=["1990-01-01"])


def test_foreign_calendars_follow_their_country_and_zone() -> None:
    nl = WorkingCalendar.for_country("NL", tz="Europe/Amsterdam", first_year=2020, last_year=2026)
    it = WorkingCalendar.for_country("IT", tz="Europe/Rome", first_year=2020, last_year=2026)
    assert not nl.is_working_day(at("2024-12-25 10:00", "Europe/Amsterdam"))
    assert not it.is_working_day(at("2024-08-15 10:00", "Europe/Rome"))
    assert it.is_working_day(at("2025-04-30 10:00", "Europe/Rome"))
    # across the end of summer time (27 October 2024): Friday 10:00 + 1 = Monday 10:00.
    friday = at("2024-10-25 10:00", "Europe/Amsterdam")
    assert nl.add_working_days(friday, 1) == at("2024-10-28 10:00", "Europe/Amsterdam")


# --- deadlines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        ("2025-03-10 09:00", 1, "2025-03-11 09:00"),  # Monday
        ("2025-03-07 16:00", 1, "2025-03-10 16:00"),  # Friday -> Monday
        ("2025-03-08 10:00", 1, "2025-03-10 17:00"),  # Saturday: counted from Monday 07:30
        ("2025-03-08 10:00", 0.5, "2025-03-10 11:30"),  # earliest instant: before lunch
        ("2025-03-10 07:30", 1, "2025-03-10 17:00"),  # a day ends at 17:00, not 07:30 next
        ("2025-03-10 18:00", 2, "2025-03-12 17:00"),
        ("2025-01-24 10:00", 1, "2025-02-03 10:00"),  # over Tết 2025
        ("2025-01-24 10:00", 3, "2025-02-05 10:00"),
        ("2025-03-08 10:00", 0, "2025-03-08 10:00"),  # n = 0 never goes back in time
    ],
)
def test_deadline_examples(received: str, days: float, due: str) -> None:
    assert CAL.deadline(at(received), days) == at(due)


def test_inputs_in_another_zone_are_converted() -> None:
    utc = at("2025-03-10 02:00", "UTC")  # 09:00 in Hanoi
    due = CAL.add_working_days(utc, 1)
    assert due == at("2025-03-11 09:00") and str(due.tz) == TZ


def test_series_keep_their_index_and_nat_propagates() -> None:
    times = pd.Series([at("2025-03-10 09:00"), pd.NaT], index=["a", "b"])
    due = CAL.add_working_days(times, np.array([1.0, 2.0]))
    assert due.index.tolist() == ["a", "b"]
    assert due["a"] == at("2025-03-11 09:00") and pd.isna(due["b"])
    between = CAL.working_days_between(times, times + pd.Timedelta(days=1))
    assert between[0] == pytest.approx(1.0) and np.isnan(between[1])
    assert np.isnan(CAL.working_seconds(times)[1])
    assert CAL.is_working_day(times).tolist() == [True, False]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(NaiveTimestampError, match="tz-aware"):
        CAL.is_working_day(pd.Timestamp("2025-03-10"))
    with pytest.raises(NaiveTimestampError):
        CAL.working_seconds(pd.Series(pd.to_datetime(["2025-03-10"])))
    with pytest.raises(OutOfCalendarRangeError, match="2050-01-03"):
        CAL.working_seconds(at("2050-01-03 09:00"))
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(at("2025-03-10 09:00"), -1)


def test_earlier_end_gives_negative_days() -> None:
    a, b = at("2025-03-10 09:00"), at("2025-03-12 09:00")
    assert CAL.working_days_between(b, a) == pytest.approx(-2.0)


# --- properties of office time ----------------------------------------------------------------


@PROPERTY
@given(st.lists(instants, min_size=2, max_size=30))
def test_w_is_monotone_and_rises_at_most_one_second_per_second(times: list) -> None:
    index = pd.DatetimeIndex(sorted(times))
    w = CAL.working_seconds(index)
    real = np.diff(index.as_unit("ns").asi8) / 1e9
    assert (np.diff(w) >= 0).all()
    assert (np.diff(w) <= real + 1e-6).all()


@PROPERTY
@given(instants, instants, instants)
def test_working_days_between_is_additive(
    a: pd.Timestamp, b: pd.Timestamp, c: pd.Timestamp
) -> None:
    ab, bc, ac = (CAL.working_days_between(x, y) for x, y in ((a, b), (b, c), (a, c)))
    assert ab + bc == pytest.approx(ac, abs=EPS)


@PROPERTY
@given(instants, st.floats(0, 60, allow_nan=False))
def test_add_working_days_inverts_working_days_between(t: pd.Timestamp, n: float) -> None:
    due = CAL.add_working_days(t, n)
    assert due >= t
    assert CAL.working_days_between(t, due) == pytest.approx(n, abs=EPS)
    if n * 8 * 3600 > 1e-6:  # earliest: a microsecond earlier is not yet due
        assert CAL.working_days_between(t, due - pd.Timedelta(microseconds=1)) < n


@PROPERTY
@given(st.sampled_from(NON_WORKING), st.integers(0, 86_399), st.integers(0, 86_399))
def test_weekends_and_holidays_count_nothing(day: date, x: int, y: int) -> None:
    midnight = at(day.isoformat())
    a, b = midnight + pd.Timedelta(seconds=x), midnight + pd.Timedelta(seconds=y)
    assert not CAL.is_working_day(a)
    assert CAL.working_days_between(a, b) == 0.0


@PROPERTY
@given(instants, st.integers(0, 40 * 86_400))
def test_days_between_matches_a_day_by_day_oracle_and_its_bounds(
    a: pd.Timestamp, seconds: int
) -> None:
    b = a + pd.Timedelta(seconds=seconds)
    days = float(CAL.working_days_between(a, b))
    assert days == pytest.approx(_oracle_days(a, b), abs=EPS)
    assert 0.0 <= days <= (b.date() - a.date()).days + 1
