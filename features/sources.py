"""Readers of raw logs (CSV with any delimiter, Parquet, XES) into a raw table, and the
column mapping from a source's own names onto the canonical schema."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from features import schema as s
from features.xes import ROW, read_xes

FORMATS = ("csv", "parquet", "xes")

#: Source column names recognised without any mapping, per canonical column (lower-case).
#: The process-mining standard keys come first.
AUTO_MAPPING: dict[str, tuple[str, ...]] = {
    s.DOSSIER_ID: ("dossier_id", "case:concept:name", "case_id", "case id", "caseid"),
    s.EVENT_ID: ("event_id", "eventid", "event id"),
    s.ACTIVITY: ("activity", "concept:name", "activity_name"),
    s.TIMESTAMP: ("timestamp", "time:timestamp", "complete timestamp"),
    s.AGENCY_ID: ("agency_id", "org:group"),
    s.OFFICER_ID: ("officer_id", "org:resource", "resource"),
    s.PROCEDURE_CODE: ("procedure_code",),
    s.JURISDICTION: ("jurisdiction",),
    s.APPLICANT_ID: ("applicant_id",),
    s.SUBMITTER_ID: ("submitter_id",),
    s.CHANNEL: ("channel", "case:channel"),
    s.DUE_AT: ("due_at", "case:deadline"),
    s.RECORDED_AT: ("recorded_at",),
    s.RATING: ("rating",),
    s.TARGET_AGENCY_ID: ("target_agency_id",),
}

#: Canonical columns always read as text, whatever the values look like ("007" stays "007").
TEXT_COLUMNS = (
    s.DOSSIER_ID,
    s.EVENT_ID,
    s.ACTIVITY,
    s.AGENCY_ID,
    s.OFFICER_ID,
    s.PROCEDURE_CODE,
    s.JURISDICTION,
    s.APPLICANT_ID,
    s.SUBMITTER_ID,
    s.CHANNEL,
    s.TARGET_AGENCY_ID,
    *s.TIME_COLUMNS,
)


def detect_format(path: Path) -> str:
    """The format of a log from its name: csv, parquet or xes (gzip allowed for csv and xes)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".parquet", ".pq")) or path.is_dir():
        return "parquet"
    if name.endswith(".xes"):
        return "xes"
    raise s.EventSchemaError(
        f"unknown log format {path.suffix!r} (expected .csv, .parquet or .xes, "
        "optionally .gz; or pass the format)",
        file=str(path),
    )


