"""Online scoring gives exactly the batch pipeline's features and scores: every dossier of
a simulated province at a cut, its ``open_table`` and ``closed_table`` rows and its
``score_log`` row; the incrementally kept context equals the one built from events;
events after the cut change nothing; bad input names its field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.dossiers import dossier_features
from features.online import OnlineEventError
from features.online_context import OnlineContext
from features.process import NormalProcess
from models.bundle import ModelBundle
from models.dataset import closed_table, open_table, outcomes_of
from models.online import OnlineScorer
from models.scoring import SCORE_COLUMNS, score_log
from tests.models.conftest import SmallBundle

TZ = "Asia/Ho_Chi_Minh"
CUT = pd.Timestamp("2025-08-20 15:00", tz=TZ)
EARLY = pd.Timestamp("2025-07-21 10:30", tz=TZ)
LATE = pd.Timestamp("2025-08-29 08:05", tz=TZ)


def _by_dossier(events: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in events.to_dict("records"):
        out.setdefault(str(row[s.DOSSIER_ID]), []).append({str(k): v for k, v in row.items()})
    return out


@dataclass
class Cut:
    as_of: pd.Timestamp
    closed: pd.DataFrame
    opened: pd.DataFrame
    scores: pd.DataFrame
    context: OnlineContext
    events: dict[str, list[dict[str, Any]]]


def _cut(small: SmallBundle, as_of: pd.Timestamp) -> Cut:
    log = small.log
    known = log.events[log.events[s.TIMESTAMP] <= as_of]
    outcomes = outcomes_of(known, log.ref)
    return Cut(
        as_of,
        closed_table(known, log.ref, as_of, outcomes),
        open_table(known, log.ref, as_of, outcomes),
        score_log(small.bundle, log.events, log.ref, as_of=as_of).scores.set_index(s.DOSSIER_ID),
        OnlineContext.from_events(log.events, log.ref, as_of),
        _by_dossier(log.events),
    )


@pytest.fixture(scope="module")
def by_dossier(small: SmallBundle) -> dict[str, list[dict[str, Any]]]:
    return _by_dossier(small.log.events)


@pytest.fixture(scope="module")
def scorer(small: SmallBundle) -> OnlineScorer:
    return OnlineScorer(small.bundle, small.log.ref)


@pytest.fixture(scope="module")
def at_cut(small: SmallBundle) -> Cut:
    return _cut(small, CUT)


def _frame(rows: list[dict[str, Any]], ids: list[str], columns: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(rows, index=pd.Index(ids, name=s.DOSSIER_ID))[list(columns)]


def assert_same_table(online: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Exact for integers, flags and categories (as text); floats to 1e-9; NaN == NaN."""
    assert list(online.columns) == list(batch.columns)
    batch = batch.loc[online.index]
    for column in batch.columns:
        want, got = batch[column], online[column]
        if pd.api.types.is_float_dtype(want):
            a = got.to_numpy(dtype=np.float64, na_value=np.nan)
            b = want.to_numpy(dtype=np.float64, na_value=np.nan)
            same = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        elif pd.api.types.is_integer_dtype(want) or pd.api.types.is_bool_dtype(want):
            assert not got.isna().any(), column
            same = got.to_numpy(dtype=np.int64) == want.to_numpy(dtype=np.int64)
        elif isinstance(want.dtype, pd.DatetimeTZDtype):
            same = np.asarray(pd.DatetimeIndex(got) == pd.DatetimeIndex(want))
        else:
            a = want.astype("string").fillna("<NA>").to_numpy(dtype=object)
            b = got.astype("string").fillna("<NA>").to_numpy(dtype=object)
            same = a == b
        bad = np.flatnonzero(~np.asarray(same, dtype=bool))
        assert not len(bad), (
            f"{column}: {len(bad)} rows differ, e.g. {batch.index[bad[:3]].tolist()}"
        )


def assert_same_features(scorer: OnlineScorer, cut: Cut) -> None:
    ids = list(cut.closed.index)
    feats = [scorer.features(cut.events[i], cut.as_of, cut.context) for i in ids]
    assert len(cut.opened) > 1000
    closed = _frame([f.closed for f in feats], ids, cut.closed.columns)
    assert_same_table(closed, cut.closed)
    open_ids = [f.dossier_id for f in feats if f.open is not None]
    assert sorted(open_ids) == sorted(cut.opened.index)
    rows = [f.open for f in feats if f.open is not None]
    assert_same_table(_frame(rows, open_ids, cut.opened.columns), cut.opened)


