"""Queries of the service store: live event ingestion and dossiers with their current scores.

Functions take a :class:`~sqlalchemy.orm.Session` inside a transaction
(:meth:`serving.db.Store.transaction`) and never commit: the caller's transaction makes a
batch land whole or not at all. Alerts live in :mod:`serving.alerts`, users and keys in
:mod:`serving.users`, the audit log in :mod:`serving.audit`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features import schema as s
from serving.bulk import bulk_insert, dialect_of, greatest, pg_recordset
from serving.errors import InvalidEventError, NotFoundError
from serving.tables import ID_LENGTH, dossiers, events
from serving.users import User, restrict

__all__ = [
    "IngestResult",
    "add_events",
    "clean_event",
    "dossier_events",
    "get_dossier",
    "dossier_query",
    "list_dossiers",
    "upsert_scores",
]

_REQUIRED_IDS = (s.EVENT_ID, s.DOSSIER_ID, s.ACTIVITY)
_OPTIONAL_IDS = (
    s.AGENCY_ID,
    s.OFFICER_ID,
    s.PROCEDURE_CODE,
    s.JURISDICTION,
    s.APPLICANT_ID,
    s.SUBMITTER_ID,
    s.TARGET_AGENCY_ID,
)
_OPTIONAL_TIMES = (s.DUE_AT, s.RECORDED_AT)
_KNOWN = frozenset((*_REQUIRED_IDS, *_OPTIONAL_IDS, *s.TIME_COLUMNS, s.CHANNEL, s.RATING, s.SEQ))
_SCORE_FIELDS = (
    "status",
    "delay_risk",
    "remaining_days_p50",
    "remaining_days_p90",
    "waste_score",
    "integrity_score",
    "risk_score",
    "reasons",
)


@dataclass(frozen=True)
class IngestResult:
    """What a batch did: events stored now, and events already stored (ignored)."""

    new: int
    duplicate: int


def _records(batch: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(batch, pd.DataFrame):
        frame = batch.astype(object).where(batch.notna(), None)
        return frame.to_dict("records")  # type: ignore[return-value]
    return list(batch)


def add_events(
    session: Session,
    batch: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> IngestResult:
    """Store a batch of canonical events, idempotently on ``event_id``.

    The whole batch is checked first: an invalid event raises :class:`InvalidEventError`
    naming its index, field and event_id, before anything is written. Events already
    stored are skipped (``ON CONFLICT DO NOTHING``), so re-sending a batch adds nothing;
    order does not matter. The dossiers of new events are created or marked as changed
    (``events_changed_at``), which tells the scorer what to rescore.
    """
    stamp = now or datetime.now(UTC)
    if stamp.tzinfo is None:
        raise ValueError("now must be tz-aware")
    unique: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(_records(batch)):
        if not isinstance(record, Mapping):
            raise InvalidEventError(
                f"expected a mapping of fields, got {type(record).__name__}",
                index=index,
                field="*",
                event_id=None,
            )
        row = _clean_event(index, record)
        row["ingested_at"] = stamp
        seen = unique.setdefault(row[s.EVENT_ID], row)
        if seen is not row and seen != row:
            raise InvalidEventError(
                "event_id repeated in the batch with different content",
                index=index,
                field=s.EVENT_ID,
                event_id=row[s.EVENT_ID],
            )
    if not unique:
        return IngestResult(0, 0)
    rows = list(unique.values())
    if dialect_of(session) == "postgresql":
        new = _pg_add_events(session, rows, stamp)
        return IngestResult(new=new, duplicate=len(rows) - new)
    stored = bulk_insert(
        session, events, rows, "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    new_ids = {r[0] for r in stored}
    if new_ids:
        _touch_dossiers(session, [r for r in rows if r[s.EVENT_ID] in new_ids], stamp)
    return IngestResult(new=len(new_ids), duplicate=len(rows) - len(new_ids))


def _first(column: str) -> str:
    """SQL: the first non-null value of ``column`` in time order, within a dossier."""
    return (
        f'(array_agg({column} ORDER BY "timestamp", event_id) '
        f"FILTER (WHERE {column} IS NOT NULL))[1]"
    )


def _pg_add_events(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """PostgreSQL: the events and their dossiers in one statement (one round trip), with
    the same meaning as the two statements of the SQLite path."""
    shape, payload = pg_recordset(events, rows)
    names = ", ".join(f'"{name}"' for name in rows[0])
    sql = f"""
        WITH new AS (
            INSERT INTO events ({names})
            SELECT {names} FROM json_to_recordset(CAST(:rows AS JSON)) AS r({shape})
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id, dossier_id, "timestamp", procedure_code, jurisdiction, agency_id
        ), touched AS (
            INSERT INTO dossiers (dossier_id, procedure_code, jurisdiction, agency_id,
                                  last_event_at, events_changed_at)
            SELECT dossier_id, {_first("procedure_code")}, {_first("jurisdiction")},
                   {_first("agency_id")}, max("timestamp"), CAST(:now AS TIMESTAMPTZ)
            FROM new GROUP BY dossier_id ORDER BY dossier_id
            ON CONFLICT (dossier_id) DO UPDATE SET
                procedure_code = COALESCE(dossiers.procedure_code, excluded.procedure_code),
                jurisdiction = COALESCE(dossiers.jurisdiction, excluded.jurisdiction),
                agency_id = COALESCE(dossiers.agency_id, excluded.agency_id),
                last_event_at = GREATEST(dossiers.last_event_at, excluded.last_event_at),
                events_changed_at = excluded.events_changed_at
        )
        SELECT count(*) FROM new
    """
    result = session.connection().execute(sa.text(sql), {"rows": payload, "now": now})
    return int(result.scalar_one())


def _fail(index: int, field: str, record: Mapping[str, Any], message: str) -> InvalidEventError:
    event_id = record.get(s.EVENT_ID)
    return InvalidEventError(
        message, index=index, field=field, event_id=event_id if isinstance(event_id, str) else None
    )


def _clean_event(index: int, record: Mapping[str, Any]) -> dict[str, Any]:
    # the hot path of ingestion: plain type checks first, the messages only on failure
    get = record.get
    row: dict[str, Any] = {}
    for field in _REQUIRED_IDS:
        value = get(field)
        if type(value) is not str or len(value) > ID_LENGTH or not value.strip():
            raise _bad_text(index, field, record)
        row[field] = value
    for field in _OPTIONAL_IDS:
        value = get(field)
        if value is not None and (type(value) is not str or len(value) > ID_LENGTH):
            raise _bad_text(index, field, record)
        row[field] = value
    for field in s.TIME_COLUMNS:
        value = get(field)
        if type(value) is datetime and value.tzinfo is UTC:
            row[field] = value
        else:
            row[field] = _time(index, field, record)
    if row[s.TIMESTAMP] is None:
        raise _fail(index, s.TIMESTAMP, record, "missing value")
    channel = get(s.CHANNEL)
    if channel is not None and channel not in s.CHANNELS:
        raise _fail(index, s.CHANNEL, record, f"{channel!r} is not one of {list(s.CHANNELS)}")
    row[s.CHANNEL] = channel
    row[s.RATING] = _rating(index, record)
    seq = get(s.SEQ)
    if seq is not None and type(seq) is not int:
        if isinstance(seq, bool) or not isinstance(seq, int | float) or not float(seq).is_integer():
            raise _fail(index, s.SEQ, record, f"expected an integer, got {seq!r}")
        seq = int(seq)
    if seq is not None and not -(2**63) <= seq < 2**63:
        raise _fail(index, s.SEQ, record, f"{seq} is outside the 64-bit integer range")
    row[s.SEQ] = seq
    extra = record.keys() - _KNOWN
    row["attributes"] = _attributes(index, record, extra) if extra else None
    return row


def clean_event(index: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """One event checked and converted as ingestion stores it (times in UTC, extra fields
    in ``attributes``); :class:`InvalidEventError` names the event's ``index`` and field."""
    return _clean_event(index, record)


