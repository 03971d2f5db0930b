"""Bulk INSERT ... ON CONFLICT for the hot paths (event ingestion, score upserts).

SQLAlchemy's executemany would convert every value in Python and, with pg8000, have the
driver parse a 500-row VALUES list character by character, which costs more than the
insert itself. Here one short statement carries the batch: on PostgreSQL one JSON
parameter (``SELECT ... FROM json_to_recordset(...)``), on SQLite a multi-row VALUES
list run by the C driver. Values are converted once, for the driver, matching what SQLAlchemy itself
stores (UTC; on SQLite the ``YYYY-MM-DD HH:MM:SS.ffffff`` text SQLAlchemy reads back).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

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


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False)


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
        # one JSON parameter, dumped by the C encoder, unpacked by the server
        times = [c.name for c in columns if isinstance(c.type, UTCDateTime)]
        records = []
        for row in rows:
            record = dict(row)
            for name in times:
                value = record[name]
                if value is not None:
                    record[name] = value.isoformat()
            records.append(record)
        shape = ", ".join(f'"{c.name}" {_pg_type(c)}' for c in columns)
        sql = (
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
            f"FROM json_to_recordset(CAST(:rows AS JSON)) AS r({shape}) {tail}"
        )
        params = {"rows": json.dumps(records, allow_nan=False, separators=(",", ":"))}
        result = session.connection().execute(sa.text(sql), params)
        return list(result) if result.returns_rows else []
    convert = [
        _sqlite_time
        if isinstance(c.type, UTCDateTime)
        else _json
        if isinstance(c.type, sa.JSON)
        else None
        for c in columns
    ]
    per_row = max(1, SQLITE_MAX_PARAMS // len(columns))
    placeholder = "(" + ", ".join("?" * len(columns)) + ")"
    connection = session.connection()
    out: list[Any] = []
    for start in range(0, len(rows), per_row):
        chunk = rows[start : start + per_row]
        flat: list[Any] = []
        for row in chunk:
            for column, conv in zip(columns, convert, strict=True):
                value = row[column.name]
                flat.append(conv(value) if conv is not None else value)
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES {", ".join([placeholder] * len(chunk))}'
        result = connection.exec_driver_sql(f"{sql} {tail}", tuple(flat))
        if result.returns_rows:
            out.extend(result)
    return out


def greatest(dialect: str, old: str, new: str) -> str:
    """SQL for the later of two values, ``old`` possibly NULL (``new`` never)."""
    if dialect == "postgresql":
        return f"GREATEST({old}, {new})"  # ignores NULLs
    return f"max(coalesce({old}, {new}), {new})"  # SQLite's max() is NULL if either is
