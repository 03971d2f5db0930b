"""Simulator benchmark: generation speed and peak memory.

    python -m bench.simulate                      # one province-year, events/s
    python -m bench.simulate --events 10000000    # ~10 M events streamed to Parquet

Prints events/s and the peak resident memory (``resource.getrusage`` maxrss).
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from simulator import SimulationConfig, simulate

#: events of one average province-year with the default parameters (measured).
EVENTS_PER_PROVINCE_YEAR = 1_000_000


def _peak_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def run(events: int, out: Path, seed: int) -> None:
    provinces = max(1, math.ceil(events / EVENTS_PER_PROVINCE_YEAR))
    config = SimulationConfig(provinces=provinces, months=12, seed=seed)
    started = time.perf_counter()
    result = simulate(config, out, progress=True)
    seconds = time.perf_counter() - started
    size = result.events_path.stat().st_size / 2**20
    print(
        f"provinces={provinces} months=12 dossiers={result.dossiers:,} events={result.events:,}\n"
        f"time={seconds:.1f} s  speed={result.events / seconds:,.0f} events/s  "
        f"per province-year={seconds / provinces:.1f} s\n"
        f"events.parquet={size:,.0f} MiB  peak RSS={_peak_mib():,.0f} MiB"
    )


def main(
    events: Annotated[int, typer.Option(help="target number of events")] = (
        EVENTS_PER_PROVINCE_YEAR
    ),
    out: Annotated[Path | None, typer.Option(help="default: a temporary folder")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Generate ``events`` events (whole province-years) and print speed and peak memory."""
    if out is not None:
        run(events, out, seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(events, Path(tmp), seed)


if __name__ == "__main__":
    typer.run(main)