def _bad_text(index: int, field: str, record: Mapping[str, Any]) -> InvalidEventError:
    value = record.get(field)
    if value is None:
        return _fail(index, field, record, "missing value")
    if not isinstance(value, str):
        return _fail(index, field, record, f"expected a string, got {type(value).__name__}")
    if len(value) > ID_LENGTH:
        return _fail(index, field, record, f"longer than {ID_LENGTH} characters")
    return _fail(index, field, record, "empty value")


def _time(index: int, field: str, record: Mapping[str, Any]) -> datetime | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(index, field, record, f"not an ISO 8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise _fail(index, field, record, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(index, field, record, f"{value.isoformat()} has no zone (UTC offset)")
    to_py = getattr(value, "to_pydatetime", None)  # pandas Timestamps
    try:
        return (to_py() if to_py is not None else value).astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise _fail(index, field, record, f"{value.isoformat()} is out of range in UTC") from None


def _rating(index: int, record: Mapping[str, Any]) -> float | None:
    value = record.get(s.RATING)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(index, s.RATING, record, f"expected a number, got {value!r}")
    lo, hi = s.RATING_RANGE
    if math.isnan(value):
        return None
    if not lo <= value <= hi:
        raise _fail(index, s.RATING, record, f"rating {value} outside {lo}..{hi}")
    return float(value)


def _attributes(index: int, record: Mapping[str, Any], extra: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(extra, key=str):
        value = record[key]
        if not isinstance(key, str):
            raise _fail(index, str(key), record, "attribute names must be strings")
        if isinstance(value, datetime):
            value = value.isoformat()
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise _fail(index, key, record, f"not JSON-serialisable: {value!r}") from None
        out[key] = value
    return out


def _touch_dossiers(session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    by_dossier: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r[s.DOSSIER_ID], r[s.TIMESTAMP])):
        d = by_dossier.get(row[s.DOSSIER_ID])
        if d is None:  # the earliest event of the batch names the first agency
            by_dossier[row[s.DOSSIER_ID]] = {
                "dossier_id": row[s.DOSSIER_ID],
                "procedure_code": row[s.PROCEDURE_CODE],
                "jurisdiction": row[s.JURISDICTION],
                "agency_id": row[s.AGENCY_ID],
                "last_event_at": row[s.TIMESTAMP],
                "events_changed_at": now,
            }
            continue
        d["last_event_at"] = row[s.TIMESTAMP]
        for key in ("procedure_code", "jurisdiction", "agency_id"):
            if d[key] is None:
                d[key] = row[key]
    # sorted keys: two batches upserting the same dossiers lock them in the same order
    touched = [by_dossier[k] for k in sorted(by_dossier)]
    later = greatest(dialect_of(session), "dossiers.last_event_at", "excluded.last_event_at")
    bulk_insert(
        session,
        dossiers,
        touched,
        "ON CONFLICT (dossier_id) DO UPDATE SET "
        "procedure_code = COALESCE(dossiers.procedure_code, excluded.procedure_code), "
        "jurisdiction = COALESCE(dossiers.jurisdiction, excluded.jurisdiction), "
        "agency_id = COALESCE(dossiers.agency_id, excluded.agency_id), "
        f"last_event_at = {later}, "
        "events_changed_at = excluded.events_changed_at",
    )


def upsert_scores(
    session: Session,
    scores: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    as_of: datetime,
    model_version: str | None = None,
    now: datetime | None = None,
) -> int:
    """Make ``scores`` (models.scoring's SCORE_COLUMNS, one row per dossier) the dossiers'
    current scores; returns the number of dossiers written."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be tz-aware")
    stamp = now or datetime.now(UTC)
    rows = []
    for record in _records(scores):
        row: dict[str, Any] = {f: _number_or_none(record.get(f)) for f in _SCORE_FIELDS}
        row["dossier_id"] = str(record[s.DOSSIER_ID])
        row["procedure_code"] = record.get(s.PROCEDURE_CODE)
        row["jurisdiction"] = record.get(s.JURISDICTION)
        row["agency_id"] = record.get("first_agency", record.get(s.AGENCY_ID))
        row.update(scored_as_of=as_of, scored_at=stamp, model_version=model_version)
        rows.append(row)
    if not rows:
        return 0
    rows.sort(key=lambda r: r["dossier_id"])
    kept = ("procedure_code", "jurisdiction", "agency_id")
    sets = [f"{f} = excluded.{f}" for f in rows[0] if f != "dossier_id" and f not in kept]
    sets += [f"{f} = COALESCE(excluded.{f}, dossiers.{f})" for f in kept]
    bulk_insert(
        session, dossiers, rows, f"ON CONFLICT (dossier_id) DO UPDATE SET {', '.join(sets)}"
    )
    return len(rows)


def _number_or_none(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def list_dossiers(
    session: Session,
    user: User,
    *,
    min_risk: float | None = None,
    jurisdiction: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Dossiers the user may see, riskiest first (unscored ones last)."""
    stmt = dossier_query(user, min_risk=min_risk, jurisdiction=jurisdiction)
    return [dict(r) for r in session.execute(stmt.limit(limit).offset(offset)).mappings()]


def dossier_query(
    user: User, *, min_risk: float | None = None, jurisdiction: str | None = None
) -> sa.Select[Any]:
    """The dossiers the user may see that match, riskiest first (unscored ones last)."""
    stmt = sa.select(dossiers)
    if min_risk is not None:
        stmt = stmt.where(dossiers.c.risk_score >= min_risk)
    if jurisdiction is not None:
        stmt = stmt.where(dossiers.c.jurisdiction == jurisdiction)
    stmt = restrict(stmt, user, dossiers.c.jurisdiction)
    return stmt.order_by(
        dossiers.c.risk_score.is_(None), dossiers.c.risk_score.desc(), dossiers.c.dossier_id
    )


def get_dossier(session: Session, user: User, dossier_id: str) -> dict[str, Any]:
    """One dossier and its current scores; :class:`NotFoundError` if absent or not the
    user's to see (the two are not told apart, so ids outside a jurisdiction do not leak)."""
    stmt = restrict(
        sa.select(dossiers).where(dossiers.c.dossier_id == dossier_id),
        user,
        dossiers.c.jurisdiction,
    )
    row = session.execute(stmt).mappings().first()
    if row is None:
        raise NotFoundError(f"no dossier {dossier_id!r}")
    return dict(row)


def dossier_events(session: Session, user: User, dossier_id: str) -> list[dict[str, Any]]:
    """The events of a dossier the user may see, in time order (then source order)."""
    get_dossier(session, user, dossier_id)
    stmt = (
        sa.select(events)
        .where(events.c.dossier_id == dossier_id)
        .order_by(events.c.timestamp, events.c.seq, events.c.event_id)
    )
    return [dict(r) for r in session.execute(stmt).mappings()]
