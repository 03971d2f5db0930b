"""Feature pipeline benchmarks: throughput on one core, pm4py beside us, Dask 1 vs 2 workers.

    python -m bench.features                       # 5 M events, one core, with pm4py
    python -m bench.features --dask-events 10000000  # and Dask with 1 and 2 workers

Simulated logs are generated once into ``--work`` (default ``var/bench``) and reused.
Every measurement runs in a fresh process pinned to one core (Dask workers: one thread
each), so peak memory (the process's own high-water mark, :func:`peak_mb`) is that run's
own; "+MB run" is the peak beyond what the loaded log already took. A Dask run reports the
largest worker peak and the driver's (which joins the features to the dossiers), and the CPU
seconds of each worker and of the driver: the cores are shared, so wall times and the
speed-up are noisy, while CPU seconds show how the work was split. pm4py is the peer we
compare with; it is only installed in the bench environment (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s

EVENTS_PER_PROVINCE_YEAR = 1_000_000


def peak_mb() -> float:
    """This process's peak resident memory since it started (or since :func:`_reset_peak`).

    Read from ``VmHWM`` (Linux), not ``ru_maxrss``: Linux keeps ``ru_maxrss`` across
    ``execve``, so a process started by fork and exec (a Dask worker, a bench child)
    begins with its parent's resident size at that moment. Workers started by a driver
    that still held the previous run's features reported the driver's 7.9 GB as theirs.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used: unlike wall time, other processes
    on the shared cores do not inflate it, so it shows how the work was split."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak() -> None:
    """Start this process's peak memory afresh (Linux: ``clear_refs`` 5 resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def ensure_log(work: Path, events: int) -> Path:
    """A simulated log of about ``events`` events (generated once, then reused)."""
    from simulator.config import SimulationConfig
    from simulator.run import simulate

    provinces = max(1, math.ceil(events / EVENTS_PER_PROVINCE_YEAR))
    out = work / f"sim-{provinces}p"
    if not (out / "events.parquet").exists():
        print(f"simulating {provinces} province-years into {out} ...", flush=True)
        simulate(SimulationConfig(provinces=provinces, months=12, seed=1), out, progress=True)
    return out


def load(path: Path) -> pd.DataFrame:
    return s.sort_events(s.coerce_events(pd.read_parquet(path / "events.parquet")))


# --- what is measured ------------------------------------------------------------------------


def _micros(stamps: pd.Series) -> np.ndarray:
    return stamps.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()


def minimal_pass(events: pd.DataFrame) -> pd.DataFrame:
    """Five basic per-case features with one numpy pass over sorted events (the floor)."""
    ids = events[s.DOSSIER_ID].to_numpy()
    ts = _micros(events[s.TIMESTAMP])
    act = events[s.ACTIVITY].cat.codes.to_numpy()
    boundary = np.r_[True, ids[1:] != ids[:-1]]
    starts = np.flatnonzero(boundary)
    ends = np.r_[starts[1:], len(ids)]
    supplement = events[s.ACTIVITY].cat.categories.get_indexer([s.SUPPLEMENT_REQUESTED])[0]
    return pd.DataFrame(
        {
            "events": ends - starts,
            "duration_s": (ts[ends - 1] - ts[starts]) / 1e6,
            "first_activity": act[starts],
            "last_activity": act[ends - 1],
            "supplements": np.add.reduceat((act == supplement).astype(np.int64), starts),
        },
        index=ids[starts],
    )


def basic_quantities(events: pd.DataFrame) -> int:
    """Ours: case durations, directly-follows graph with mean times, handover network."""
    ids = events[s.DOSSIER_ID].to_numpy()
    ts = _micros(events[s.TIMESTAMP])
    act = events[s.ACTIVITY].cat.codes.to_numpy().astype(np.int64)
    res = events[s.OFFICER_ID].cat.codes.to_numpy().astype(np.int64)
    same = np.r_[False, ids[1:] == ids[:-1]]
    starts = np.flatnonzero(~same)
    ends = np.r_[starts[1:], len(ids)]
    durations = ts[ends - 1] - ts[starts]
    n_act = int(act.max()) + 1
    pair = act[:-1][same[1:]] * n_act + act[1:][same[1:]]
    gaps = (ts[1:] - ts[:-1])[same[1:]]
    dfg_count = np.bincount(pair, minlength=n_act * n_act)
    dfg_time = np.bincount(pair, weights=gaps, minlength=n_act * n_act)
    n_res = int(res.max()) + 2
    handover = (res[:-1] + 1)[same[1:]] * n_res + (res[1:] + 1)[same[1:]]
    hand_count = np.bincount(handover, minlength=n_res * n_res)
    return int(len(durations) + (dfg_count > 0).sum() + (hand_count > 0).sum() + dfg_time[0] * 0)


def pm4py_frame(events: pd.DataFrame) -> pd.DataFrame:
    """The log in pm4py's column names (built before the clock starts)."""
    return pd.DataFrame(
        {
            "case:concept:name": events[s.DOSSIER_ID].astype(str),
            "concept:name": events[s.ACTIVITY].astype("string").astype(str),
            "time:timestamp": events[s.TIMESTAMP].dt.tz_convert("UTC"),
            "org:resource": events[s.OFFICER_ID].astype("string").fillna("none").astype(str),
        }
    )


