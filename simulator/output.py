"""From a simulated province to canonical events (Arrow tables) and label frames.

Identities: the simulator knows the raw identifiers (12-digit citizen ID numbers, 10-digit
tax codes); the canonical schema carries only keyed pseudonyms
(:func:`features.pseudonym.pseudonymise` with the key of ``giamsat.settings``), so that is
what is written, unless ``raw_identities`` asks for a source-like log to test ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import Catalogue
from features.pseudonym import pseudonymise
from simulator.arrivals import CHANNEL_NAMES
from simulator.engine import ProvinceRun
from simulator.routes import ACT

SECOND = 1_000_000_000
ATTRIBUTE_VIA = "via"


def wall_ns(calendar: WorkingCalendar, w: np.ndarray) -> np.ndarray:
    """UTC nanoseconds of the earliest instant with office time ``w`` (seconds)."""
    w = np.asarray(w, dtype=np.int64)
    if not len(w):
        return np.zeros(0, dtype=np.int64)
    epoch = pd.Timestamp(calendar.first_year, 1, 1).tz_localize(calendar.tz)
    found = calendar.add_working_days(epoch, w / calendar.day_seconds)
    ns = np.asarray(pd.DatetimeIndex(found).as_unit("ns").asi8, dtype=np.int64)
    return (np.rint(ns / SECOND) * SECOND).astype(np.int64)


@dataclass
class Identities:
    """Per-dossier identity strings as written (pseudonyms or raw ids)."""

    applicant: np.ndarray
    submitter: np.ndarray
    intermediary: np.ndarray  # per intermediary index

    def entity(self, value: object) -> object:
        """Resolve an ``@intermediary:<i>`` placeholder of the labels."""
        if isinstance(value, str) and value.startswith("@intermediary:"):
            return self.intermediary[int(value.split(":", 1)[1])]
        return value


def identities(run: ProvinceRun, key: bytes, key_id: str, raw: bool) -> Identities:
    d, people = run.dossiers, run.people
    app = np.where(
        d.is_business,
        people.business_ids[np.minimum(d.applicant, len(people.business_ids) - 1)],
        people.citizen_ids[np.minimum(d.applicant, len(people.citizen_ids) - 1)],
    )
    sub = np.where(d.submitter >= 0, people.intermediary_ids[np.maximum(d.submitter, 0)], app)
    if raw:
        return Identities(app, sub, people.intermediary_ids)
    every = np.concatenate([app, sub, people.intermediary_ids])
    hashed = pseudonymise(pd.Series(every, dtype="string"), key, key_id).to_numpy(dtype=object)
    n = len(app)
    return Identities(hashed[:n], hashed[n : 2 * n], hashed[2 * n :])


@dataclass
class Frozen:
    """Per-province arrays computed once and sliced per batch."""

    dossier_ids: np.ndarray
    t: np.ndarray  # event wall ns, UTC
    recorded: np.ndarray
    due: np.ndarray  # per dossier, UTC ns
    order: np.ndarray  # event rows in output order


def freeze(run: ProvinceRun, calendar: WorkingCalendar, seed: int) -> Frozen:
    """Wall-clock times, deadlines, recording delays and dossier ids of a province."""
    ev = run.events
    rng = np.random.default_rng([seed, run.province.index, 7])
    t = wall_ns(calendar, ev.w)
    t = np.where(ev.t_override >= 0, ev.t_override, t)
    order = np.lexsort((ev.ord, t, ev.dossier))
    delay = np.minimum(rng.lognormal(np.log(40.0), 1.0, len(ev)), 1800.0)
    delay = np.where(ev.activity == ACT[s.RECEIVED], rng.uniform(1, 10, len(ev)), delay)
    recorded = t + (delay * SECOND).astype(np.int64) + ev.late_record * SECOND
    n = len(run.dossiers)
    first, _ = ev.bounds(n)
    received = pd.Series(pd.DatetimeIndex(t[first].astype("datetime64[ns]")).tz_localize("UTC"))
    due = calendar.deadline(received, run.statutory / calendar.day_seconds)
    due_ns = np.asarray(pd.DatetimeIndex(due).as_unit("ns").asi8, dtype=np.int64)
    local = (
        pd.DatetimeIndex(run.dossiers.arrival_ns.astype("datetime64[ns]"))
        .tz_localize("UTC")
        .tz_convert(calendar.tz)
    )
    ymd = (local.year % 100) * 10_000 + local.month * 100 + local.day
    serial = np.char.zfill((np.arange(n) + 1).astype(str), 6)
    ids = np.char.add(
        np.char.add(
            np.char.add(f"{run.province.code}-", np.char.zfill(np.asarray(ymd).astype(str), 6)), "-"
        ),
        serial,
    ).astype(object)
    return Frozen(ids, t, recorded, due_ns, order)


def _dictionary(indices: np.ndarray, values: list[str] | np.ndarray) -> pa.DictionaryArray:
    idx = np.asarray(indices, dtype=np.int32)
    mask = idx < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(mask, 0, idx), mask=mask if mask.any() else None),
        pa.array(list(values), type=pa.string()),
    )


def event_table(
    run: ProvinceRun,
    frozen: Frozen,
    ident: Identities,
    catalogue: Catalogue,
    tz: str,
    dossier_lo: int,
    dossier_hi: int,
    seq_offset: int,
) -> pa.Table:
    """Canonical events of dossiers ``[dossier_lo, dossier_hi)`` as an Arrow table."""
    ev = run.events
    rows = frozen.order
    sel = rows[(ev.dossier[rows] >= dossier_lo) & (ev.dossier[rows] < dossier_hi)]
    d = ev.dossier[sel]
    n = len(sel)
    change = np.r_[True, d[1:] != d[:-1]] if n else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(change)
    pos = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    dossiers = run.dossiers
    agencies = run.province.agencies
    ts = pa.timestamp("us", tz=tz)
    dossier_id = pa.array(frozen.dossier_ids[d], type=pa.string())
    pos_text = pc.utf8_lpad(pa.array(pos + 1).cast(pa.string()), width=2, padding="0")
    procs = list(catalogue)
    levels = np.array([p.level for p in procs], dtype=object)[dossiers.procedure[d]]
    jurisdiction = np.where(levels == "commune", dossiers.commune[d] + 1, 0)
    rating = ev.rating[sel].astype(np.float64)
    columns = {
        s.DOSSIER_ID: dossier_id,
        s.EVENT_ID: pc.binary_join_element_wise(dossier_id, pos_text, "-"),
        s.ACTIVITY: _dictionary(ev.activity[sel], list(s.ACTIVITIES)),
        s.TIMESTAMP: pa.array(frozen.t[sel] // 1000, type=ts),
        s.AGENCY_ID: _dictionary(ev.agency[sel], agencies["agency_id"].to_numpy()),
        s.OFFICER_ID: _dictionary(ev.officer[sel], run.staff.officer_id),
        s.PROCEDURE_CODE: _dictionary(dossiers.procedure[d], [p.code for p in procs]),
        s.JURISDICTION: _dictionary(jurisdiction, [run.province.code, *run.province.commune_codes]),
        s.APPLICANT_ID: pa.array(ident.applicant[d], type=pa.string()),
        s.SUBMITTER_ID: pa.array(ident.submitter[d], type=pa.string()),
        s.CHANNEL: _dictionary(dossiers.channel[d], list(CHANNEL_NAMES)),
        s.DUE_AT: pa.array(frozen.due[d] // 1000, type=ts),
        s.RECORDED_AT: pa.array(frozen.recorded[sel] // 1000, type=ts),
        s.RATING: pa.array(rating, mask=rating == 0),
        s.TARGET_AGENCY_ID: _dictionary(ev.target[sel], agencies["agency_id"].to_numpy()),
        s.SEQ: pa.array(seq_offset + np.arange(n, dtype=np.int64)),
        ATTRIBUTE_VIA: _dictionary(ev.via[sel], list(CHANNEL_NAMES)),
    }
    return pa.table(columns)


def as_plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (one Parquet schema for every part)."""
    arrays = [
        col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col for col in table.columns
    ]
    return pa.table(arrays, names=table.column_names)


def dossier_labels(run: ProvinceRun, frozen: Frozen, ident: Identities) -> pd.DataFrame:
    """One row per dossier: honest lateness, reported punctuality, injected anomaly."""
    return pd.DataFrame(
        {
            "dossier_id": frozen.dossier_ids,
            "late": run.late,
            "reported_on_time": run.reported_on_time,
            "anomaly_type": pd.Series(run.labels.anomaly, dtype="string"),
            "entity": pd.Series([ident.entity(e) for e in run.labels.entity], dtype="string"),
        }
    )


def entity_labels(run: ProvinceRun, ident: Identities) -> pd.DataFrame:
    rows = [dict(r, entity_id=ident.entity(r["entity_id"])) for r in run.labels.entities]
    frame = pd.DataFrame(rows, columns=["entity_type", "entity_id", "anomaly_type"])
    return frame.drop_duplicates(ignore_index=True)
