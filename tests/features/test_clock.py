"""The statutory clock of dossiers: stops, restarts, as_of without leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import schema as s
from features.clock import Policy, dossier_clock, event_clock
from tests.features.test_calendar import CAL, EPS, PROPERTY, TZ, at, instants

# whole random logs cost a few milliseconds each: fewer of them keep the file fast.
CLOCK_PROPERTY = settings(PROPERTY, max_examples=100)


# --- the statutory clock ------------------------------------------------------------------------


def _log(rows: list[tuple[str, str, pd.Timestamp]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP])
    frame[s.EVENT_ID] = [f"e{i}" for i in range(len(frame))]
    return s.coerce_events(frame)


def _quick_log(rows: list[tuple[str, str, pd.Timestamp]]) -> pd.DataFrame:
    """The clock's columns with canonical dtypes, without coerce_events' cost per example."""
    ids, activities, times = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            s.DOSSIER_ID: pd.array(ids, dtype="string"),
            s.ACTIVITY: pd.Categorical(activities),
            s.TIMESTAMP: pd.DatetimeIndex(times).tz_convert(TZ),
            s.SEQ: np.arange(len(rows), dtype=np.int64),
        }
    )


def _manipulated() -> pd.DataFrame:
    return _log(
        [
            ("A", s.RECEIVED, at("2025-03-03 08:00")),
            ("A", s.SUPPLEMENT_REQUESTED, at("2025-03-04 08:00")),
            ("A", s.SUPPLEMENT_RECEIVED, at("2025-03-06 08:00")),
            ("A", s.RESULT_RETURNED, at("2025-03-07 08:00")),
            ("A", s.RATED, at("2025-03-12 08:00")),  # after the result: the clock is over
            ("B", s.RECEIVED, at("2025-03-08 08:00")),  # a Saturday
            ("B", s.PAUSED, at("2025-03-10 09:00")),
            ("B", s.SUPPLEMENT_REQUESTED, at("2025-03-10 10:00")),  # already stopped
            ("B", s.RESUMED, at("2025-03-11 09:00")),  # the supplement is still awaited
        ]
    )


def test_stop_and_restart_policies_on_a_hand_made_log() -> None:
    stop = dossier_clock(_manipulated(), CAL, policy="stop")
    restart = dossier_clock(_manipulated(), CAL, policy="restart")
    assert stop.loc["A", "elapsed_days"] == pytest.approx(2.0)  # Mon->Tue + Thu->Fri
    assert restart.loc["A", "elapsed_days"] == pytest.approx(1.0)  # Thu->Fri only
    assert stop.loc["A", "clock_start"] == at("2025-03-03 08:00")
    assert restart.loc["A", "clock_start"] == at("2025-03-06 08:00")
    for result in (stop, restart):
        assert result.loc["A", "stopped_days"] == pytest.approx(2.0)
        assert result.loc["A", "stops"] == 1 and result.loc["A", "finished"]
        assert result.loc["B", "clock_start"] == at("2025-03-10 07:30")
        assert result.loc["B", "elapsed_days"] == pytest.approx(1.5 / 8)
        assert result.loc["B", "stops"] == 1 and result.loc["B", "stopped_now"]
    assert event_clock(_manipulated(), CAL, policy="restart").tolist() == pytest.approx(
        [0, 1, 0, 1, 1, 0, 1.5 / 8, 1.5 / 8, 1.5 / 8]
    )


def test_as_of_runs_an_open_clock_to_as_of_and_drops_unborn_dossiers() -> None:
    result = dossier_clock(_manipulated(), CAL, as_of=at("2025-03-12 16:00"))
    assert result.loc["B", "stopped_days"] == pytest.approx(2 + 5.5 / 8)
    assert result.loc["A", "elapsed_days"] == pytest.approx(2.0)  # finished: as_of adds nothing
    early = dossier_clock(_manipulated(), CAL, as_of=at("2025-03-07 12:00"))
    assert early.index.tolist() == ["A"]


def test_clock_of_an_empty_log_is_empty() -> None:
    result = dossier_clock(_manipulated().iloc[:0], CAL)
    assert result.empty and "elapsed_days" in result.columns
    assert len(event_clock(_manipulated().iloc[:0], CAL)) == 0


CLOCK_ACTIVITIES = [
    s.SUPPLEMENT_REQUESTED,
    s.SUPPLEMENT_RECEIVED,
    s.PAUSED,
    s.RESUMED,
    s.APPRAISED,
    s.RESULT_RETURNED,
    s.RATED,
]
steps = st.tuples(st.sampled_from(CLOCK_ACTIVITIES), st.integers(0, 4 * 86_400))


@st.composite
def logs(draw: st.DrawFn) -> pd.DataFrame:
    """A few dossiers: a receipt, then random clock events at non-decreasing times."""
    rows = []
    for k in range(draw(st.integers(1, 4))):
        t = draw(instants)
        rows.append((f"D{k}", s.RECEIVED, t))
        for activity, gap in draw(st.lists(steps, max_size=8)):
            t = t + pd.Timedelta(seconds=gap)
            rows.append((f"D{k}", activity, t))
    log = _quick_log(rows)
    order = draw(st.permutations(range(len(log))))  # the clock must sort it itself
    return log.iloc[list(order)].reset_index(drop=True)


def _reference(log: pd.DataFrame, policy: Policy, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """The clock, one event at a time: the slow obvious version."""
    resume_of = {v: k for k, v in s.CLOCK_STOPS.items()}
    out = {}
    for dossier, ev in s.sort_events(log).groupby(s.DOSSIER_ID, sort=True):
        if as_of is not None:
            ev = ev[ev[s.TIMESTAMP] <= as_of]
        if ev.empty:
            continue
        times, acts = list(ev[s.TIMESTAMP]), list(ev[s.ACTIVITY])
        open_ = dict.fromkeys(s.CLOCK_STOPS, False)
        elapsed = halted = 0.0
        stops, finished, origin = 0, False, times[0]
        for i, (t, act) in enumerate(zip(times, acts, strict=True)):
            if i and not finished:
                step = float(CAL.working_days_between(times[i - 1], t))
                halted, elapsed = (
                    (halted + step, elapsed) if any(open_.values()) else (halted, elapsed + step)
                )
            if finished:
                continue
            if act in s.TERMINAL_ACTIVITIES:
                finished, open_ = True, dict.fromkeys(s.CLOCK_STOPS, False)
                continue
            was_stopped = any(open_.values())
            if act in s.CLOCK_STOPS:
                open_[act] = True
            elif act in resume_of:
                closing = open_[resume_of[act]]
                if policy == "restart" and act == s.SUPPLEMENT_RECEIVED and closing:
                    elapsed, origin = 0.0, t
                open_[resume_of[act]] = False
            stops += not was_stopped and any(open_.values())
        stopped_now = any(open_.values())
        if as_of is not None and not finished:
            tail = float(CAL.working_days_between(times[-1], as_of))
            halted, elapsed = (halted + tail, elapsed) if stopped_now else (halted, elapsed + tail)
        out[dossier] = (elapsed, halted, stops, stopped_now, finished, origin)
    cols = ["elapsed_days", "stopped_days", "stops", "stopped_now", "finished", "origin"]
    return pd.DataFrame.from_dict(out, orient="index", columns=cols)


@CLOCK_PROPERTY
@given(logs(), st.sampled_from(["stop", "restart"]), st.none() | instants)
def test_dossier_clock_matches_the_event_by_event_reference(
    log: pd.DataFrame, policy: Policy, as_of: pd.Timestamp | None
) -> None:
    before = log.copy()
    got = dossier_clock(log, CAL, as_of=as_of, policy=policy)
    pd.testing.assert_frame_equal(log, before)  # the input is not mutated
    want = _reference(log, policy, as_of)
    assert got.index.tolist() == want.index.tolist()
    if want.empty:
        return
    np.testing.assert_allclose(got["elapsed_days"], want["elapsed_days"], atol=1e-9)
    np.testing.assert_allclose(got["stopped_days"], want["stopped_days"], atol=1e-9)
    for col in ("stops", "stopped_now", "finished"):
        assert got[col].tolist() == want[col].tolist(), col
    origin = pd.DatetimeIndex(want["origin"].tolist())
    assert (pd.DatetimeIndex(got["clock_start"]) == CAL.next_office_time(origin)).all()


@CLOCK_PROPERTY
@given(instants, st.lists(st.integers(0, 10 * 86_400), min_size=3, max_size=3))
def test_a_stop_removes_exactly_its_working_time(t0: pd.Timestamp, gaps: list[int]) -> None:
    t1, t2, t3 = (t0 + pd.Timedelta(seconds=sum(gaps[: i + 1])) for i in range(3))
    log = _quick_log(
        [
            ("D", s.RECEIVED, t0),
            ("D", s.SUPPLEMENT_REQUESTED, t1),
            ("D", s.SUPPLEMENT_RECEIVED, t2),
            ("D", s.RESULT_RETURNED, t3),
        ]
    )
    row = dossier_clock(log, CAL).loc["D"]
    inside = CAL.working_days_between(t1, t2)
    assert row["elapsed_days"] == pytest.approx(CAL.working_days_between(t0, t3) - inside, abs=EPS)
    assert row["stopped_days"] == pytest.approx(inside, abs=EPS)


@CLOCK_PROPERTY
@given(logs(), instants, logs(), st.sampled_from(["stop", "restart"]))
def test_events_after_as_of_never_change_the_result(
    log: pd.DataFrame, as_of: pd.Timestamp, extra: pd.DataFrame, policy: Policy
) -> None:
    now = dossier_clock(log, CAL, as_of=as_of, policy=policy)
    future = extra[extra[s.TIMESTAMP] > as_of].copy()
    future[s.SEQ] += len(log)  # source order of the old events is kept
    grown = pd.concat([log, future], ignore_index=True)
    later = dossier_clock(grown, CAL, as_of=as_of, policy=policy)
    pd.testing.assert_frame_equal(now, later)


@CLOCK_PROPERTY
@given(logs(), st.sampled_from(["stop", "restart"]))
def test_event_clock_ends_where_dossier_clock_does(log: pd.DataFrame, policy: Policy) -> None:
    per_event = event_clock(log, CAL, policy=policy)
    ids = s.sort_events(log)[s.DOSSIER_ID]
    last = pd.Series(per_event, index=ids).groupby(level=0, sort=True).last()
    per_dossier = dossier_clock(log, CAL, policy=policy)
    np.testing.assert_allclose(last.to_numpy(), per_dossier["elapsed_days"].to_numpy())