def pm4py_quantities(frame: pd.DataFrame) -> int:
    """pm4py: the same three quantities on the same log."""
    import pm4py

    durations = pm4py.get_all_case_durations(frame)
    dfg, _, _ = pm4py.discover_performance_dfg(frame)
    handover = pm4py.discover_handover_of_work_network(frame)
    return len(durations) + len(dfg) + len(handover.connections)


def run_one(case: str, log_dir: Path) -> dict[str, Any]:
    """One measurement, in this (child) process, pinned to one core."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import pyarrow as pa

    pa.set_cpu_count(1)
    from features.calendar import WorkingCalendar
    from features.catalogue import load_catalogue
    from features.dossiers import dossier_features
    from features.engine import Reference, dossier_stage, entity_stage

    events = load(log_dir)
    calendar = WorkingCalendar.for_country()
    catalogue = load_catalogue(log_dir / "catalogue.yaml")
    agencies = pd.read_csv(log_dir / "agencies.csv", dtype=str)[["agency_id", "unit_type"]]
    frame = pm4py_frame(events) if case == "basic_pm4py" else None
    before = peak_mb()
    start = time.perf_counter()
    if case == "minimal":
        rows = len(minimal_pass(events))
    elif case == "dossier_features":
        rows = len(dossier_features(events, calendar, catalogue=catalogue, agencies=agencies))
    elif case == "stage_a+b":
        ref = Reference(calendar, catalogue, agencies)
        a = dossier_stage(events, ref, None)
        mid = time.perf_counter()
        rows = len(entity_stage(a, ref, events[s.TIMESTAMP].max()).dossiers)
        print(f"  (stage A {mid - start:.1f} s, stage B {time.perf_counter() - mid:.1f} s)",
              file=sys.stderr)  # fmt: skip
    elif case == "basic_ours":
        rows = basic_quantities(events)
    elif case == "basic_pm4py":
        assert frame is not None
        rows = pm4py_quantities(frame)
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "events": len(events), "rows": rows, "peak_mb": peak_mb(),
            "loaded_mb": before}  # fmt: skip


def _child(case: str, log_dir: Path) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.features", "--one", case, str(log_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.stderr.strip():
        print(proc.stderr.strip()[-600:], flush=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_note() -> str:
    """The machine's load beside the core count: other processes share the cores, and a
    load above the core count slows every run (a 2-worker run most)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def one_core(log_dir: Path) -> None:
    print(f"\none core, {log_dir}; {load_note()}")
    header = (f"{'case':<22}{'events':>12}{'seconds':>9}{'events/s':>13}{'peak MB':>9}"
              f"{'+MB run':>10}")  # fmt: skip
    print(header + "\n" + "-" * len(header))
    results: dict[str, dict[str, Any]] = {}
    for case in ("minimal", "dossier_features", "stage_a+b", "basic_ours", "basic_pm4py"):
        r = _child(case, log_dir)
        if r is None:
            print(f"{case:<22} failed")
            continue
        results[case] = r
        print(f"{case:<22}{r['events']:>12,}{r['seconds']:>9.2f}"
              f"{r['events'] / r['seconds']:>13,.0f}{r['peak_mb']:>9.0f}"
              f"{r['peak_mb'] - r['loaded_mb']:>10.0f}", flush=True)  # fmt: skip
    if "minimal" in results and "dossier_features" in results:
        ratio = results["dossier_features"]["seconds"] / results["minimal"]["seconds"]
        print(f"full dossier features / minimal numpy pass: {ratio:.1f}x the time")
    if "basic_ours" in results and "basic_pm4py" in results:
        speed = results["basic_pm4py"]["seconds"] / results["basic_ours"]["seconds"]
        print(f"basic quantities, ours vs pm4py: {speed:.1f}x faster")


