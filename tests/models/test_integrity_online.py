"""The integrity model on one dossier (models.integrity_online) gives exactly what
``IntegrityModel.score_samples`` gives that dossier in a batch: every dossier of a
simulated province at three cuts (open and closed ones; every detector and every flow
family fires somewhere), from the row as OnlineScorer builds it and as the batch table
holds it; a model read back from JSON, one without the learned detectors, evidence the
log never shows, an unknown procedure, a bundle without an integrity model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.online import trace_of
from features.online_context import OnlineContext
from features.process import NotFittedError
from models.bundle import ModelBundle
from models.dataset import closed_table, outcomes_of
from models.integrity import FLOW, REASON_P, RESIDUAL, IntegrityModel
from models.integrity_flow import FAMILIES
from models.integrity_online import OnlineIntegrity
from models.online import OnlineScorer
from tests.models.conftest import SmallBundle

TZ = "Asia/Ho_Chi_Minh"
CUTS = [
    pd.Timestamp("2025-07-21 10:30", tz=TZ),  # before the integrity model's training ended
    pd.Timestamp("2025-08-20 15:00", tz=TZ),
    pd.Timestamp("2025-08-29 08:05", tz=TZ),
]
#: what each flow family's reason says.
FAMILY_WORDS = {
    "order": "' came ",
    "repeat": "' was done ",
    "missing": "' is missing",
    "foreign": "does not belong",
}

Rows = list[dict[str, Any]]
Scores = list[tuple[float, str, str]]


def _model(small: SmallBundle) -> IntegrityModel:
    model = small.bundle.integrity
    assert model is not None
    return model


def _by_dossier(events: pd.DataFrame) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for row in events.to_dict("records"):
        out.setdefault(str(row[s.DOSSIER_ID]), []).append({str(k): v for k, v in row.items()})
    return out


class Cut:
    """A cut of the small province: the batch's feature table and integrity scores, and
    each dossier's events and online features."""

    def __init__(self, small: SmallBundle, as_of: pd.Timestamp) -> None:
        log = small.log
        known = log.events[log.events[s.TIMESTAMP] <= as_of]
        self.as_of = as_of
        self.known = known
        self.table = closed_table(known, log.ref, as_of, outcomes_of(known, log.ref))
        self.batch = _model(small).score_samples(self.table, known)
        self.events = _by_dossier(known)
        self.context = OnlineContext.from_events(log.events, log.ref, as_of)
        scorer = OnlineScorer(small.bundle, log.ref)
        self.feats = [
            scorer.features(self.events[i], as_of, self.context) for i in self.table.index
        ]


@pytest.fixture(scope="module")
def cuts(small: SmallBundle) -> list[Cut]:
    return [Cut(small, as_of) for as_of in CUTS]


@pytest.fixture(scope="module")
def online(small: SmallBundle) -> OnlineIntegrity:
    return OnlineIntegrity(_model(small))


def assert_same(scored: Scores, batch: pd.DataFrame) -> None:
    """Scores to 1e-9, reasons and patterns identical, for every dossier."""
    assert len(scored) == len(batch)
    score = np.array([x[0] for x in scored])
    want = batch["integrity_score"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isclose(score, want, rtol=0.0, atol=1e-9))
    assert not len(bad), f"scores differ for {batch.index[bad[:5]].tolist()}"
    for column, k in (("integrity_reasons", 1), ("integrity_pattern", 2)):
        got = [x[k] for x in scored]
        bad = np.flatnonzero(np.asarray(got, dtype=object) != batch[column].to_numpy(dtype=object))
        assert not len(bad), (
            f"{column} differ for {batch.index[bad[:3]].tolist()}: "
            f"{[got[i] for i in bad[:2]]} vs {batch[column].iloc[bad[:2]].tolist()}"
        )


def test_every_dossier_at_three_cuts_scores_as_in_the_batch(
    online: OnlineIntegrity, cuts: list[Cut]
) -> None:
    for cut in cuts:
        assert_same([online.score(f.closed, f.trace) for f in cut.feats], cut.batch)
        finished = cut.table["finished"].astype(bool)
        assert finished.sum() > 1000 and (~finished).sum() > 1000  # closed and open


def test_the_batch_table_row_scores_the_same(online: OnlineIntegrity, cuts: list[Cut]) -> None:
    """The row as the batch table holds it (numpy scalars, NA) reads as OnlineScorer's."""
    cut = cuts[1]
    rows = cut.table.to_dict("records")
    traces = [f.trace for f in cut.feats]
    scored = [online.score(r, t) for r, t in zip(rows, traces, strict=True)]
    assert_same(scored, cut.batch)


