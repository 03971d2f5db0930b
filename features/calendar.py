"""The working-day clock: working calendars, office time, deadlines and the statutory clock.

Conventions (see ``docs/calendar.md`` for the inspector's version):

* A **working day** is a day of the country's working week that is not a public holiday of
  the ``holidays`` library (which includes Tết by the lunar calendar and the substituted
  days off), plus the compensatory working Saturdays the library knows
  (``HolidayBase.weekend_workdays``) and the configured ``working_days``, minus the
  configured ``extra_days_off``. Configured dates override the library.
* **Office hours** are wall-clock intervals ``[open, close)`` in the calendar's zone
  (07:30-11:30 and 13:00-17:00 by default: 8 office hours make one working day).
* ``W(t)`` (:meth:`WorkingCalendar.working_seconds`) is the office time elapsed from the
  calendar's epoch (1 January of ``first_year``, 00:00 local) to ``t``: continuous,
  non-decreasing, piecewise linear, rising one second per second in office hours of working
  days and flat elsewhere. Every duration is a difference of ``W``, and one working day is
  ``day_seconds`` of office time, so half a working day is four office hours.
* ``add_working_days(t, n)`` is the **earliest** instant ``u >= t`` with
  ``W(u) = W(t) + n * day_seconds``: a deadline that ends with a working day is 17:00 of that
  day, not 07:30 of the next. Received Monday 09:00 + 1 day = Tuesday 09:00; received on a
  Saturday, the count starts Monday 07:30 (+ 1 day = Monday 17:00).
* Inputs must be tz-aware (else :class:`NaiveTimestampError`) and are converted to the
  calendar's zone. Arrays give numpy arrays, aligned by position; a scalar gives a 0-d
  array (a ``Timestamp`` for the functions returning instants). NaT gives NaN, ``False``
  for the predicates and NaT for instants. Days outside ``first_year..last_year`` raise
  :class:`OutOfCalendarRangeError` naming the date.
* Arithmetic is in integer nanoseconds; only outputs are floats (exact to well under 1 us).
* In zones with daylight saving time the office hours must not contain the clock change
  (they never do); an ambiguous wall time is read as its first occurrence.
* The statutory clock of a dossier (:func:`dossier_clock`, :func:`event_clock`) is office
  time from its first event, stopped while a supplement request or a pause is open, ended
  by the first terminal event; ``policy`` says whether a received supplement resumes the
  clock (``"stop"``) or restarts it from zero (``"restart"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from typing import Any, NamedTuple, overload
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from features.schema import (
    DEFAULT_TZ,
    GiamSatError,
)

__all__ = [
    "CalendarError",
    "NaiveTimestampError",
    "OutOfCalendarRangeError",
    "WorkingCalendar",
]

DAY_NS = 86_400 * 10**9
SECOND_NS = 10**9
DEFAULT_OFFICE_HOURS: tuple[tuple[time, time], ...] = (
    (time(7, 30), time(11, 30)),
    (time(13, 0), time(17, 0)),
)

TimeLike = pd.Series | pd.DatetimeIndex | datetime


class CalendarError(GiamSatError, ValueError):
    """A setting or a timestamp the working calendar cannot handle."""


class NaiveTimestampError(CalendarError):
    """A timestamp without a time zone: its instant is unknown."""


class OutOfCalendarRangeError(CalendarError):
    """A date outside the years the calendar was built for."""


class _Located(NamedTuple):
    times: pd.DatetimeIndex  # in the calendar's zone, ns
    day: NDArray[np.int64]  # days since the epoch (0 where NaT)
    clock: NDArray[np.int64]  # wall-clock ns since local midnight
    nat: NDArray[np.bool_]
    scalar: bool


@dataclass(frozen=True, eq=False)
class WorkingCalendar:
    """Working days and office hours of one country, precomputed for a range of years.

    Build it with :meth:`for_country`; all methods are vectorised lookups in per-day arrays.
    """

    country: str = "VN"
    tz: str = DEFAULT_TZ
    extra_days_off: tuple[date, ...] = ()
    working_days: tuple[date, ...] = ()
    office_hours: tuple[tuple[time, time], ...] = DEFAULT_OFFICE_HOURS
    first_year: int = 1995
    last_year: int = 2045
    _working: NDArray[np.bool_] = field(init=False, repr=False)
    _holiday: NDArray[np.bool_] = field(init=False, repr=False)
    #: working days before each day (length n_days + 1).
    _cum: NDArray[np.int64] = field(init=False, repr=False)
    #: day numbers of the working days, in order.
    _working_index: NDArray[np.int64] = field(init=False, repr=False)
    _open: NDArray[np.int64] = field(init=False, repr=False)
    _length: NDArray[np.int64] = field(init=False, repr=False)
    _before: NDArray[np.int64] = field(init=False, repr=False)
    _epoch: int = field(init=False, repr=False)

    @classmethod
    def for_country(
        cls,
        country: str = "VN",
        tz: str = DEFAULT_TZ,
        extra_days_off: Iterable[date | str] = (),
        working_days: Iterable[date | str] = (),
        office_hours: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
        first_year: int = 1995,
        last_year: int = 2045,
    ) -> WorkingCalendar:
        """The calendar of ``country`` (ISO code known to ``holidays``) in zone ``tz``.

        ``extra_days_off`` and ``working_days`` take dates or ISO strings ("2025-04-26"):
        days off and working days the library does not know (announced swaps, local days).
        """
        return cls(
            country=country,
            tz=tz,
            extra_days_off=tuple(sorted({_as_date(d) for d in extra_days_off})),
            working_days=tuple(sorted({_as_date(d) for d in working_days})),
            office_hours=tuple((open_, close) for open_, close in office_hours),
            first_year=first_year,
            last_year=last_year,
        )

    def __post_init__(self) -> None:
        if self.first_year > self.last_year:
            raise CalendarError(f"first_year {self.first_year} is after last_year {self.last_year}")
        years = range(self.first_year, self.last_year + 1)
        try:
            known = holidays.country_holidays(self.country, years=years)
        except NotImplementedError as err:
            raise CalendarError(f"no holiday calendar for country {self.country!r}") from err
        days = np.arange(
            np.datetime64(f"{self.first_year:04d}-01-01"),
            np.datetime64(f"{self.last_year + 1:04d}-01-01"),
            dtype="datetime64[D]",
        )
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        weekend = np.isin(weekday, sorted(known.weekend))
        holiday = np.isin(days, _dates(known.keys()))
        swapped = np.isin(days, _dates(known.weekend_workdays))
        off = self._configured(days, self.extra_days_off, "extra_days_off")
        on = self._configured(days, self.working_days, "working_days")
        both = off & on
        if both.any():
            raise CalendarError(f"{days[both][0]} is both in extra_days_off and working_days")
        working = ((~weekend & ~holiday) | swapped | on) & ~off
        self._set("_working", _frozen(working))
        self._set("_holiday", _frozen((holiday & ~on) | off))
        self._set("_cum", _frozen(np.concatenate([[0], np.cumsum(working, dtype=np.int64)])))
        self._set("_working_index", _frozen(np.flatnonzero(working).astype(np.int64)))
        self._set_office_hours()
        self._set("_epoch", int(pd.Timestamp(self.first_year, 1, 1).value))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen: derived state is set once, here

    def _configured(
        self, days: NDArray[np.datetime64], dates: tuple[date, ...], name: str
    ) -> NDArray[np.bool_]:
        for d in dates:
            if not self.first_year <= d.year <= self.last_year:
                raise OutOfCalendarRangeError(
                    f"{name} date {d} is outside the calendar's years "
                    f"{self.first_year}-{self.last_year}"
                )
        return np.isin(days, _dates(dates))

    def _set_office_hours(self) -> None:
        if not self.office_hours:
            raise CalendarError("office_hours is empty")
        bounds = np.array([[_time_ns(a), _time_ns(b)] for a, b in self.office_hours])
        flat = bounds.ravel()
        if (np.diff(flat) < 0).any() or (bounds[:, 1] <= bounds[:, 0]).any():
            raise CalendarError(
                f"office_hours must be increasing, non-overlapping intervals: {self.office_hours}"
            )
        length = bounds[:, 1] - bounds[:, 0]
        self._set("_open", _frozen(bounds[:, 0].astype(np.int64)))
        self._set("_length", _frozen(length.astype(np.int64)))
        self._set("_before", _frozen((np.cumsum(length) - length).astype(np.int64)))

    @property
    def day_ns(self) -> int:
        """Office nanoseconds in one working day."""
        return int(self._length.sum())

    @property
    def day_seconds(self) -> float:
        """Office seconds in one working day (28,800 with the default hours)."""
        return self.day_ns / SECOND_NS

    # --- locating instants ---------------------------------------------------------------

    def _locate(self, ts: TimeLike) -> _Located:
        scalar = not isinstance(ts, pd.Series | pd.DatetimeIndex)
        if ts is pd.NaT:
            index = pd.DatetimeIndex([pd.NaT], dtype=f"datetime64[ns, {self.tz}]")
        elif isinstance(ts, pd.DatetimeIndex):
            index = ts
        elif isinstance(ts, pd.Series):
            index = pd.DatetimeIndex(ts)
        else:
            index = pd.DatetimeIndex([ts])
        if index.tz is None:
            raise NaiveTimestampError(
                "timestamps must be tz-aware (localize them with tz_localize, e.g. in "
                f"{self.tz!r}); got naive values such as {index[:1].tolist()}"
            )
        index = index.tz_convert(self.tz).as_unit("ns")
        nat = np.asarray(index.isna(), dtype=bool)
        wall = np.where(nat, 0, index.tz_localize(None).asi8 - self._epoch)
        day = wall // DAY_NS
        outside = (day < 0) | (day >= len(self._working))
        if outside.any():
            bad = index[int(np.flatnonzero(outside)[0])]
            raise OutOfCalendarRangeError(
                f"{bad} is outside the working calendar's years {self.first_year}-"
                f"{self.last_year}; build it with a wider first_year/last_year"
            )
        return _Located(index, day, wall - day * DAY_NS, nat, scalar)

    def _office_ns(self, clock: NDArray[np.int64]) -> NDArray[np.int64]:
        """Office time elapsed since midnight on a working day, at wall-clock ``clock``."""
        inside = np.clip(clock[:, None] - self._open[None, :], 0, self._length[None, :])
        return inside.sum(axis=1).astype(np.int64)

    def _w(self, loc: _Located) -> NDArray[np.int64]:
        """W in integer nanoseconds (0 where NaT)."""
        today = np.where(self._working[loc.day], self._office_ns(loc.clock), 0)
        return self._cum[loc.day] * self.day_ns + today

    def _wall_at(self, target: NDArray[np.int64], *, latest: bool) -> NDArray[np.int64]:
        """Wall-clock ns (since 1970) of the earliest or latest instant with W = target."""
        per_day = self.day_ns
        # earliest: a whole day's office time ends that day (17:00), so count it there.
        q = target // per_day if latest else (target - 1) // per_day
        if (q >= len(self._working_index)).any():
            raise OutOfCalendarRangeError(
                f"the result falls after the working calendar's last year {self.last_year}; "
                "build it with a wider last_year"
            )
        rest = target - q * per_day
        ends = self._before + self._length
        part = np.searchsorted(ends, rest, side="right" if latest else "left")
        part = np.minimum(part, len(ends) - 1)
        day = self._working_index[np.maximum(q, 0)]
        wall = self._epoch + day * DAY_NS + self._open[part] + rest - self._before[part]
        return np.where(q < 0, self._epoch, wall)  # W = 0 before the first working day

    def _instants(self, wall: NDArray[np.int64]) -> NDArray[np.int64]:
        """UTC ns of local wall-clock ns (DST: first occurrence; gaps shift forward)."""
        naive = pd.DatetimeIndex(wall.astype("datetime64[ns]"))
        first = np.ones(len(naive), dtype=bool)
        aware = naive.tz_localize(self.tz, ambiguous=first, nonexistent="shift_forward")
        return np.asarray(aware.asi8, dtype=np.int64)

    def _from_utc(self, utc: NDArray[np.int64], missing: NDArray[np.bool_]) -> pd.DatetimeIndex:
        out = pd.DatetimeIndex(np.where(missing, 0, utc).astype("datetime64[ns]"))
        return pd.DatetimeIndex(out.tz_localize("UTC").tz_convert(self.tz).where(~missing))

    # --- one instant at a time, without pandas (online scoring) ----------------------------

    @cached_property
    def _scalar(self) -> _ScalarTables:
        return _ScalarTables.of(self)

    def locate_ns(self, utc_ns: int) -> tuple[int, bool, bool]:
        """W (office ns since the epoch), the office-hours flag and the holiday flag of one
        instant given in UTC nanoseconds: what the batch features compute for arrays
        (``features.dossier_events.calendar_arrays``), in plain Python for one dossier's
        few events (a few microseconds, no pandas object built)."""
        tables = self._scalar
        wall = utc_ns + tables.offset_ns(utc_ns) - self._epoch
        day = wall // DAY_NS
        if not 0 <= day < tables.days:
            raise OutOfCalendarRangeError(
                f"{pd.Timestamp(utc_ns, tz='UTC').tz_convert(self.tz)} is outside the working "
                f"calendar's years {self.first_year}-{self.last_year}; build it with a wider "
                "first_year/last_year"
            )
        clock = wall - day * DAY_NS
        today = 0
        inside = False
        for open_, length in tables.hours:
            since = clock - open_
            today += min(max(since, 0), length)
            inside = inside or 0 <= since < length
        working = tables.working[day]
        w = tables.cum[day] * tables.day_ns + (today if working else 0)
        return w, working and inside, tables.holiday[day]

    # --- day and time predicates ---------------------------------------------------------

    def is_working_day(self, ts: TimeLike) -> NDArray[np.bool_]:
        """Whether the local date of ``ts`` is a working day."""
        loc = self._locate(ts)
        return _shaped(self._working[loc.day] & ~loc.nat, loc.scalar)

    def is_holiday(self, ts: TimeLike) -> NDArray[np.bool_]:
        """Whether the local date of ``ts`` is a public holiday or configured day off.

        A plain weekend is not a holiday; a holiday falling on a weekend is.
        """
        loc = self._locate(ts)
        return _shaped(self._holiday[loc.day] & ~loc.nat, loc.scalar)

    def is_office_time(self, ts: TimeLike) -> NDArray[np.bool_]:
        """Whether ``ts`` is inside office hours ``[open, close)`` of a working day."""
        loc = self._locate(ts)
        offset = loc.clock[:, None] - self._open[None, :]
        inside = ((offset >= 0) & (offset < self._length[None, :])).any(axis=1)
        return _shaped(self._working[loc.day] & inside & ~loc.nat, loc.scalar)

    # --- office time ---------------------------------------------------------------------

    def working_seconds(self, ts: TimeLike) -> NDArray[np.float64]:
        """W(ts): office seconds from the calendar's epoch to ``ts`` (NaN for NaT)."""
        loc = self._locate(ts)
        seconds = np.where(loc.nat, np.nan, self._w(loc) / SECOND_NS)
        return _shaped(seconds, loc.scalar)

    def working_days_between(self, start: TimeLike, end: TimeLike) -> NDArray[np.float64]:
        """(W(end) - W(start)) in working days; negative if ``end < start``, NaN for NaT."""
        a, b = self._locate(start), self._locate(end)
        days = np.where(a.nat | b.nat, np.nan, (self._w(b) - self._w(a)) / self.day_ns)
        return _shaped(days, a.scalar and b.scalar)

    @overload
    def add_working_days(self, ts: pd.Series, n: ArrayLike) -> pd.Series: ...
    @overload
    def add_working_days(self, ts: pd.DatetimeIndex, n: ArrayLike) -> pd.DatetimeIndex: ...
    @overload
    def add_working_days(self, ts: datetime, n: float) -> pd.Timestamp: ...
    @overload
    def add_working_days(
        self, ts: datetime, n: NDArray[Any] | Sequence[float] | pd.Series
    ) -> pd.DatetimeIndex: ...
    def add_working_days(
        self, ts: TimeLike, n: ArrayLike
    ) -> pd.Series | pd.DatetimeIndex | pd.Timestamp:
        """The earliest instant at or after ``ts`` that is ``n`` working days later.

        ``n`` (scalar or array, fractional allowed, >= 0; NaN gives NaT) broadcasts against
        ``ts`` by position. A Series in gives a Series with its index.
        """
        loc = self._locate(ts)
        days = np.asarray(n, dtype=np.float64)
        if (days < 0).any():
            raise ValueError(f"n must be >= 0 working days, got {days[days < 0].flat[0]}")
        w, start, nat, steps = np.broadcast_arrays(self._w(loc), loc.times.asi8, loc.nat, days)
        missing = nat | np.isnan(steps)
        offset = np.rint(np.where(missing, 0.0, steps) * self.day_ns).astype(np.int64)
        found = self._instants(self._wall_at(np.where(missing, 0, w) + offset, latest=False))
        # n = 0 before office hours: the earliest instant with that W precedes ts itself.
        out = self._from_utc(np.maximum(found, start), missing)
        return _like(out, ts, loc.scalar and days.ndim == 0)

    #: The statutory deadline: ``deadline(received_at, statutory_days)``.
    deadline = add_working_days

    @overload
    def next_office_time(self, ts: pd.Series) -> pd.Series: ...
    @overload
    def next_office_time(self, ts: pd.DatetimeIndex) -> pd.DatetimeIndex: ...
    @overload
    def next_office_time(self, ts: datetime) -> pd.Timestamp: ...
    def next_office_time(self, ts: TimeLike) -> pd.Series | pd.DatetimeIndex | pd.Timestamp:
        """The instant from which office time runs again: ``ts`` itself in office hours.

        The latest instant with the same W as ``ts`` (Saturday 10:00 -> Monday 07:30).
        """
        loc = self._locate(ts)
        wall = self._wall_at(np.where(loc.nat, 0, self._w(loc)), latest=True)
        out = self._from_utc(self._instants(wall), loc.nat)
        return _like(out, ts, loc.scalar)


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _dates(values: Iterable[date]) -> NDArray[np.datetime64]:
    return np.array(sorted(values), dtype="datetime64[D]")


