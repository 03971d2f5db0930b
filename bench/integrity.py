"""Integrity benchmark and quality floors on a simulated province-year with every anomaly
type: fit time of the dossier-level detectors, scoring time of every dossier, entity
detection time, and the evaluation harness's figures per anomaly type.

    python -m bench.integrity                 # one province, 12 months, seed 11
    python -m bench.integrity --months 6

The detectors are fitted on the first 60 % of the year as it stood then (dossiers started
before, with their events up to then), as ``giamsat train`` fits them, and every dossier of
the year is scored as of its end. The waste patterns (supplement rounds, rework, idle
then rush) are the waste model's alerts, fitted on the same period's finished dossiers
with its 1 % budget. Floors (issue 6): average precision >= 0.8 per
dossier-level type, recall >= 0.8 per entity-level type at the default alert budget.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench.features import load_note, peak_mb
from bench.models import _timed
from features import schema as s
from features.calendar import WorkingCalendar
from features.engine import Reference
from models.anomaly_eval import PRODUCT, Truth, evaluate_anomalies
from models.dataset import Split, closed_table
from models.integrity_entity import detect_entities
from models.lifecycle import fit_integrity
from models.waste import WasteModel
from simulator import SimulationConfig, simulate_log
from simulator.config import DOSSIER_ANOMALIES
from simulator.run import default_catalogue

FLOOR = 0.8


def run(months: int, seed: int) -> bool:
    print(load_note())
    sim, seconds = _timed(lambda: simulate_log(SimulationConfig(months=months, seed=seed)))
    events = sim.events
    calendar = WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh")
    ref = Reference(calendar, default_catalogue(), sim.agencies[["agency_id", "unit_type"]])
    dossiers = events[s.DOSSIER_ID].nunique()
    print(f"simulated {months} months (seed {seed}): {dossiers:,} dossiers, "
          f"{len(events):,} events in {seconds:.0f} s")  # fmt: skip
    until = events[s.TIMESTAMP].quantile(0.6)
    split = Split(until, events[s.TIMESTAMP].max())
    print("fitting the dossier-level detectors on the first 60 % ...", flush=True)
    model, fit_s = _timed(lambda: fit_integrity(events, ref, split, 0.02))
    print(f"  fit: {fit_s:.1f} s ({model.detectors})")
    print("fitting the waste model (the waste patterns are its alerts) ...", flush=True)
    train = closed_table(events, ref, as_of=until)
    train = train[(train["started_at"] < until) & train["finished"].to_numpy()]
    waste = WasteModel().fit(train)
    waste_threshold = float(
        np.nanquantile(waste.transform(train)["waste_score"].to_numpy(dtype=float), 0.99)
    )
    table, features_s = _timed(lambda: closed_table(events, ref))
    scored, score_s = _timed(lambda: model.score_samples(table, events))
    print(f"  dossier features of {len(table):,} dossiers: {features_s:.1f} s; integrity "
          f"scores: {score_s:.1f} s ({len(table) / score_s:,.0f} dossiers/s)")  # fmt: skip
    print("entity detectors ...", flush=True)
    found, entity_s = _timed(lambda: detect_entities(events, ref))
    print(f"  entity detection: {entity_s:.1f} s, {len(found):,} findings, "
          f"{int(found['alert'].sum())} alerts")  # fmt: skip
    labels = sim.labels_dossiers.set_index("dossier_id")
    truth = Truth(
        pd.DataFrame(
            {
                "is_anomalous": labels["anomaly_type"].notna().astype("int64"),
                "anomaly_type": labels["anomaly_type"].astype("string"),
            },
            index=labels.index.astype("string"),
        ),
        sim.labels_entities.astype("string"),
    )
    report = evaluate_anomalies(
        events, ref, truth, integrity=model, waste=waste, waste_threshold=waste_threshold,
        entities=found, say=print,
    )  # fmt: skip
    dossier = report.dossiers[report.dossiers["method"] == PRODUCT].set_index("type")
    wide = report.dossiers.pivot(index="type", columns="method", values="ap")
    print("\naverage precision per dossier-level type (that type against clean dossiers):")
    print(wide.round(3).to_string())
    print(f"\n{PRODUCT} at its alert threshold {model.threshold_:.4f}:")
    print(dossier.round(3).to_string())
    print("\nentity alerts at the default budget:")
    print(report.entities.round(3).to_string(index=False))
    types = [t for t in dossier.index if t in DOSSIER_ANOMALIES]
    ok = bool((dossier.loc[types, "ap"] >= FLOOR).all())
    entity_ok = bool((report.entities["recall"].fillna(0) >= FLOOR).all())
    print(f"\nfloor AP >= {FLOOR} on every dossier-level type: {'met' if ok else 'NOT met'}; "
          f"entity recall >= {FLOOR}: {'met' if entity_ok else 'NOT met'}; "
          f"peak memory {peak_mb():,.0f} MB")  # fmt: skip
    return ok and entity_ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    run(args.months, args.seed)


if __name__ == "__main__":
    main()