def load_mapping_file(path: str | Path) -> dict[str, str]:
    """Read a mapping file (YAML or JSON object ``canonical_column: source_column``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise s.EventSchemaError(f"cannot read mapping: {exc}", file=str(path)) from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise s.EventSchemaError(
            "a mapping file holds one 'canonical_column: source_column' per line", file=str(path)
        )
    return {str(k): v for k, v in data.items()}


def resolve_mapping(
    source_columns: list[str], mapping: Mapping[str, str] | None, file: str
) -> dict[str, str]:
    """Map canonical column -> source column: explicit entries first, then automatic names."""
    explicit = dict(mapping or {})
    unknown = [k for k in explicit if k not in s.CANONICAL_COLUMNS or k == s.SEQ]
    if unknown:
        raise s.EventSchemaError(
            f"cannot map onto unknown canonical column(s) {unknown}; "
            f"known: {list(s.CANONICAL_COLUMNS[:-1])}",
            file=file,
            column=unknown[0],
        )
    absent = {k: v for k, v in explicit.items() if v not in source_columns}
    if absent:
        target, source = next(iter(absent.items()))
        raise s.EventSchemaError(
            f"mapping {target}={source}: the source has no column {source!r} "
            f"(it has {source_columns[:12]})",
            file=file,
            column=source,
        )
    resolved = dict(explicit)
    taken = set(explicit.values())
    lower = {c.lower(): c for c in reversed(source_columns)}
    for target, names in AUTO_MAPPING.items():
        if target in resolved:
            continue
        for name in names:
            found = lower.get(name)
            if found is not None and found not in taken:
                resolved[target] = found
                taken.add(found)
                break
    return resolved


def sniff_delimiter(path: Path, file: str) -> str:
    """Guess a CSV file's delimiter from its first lines."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            # bad bytes are reported with their row by the full read, not here
            sample = handle.read(64 * 1024).decode("utf-8", errors="replace")
    except OSError as exc:
        raise s.EventSchemaError(f"cannot read: {exc}", file=file) from exc
    if not sample.strip():
        raise s.EventSchemaError("empty file", file=file)
    header = sample.splitlines()[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _encoding_error_row(path: Path, exc: Exception) -> int | None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return data[: err.start].count(b"\n")  # header is line 1, so this is the data row
    return None


def read_csv(
    path: Path, *, sep: str | None, mapping: Mapping[str, str] | None, encoding: str = "utf-8"
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a CSV log (any delimiter; .gz allowed); return the raw table and the mapping."""
    file = str(path)
    delimiter = sep or sniff_delimiter(path, file)
    names = _header_names(path, delimiter, encoding, file)
    resolved = resolve_mapping(names, mapping, file)
    text = {resolved[c]: pa.string() for c in TEXT_COLUMNS if c in resolved}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=text, null_values=[""], strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from exc
    except (OSError, pa.ArrowException) as exc:
        raise s.EventSchemaError(f"cannot read: {exc}", file=file) from exc
    if table.num_rows == 0:
        raise s.EventSchemaError("no events (the file has a header but no rows)", file=file)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    # A trailing delimiter makes an unnamed, empty column: it carries nothing.
    blank = [c for c in frame.columns if c.startswith("_unnamed_") and frame[c].isna().all()]
    frame = frame.drop(columns=blank)
    frame[ROW] = pd.RangeIndex(1, len(frame) + 1)
    return frame, resolved


def _header_names(path: Path, delimiter: str, encoding: str, file: str) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline()
    except OSError as exc:
        raise s.EventSchemaError(f"cannot read: {exc}", file=file) from exc
    try:
        line = first.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise s.EventSchemaError(
            f"the header is not valid {encoding} text ({exc.reason})", file=file, row=0
        ) from exc
    row = next(csv.reader([line], delimiter=delimiter), None)
    if not row or not any(name.strip() for name in row):
        raise s.EventSchemaError("empty file", file=file)
    names = [name.strip() or f"_unnamed_{i}" for i, name in enumerate(row)]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise s.EventSchemaError("the header repeats a column name", file=file, column=dup)
    return names


def _csv_error(path: Path, exc: Exception) -> s.EventSchemaError:
    message = str(exc)
    file = str(path)
    if "UTF8" in message.upper() or "utf-8" in message.lower():
        row = _encoding_error_row(path, exc)
        return s.EventSchemaError(
            "not valid UTF-8 text (pass the file's encoding, or re-save it as UTF-8)",
            file=file,
            row=row,
        )
    if "Empty CSV file" in message:
        return s.EventSchemaError("empty file", file=file)
    return s.EventSchemaError(f"malformed CSV: {message}", file=file)


def read_parquet(path: Path, mapping: Mapping[str, str] | None) -> tuple[pd.DataFrame, dict]:
    """Read a Parquet file or dataset directory."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise s.EventSchemaError(f"cannot read Parquet: {exc}", file=str(path)) from exc
    if len(frame) == 0:
        raise s.EventSchemaError("no events", file=str(path))
    frame = frame.reset_index(drop=True)
    frame[ROW] = pd.RangeIndex(1, len(frame) + 1)
    return frame, resolve_mapping(list(frame.columns), mapping, str(path))


def read_raw(
    path: str | Path,
    *,
    fmt: str | None = None,
    sep: str | None = None,
    mapping: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read any supported log; return the raw table (with ``__row__``) and its column mapping."""
    path = Path(path)
    if not path.exists():
        raise s.EventSchemaError("no such file", file=str(path))
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return read_csv(path, sep=sep, mapping=mapping, encoding=encoding)
    if fmt == "parquet":
        return read_parquet(path, mapping)
    if fmt == "xes":
        frame = read_xes(path)
        if len(frame) == 0:
            raise s.EventSchemaError("no events in the log", file=str(path))
        return frame, resolve_mapping(list(frame.columns), mapping, str(path))
    raise s.EventSchemaError(f"unknown format {fmt!r}; expected one of {FORMATS}", file=str(path))
