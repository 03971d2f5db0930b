"""Arrivals: who files which dossier, when, where and through which channel.

Daily volumes follow the weekday (Monday peak, almost nothing at the desk on weekends),
the month (a year-end peak in December and January), and Tết (a rush in the two weeks
before the lunar new year, a lull during it and a backlog after it). Procedures are drawn
by their catalogue demand; the channel by the procedure's online level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from simulator.world import People, Province

ONLINE, IN_PERSON, POSTAL = 0, 1, 2
CHANNEL_NAMES = ("online", "in_person", "postal")
#: channel mix (online, in person, postal) by online level of the procedure.
CHANNEL_MIX = {
    "full": (0.58, 0.36, 0.06),
    "partial": (0.32, 0.61, 0.07),
    "none": (0.0, 0.95, 0.05),
}
MONTH_FACTOR = np.array([1.10, 0.86, 1.05, 1.0, 1.0, 0.98, 0.97, 0.95, 0.97, 1.02, 1.07, 1.22])
WEEKDAY_FACTOR = np.array([1.18, 1.05, 1.0, 0.97, 0.90, 1.0, 1.0])
#: volume on a day off relative to a working day (online filings only).
DAY_OFF_FACTOR = 0.12
#: share of dossiers filed through an intermediary, by sector (others: OTHER_INTERMEDIATED).
INTERMEDIATED = {
    "land": 0.32,
    "construction": 0.28,
    "business": 0.45,
    "investment": 0.6,
    "trade": 0.35,
    "culture": 0.3,
    "labour": 0.3,
    "health": 0.25,
    "tourism": 0.4,
}
OTHER_INTERMEDIATED = 0.03
#: online filings by hour of day (local), normalised below.
ONLINE_HOURS = np.array(
    [1, 0.5, 0.3, 0.3, 0.4, 1, 3, 6, 9, 10, 10, 9, 6, 7, 9, 9, 8, 6, 5, 5, 5, 4, 3, 2], dtype=float
)


@dataclass
class Dossiers:
    """The dossiers of one province, one entry per dossier (arrays aligned by position)."""

    procedure: np.ndarray  # index into the catalogue's procedures
    commune: np.ndarray
    desk: np.ndarray  # agency index of the receiving desk
    channel: np.ndarray  # ONLINE, IN_PERSON, POSTAL
    arrival_ns: np.ndarray  # UTC ns
    applicant: np.ndarray  # index into the citizen or business pool
    is_business: np.ndarray
    submitter: np.ndarray  # intermediary index, -1 when the applicant files alone

    def __len__(self) -> int:
        return len(self.procedure)

    def take(self, order: np.ndarray) -> Dossiers:
        return Dossiers(**{k: v[order] for k, v in vars(self).items()})


def daily_rates(
    start: date, months: int, calendar: WorkingCalendar
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Local midnights of the simulated days, their relative volume, and working-day flags."""
    end = (pd.Timestamp(start) + pd.DateOffset(months=months)).date()
    days = pd.date_range(start, end, freq="D", inclusive="left", tz=calendar.tz)
    noon = days + pd.Timedelta(hours=12)
    working = np.asarray(calendar.is_working_day(noon), dtype=bool)
    rate = MONTH_FACTOR[days.month - 1] * WEEKDAY_FACTOR[days.day_of_week]
    rate = np.where(working, rate, DAY_OFF_FACTOR)
    rate = rate * _tet_factor(days, working, np.asarray(calendar.is_holiday(noon), dtype=bool))
    return days, rate, working


