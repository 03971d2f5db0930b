"""Control-flow integrity on the labelled BPIC 2015 logs (anomalies injected into 30 % of the
cases by the BINet evaluation), scored unsupervised as in the literature: fit on the log,
score the same log, best F1 with the threshold chosen after the fact, and AP.

    python -m bench.integrity_real            # both logs
    python -m bench.integrity_real --log 1    # one of them

Per anomaly type, the recall at the method's best-F1 threshold. Labels are read only here,
to evaluate; no method sees them. :class:`models.integrity_flow.FlowDetector` scores each
case against the counts of the others (``fit_score_samples``);
:class:`models.integrity_selfsup.SelfSupervisedFlow` scores each case by a classifier of
original versus edited traces that never saw it (``selfsup``), and its mean with the flow
score (``selfsup_mix``; each row times a whole fit and score); the baselines, as in the
data README, score every case against counts that include it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from giamsat.settings import get_settings
from models.anomaly_metrics import per_type_table
from models.integrity_baselines import ActivityCountForest, BigramLikelihood, VariantRarity
from models.integrity_flow import FlowDetector
from models.integrity_selfsup import SelfSupervisedFlow
from models.labelled import load_labelled

LOGS = ("1", "2")
TYPES = ("Insert", "Rework", "SkipSequence", "Early", "Late")
#: the data README's figures (F1, AP) for the baselines.
README = {
    "1": {
        "variant_rarity": (0.458, 0.297),
        "bigram": (0.513, 0.432),
        "count_forest": (0.454, 0.325),
    },
    "2": {
        "variant_rarity": (0.455, 0.294),
        "bigram": (0.524, 0.419),
        "count_forest": (0.457, 0.297),
    },
}


def log_paths(data_dir: Path, log: str) -> tuple[Path, Path]:
    """Events and labels files of ``bpic15-0.3-<log>``."""
    folder = data_dir / "bpic15_labelled"
    return folder / f"bpic15-0.3-{log}.events.csv.gz", folder / f"bpic15-0.3-{log}.labels.csv"


def _flow(events: pd.DataFrame) -> pd.Series:
    return FlowDetector().fit_score_samples(events)["flow_score"]


def _selfsup(events: pd.DataFrame) -> pd.DataFrame:
    return SelfSupervisedFlow().fit_score_samples(events)


METHODS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "flow": _flow,
    "selfsup": lambda ev: _selfsup(ev)["selfsup_score"],
    "selfsup_mix": lambda ev: _selfsup(ev)["selfsup_mix"],
    "bigram": lambda ev: BigramLikelihood().fit(ev).score_samples(ev),
    "variant_rarity": lambda ev: VariantRarity().fit(ev).score_samples(ev),
    "count_forest": lambda ev: ActivityCountForest().fit(ev).score_samples(ev),
}


def evaluate_log(
    events: pd.DataFrame, labels: pd.DataFrame, say: Callable[[str], None] = print
) -> pd.DataFrame:
    """One row per method: best F1, AP, recall per type at the best-F1 threshold, seconds."""
    rows = []
    for name, method in METHODS.items():
        say(f"  {name} ...")
        started = time.perf_counter()
        score = method(events)
        seconds = time.perf_counter() - started
        table = per_type_table(labels, score).reindex([*TYPES, "all"]).to_dict("index")
        row: dict[str, float | str] = {
            "method": name,
            "best_f1": float(table["all"]["f1"]),
            "ap": float(table["all"]["ap"]),
        }
        for kind in TYPES:
            row[f"recall_{kind}"] = float(table[kind]["recall"])
        for kind in TYPES:
            row[f"ap_{kind}"] = float(table[kind]["ap"])
        row["seconds"] = seconds
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def run(
    data_dir: Path, logs: tuple[str, ...] = LOGS, say: Callable[[str], None] = print
) -> dict[str, pd.DataFrame]:
    """The table of every method on each log."""
    out = {}
    for log in logs:
        events_path, labels_path = log_paths(data_dir, log)
        say(f"bpic15-0.3-{log}: loading {events_path.name} through the ingestion ...")
        events, labels = load_labelled(events_path, labels_path)
        say(
            f"  {labels.shape[0]} cases, {len(events)} events, "
            f"{labels['is_anomalous'].mean():.0%} anomalous"
        )
        out[log] = evaluate_log(events, labels, say)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", choices=LOGS, action="append", help="which log (default both)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: settings' data_dir")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or get_settings().data_dir
    tables = run(data_dir, tuple(args.log or LOGS))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for log, table in tables.items():
            print(f"\nbpic15-0.3-{log} (README baselines F1/AP: {README[log]})")
            print(table.round(3).to_string())


if __name__ == "__main__":
    main()
