"""A streaming XES reader (plain or gzipped) on lxml: one pass, constant memory per trace.

Returns the raw event table with XES keys as column names (trace attributes prefixed
``case:``); :mod:`features.ingest` maps it onto the canonical schema. Typed XES values keep
their type: ``int`` and ``float`` become numbers, ``boolean`` becomes bool, ``date`` stays
text here and is parsed, vectorised, by the ingestion step.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pandas as pd
from lxml import etree

from features.schema import EventSchemaError

#: the record number of each event in its file (1-based), for error messages.
ROW = "__row__"
_EVENT = "event"
_TRACE = "trace"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _convert(kind: str, value: str | None) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "boolean":
        return value.strip().lower() == "true"
    return value


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast(BinaryIO, gzip.GzipFile(path, "rb"))
    return path.open("rb")


def _attributes(elem: Any, file: str, row: int | None) -> Iterator[tuple[str, Any]]:
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):  # comments, processing instructions
            continue
        kind = _local(tag)
        if kind in (_EVENT, _TRACE):
            continue
        key = child.get("key")
        if key is None:
            raise EventSchemaError(f"<{kind}> without a key", file=file, row=row, column=kind)
        try:
            yield key, _convert(kind, child.get("value"))
        except ValueError as exc:
            raise EventSchemaError(
                f"value {child.get('value')!r} is not a valid {kind}",
                file=file,
                row=row,
                column=key,
            ) from exc


def read_xes(path: str | Path) -> pd.DataFrame:
    """Read an XES or XES.gz log into a raw DataFrame, one row per event, in file order.

    Columns: the event attribute keys, the trace attribute keys prefixed ``case:``, and
    ``__row__`` (1-based event number in the file). Raises :class:`EventSchemaError`
    naming the file (and event) for malformed XML or typed values that do not parse.
    """
    path = Path(path)
    file = str(path)
    columns: dict[str, list[Any]] = {}
    n = 0
    trace_start = 0

    def put(key: str, value: Any, at: int) -> None:
        col = columns.get(key)
        if col is None:
            col = columns[key] = []
        if len(col) > at:  # the same key twice in one event: the last one wins
            col[at] = value
            return
        if len(col) < at:
            col.extend([None] * (at - len(col)))
        col.append(value)

    try:
        with _open(path) as handle:
            context = etree.iterparse(
                handle, events=("end",), tag=("{*}event", "{*}trace"), huge_tree=True
            )
            for _, elem in context:
                if _local(elem.tag) == _EVENT:
                    n += 1
                    for key, value in _attributes(elem, file, n):
                        put(key, value, n - 1)
                    elem.clear()
                    continue
                case_attrs = list(_attributes(elem, file, None))
                for key, value in case_attrs:
                    col = columns.setdefault("case:" + key, [])
                    if len(col) < trace_start:
                        col.extend([None] * (trace_start - len(col)))
                    col.extend([value] * (n - trace_start))
                trace_start = n
                elem.clear(keep_tail=False)
                parent = elem.getparent()
                if parent is not None:
                    while elem.getprevious() is not None:
                        del parent[0]
    except etree.XMLSyntaxError as exc:
        raise EventSchemaError(
            f"malformed XML at line {exc.lineno}: {exc.msg}", file=file, row=n + 1
        ) from exc
    except (OSError, EOFError) as exc:
        raise EventSchemaError(f"cannot read: {exc}", file=file) from exc
    for col in columns.values():
        if len(col) < n:
            col.extend([None] * (n - len(col)))
    frame = pd.DataFrame(columns)
    frame[ROW] = pd.RangeIndex(1, n + 1)
    return frame