def dask_scaling(log_dir: Path, work: Path) -> None:
    from dask.distributed import Client, LocalCluster

    from features.calendar import WorkingCalendar
    from features.catalogue import load_catalogue
    from features.engine import compute_features
    from features.eventstore import EventStore

    store = EventStore(work / f"store-{log_dir.name}", buckets=16)
    if store.version() is None:
        print(f"writing the event store {store.root} ...", flush=True)
        store.append(load(log_dir))
    calendar = WorkingCalendar.for_country()
    catalogue = load_catalogue(log_dir / "catalogue.yaml")
    agencies = pd.read_csv(log_dir / "agencies.csv", dtype=str)[["agency_id", "unit_type"]]
    events = sum(pq_rows(f) for f in store.bucket_files())
    print(f"\nDask on {events:,} events ({len(store.bucket_files())} partitions)")
    print(load_note())
    seconds: dict[int, float] = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, memory_limit="10GiB") as cluster:  # fmt: skip
            with Client(cluster) as client:
                _reset_peak()
                cpu_before = client.run(_cpu_seconds)
                driver_cpu = _cpu_seconds()
                start = time.perf_counter()
                result = compute_features(store, calendar, catalogue=catalogue,
                                          agencies=agencies, engine="dask",
                                          scheduler=cluster.scheduler_address)  # fmt: skip
                seconds[workers] = time.perf_counter() - start
                peaks = client.run(peak_mb)
                driver = peak_mb()
                driver_cpu = _cpu_seconds() - driver_cpu
                cpu = {w: c - cpu_before[w] for w, c in client.run(_cpu_seconds).items()}
        rows = len(result.dossiers)
        del result  # the next cluster's workers must not start beside it
        per_worker = max(peaks.values())
        print(f"workers={workers}  {seconds[workers]:.1f} s  {events / seconds[workers]:,.0f} "
              f"events/s  peak per worker {per_worker:,.0f} MB  driver {driver:,.0f} MB  "
              f"dossiers={rows:,}  ({load_note()})", flush=True)  # fmt: skip
        print(f"           CPU s per worker {' + '.join(f'{c:.0f}' for c in sorted(cpu.values()))}"
              f", driver {driver_cpu:.0f}", flush=True)  # fmt: skip
    print(f"speed-up 2 vs 1 workers: {seconds[1] / seconds[2]:.2f}x")


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--dask-events", type=int, default=0, help="0: skip the Dask runs")
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], Path(args.one[1]))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    one_core(ensure_log(args.work, args.events))
    if args.dask_events:
        dask_scaling(ensure_log(args.work, args.dask_events), args.work)


if __name__ == "__main__":
    main()
