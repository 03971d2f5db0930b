"""Entity features: stage-A tables, known answers on hand-made logs, no leakage, and the
same result from partitions as from the whole log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.calendar import WorkingCalendar
from features.entities import (
    dossier_facts,
    entity_features,
    join_entity_features,
    officer_submitter_pairs,
    officer_touches,
    transfer_edges,
)
from features.entity_stats import complement_quantiles
from features.registry import UnregisteredFeatureError, feature_registry

TZ = "Asia/Ho_Chi_Minh"
CAL = WorkingCalendar.for_country("VN", first_year=2023, last_year=2026)
BASE = pd.Timestamp("2024-03-04 08:00", tz=TZ)  # a Monday
AS_OF = pd.Timestamp("2024-06-28 18:00", tz=TZ)


def at(day: float) -> pd.Timestamp:
    """The instant ``day`` working days after BASE."""
    return CAL.add_working_days(BASE, day)


def dossier(
    did: str,
    start: float,
    *,
    hold: float = 1.0,
    officer: str = "o1",
    submitter: str | None = None,
    applicant: str | None = None,
    procedure: str = "P1",
    route: tuple[str, ...] = ("A", "B"),
    rating: float | None = None,
    finished: bool = True,
) -> list[dict]:
    """Received at route[0] by the desk, transferred along the route, appraised and approved
    by ``officer`` at the last agency ``hold`` working days after it arrived there,
    returned at the desk (when ``finished``)."""
    t = start
    rows = [dict(activity="received", day=t, agency=route[0], officer="desk")]
    for a, b in zip(route, route[1:], strict=False):
        t += 0.01
        rows.append(dict(activity="transferred", day=t, agency=a, officer="desk", target=b))
    rows.append(dict(activity="appraised", day=t + hold, agency=route[-1], officer=officer))
    rows.append(dict(activity="approved", day=t + hold + 0.01, agency=route[-1], officer=officer))
    if finished:
        end = t + hold + 0.02
        rows.append(dict(activity="result_returned", day=end, agency=route[-1], officer="desk"))
        if rating is not None:
            rows.append(
                dict(
                    activity="rated", day=end + 0.01, agency=route[-1], officer=None, rating=rating
                )
            )
    for row in rows:
        row.update(dossier=did, submitter=submitter, applicant=applicant, procedure=procedure)
    return rows


def events_of(rows: list[dict]) -> pd.DataFrame:
    """Canonical events from :func:`dossier` rows."""
    frame = pd.DataFrame(
        {
            s.DOSSIER_ID: [r["dossier"] for r in rows],
            s.EVENT_ID: [f"e{i}" for i in range(len(rows))],
            s.ACTIVITY: [r["activity"] for r in rows],
            s.TIMESTAMP: pd.DatetimeIndex([at(r["day"]) for r in rows]),
            s.AGENCY_ID: [r["agency"] for r in rows],
            s.OFFICER_ID: [r["officer"] for r in rows],
            s.PROCEDURE_CODE: [r["procedure"] for r in rows],
            s.SUBMITTER_ID: [r["submitter"] for r in rows],
            s.APPLICANT_ID: [r["applicant"] for r in rows],
            s.TARGET_AGENCY_ID: [r.get("target") for r in rows],
            s.RATING: [r.get("rating") for r in rows],
            s.DUE_AT: pd.DatetimeIndex([at(5.0)] * len(rows)),
        }
    )
    return s.coerce_events(frame)


def stage_a(events: pd.DataFrame, as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, ...]:
    return (
        dossier_facts(events, CAL, as_of=as_of),
        officer_touches(events, CAL, as_of=as_of),
        transfer_edges(events, CAL, as_of=as_of),
    )


def mixed_log(seed: int = 0, n: int = 60, offset: float = 0.0) -> pd.DataFrame:
    """A varied log: several officers, submitters, procedures, routes, ratings; dossiers
    start in the 70 working days after ``offset``."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for i in range(n):
        route = [("A", "B"), ("A", "B", "C"), ("A", "C", "A", "B"), ("D", "B")][i % 4]
        rows += dossier(
            f"d{i:03d}",
            offset + float(rng.integers(0, 70)) + 0.05,
            hold=float(rng.uniform(0.2, 8)),
            officer=f"o{rng.integers(0, 4)}",
            submitter=[None, "s1", "s2", "s3"][int(rng.integers(0, 4))],
            applicant=f"a{rng.integers(0, 30)}",
            procedure=f"P{rng.integers(0, 3)}",
            route=route,
            rating=[None, 5.0, 3.0, 4.0][int(rng.integers(0, 4))],
            finished=bool(rng.random() < 0.85),
        )
    return events_of(rows)


# --- stage A ----------------------------------------------------------------------------------