def assert_same_scores(scorer: OnlineScorer, cut: Cut, ids: list[str]) -> None:
    scored = scorer.score_many([cut.events[i] for i in ids], cut.as_of, cut.context)
    online = pd.DataFrame([x.row() for x in scored]).set_index(s.DOSSIER_ID)
    batch = cut.scores.loc[ids, [c for c in SCORE_COLUMNS if c != s.DOSSIER_ID]]
    assert_same_table(online, batch)


def test_online_features_equal_the_batch_tables(scorer: OnlineScorer, at_cut: Cut) -> None:
    assert_same_features(scorer, at_cut)


def test_online_scores_equal_score_log(scorer: OnlineScorer, at_cut: Cut) -> None:
    opened = list(at_cut.opened.index)
    closed = [i for i in at_cut.closed.index if i not in set(opened)][:500]
    assert_same_scores(scorer, at_cut, opened + closed)
    assert at_cut.scores.loc[opened, "alert"].sum() > 0  # the alerts are compared too


def test_one_dossier_scores_as_in_a_batch(scorer: OnlineScorer, at_cut: Cut) -> None:
    ids = list(at_cut.opened.index[:40])
    many = scorer.score_many([at_cut.events[i] for i in ids], CUT, at_cut.context)
    for i, batch in zip(ids, many, strict=True):
        one = scorer.score(at_cut.events[i], CUT, at_cut.context)
        assert one.dossier_id == i
        for column in SCORE_COLUMNS:
            a, b = one.row()[column], batch.row()[column]
            assert a == b or (a != a and b != b) or np.isclose(a, b, rtol=1e-12), column
        assert [r.as_dict() for r in one.delay_reasons] == [
            r.as_dict() for r in batch.delay_reasons
        ]


@pytest.mark.slow
@pytest.mark.parametrize("as_of", [EARLY, LATE])
def test_parity_at_other_cuts(
    small: SmallBundle, scorer: OnlineScorer, as_of: pd.Timestamp
) -> None:
    cut = _cut(small, as_of)
    assert_same_features(scorer, cut)
    assert_same_scores(scorer, cut, list(cut.opened.index))


def test_the_observed_context_equals_the_one_built_from_events(
    small: SmallBundle, scorer: OnlineScorer, at_cut: Cut
) -> None:
    events, ref = small.log.events, small.log.ref
    context = OnlineContext.from_events(events, ref, EARLY)
    moved = events[(events[s.TIMESTAMP] > EARLY) & (events[s.TIMESTAMP] <= CUT)]
    changed = pd.unique(moved[s.DOSSIER_ID].astype(str))
    assert len(changed) > 5000
    for ident in changed:  # the service observes each dossier whose events changed
        context.observe(at_cut.events[ident], ref, CUT)
    rebuilt = at_cut.context
    assert len(context) == len(rebuilt)
    columns = [
        "recent_finished_procedure",
        "recent_late_share_procedure",
        "recent_finished_agency",
        "recent_late_share_agency",
        "unit_backlog",
        "officer_backlog",
    ]
    for ident in list(at_cut.opened.index):
        kept = scorer.features(at_cut.events[ident], CUT, context).open
        built = scorer.features(at_cut.events[ident], CUT, rebuilt).open
        assert kept is not None and built is not None
        for column in columns:
            a, b = kept[column], built[column]
            assert a == b or (a != a and b != b), (ident, column)


def test_events_after_the_cut_change_nothing(scorer: OnlineScorer, at_cut: Cut) -> None:
    later = [i for i in at_cut.opened.index if len(at_cut.events[i]) > len(
        [e for e in at_cut.events[i] if e[s.TIMESTAMP] <= CUT])][:50]  # fmt: skip
    assert len(later) == 50
    for ident in later:
        everything = scorer.score(at_cut.events[ident], CUT, at_cut.context)
        known = [e for e in at_cut.events[ident] if e[s.TIMESTAMP] <= CUT]
        only_known = scorer.score(known, CUT, at_cut.context)
        assert everything.row() == only_known.row() or all(
            (a == b or (a != a and b != b))
            for a, b in zip(everything.row().values(), only_known.row().values(), strict=True)
        )


