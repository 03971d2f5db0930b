"""Per-dossier cost of online scoring (:class:`models.online.OnlineScorer`).

    python -m bench.online_score            # a 2-month simulated province

Simulates a province, trains a bundle with the default model sizes, builds the online
context at a cut and times, on open dossiers with the most events (15 where there are
enough): the features, the delay and waste predictions with the delay explanation, the
integrity model (:class:`models.integrity_online.OnlineIntegrity`, and for comparison
the batch ``score_samples`` on the dossier's one-row frames), the whole ``score`` of one
dossier, and ``score_many`` in batches of 50. Single-threaded; medians of repeated
passes, in microseconds per dossier.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any

import pandas as pd
import typer

from features import schema as s
from features.calendar import WorkingCalendar
from features.engine import Reference
from features.online_context import OnlineContext
from models.bundle import ModelBundle
from models.dataset import closed_table, prefix_table, temporal_split
from models.delay import DelayModel
from models.lifecycle import fit_integrity, waste_threshold
from models.online import OnlineFeatures, OnlineScorer
from models.waste import WasteModel
from simulator import SimulationConfig, simulate_log
from simulator.run import default_catalogue

EVENTS = 15
BATCH = 50


def _per_item(call: Callable[[], object], items: int, repeat: int = 5) -> float:
    """Median over ``repeat`` passes of one call's time, in microseconds per item."""
    call()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / items * 1e6


def _bundle(events: pd.DataFrame, ref: Reference) -> ModelBundle:
    table = prefix_table(events, ref)
    split = temporal_split(table.groupby(level=0)["started_at"].first())
    delay = DelayModel().fit(split.settled(table, 0), split.settled(table, 1))
    closed = closed_table(events, ref)
    waste = WasteModel().fit(closed[split.period(closed["started_at"]) == 0])
    return ModelBundle(
        delay,
        waste,
        split,
        waste_threshold(waste, events, ref, split, 0.01),
        integrity=fit_integrity(events, ref, split, 0.02),
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        calendar=ref.calendar,
    )


def main(
    months: Annotated[int, typer.Option(help="months of the simulated province")] = 2,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 5,
    dossiers: Annotated[int, typer.Option(help="dossiers timed")] = 200,
) -> None:
    started = time.perf_counter()
    sim = simulate_log(SimulationConfig(months=months, seed=seed))
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    ref = Reference(calendar, default_catalogue(), sim.agencies[["agency_id", "unit_type"]])
    events = sim.events
    bundle = _bundle(events, ref)
    print(f"simulated and trained in {time.perf_counter() - started:.0f} s "
          f"({events[s.DOSSIER_ID].nunique()} dossiers)")  # fmt: skip
    as_of = events[s.TIMESTAMP].sort_values().iloc[int(len(events) * 0.8)]
    context = OnlineContext.from_events(events, bundle.reference(), as_of)
    scorer = OnlineScorer(bundle, bundle.reference())
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in events[events[s.TIMESTAMP] <= as_of].to_dict("records"):
        grouped.setdefault(str(row[s.DOSSIER_ID]), []).append({str(k): v for k, v in row.items()})
    open_ = [
        evs for evs in grouped.values() if scorer.features(evs, as_of, context).open is not None
    ]
    open_.sort(key=lambda evs: -min(len(evs), EVENTS))
    picked = [evs[:EVENTS] for evs in open_[:dossiers]]
    n = len(picked)
    mean_events = sum(map(len, picked)) / n
    feats = [scorer.features(evs, as_of, context) for evs in picked]

    def features() -> None:
        for evs in picked:
            scorer.features(evs, as_of, context)

    def predict() -> None:  # delay risk, quantiles, explanation and waste, row by row
        for f in feats:
            scorer._delay_scores([f.open])
            scorer._expected(scorer._waste.row(f.closed))

    def integrity() -> None:
        for f in feats:
            scorer._integrity([f])

    model = bundle.integrity
    assert model is not None
    frames = [_one_dossier(f, evs) for f, evs in zip(feats, picked, strict=True)]

    def integrity_frames() -> None:  # the batch model on each dossier's frames
        for table, frame in frames:
            model.score_samples(table, frame)

    def score() -> None:
        for evs in picked:
            scorer.score(evs, as_of, context)

    def score_many() -> None:
        for lo in range(0, n, BATCH):
            scorer.score_many(picked[lo : lo + BATCH], as_of, context)

    print(f"{n} open dossiers, {mean_events:.1f} events each, one thread")
    rows = {
        "features": _per_item(features, n),
        "delay + waste predict, delay explanation": _per_item(predict, n),
        "integrity (OnlineIntegrity)": _per_item(integrity, n),
        "integrity (batch score_samples, one-row frames)": _per_item(integrity_frames, n, repeat=1),
        "score (all of it)": _per_item(score, n, repeat=3),
        f"score_many, batches of {BATCH}": _per_item(score_many, n, repeat=3),
    }
    for name, us in rows.items():
        print(f"  {name:<50} {us:9.0f} us/dossier")
    per_second = 1e6 / rows[f"score_many, batches of {BATCH}"]
    print(f"  score_many throughput: {per_second:,.0f} dossiers/s")
    no_integrity = rows["features"] + rows["delay + waste predict, delay explanation"]
    print(f"  features + predict without integrity: {no_integrity:.0f} us/dossier")
    with_integrity = no_integrity + rows["integrity (OnlineIntegrity)"]
    print(f"  features + predict + integrity: {with_integrity:.0f} us/dossier")


def _one_dossier(
    f: OnlineFeatures, events: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One dossier's closed_table row and events as frames (the batch model's input)."""
    table = pd.DataFrame([f.closed], index=pd.Index([f.dossier_id], name=s.DOSSIER_ID))
    frame = s.coerce_events(pd.DataFrame(events))
    cut = pd.Timestamp(f.trace.cut, tz="UTC")
    return table, frame[frame[s.TIMESTAMP] <= cut]


if __name__ == "__main__":
    typer.run(main)