def test_dossier_facts_know_officer_duration_and_lateness() -> None:
    rows = dossier("d1", 0, hold=2.0, officer="o7", submitter="s1", rating=5.0)
    rows += dossier("d2", 0, hold=9.0, officer="o8", finished=False)
    facts = dossier_facts(events_of(rows), CAL).set_index(s.DOSSIER_ID)
    assert facts.loc["d1", "main_officer_id"] == "o7"
    assert facts.loc["d1", "first_agency_id"] == "A"
    assert facts.loc["d1", "duration_days"] == pytest.approx(2.03, abs=1e-6)
    assert facts.loc["d1", "statutory_days"] == pytest.approx(5.0)
    assert not facts.loc["d1", "late"] and facts.loc["d1", "rating"] == 5.0
    assert pd.isna(facts.loc["d2", "late"]) and pd.isna(facts.loc["d2", "ended_at"])
    edges = transfer_edges(events_of(rows), CAL)
    assert list(edges["from_agency"] + edges["to_agency"]) == ["AB", "AB"]
    assert edges["holding_days"].iloc[0] == pytest.approx(2.02, abs=1e-6)
    assert pd.isna(edges["holding_days"].iloc[1])  # still held by B
    touches = officer_touches(events_of(rows), CAL).set_index([s.DOSSIER_ID, s.OFFICER_ID])
    assert touches.loc[("d1", "o7"), "touches"] == 2
    assert touches.loc[("d1", "o7"), "handling_days"] == pytest.approx(2.01, abs=1e-6)


def test_complement_quantiles_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    g = pd.Series(rng.choice(list("abc"), 80))
    sub = pd.Series(rng.choice(["x", "y", "z", None], 80), dtype="string")
    v = pd.Series(rng.normal(size=80))
    got = complement_quantiles(g, sub, v, (0.25, 0.5))
    for (group, subgroup), row in got.iterrows():
        keep = (g == group) & (sub.fillna("") != subgroup)
        for q in (0.25, 0.5):
            assert row[f"q{q:g}"] == pytest.approx(np.quantile(v[keep], q))


# --- known answers ----------------------------------------------------------------------------


def test_an_officer_much_faster_for_one_submitter_shows_in_the_pairs() -> None:
    rows: list[dict] = []
    for i in range(6):
        rows += dossier(f"f{i}", i * 2, hold=0.3, officer="o1", submitter="fast")
    for i in range(12):
        hold = 3.0 + (i % 4) * 0.5
        rows += dossier(f"n{i}", i * 2, hold=hold, officer="o1", submitter=[None, "s2"][i % 2])
    for i in range(6):
        rows += dossier(f"x{i}", i * 2, hold=3.0, officer="o2", submitter="fast")
    facts, touches, edges = stage_a(events_of(rows))
    pairs = officer_submitter_pairs(facts, touches, AS_OF)
    fast = pairs.loc[("o1", "fast")]
    assert fast["pair_dossiers"] == 6 and fast["other_dossiers"] == 12
    assert fast["favour_ratio"] < 0.2 and fast["favour_z"] < -3
    assert pairs.loc[("o1", "s2"), "favour_ratio"] > 1
    officer = entity_features(facts, touches, edges, AS_OF, windows=("365D",))["officer"]
    assert officer.loc["o1", "favour_ratio_min_365d"] == pytest.approx(fast["favour_ratio"])
    feature_registry().check(pairs, "officer")


def test_an_intermediary_with_many_unrelated_applicants_stands_out() -> None:
    rows: list[dict] = []
    for i in range(10):
        rows += dossier(f"c{i}", i, submitter="broker", applicant=f"a{i}", procedure=f"P{i % 3}")
    for i in range(3):
        rows += dossier(f"f{i}", i, submitter="family", applicant="a_family")
    facts, touches, edges = stage_a(events_of(rows))
    sub = entity_features(facts, touches, edges, AS_OF, windows=("365D",))["submitter"]
    assert sub.loc["broker", "applicants_365d"] == 10
    assert sub.loc["broker", "procedures_365d"] == 3
    assert sub.loc["broker", "applicants_per_dossier_365d"] == 1.0
    assert sub.loc["family", "applicants_per_dossier_365d"] == pytest.approx(1 / 3)


def test_entity_baselines_on_a_small_log() -> None:
    rows = dossier("d1", 0, hold=1.0, officer="o1", submitter="s1", rating=5.0)
    rows += dossier("d2", 1, hold=9.0, officer="o1", rating=5.0)
    rows += dossier("d3", 2, hold=2.0, officer="o2", submitter="s1", rating=3.0)
    facts, touches, edges = stage_a(events_of(rows))
    frames = entity_features(facts, touches, edges, AS_OF, windows=("30D", "365D"))
    officer = frames["officer"]
    assert officer.loc["o1", "dossiers_365d"] == 2 and officer.loc["o1", "dossiers_30d"] == 0
    assert officer.loc["o1", "late_share_365d"] == 0.5
    assert officer.loc["o1", "late_share_direct_365d"] == 1.0
    assert officer.loc["o1", "late_share_submitted_365d"] == 0.0
    assert officer.loc["o1", "top_submitter_share_365d"] == 0.5
    assert officer.loc["o1", "rating_5star_share_365d"] == 1.0
    assert officer.loc["o1", "rating_std_365d"] == 0.0
    procedure = frames["procedure"]
    assert procedure.loc["P1", "duration_p50_365d"] == pytest.approx(2.03, abs=1e-6)
    assert officer.loc["o1", "speed_ratio_p90_365d"] > 3
    assert frames["agency_pair"].loc["A->B", "transfers_365d"] == 3
    joined = join_entity_features(facts, frames)
    assert joined.set_index(s.DOSSIER_ID).loc["d3", "officer__dossiers_365d"] == 1
    with pytest.raises(UnregisteredFeatureError, match="windows"):
        entity_features(facts, touches, edges, AS_OF, windows=("12D",))


