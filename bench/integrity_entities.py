"""Entity-level integrity detection time as officers and intermediaries grow.

    python -m bench.integrity_entities                 # 1x, 4x, 16x of a 2-month province
    python -m bench.integrity_entities --months 1 --scales 1 4

One simulated province is generated once; scale k tiles it k times with every id renamed
per copy (dossiers, events, officers, agencies, jurisdictions, applicants, submitters),
so officers, intermediaries, agencies and agency pairs all grow k-fold, as k provinces
would (the copies are independent: no officer or intermediary spans two). Each scale runs
in a fresh process, so its peak memory (:func:`bench.features.peak_mb`) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from features import schema as s

RENAMED = (
    s.DOSSIER_ID,
    s.EVENT_ID,
    s.AGENCY_ID,
    s.OFFICER_ID,
    s.JURISDICTION,
    s.APPLICANT_ID,
    s.SUBMITTER_ID,
    s.TARGET_AGENCY_ID,
)


def _simulate(months: int, seed: int, work: Path) -> Path:
    """The base province (events, reference data), cached in ``work``."""
    path = work / f"entity_base_{months}m_{seed}.pkl"
    if path.exists():
        return path
    from features.calendar import WorkingCalendar
    from features.engine import Reference
    from simulator import SimulationConfig, simulate_log
    from simulator.run import default_catalogue

    sim = simulate_log(SimulationConfig(months=months, seed=seed))
    calendar = WorkingCalendar.for_country("VN", tz=s.DEFAULT_TZ)
    ref = Reference(
        calendar, default_catalogue(), sim.agencies[["agency_id", "unit_type"]].astype("string")
    )
    work.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump((sim.events, ref), fh)
    return path


def tiled(
    events: pd.DataFrame, agencies: pd.DataFrame, k: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``k`` renamed copies of a log and of its agency directory."""
    if k == 1:
        return events, agencies
    parts, dirs = [], []
    for i in range(k):
        tag = f"T{i:02d}."
        copy = events.copy()
        for col in RENAMED:
            values = copy[col]
            if col == s.JURISDICTION:  # a province of its own: "01005" -> "51005"
                names = [f"{50 + i:02d}" + str(c)[2:] for c in values.cat.categories]
                copy[col] = values.cat.rename_categories(names)
            elif isinstance(values.dtype, pd.CategoricalDtype):
                names = [tag + str(c) for c in values.cat.categories]
                copy[col] = values.cat.rename_categories(names)
            else:
                copy[col] = (tag + values.astype("string")).astype(values.dtype)
        parts.append(copy)
        dirs.append(agencies.assign(agency_id=tag + agencies["agency_id"].astype("string")))
    cats = [c for c in events.columns if isinstance(events[c].dtype, pd.CategoricalDtype)]
    out = pd.concat(parts, ignore_index=True)
    for col in cats:
        out[col] = out[col].astype("category")
    return out, pd.concat(dirs, ignore_index=True)


def run_one(base: Path, k: int) -> dict[str, float]:
    """One scale in this process: detection time, peak memory, entities per second."""
    from bench.features import peak_mb
    from features.engine import Reference
    from models.integrity_entity import detect_entities

    with base.open("rb") as fh:
        events, ref = pickle.load(fh)
    assert ref.agencies is not None
    events, agencies = tiled(events, ref.agencies, k)
    ref = Reference(ref.calendar, ref.catalogue, agencies)
    loaded = peak_mb()
    start = time.perf_counter()
    found = detect_entities(events, ref)
    seconds = time.perf_counter() - start
    officers = events[s.OFFICER_ID].nunique()
    submitters = events.loc[
        events[s.SUBMITTER_ID].astype("string") != events[s.APPLICANT_ID].astype("string"),
        s.SUBMITTER_ID,
    ].nunique()
    entities = officers + submitters + events[s.AGENCY_ID].nunique()
    return {
        "scale": k,
        "events": len(events),
        "officers": int(officers),
        "intermediaries": int(submitters),
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "loaded_mb": loaded,
        "entities_per_s": entities / seconds,
        "findings": len(found),
        "alerts": int(found["alert"].sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = _simulate(args.months, args.seed, args.work)
    if args.child is not None:
        print(json.dumps(run_one(base, args.child)))
        return
    print(f"base: {args.months}-month province, seed {args.seed} ({base})", flush=True)
    header = (
        f"{'scale':>5} {'events':>10} {'officers':>9} {'interm.':>8} {'seconds':>8} "
        f"{'peak MB':>8} {'+MB run':>8} {'entities/s':>11} {'alerts':>7}"
    )
    print(header, flush=True)
    for k in args.scales:
        print(f"  ... {k}x", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "bench.integrity_entities", "--months", str(args.months)]
        cmd += ["--seed", str(args.seed), "--work", str(args.work), "--child", str(k)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['scale']:>4}x {r['events']:>10,} {r['officers']:>9,} {r['intermediaries']:>8,} "
            f"{r['seconds']:>8.1f} {r['peak_mb']:>8.0f} {r['peak_mb'] - r['loaded_mb']:>8.0f} "
            f"{r['entities_per_s']:>11,.0f} {r['alerts']:>7}",
            flush=True,
        )
    print(f"load average: {os.getloadavg()[0]:.2f} (2 shared cores)")


if __name__ == "__main__":
    main()