def test_every_detector_and_flow_family_fires_in_the_test_data(
    small: SmallBundle, cuts: list[Cut]
) -> None:
    """Parity is tested where it matters: each detector's evidence is rare enough to be
    a reason for some dossier (route_extra: the simulator never adds steps outside the
    route; see the test of evidence no dossier shows), each flow family is the reason of
    some dossier, and each detector is the strongest of some."""
    model = _model(small)
    batch = pd.concat([c.batch for c in cuts])
    silent = [n for n in model.detectors if not (batch[f"p_{n}"] < REASON_P).any()]
    assert silent == ["route_extra"]
    reasons = batch["integrity_reasons"]
    for family in FAMILIES:
        assert reasons.str.contains(FAMILY_WORDS[family], regex=False).any(), family
    patterns = set(batch["integrity_pattern"])
    wanted = {r.pattern for r in model._rules() if r.name != "route_extra"}
    assert wanted | {"process_deviation", "unusual_dossier"} <= patterns
    assert {FLOW, RESIDUAL} <= set(model.detectors)


def test_evidence_no_dossier_shows_scores_as_in_the_batch(
    small: SmallBundle, online: OnlineIntegrity, cuts: list[Cut]
) -> None:
    """Steps outside the route and clock stops near the deadline written into the rows
    (the table is what the rules read): the same scores, reasons and patterns."""
    cut = cuts[1]
    pick = np.arange(0, len(cut.table), 40)
    table = cut.table.iloc[pick].copy()
    table["extra_steps"] = (np.arange(len(table)) % 4).astype(np.int64)
    table["wrong_unit_steps"] = (np.arange(len(table)) % 3).astype(np.int64)
    table["last_stop_share_elapsed"] = np.linspace(0.7, 0.99, len(table))
    table["work_after_last_stop_days"] = 0.01
    table["late_reported"] = 0
    events = cut.known[cut.known[s.DOSSIER_ID].isin(table.index)]
    batch = _model(small).score_samples(table, events)
    assert (batch["integrity_pattern"] == "extra_steps").sum() > 10
    assert (batch["p_clock_manipulation"] < REASON_P).sum() > 10
    rows = table.to_dict("records")
    traces = [cut.feats[i].trace for i in pick]
    assert_same([online.score(r, t) for r, t in zip(rows, traces, strict=True)], batch)


def test_a_model_read_back_and_one_without_learned_detectors(
    small: SmallBundle, cuts: list[Cut]
) -> None:
    cut = cuts[2]
    data = json.loads(json.dumps(_model(small).to_dict()))
    rules_only = {
        **data,
        "flow": None,
        "residual": None,
        "detectors": [n for n in data["detectors"] if n not in (FLOW, RESIDUAL)],
    }
    for model in (IntegrityModel.from_dict(data), IntegrityModel.from_dict(rules_only)):
        batch = model.score_samples(cut.table, cut.known)
        scorer = OnlineIntegrity(model)
        assert_same([scorer.score(f.closed, f.trace) for f in cut.feats], batch)


def test_an_unknown_procedure(small: SmallBundle, online: OnlineIntegrity, cuts: list[Cut]) -> None:
    """Pooled norms, every step unseen by the control-flow detector: as the batch."""
    cut = cuts[1]
    ref = small.log.ref
    model = _model(small)
    for ident in list(cut.table.index[:: len(cut.table) // 5]):
        events = [
            {**e, s.PROCEDURE_CODE: "9.999999", s.AGENCY_ID: "nowhere"} for e in cut.events[ident]
        ]
        frame = s.coerce_events(pd.DataFrame(events))
        table = closed_table(frame, ref, cut.as_of)
        batch = model.score_samples(table, frame)
        trace = trace_of(events, ref.calendar, cut.as_of)
        row = table.to_dict("records")[0]
        assert_same([online.score(row, trace)], batch)


def test_a_bundle_without_an_integrity_model(small: SmallBundle, cuts: list[Cut]) -> None:
    bundle = ModelBundle(**{**small.bundle.__dict__, "integrity": None})
    cut = cuts[1]
    ident = str(cut.table.index[0])
    scorer = OnlineScorer(bundle, small.log.ref)
    scored = scorer.score(cut.events[ident], cut.as_of, cut.context)
    assert np.isnan(scored.integrity_score)
    assert scored.integrity_reasons == "" and scored.integrity_pattern == ""
    assert "integrity" not in scored.alert_kinds


def test_an_unfitted_model_says_so() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        OnlineIntegrity(IntegrityModel())
