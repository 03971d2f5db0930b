"""Ingestion: any supported log -> canonical events (validated, pseudonymised, sorted).

``load_events`` is the one path every log takes (CLI, tests, simulator output, benchmarks).
It never writes; :class:`features.eventstore.EventStore` persists the result atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features import schema as s
from features.pseudonym import pseudonymise
from features.sources import read_raw
from features.xes import ROW

#: Content hashed into a derived event_id. Attributes are left out on purpose: the same
#: event read from the XES and the CSV export of one log gets the same id.
_ID_CONTENT = (s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP, s.OFFICER_ID, s.AGENCY_ID)
_HASH_KEYS = ("giamsat-event-1a", "giamsat-event-2b")  # 2 x 64 bits: collisions negligible
_OFFSET = r"(?:[+-]\d{2}(?::?\d{2})?|Z)$"


@dataclass(frozen=True)
class IngestOptions:
    """How to read one source: format, delimiter, column mapping, zone, time format."""

    fmt: str | None = None
    sep: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    tz: str = s.DEFAULT_TZ
    time_format: str | None = None
    encoding: str = "utf-8"


def load_events(
    path: str | Path,
    options: IngestOptions | None = None,
    *,
    pseudonym_key: bytes,
    pseudonym_key_id: str,
) -> pd.DataFrame:
    """Read a log and return its canonical events, validated and in canonical order.

    Raises :class:`features.schema.EventSchemaError` naming the file, row and column of the
    first problem; nothing is returned half-converted.
    """
    options = options or IngestOptions()
    file = str(path)
    raw, mapping = read_raw(
        path, fmt=options.fmt, sep=options.sep, mapping=options.mapping, encoding=options.encoding
    )
    rows = raw[ROW].to_numpy()
    try:
        events = to_canonical(
            raw, mapping, options, pseudonym_key=pseudonym_key, pseudonym_key_id=pseudonym_key_id
        )
        # Ids derived from content are unique by construction (128-bit keyed hash of the
        # content and its repeat number): checking them again would double the hashing.
        s.validate_events(events, check_event_ids=s.EVENT_ID in mapping)
    except s.EventSchemaError as exc:
        raise exc.in_file(file, {i + 1: int(r) for i, r in enumerate(rows)}) from exc
    return s.sort_events(events)


def to_canonical(
    raw: pd.DataFrame,
    mapping: Mapping[str, str],
    options: IngestOptions,
    *,
    pseudonym_key: bytes,
    pseudonym_key_id: str,
) -> pd.DataFrame:
    """Rename mapped columns, parse times, normalise channels, pseudonymise, derive ids."""
    required = [c for c in (s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP) if c not in mapping]
    if required:
        raise s.EventSchemaError(
            f"no column for {required} (map one with --map {required[0]}=SOURCE_COLUMN); "
            f"the source has {[c for c in raw.columns if c != ROW][:12]}",
            column=required[0],
        )
    used = set(mapping.values())
    columns: dict[str, pd.Series] = {t: raw[src] for t, src in mapping.items()}
    for col in s.TIME_COLUMNS:
        if col in columns:
            columns[col] = parse_times(columns[col], col, options.tz, options.time_format)
    if s.CHANNEL in columns:
        columns[s.CHANNEL] = normalise_channel(columns[s.CHANNEL])
    for col in s.IDENTITY_COLUMNS:
        if col in columns:
            columns[col] = pseudonymise(columns[col], pseudonym_key, pseudonym_key_id)
    columns[s.SEQ] = pd.Series(raw[ROW].to_numpy(dtype=np.int64) - 1, index=raw.index)
    attributes = {c: _storable(raw[c]) for c in raw.columns if c not in used and c != ROW}
    attributes = {c: v for c, v in attributes.items() if c not in s.CANONICAL_COLUMNS}
    frame = pd.DataFrame({**columns, **attributes}, index=raw.index)
    if s.EVENT_ID in columns:
        return s.coerce_events(frame, tz=options.tz)
    # Coerce first: the repeated text columns become categoricals, whose few distinct
    # values are then hashed once each.
    frame[s.EVENT_ID] = pd.Series(pd.NA, index=frame.index, dtype="string")
    frame = s.coerce_events(frame, tz=options.tz)
    frame[s.EVENT_ID] = derive_event_ids(frame)
    return frame


def parse_times(
    values: pd.Series, column: str, tz: str, time_format: str | None = None
) -> pd.Series:
    """Parse a column of timestamps into ``tz``; naive ones are read in ``tz``.

    A column must be all naive or all with an offset: mixing them is ambiguous and is
    refused, naming the first row that differs from the first one.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(tz)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return _localize(values, column, tz)
    text = values.astype("string").str.strip()
    present = text.notna().to_numpy()
    if not present.any():
        return pd.Series(pd.NaT, index=values.index, dtype=f"datetime64[us, {tz}]")
    fmt = time_format or "ISO8601"
    try:
        # Fast path: one offset for all values, or none at all.
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError:
        parsed = _parse_mixed_offsets(text, present, column, fmt)
    bad = present & parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise s.EventSchemaError(
            f"cannot parse {text.iloc[row - 1]!r} as a timestamp ({fmt})", row=row, column=column
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert(tz)
    return _localize(parsed, column, tz)


def _parse_mixed_offsets(text: pd.Series, present: np.ndarray, column: str, fmt: str) -> pd.Series:
    """Values with different offsets (daylight saving) are fine; naive among aware is not."""
    aware = text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
    if (present & ~aware).any():
        first_kind = aware[np.flatnonzero(present)[0]]
        row = int(np.flatnonzero(present & (aware != first_kind))[0]) + 1
        raise s.EventSchemaError(
            "timestamps with and without a UTC offset are mixed in one column "
            f"(e.g. {text.iloc[row - 1]!r}); give every value an offset or none",
            row=row,
            column=column,
        )
    return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)