def _time_ns(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * SECOND_NS + t.microsecond * 1000


def _frozen(values: NDArray[Any]) -> NDArray[Any]:
    values.setflags(write=False)
    return values


def _shaped(values: NDArray[Any], scalar: bool) -> NDArray[Any]:
    return values.reshape(()) if scalar else values


def _like(
    out: pd.DatetimeIndex, ts: TimeLike, scalar: bool
) -> pd.Series | pd.DatetimeIndex | pd.Timestamp:
    if scalar:
        return out[0]
    if isinstance(ts, pd.Series) and len(ts) == len(out):
        return pd.Series(out, index=ts.index, name=ts.name)
    return out


@dataclass(frozen=True)
class _ScalarTables:
    """The per-day arrays of a calendar as Python lists, and its zone's UTC offset, for
    :meth:`WorkingCalendar.locate_ns` (list indexing is far cheaper than numpy's for one
    value)."""

    working: list[bool]
    holiday: list[bool]
    cum: list[int]
    hours: tuple[tuple[int, int], ...]
    day_ns: int
    days: int
    zone: ZoneInfo
    #: the zone's offset when it is the same over the calendar's whole range (no daylight
    #: saving time, no change of zone), else None (looked up per instant).
    fixed_offset_ns: int | None

    @classmethod
    def of(cls, calendar: WorkingCalendar) -> _ScalarTables:
        first = pd.Timestamp(calendar.first_year, 1, 1, tz="UTC") - pd.Timedelta(days=1)
        last = pd.Timestamp(calendar.last_year + 1, 1, 1, tz="UTC") + pd.Timedelta(days=1)
        # hourly samples: a zone's offset changes at most a few times a year, on the hour
        utc = pd.date_range(first, last, freq="h").as_unit("ns")
        local = utc.tz_convert(calendar.tz).tz_localize(None)
        offsets = np.unique(local.asi8 - utc.tz_localize(None).asi8)
        return cls(
            working=[bool(x) for x in calendar._working],
            holiday=[bool(x) for x in calendar._holiday],
            cum=[int(x) for x in calendar._cum],
            hours=tuple(
                (int(o), int(n)) for o, n in zip(calendar._open, calendar._length, strict=True)
            ),
            day_ns=calendar.day_ns,
            days=len(calendar._working),
            zone=ZoneInfo(calendar.tz),
            fixed_offset_ns=int(offsets[0]) if len(offsets) == 1 else None,
        )

    def offset_ns(self, utc_ns: int) -> int:
        """The zone's UTC offset at an instant, in ns."""
        if self.fixed_offset_ns is not None:
            return self.fixed_offset_ns
        when = datetime.fromtimestamp(utc_ns // SECOND_NS, tz=self.zone)
        offset = when.utcoffset()
        return 0 if offset is None else int(offset.total_seconds()) * SECOND_NS
