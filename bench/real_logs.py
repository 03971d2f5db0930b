"""Delay-style prediction on real public logs, with the protocol of the data README (Teinemaa
et al. 2019), so the figures compare with its anchors.

    python -m bench.real_logs                 # receipt and traffic fines
    python -m bench.real_logs --log receipt   # one of them

* receipt.xes (Dutch permits): late = ``case:enddate`` after the deadline (``case:deadline``
  -> ``due_at``); a case without an end date is late if its deadline passed before the log
  ends, else dropped. Prefix lengths 1-8. Anchors: LightGBM 0.822, logistic 0.817.
* traffic_fines_full.csv.gz (Italian fines): positive = the case reaches "Send for Credit
  Collection", its prefixes cut before that event; cases ending in "Send Fine" dropped.
  Prefix lengths 1-10. Anchors: LightGBM 0.696 (0.809 pooled), logistic 0.664.

Cases sorted by start and split 80 % / 20 % in time; training prefixes cut at or after the
first test case's start dropped; one model for all prefixes; ROC AUC per prefix length,
averaged with the number of test prefixes as weights. The logs carry no Vietnamese terminal
vocabulary and no catalogue: :func:`features.engine.fit_reference` learns their normal
process, from the training period's events only. The label replaces ``final_late_honest``
in the prefix tables (so the models read it as theirs); the delay model is the product's
:class:`models.delay.DelayModel` (its quantile regressors trimmed to a few rounds: unused
here), calibrated on its own training prefixes since the protocol has no calibration period.
A prefix is the events up to a cut, and cuts are event times: where timestamps tie (the
fines log has dates only), a prefix holds every event of that instant, and its length is
the number of events it holds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.calendar import WorkingCalendar
from features.engine import fit_reference
from features.ingest import IngestOptions, load_events
from models.baselines import LogisticDelay, ProcedureRate
from models.dataset import cut_table
from models.delay import LABEL, DelayModel, dossier_weights
from models.evaluate import auc

KEY = b"bench-real-logs-key-0123456789"
SCORERS = ("delay", "logistic", "procedure_rate")
#: the anchors of the data README (LightGBM, logistic; pooled LightGBM where given).
ANCHORS = {
    "receipt": {"delay": 0.822, "logistic": 0.817},
    "fines": {"delay": 0.696, "logistic": 0.664, "delay_pooled": 0.809},
}


@dataclass(frozen=True)
class Task:
    """A labelled log: events, calendar, one 0/1 label per kept case, and per case the
    instant its prefixes must stay before (NaT: none)."""

    name: str
    events: pd.DataFrame
    calendar: WorkingCalendar
    label: pd.Series
    before: pd.Series
    max_prefix: int
    model: dict[str, Any] = field(default_factory=dict)


def _load(path: Path, tz: str) -> pd.DataFrame:
    return load_events(path, IngestOptions(tz=tz), pseudonym_key=KEY, pseudonym_key_id="bench")


def receipt_task(data_dir: Path) -> Task:
    """receipt.xes, late against the case deadline (the README's label)."""
    events = _load(data_dir / "receipt.xes", "Europe/Amsterdam")
    cases = events.groupby(s.DOSSIER_ID, observed=True).agg(
        end=("case:enddate", "first"), due=(s.DUE_AT, "first")
    )
    end = pd.to_datetime(cases["end"], utc=True, format="ISO8601")
    due = cases["due"].dt.tz_convert("UTC")
    log_end = events[s.TIMESTAMP].max().tz_convert("UTC")
    late = pd.Series(
        np.where(end.notna(), end > due, np.where(due < log_end, 1.0, np.nan)),
        index=cases.index,
        dtype=np.float64,
    )
    calendar = WorkingCalendar.for_country(
        "NL", tz="Europe/Amsterdam", first_year=2009, last_year=2013
    )
    never = pd.Series(pd.NaT, index=cases.index, dtype=events[s.TIMESTAMP].dtype)
    return Task("receipt", events, calendar, late.dropna(), never, 8)


FINES_TARGET = "Send for Credit Collection"


def fines_task(data_dir: Path) -> Task:
    """traffic_fines_full.csv.gz, reaching credit collection (prefixes cut before it)."""
    events = _load(data_dir / "traffic_fines_full.csv.gz", "Europe/Rome")
    by_case = events.groupby(s.DOSSIER_ID, observed=True)
    last = by_case[s.ACTIVITY].last().astype("string")
    hits = events[events[s.ACTIVITY] == FINES_TARGET]
    first_hit = hits.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    keep = last.index[last != "Send Fine"]
    label = pd.Series(keep.isin(first_hit.index).astype(np.float64), index=keep)
    before = first_hit.reindex(keep)
    calendar = WorkingCalendar.for_country("IT", tz="Europe/Rome", first_year=2000, last_year=2014)
    # the outcome is not lateness: no monotone constraints meant for deadlines
    return Task("fines", events, calendar, label, before, 10, {"monotone": False})


def prefix_cuts(task: Task) -> pd.Series:
    """Cut at each of the first ``max_prefix`` events of every labelled case, strictly
    before the case's ``before`` instant."""
    ev = task.events[task.events[s.DOSSIER_ID].isin(task.label.index)]
    position = ev.groupby(s.DOSSIER_ID, observed=True).cumcount().to_numpy()
    ev = ev[position < task.max_prefix]
    limit = task.before.reindex(ev[s.DOSSIER_ID].to_numpy())
    ok = limit.isna().to_numpy() | np.asarray(ev[s.TIMESTAMP].array < limit.array)
    ev = ev[ok]
    return pd.Series(ev[s.TIMESTAMP].array, index=pd.Index(ev[s.DOSSIER_ID]), name="cut")


def run(task: Task, say: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict[str, float]]:
    """AUC by prefix length of the delay model and the baselines, and summary figures."""
    events = task.events
    starts = events.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].min()
    starts = starts.reindex(task.label.index).sort_values(kind="stable")
    test_from = starts.iloc[int(len(starts) * 0.8)]
    test_cases = starts.index[starts >= test_from]
    say(
        f"{task.name}: {len(starts):,} labelled cases, {task.label.mean():.1%} positive; "
        f"test from {test_from:%Y-%m-%d} ({len(test_cases):,} cases)"
    )
    ref = fit_reference(events[events[s.TIMESTAMP] < test_from], task.calendar)
    cuts = prefix_cuts(task)
    started = time.perf_counter()
    table = cut_table(events, ref, cuts)
    say(f"{len(table):,} prefixes in {time.perf_counter() - started:.1f} s")
    ids = table.index.get_level_values(s.DOSSIER_ID)
    table[LABEL] = task.label.reindex(ids).to_numpy()
    test = np.asarray(ids.isin(test_cases))
    cut_at = table.index.get_level_values("cut")
    train = table[~test & np.asarray(cut_at < test_from)]
    test_table = table[test]
    started = time.perf_counter()
    params = {"quantile_rounds": 5, **task.model}
    delay = DelayModel(**params).fit(train, train)
    logistic = LogisticDelay().fit(train, sample_weight=dossier_weights(train))
    rate = ProcedureRate().fit(train)
    say(
        f"models fitted on {len(train):,} training prefixes in "
        f"{time.perf_counter() - started:.1f} s"
    )
    scores = {
        "delay": delay.risk(test_table),
        "logistic": logistic.risk(test_table),
        "procedure_rate": rate.risk(test_table),
    }
    y = test_table[LABEL].to_numpy(dtype=np.float64)
    length = test_table["events"].to_numpy(dtype=np.int64)
    rows = []
    for k in range(1, task.max_prefix + 1):
        at = length == k
        if at.sum():
            row: dict[str, Any] = {
                "prefix": k,
                "prefixes": int(at.sum()),
                "positive": float(y[at].mean()),
            }
            row.update({name: auc(y[at], score[at]) for name, score in scores.items()})
            rows.append(row)
    by_length = pd.DataFrame(rows)
    summary: dict[str, float] = {"test_prefixes": float(len(y))}
    for name, score in scores.items():
        known = by_length[name].notna()
        summary[name] = float(
            np.average(by_length.loc[known, name], weights=by_length.loc[known, "prefixes"])
        )
        summary[f"{name}_pooled"] = auc(y, score)
    return by_length, summary