def _localize(values: pd.Series, column: str, tz: str) -> pd.Series:
    try:
        return values.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except (ValueError, TypeError) as exc:
        raise s.EventSchemaError(
            f"local time does not exist or is ambiguous in {tz}: {exc}", column=column
        ) from exc


def normalise_channel(values: pd.Series) -> pd.Series:
    """Map channel spellings (Internet, Desk, Post...) onto online / in_person / postal."""
    text = values.astype("string").str.strip()
    known = text.str.lower().map(s.CHANNEL_SYNONYMS)
    return known.fillna(text).astype("string")


def derive_event_ids(frame: pd.DataFrame) -> pd.Series:
    """Event ids from the rows' content, so that re-ingesting the same log adds nothing.

    Identical rows (same dossier, activity, time, officer, agency) are numbered in source
    order, so true repeats stay distinct events and still get the same ids every time.
    Each distinct value is hashed once (a keyed hash of its text, independent of the file
    it came from); the per-column hashes are then mixed row by row with numpy.
    """
    a = np.full(len(frame), 0x9E3779B97F4A7C15, dtype=np.uint64)
    b = np.full(len(frame), 0xC2B2AE3D27D4EB4F, dtype=np.uint64)
    for col in _ID_CONTENT:
        if col not in frame.columns:
            continue
        ha, hb = _column_hashes(frame[col])
        a, b = _mix(a ^ ha), _mix(b ^ hb)
    repeat = pd.Series(a).groupby(a, sort=False).cumcount().to_numpy(dtype=np.uint64)
    a, b = _mix(a ^ _mix(repeat)), _mix(b ^ _mix(repeat + np.uint64(1)))
    return pd.Series(_hex128(a, b), index=frame.index, dtype="string")


def _column_hashes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = values.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
        stamps = stamps.astype(np.uint64)
        return _mix(stamps), _mix(stamps ^ np.uint64(0x5851F42D4C957F2D))
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        text = pd.Series(values.cat.categories.astype("string"), dtype="string")
    else:
        codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=True)
        text = pd.Series(uniques, dtype="string")
    ua = pd.util.hash_pandas_object(text, index=False, hash_key=_HASH_KEYS[0]).to_numpy()
    ub = pd.util.hash_pandas_object(text, index=False, hash_key=_HASH_KEYS[1]).to_numpy()
    missing = np.uint64(0x2545F4914F6CDD1D)
    ua, ub = np.r_[ua, missing], np.r_[ub, missing]
    return ua[codes], ub[codes]  # code -1 (missing) picks the last entry


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of 64-bit words."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex128(a: np.ndarray, b: np.ndarray) -> pd.arrays.ArrowStringArray:
    raw = np.stack([a.astype(">u8"), b.astype(">u8")], axis=1).view(np.uint8).reshape(-1, 16)
    chars = np.empty((len(a), 32), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 0x0F]
    # Build the Arrow string array straight from the ASCII buffer: no Python objects.
    offsets = pa.py_buffer(np.arange(0, 32 * (len(a) + 1), 32, dtype=np.int32))
    strings = pa.Array.from_buffers(pa.string(), len(a), [None, offsets, pa.py_buffer(chars)])
    return pd.arrays.ArrowStringArray(strings)


def _storable(values: pd.Series) -> pd.Series:
    """Attribute columns as they came, but of one type each so that Parquet can hold them."""
    if values.dtype != object:
        return values
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float"):
        return pd.to_numeric(values, errors="coerce")
    if inferred == "boolean":
        return values.astype("boolean")
    return values.astype("string")