def test_a_dossier_of_an_unknown_procedure_and_agency(
    small: SmallBundle, scorer: OnlineScorer, at_cut: Cut
) -> None:
    ident = at_cut.opened.index[0]
    events = [
        {**e, s.PROCEDURE_CODE: "9.999999", s.AGENCY_ID: "nowhere", "target_agency_id": None}
        for e in at_cut.events[ident]
    ]
    scored = scorer.score(events, CUT, at_cut.context)
    f = scored.features
    assert f.open is not None and f.closed["first_unit_type"] is None
    assert np.isnan(f.closed["fee_vnd"]) and np.isnan(f.closed["missing_mandatory_steps"])
    assert 0 <= scored.delay_risk <= 1 and 0 <= scored.waste_score < 1
    assert f.closed["recent_finished_procedure"] == 0 and f.open["unit_backlog"] == 1
    frame = pd.DataFrame(events)
    frame = frame[frame[s.TIMESTAMP] <= CUT].astype({s.PROCEDURE_CODE: "string"})
    ref = small.log.ref
    batch = dossier_features(
        frame, ref.calendar, catalogue=ref.catalogue, agencies=ref.agencies, as_of=CUT
    )
    online = pd.DataFrame([{c: f.closed[c] for c in batch.columns}], index=batch.index)
    assert_same_table(online, batch)


@pytest.mark.parametrize(
    ("change", "column"),
    [
        (lambda ev: [], s.DOSSIER_ID),
        (lambda ev: [{k: v for k, v in e.items() if k != s.TIMESTAMP} for e in ev], s.TIMESTAMP),
        (
            lambda ev: [{**e, s.TIMESTAMP: e[s.TIMESTAMP].tz_localize(None)} for e in ev],
            s.TIMESTAMP,
        ),
        (lambda ev: [{**e, s.ACTIVITY: None} for e in ev], s.ACTIVITY),
        (lambda ev: [ev[0], {**ev[1], s.DOSSIER_ID: "other"}], s.DOSSIER_ID),
        (lambda ev: [{**e, s.TIMESTAMP: "yesterday"} for e in ev], s.TIMESTAMP),
        (lambda ev: ["not an event"], "events"),
    ],
)
def test_bad_events_name_their_field(
    scorer: OnlineScorer, at_cut: Cut, change: Any, column: str
) -> None:
    events = at_cut.events[at_cut.opened.index[0]]
    with pytest.raises(OnlineEventError) as err:
        scorer.score(change(events), CUT, at_cut.context)
    assert err.value.column == column


def test_a_dossier_not_started_at_the_cut_and_a_naive_cut(
    scorer: OnlineScorer, at_cut: Cut
) -> None:
    events = at_cut.events[at_cut.opened.index[0]]
    with pytest.raises(OnlineEventError) as err:
        scorer.score(events, pd.Timestamp("2025-06-01", tz=TZ), at_cut.context)
    assert err.value.column == "as_of"
    with pytest.raises(OnlineEventError) as err:
        scorer.score(events, pd.Timestamp("2025-08-20 15:00"), at_cut.context)
    assert err.value.column == "as_of"


def test_the_bundle_keeps_its_reference_data(small: SmallBundle, tmp_path: Path) -> None:
    ref = small.log.ref
    bundle = small.bundle
    kept = ModelBundle(**{**bundle.__dict__, "catalogue": ref.catalogue,
                          "agencies": ref.agencies, "calendar": ref.calendar})  # fmt: skip
    loaded = ModelBundle.load(kept.save(tmp_path / "bundle"))
    back = loaded.reference()
    assert back.catalogue == ref.catalogue
    assert back.agencies is not None and ref.agencies is not None
    pd.testing.assert_frame_equal(back.agencies.reset_index(drop=True),
                                  ref.agencies.reset_index(drop=True))  # fmt: skip
    assert back.calendar.tz == ref.calendar.tz
    assert (back.calendar._working == ref.calendar._working).all()
    bare = ModelBundle(**{**bundle.__dict__, "catalogue": None, "agencies": None,
                          "calendar": None})  # fmt: skip
    old = ModelBundle.load(bare.save(tmp_path / "old"))  # saved without them: still loads
    assert old.catalogue is None and old.agencies is None and old.calendar is None


def test_process_features_on_a_real_log(data_dir: Path) -> None:
    """The process columns (logs without a catalogue) on the receipt log."""
    from bench.real_logs import receipt_task
    from features.engine import Reference
    from features.online import dossier_row, trace_of

    task = receipt_task(data_dir)
    events = task.events
    process = NormalProcess(calendar=task.calendar).fit(events)
    ref = Reference(task.calendar, process=process)
    as_of = events[s.TIMESTAMP].sort_values().iloc[int(len(events) * 0.7)]
    batch = dossier_features(events, ref.calendar, process=process, as_of=as_of)
    grouped = _by_dossier(events[events[s.TIMESTAMP] <= as_of])
    rows = [dossier_row(trace_of(grouped[i], ref.calendar, as_of), ref) for i in batch.index]
    assert len(rows) > 500
    assert_same_table(pd.DataFrame(rows, index=batch.index)[list(batch.columns)], batch)