def _print(task: str, by_length: pd.DataFrame, summary: dict[str, float]) -> None:
    shown = by_length.copy()
    for name in SCORERS:
        shown[name] = shown[name].map(lambda v: f"{v:.3f}")
    shown["positive"] = shown["positive"].map(lambda v: f"{v:.1%}")
    print(shown.to_string(index=False))
    anchors = ANCHORS.get(task, {})
    for name in SCORERS:
        anchor = anchors.get(name)
        pooled = anchors.get(f"{name}_pooled")
        note = f"   (README anchor {anchor:.3f}" if anchor else ""
        note += f", pooled {pooled:.3f})" if pooled else (")" if anchor else "")
        print(
            f"{name:15s} weighted AUC {summary[name]:.3f}  pooled {summary[f'{name}_pooled']:.3f}"
            f"{note}"
        )


def main(argv: list[str] | None = None) -> None:
    from tests.conftest import real_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", choices=("receipt", "fines", "all"), default="all")
    parser.add_argument("--data", type=Path, default=None, help="default: GIAMSAT_DATA_DIR")
    args = parser.parse_args(argv)
    data = args.data or real_data_dir()
    if not (data / "receipt.xes").exists():
        raise SystemExit(f"real logs not found at {data}: set GIAMSAT_DATA_DIR")
    makers = {"receipt": receipt_task, "fines": fines_task}
    for name in ("receipt", "fines") if args.log == "all" else (args.log,):
        started = time.perf_counter()
        task = makers[name](data)
        by_length, summary = run(task)
        print(f"\n== {name}: ROC AUC by prefix length (test period) ==")
        _print(name, by_length, summary)
        print(f"({time.perf_counter() - started:.0f} s)\n")


if __name__ == "__main__":
    main()