def _tet_factor(days: pd.DatetimeIndex, working: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """Rush before Tết, backlog after it: the longest holiday run of January-February."""
    factor = np.ones(len(days))
    winter = holiday & np.isin(days.month, (1, 2))
    if not winter.any():
        return factor
    runs = np.split(np.flatnonzero(winter), np.flatnonzero(np.diff(np.flatnonzero(winter)) > 3) + 1)
    for run in runs:
        if len(run) < 3:
            continue
        before = np.flatnonzero(working[: run[0]])[-10:]
        after = run[-1] + 1 + np.flatnonzero(working[run[-1] + 1 :])[:10]
        factor[before] = 1.3
        factor[after] = 1.35
    return factor


def draw_dossiers(
    province: Province,
    catalogue: Catalogue,
    people_sizes: tuple[int, int],
    intermediaries: tuple[int, int],
    *,
    start: date,
    months: int,
    per_month: float,
    calendar: WorkingCalendar,
    rng: np.random.Generator,
) -> Dossiers:
    """Draw every dossier filed in the province over the period, sorted by arrival."""
    procs = list(catalogue)
    demand = np.array([p.demand for p in procs], dtype=float)
    demand = demand / demand.sum()
    days, rate, working = daily_rates(start, months, calendar)
    per_day = per_month * months / rate.sum() * rate
    counts = rng.poisson(per_day)
    day = np.repeat(np.arange(len(days)), counts)
    n = len(day)
    proc = rng.choice(len(procs), size=n, p=demand)
    levels = np.array([p.online_level for p in procs], dtype=object)
    channel = np.full(n, IN_PERSON, dtype=np.int8)
    u = rng.random(n)
    for level, (online, in_person, _postal) in CHANNEL_MIX.items():
        mask = levels[proc] == level
        channel[mask & (u < online)] = ONLINE
        channel[mask & (u >= online + in_person)] = POSTAL
    # nobody is at the desk on a day off: those filings are online or do not happen.
    off = ~working[day]
    channel[off & (levels[proc] != "none")] = ONLINE
    keep = ~(off & (levels[proc] == "none"))
    day, proc, channel = day[keep], proc[keep], channel[keep]
    n = len(day)
    seconds = _time_of_day(channel, rng)
    arrival = days.as_unit("ns").asi8[day].astype(np.int64) + seconds * 1_000_000_000
    commune = rng.choice(len(province.commune_codes), size=n, p=province.commune_weight)
    level = np.array([p.level for p in procs], dtype=object)[proc]
    area = np.where(channel == ONLINE, 0, province.commune_branch[commune])
    desk = np.where(
        level == "commune",
        province.commune_agency["one_stop_desk"][commune],
        province.desk_of_area[area],
    )
    is_business = np.array([p.applicant == "business" for p in procs])[proc]
    n_citizens, n_businesses = people_sizes
    applicant = np.where(
        is_business, rng.integers(0, n_businesses, n), rng.integers(0, n_citizens, n)
    )
    sectors = np.array([p.sector for p in procs], dtype=object)
    submitter = _intermediaries(sectors[proc], is_business, intermediaries, rng)
    order = np.argsort(arrival, kind="stable")
    return Dossiers(
        procedure=proc,
        commune=commune,
        desk=desk,
        channel=channel,
        arrival_ns=arrival,
        applicant=applicant,
        is_business=is_business,
        submitter=submitter,
    ).take(order)


def _time_of_day(channel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds after local midnight: office hours at the desk, around the clock online."""
    n = len(channel)
    morning = rng.random(n) < 0.62
    desk = np.where(
        morning,
        7.5 * 3600 + rng.random(n) * 4 * 3600,
        13 * 3600 + rng.random(n) * 4 * 3600,
    )
    hours = rng.choice(24, size=n, p=ONLINE_HOURS / ONLINE_HOURS.sum())
    online = hours * 3600 + rng.random(n) * 3600
    return np.where(channel == ONLINE, online, desk).astype(np.int64)


def _intermediaries(
    sector: np.ndarray, is_business: np.ndarray, sizes: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Intermediary of each dossier (-1: the applicant files alone).

    Brokers (indices ``0..brokers-1``) work mostly for citizens, agents (after them) mostly
    for businesses; within a kind, a few intermediaries take most of the work (Zipf).
    """
    brokers, agents = sizes
    n = len(sector)
    share = np.array([INTERMEDIATED.get(s, OTHER_INTERMEDIATED) for s in sector])
    via = rng.random(n) < share
    use_agent = np.where(is_business, rng.random(n) < 0.9, rng.random(n) < 0.15)
    out = np.full(n, -1, dtype=np.int64)
    for kind_mask, size, offset in ((~use_agent, brokers, 0), (use_agent, agents, brokers)):
        if size == 0:
            continue
        weights = 1.0 / np.arange(1, size + 1) ** 0.8
        mask = via & kind_mask
        out[mask] = offset + rng.choice(size, size=int(mask.sum()), p=weights / weights.sum())
    return out


def people_sizes(n_dossiers: int, n_business: int) -> tuple[int, int]:
    """Applicant pool sizes: most people file once a year, some several times."""
    return max(1, int(0.8 * (n_dossiers - n_business))), max(1, int(0.55 * n_business) + 1)


__all__ = [
    "CHANNEL_NAMES",
    "Dossiers",
    "People",
    "daily_rates",
    "draw_dossiers",
    "people_sizes",
]