# --- point in time and partitions ---------------------------------------------------------


def test_events_after_as_of_never_change_entity_features() -> None:
    events = mixed_log(1)  # holds events after as_of too (open dossiers go on)
    as_of = at(40.5)
    later = mixed_log(2, n=30, offset=41)
    later[s.DOSSIER_ID] = "late-" + later[s.DOSSIER_ID]
    later[s.EVENT_ID] = "late-" + later[s.EVENT_ID]
    grown = s.coerce_events(pd.concat([events, later], ignore_index=True))
    before = entity_features(*stage_a(events, as_of), as_of, windows=("30D", "90D", "all"))
    after = entity_features(*stage_a(grown, as_of), as_of, windows=("30D", "90D", "all"))
    for entity in before:
        pd.testing.assert_frame_equal(before[entity], after[entity])
    # an open dossier's late flag only counts once it ended
    facts = dossier_facts(events, CAL)
    early = entity_features(facts, *stage_a(events)[1:], as_of, windows=("90D",))
    cut = entity_features(*stage_a(events, as_of), as_of, windows=("90D",))
    pd.testing.assert_series_equal(
        early["officer"]["late_share_90d"], cut["officer"]["late_share_90d"]
    )


def test_the_all_history_window_reaches_back_past_every_day_window() -> None:
    events = mixed_log(3)  # dossiers start in the first 70 working days
    as_of = at(400.0)  # more than a year after the last start
    frames = entity_features(*stage_a(events, as_of), as_of, windows=("365D", "all"))
    officer = frames["officer"]
    assert officer["dossiers_365d"].eq(0).all()
    assert officer["dossiers_all"].sum() == events[s.DOSSIER_ID].nunique()
    assert frames["agency_pair"]["transfers_all"].sum() > 0
    # up to as_of only: the same tables at an earlier time count fewer dossiers
    early = entity_features(*stage_a(events, at(30.0)), at(30.0), windows=("all",))
    assert 0 < early["officer"]["dossiers_all"].sum() < officer["dossiers_all"].sum()


def split_by_dossier(events: pd.DataFrame, parts: int = 3) -> list[pd.DataFrame]:
    codes = pd.util.hash_array(events[s.DOSSIER_ID].to_numpy(dtype=object)) % parts
    return [events[codes == k] for k in range(parts)]


def stage_a_by_parts(events: pd.DataFrame, as_of: pd.Timestamp | None = None) -> list:
    tables = [stage_a(part, as_of) for part in reversed(split_by_dossier(events))]
    return [pd.concat([t[i] for t in tables], ignore_index=True) for i in range(3)]


def test_partitions_give_the_whole_log_result() -> None:
    events = mixed_log(4, n=90)
    whole = stage_a(events)
    parts = stage_a_by_parts(events)
    keys = ([s.DOSSIER_ID], [s.DOSSIER_ID, s.OFFICER_ID], [s.DOSSIER_ID, "at"])
    for a, b, key in zip(whole, parts, keys, strict=True):
        b = b.sort_values(key, kind="stable", ignore_index=True)
        pd.testing.assert_frame_equal(a, b)
    one = entity_features(*whole, AS_OF, windows=("30D", "90D", "365D"))
    many = entity_features(*parts, AS_OF, windows=("30D", "90D", "365D"))
    registry = feature_registry()
    for entity in one:
        pd.testing.assert_frame_equal(one[entity], many[entity])
        registry.check(one[entity], entity)
        assert len(one[entity]) > 0
    pd.testing.assert_frame_equal(
        officer_submitter_pairs(whole[0], whole[1], AS_OF),
        officer_submitter_pairs(parts[0], parts[1], AS_OF),
    )
    joined = join_entity_features(whole[0], one)
    registry.check(joined.drop(columns=whole[0].columns), "dossier")


# --- real logs --------------------------------------------------------------------------------


def test_entity_features_compute_on_the_receipt_log(
    receipt: tuple[pd.DataFrame, WorkingCalendar],
) -> None:
    events, cal = receipt
    facts = dossier_facts(events, cal)
    touches, edges = officer_touches(events, cal), transfer_edges(events, cal)
    assert len(facts) == 1434 and facts["main_officer_id"].notna().all()
    as_of = facts["last_event_at"].max()
    frames = entity_features(facts, touches, edges, as_of, windows=("90D", "365D"))
    registry = feature_registry()
    for entity, frame in frames.items():
        registry.check(frame, entity)
    assert len(frames["officer"]) > 20 and len(frames["agency_pair"]) > 10
    assert frames["submitter"].empty  # receipt has no intermediaries
    assert frames["officer"]["touches_365d"].sum() > 1000
