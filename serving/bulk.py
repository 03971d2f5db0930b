"""Bulk INSERT ... ON CONFLICT for the hot paths (event ingestion, score upserts).

SQLAlchemy's executemany would convert every value in Python and, with pg8000, have the
driver parse a 500-row VALUES list character by character, which costs more than the
insert itself. Here one short statement carries the batch: on PostgreSQL one JSON
parameter (``SELECT ... FROM json_to_recordset(...)``; COPY through pg8000 measured four
times slower: the driver sends the stream in Python), on SQLite a multi-row VALUES
list run by the C driver. Values are converted once, for the driver, matching what SQLAlchemy itself
stores (UTC; on SQLite the ``YYYY-MM-DD HH:MM:SS.ffffff`` text SQLAlchemy reads back).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.tables import UTCDateTime

#: SQLite's default limit of bound parameters per statement (since 3.32).
SQLITE_MAX_PARAMS = 32_766


def dialect_of(session: Session) -> str:
    """``sqlite`` or ``postgresql`` (the two the store runs on)."""
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"the service store runs on SQLite or PostgreSQL, not {name}")
    return name


def _pg_type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "TIMESTAMPTZ"
    if isinstance(kind, sa.Float):
        return "DOUBLE PRECISION"
    if isinstance(kind, sa.BigInteger):
        return "BIGINT"
    if isinstance(kind, sa.Integer):
        return "INTEGER"
    if isinstance(kind, sa.Boolean):
        return "BOOLEAN"
    if isinstance(kind, sa.JSON):
        return "JSON"
    return "TEXT"


def _sqlite_time(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(sep=" ", timespec="microseconds")[:26]  # without "+00:00"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False)


def _orjson_default(value: Any) -> Any:
    to_py = getattr(value, "to_pydatetime", None)  # pandas Timestamps
    if to_py is not None:
        return to_py()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def pg_recordset(table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """``rows`` as one JSON text (dumped by orjson, which writes datetimes as ISO 8601
    with their offset itself: a tenth of the json module's time with the conversions it
    needed), unpacked by the server with ``json_to_recordset(text) AS r(<shape>)``, and
    that shape. A NaN would become null: callers store None for missing numbers already."""
    columns = [table.c[name] for name in rows[0]]
    shape = ", ".join(f'"{c.name}" {_pg_type(c)}' for c in columns)
    nested = [c.name for c in columns if isinstance(c.type, sa.JSON)]
    if any(row[name] is not None for row in rows for name in nested):
        # JSON values go in as the json module writes them: orjson refuses integers past
        # 64 bits, which an attribute may carry
        rows = [
            {
                **row,
                **{n: orjson.Fragment(json.dumps(row[n])) for n in nested if row[n] is not None},
            }
            for row in rows
        ]
    return shape, orjson.dumps(rows, default=_orjson_default).decode()


def bulk_insert(
    session: Session,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    tail: str = "",
) -> list[Any]:
    """Insert ``rows`` (all with the same keys) with ``tail`` appended (an ON CONFLICT and
    RETURNING clause, written for both dialects); returns the rows RETURNING gave."""
    if not rows:
        return []
    columns = [table.c[name] for name in rows[0]]
    names = ", ".join(f'"{c.name}"' for c in columns)
    if dialect_of(session) == "postgresql":
        shape, payload = pg_recordset(table, rows)
        sql = (
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
            f"FROM json_to_recordset(CAST(:rows AS JSON)) AS r({shape}) {tail}"
        )
        params = {"rows": payload}
        result = session.connection().execute(sa.text(sql), params)
        return list(result) if result.returns_rows else []
    per_row = max(1, SQLITE_MAX_PARAMS // len(columns))
    placeholder = "(" + ", ".join("?" * len(columns)) + ")"
    connection = session.connection()
    out: list[Any] = []
    for start in range(0, len(rows), per_row):
        chunk = rows[start : start + per_row]
        # column by column (list comprehensions), then interleaved row by row
        values = [_sqlite_column(c, [row[c.name] for row in chunk]) for c in columns]
        flat = tuple(chain.from_iterable(zip(*values, strict=True)))
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES {", ".join([placeholder] * len(chunk))}'
        result = connection.exec_driver_sql(f"{sql} {tail}", flat)
        if result.returns_rows:
            out.extend(result)
    return out


def _sqlite_column(column: sa.Column[Any], values: list[Any]) -> list[Any]:
    if isinstance(column.type, sa.JSON):
        return [_json(v) for v in values]
    if not isinstance(column.type, UTCDateTime):
        return values
    texts: dict[datetime, str | None] = {}  # a batch repeats its times (ingested_at...)
    out = []
    for value in values:
        text = texts.get(value) if value is not None else None
        if text is None and value is not None:
            text = texts[value] = _sqlite_time(value)
        out.append(text)
    return out


def greatest(dialect: str, old: str, new: str) -> str:
    """SQL for the later of two values, ``old`` possibly NULL (``new`` never)."""
    if dialect == "postgresql":
        return f"GREATEST({old}, {new})"  # ignores NULLs
    return f"max(coalesce({old}, {new}), {new})"  # SQLite's max() is NULL if either is
