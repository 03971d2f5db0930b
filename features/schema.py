"""The canonical event schema: the one contract between ingestion, features, models and serving.

One row per event. Readers map raw logs onto these columns once (``features.ingest``);
nothing downstream renames columns. Every timestamp is tz-aware; applicant and submitter
identities are pseudonyms (``features.pseudonym``), never raw values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# --- column names -----------------------------------------------------------------------

DOSSIER_ID = "dossier_id"
EVENT_ID = "event_id"
ACTIVITY = "activity"
TIMESTAMP = "timestamp"
AGENCY_ID = "agency_id"
OFFICER_ID = "officer_id"
PROCEDURE_CODE = "procedure_code"
JURISDICTION = "jurisdiction"
APPLICANT_ID = "applicant_id"
SUBMITTER_ID = "submitter_id"
CHANNEL = "channel"
DUE_AT = "due_at"
RECORDED_AT = "recorded_at"
RATING = "rating"
TARGET_AGENCY_ID = "target_agency_id"
#: position of the event in its source; the tie-breaker for equal timestamps.
SEQ = "seq"

REQUIRED_COLUMNS: tuple[str, ...] = (DOSSIER_ID, EVENT_ID, ACTIVITY, TIMESTAMP)

#: Columns that describe the dossier, not the event: they may repeat on every row, but a
#: dossier's rows must agree on them (nulls aside).
DOSSIER_COLUMNS: tuple[str, ...] = (
    PROCEDURE_CODE,
    JURISDICTION,
    APPLICANT_ID,
    SUBMITTER_ID,
    CHANNEL,
    DUE_AT,
)

#: Identity columns, pseudonymised with a keyed hash at ingestion.
IDENTITY_COLUMNS: tuple[str, ...] = (APPLICANT_ID, SUBMITTER_ID)

TIME_COLUMNS: tuple[str, ...] = (TIMESTAMP, DUE_AT, RECORDED_AT)

#: Low-cardinality string columns stored as categoricals (they repeat on millions of rows).
CATEGORICAL_COLUMNS: tuple[str, ...] = (
    ACTIVITY,
    AGENCY_ID,
    OFFICER_ID,
    PROCEDURE_CODE,
    JURISDICTION,
    CHANNEL,
    TARGET_AGENCY_ID,
)
STRING_COLUMNS: tuple[str, ...] = (DOSSIER_ID, EVENT_ID, APPLICANT_ID, SUBMITTER_ID)

#: Canonical columns in their canonical order; extra attribute columns follow them.
CANONICAL_COLUMNS: tuple[str, ...] = (
    DOSSIER_ID,
    EVENT_ID,
    ACTIVITY,
    TIMESTAMP,
    AGENCY_ID,
    OFFICER_ID,
    PROCEDURE_CODE,
    JURISDICTION,
    APPLICANT_ID,
    SUBMITTER_ID,
    CHANNEL,
    DUE_AT,
    RECORDED_AT,
    RATING,
    TARGET_AGENCY_ID,
    SEQ,
)

DEFAULT_TZ = "Asia/Ho_Chi_Minh"

# --- the activity vocabulary of Vietnamese processing logs --------------------------------

RECEIVED = "received"
ASSIGNED = "assigned"
APPRAISED = "appraised"
SITE_INSPECTED = "site_inspected"
TRANSFERRED = "transferred"
SUPPLEMENT_REQUESTED = "supplement_requested"
SUPPLEMENT_RECEIVED = "supplement_received"
PAUSED = "paused"
RESUMED = "resumed"
APPROVED = "approved"
REJECTED = "rejected"
RESULT_RETURNED = "result_returned"
APOLOGY_ISSUED = "apology_issued"
PAID = "paid"
RATED = "rated"
WITHDRAWN = "withdrawn"

ACTIVITIES: tuple[str, ...] = (
    RECEIVED,
    ASSIGNED,
    APPRAISED,
    SITE_INSPECTED,
    TRANSFERRED,
    SUPPLEMENT_REQUESTED,
    SUPPLEMENT_RECEIVED,
    PAUSED,
    RESUMED,
    APPROVED,
    REJECTED,
    RESULT_RETURNED,
    APOLOGY_ISSUED,
    PAID,
    RATED,
    WITHDRAWN,
)

#: Events that stop the statutory clock, and the event that starts it again.
CLOCK_STOPS: dict[str, str] = {SUPPLEMENT_REQUESTED: SUPPLEMENT_RECEIVED, PAUSED: RESUMED}
#: Events after which a dossier is finished (its result or its end is known).
TERMINAL_ACTIVITIES: frozenset[str] = frozenset({RESULT_RETURNED, REJECTED, WITHDRAWN})

CHANNELS: tuple[str, ...] = ("online", "in_person", "postal")
#: Spellings of channels in foreign logs, mapped at ingestion (lower-cased keys).
CHANNEL_SYNONYMS: dict[str, str] = {
    "internet": "online",
    "online": "online",
    "web": "online",
    "desk": "in_person",
    "in_person": "in_person",
    "in person": "in_person",
    "counter": "in_person",
    "post": "postal",
    "postal": "postal",
    "mail": "postal",
    "e-mail": "online",
    "email": "online",
}

RATING_RANGE = (1, 5)


# --- errors ---------------------------------------------------------------------------------


class GiamSatError(Exception):
    """Base of the errors GiamSat raises on purpose."""


@dataclass
class _Where:
    file: str | None = None
    row: int | None = None
    column: str | None = None
    dossier: str | None = None

    def describe(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"file {self.file}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        if self.dossier is not None:
            parts.append(f"dossier {self.dossier!r}")
        return ", ".join(parts)


class EventSchemaError(GiamSatError, ValueError):
    """Events that break the canonical schema; says where (file, row, column, dossier).

    ``row`` is the 1-based number of the record in its source (for a CSV file, the data
    row: the header is not counted), or of the row in the DataFrame being validated.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        dossier: str | None = None,
    ) -> None:
        self.reason = message
        self.where = _Where(file, row, column, dossier)
        where = self.where.describe()
        super().__init__(f"{where}: {message}" if where else message)

    @property
    def file(self) -> str | None:
        return self.where.file

    @property
    def row(self) -> int | None:
        return self.where.row

    @property
    def column(self) -> str | None:
        return self.where.column

    @property
    def dossier(self) -> str | None:
        return self.where.dossier

    def in_file(self, file: str, row_of: dict[int, int] | None = None) -> EventSchemaError:
        """The same error located in ``file`` (row numbers translated by ``row_of``)."""
        row = self.row
        if row is not None and row_of is not None:
            row = row_of.get(row, row)
        return type(self)(self.reason, file=file, row=row, column=self.column, dossier=self.dossier)


class DuplicateEventError(EventSchemaError):
    """Two events share an event_id but not their content."""


class InconsistentDossierError(EventSchemaError):
    """A dossier's rows disagree on a dossier-level column."""


# --- conversion and validation -----------------------------------------------------------


def attribute_columns(events: pd.DataFrame) -> list[str]:
    """Extra columns kept as they came from the source, in their order."""
    return [c for c in events.columns if c not in CANONICAL_COLUMNS]


def coerce_events(events: pd.DataFrame, *, tz: str | None = None) -> pd.DataFrame:
    """Return ``events`` with canonical dtypes and column order (missing optional columns added).

    Naive timestamps are read in ``tz``; aware ones keep their instant and are shown in
    ``tz``. Without ``tz``, the zone of an aware ``timestamp`` column is kept (else
    Asia/Ho_Chi_Minh). Raises :class:`EventSchemaError` for a required column that is missing.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise EventSchemaError(f"missing required column(s) {missing}", column=missing[0])
    out = events.copy(deep=False)  # copy-on-write keeps the caller's frame intact
    n = len(out)
    if tz is None:
        stamp = out[TIMESTAMP].dtype
        tz = str(stamp.tz) if isinstance(stamp, pd.DatetimeTZDtype) else DEFAULT_TZ
    for col in CANONICAL_COLUMNS:
        if col not in out.columns:
            if col in TIME_COLUMNS:
                out[col] = pd.Series(pd.NaT, index=out.index, dtype=f"datetime64[us, {tz}]")
            elif col == RATING:
                out[col] = pd.Series(pd.NA, index=out.index, dtype="Float64")
            elif col == SEQ:
                out[col] = np.arange(n, dtype=np.int64)
            else:
                out[col] = pd.Series(pd.NA, index=out.index, dtype="string")
    for col in TIME_COLUMNS:
        out[col] = _as_aware(out[col], col, tz)
    for col in STRING_COLUMNS:
        out[col] = out[col].astype("string")
    for col in CATEGORICAL_COLUMNS:
        if not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype("string").astype("category")
    out[RATING] = pd.to_numeric(out[RATING], errors="coerce").astype("Float64")
    out[SEQ] = out[SEQ].astype(np.int64)
    return out[list(CANONICAL_COLUMNS) + attribute_columns(out)]


def _as_aware(values: pd.Series, column: str, tz: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(tz)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype=f"datetime64[us, {tz}]")
    raise EventSchemaError(f"expected datetimes, got dtype {values.dtype}", column=column)


def validate_events(events: pd.DataFrame, *, check_event_ids: bool = True) -> pd.DataFrame:
    """Check that ``events`` follows the canonical schema; return it unchanged if it does.

    Raises a specific :class:`EventSchemaError` naming the first offending row (1-based
    position in the frame), column and, for dossier-level problems, the dossier.
    ``check_event_ids=False`` skips the uniqueness check, for ids that ingestion has just
    derived from content (unique by construction).
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in events.columns]
    if missing:
        raise EventSchemaError(f"missing column(s) {missing}", column=missing[0])
    for col in TIME_COLUMNS:
        if not isinstance(events[col].dtype, pd.DatetimeTZDtype):
            raise EventSchemaError(
                f"must be a tz-aware datetime, got {events[col].dtype}", column=col
            )
    for col in (DOSSIER_ID, EVENT_ID, ACTIVITY, TIMESTAMP):
        _require_no_nulls(events, col)
    for col in (DOSSIER_ID, EVENT_ID, ACTIVITY):
        blank = events[col].astype("string").str.strip().eq("").to_numpy(dtype=bool)
        if blank.any():
            raise EventSchemaError("empty value", row=_first(blank), column=col)
    rating = events[RATING].to_numpy(dtype="float64", na_value=np.nan)
    lo, hi = RATING_RANGE
    bad = ~np.isnan(rating) & ((rating < lo) | (rating > hi))
    if bad.any():
        raise EventSchemaError(
            f"rating {rating[bad][0]} outside {lo}..{hi}", row=_first(bad), column=RATING
        )
    if check_event_ids:
        _check_unique_event_ids(events)
    check_dossier_consistency(events)
    return events


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _require_no_nulls(events: pd.DataFrame, column: str) -> None:
    null = events[column].isna().to_numpy(dtype=bool)
    if null.any():
        raise EventSchemaError("missing value", row=_first(null), column=column)


def _check_unique_event_ids(events: pd.DataFrame) -> None:
    if events[EVENT_ID].is_unique:
        return
    dup = events[EVENT_ID].duplicated(keep=False).to_numpy(dtype=bool)
    content = [c for c in events.columns if c not in (EVENT_ID, SEQ)]
    twins = events.loc[dup]
    distinct = twins.drop_duplicates(subset=[EVENT_ID, *content])
    clash = distinct[EVENT_ID].duplicated(keep=False)
    if clash.any():
        event_id = distinct.loc[clash, EVENT_ID].iloc[0]
        rows = np.flatnonzero(events[EVENT_ID].to_numpy() == event_id)
        raise DuplicateEventError(
            f"event_id {event_id!r} used by rows {[int(r) + 1 for r in rows[:5]]} "
            "with different content",
            row=int(rows[1]) + 1,
            column=EVENT_ID,
        )
    first = int(np.flatnonzero(events[EVENT_ID].duplicated().to_numpy(dtype=bool))[0]) + 1
    raise DuplicateEventError("event_id repeated (identical rows)", row=first, column=EVENT_ID)


def check_dossier_consistency(
    events: pd.DataFrame, columns: Iterable[str] = DOSSIER_COLUMNS
) -> None:
    """Raise :class:`InconsistentDossierError` if a dossier's rows disagree on a dossier column."""
    for col in columns:
        if col not in events.columns or events[col].isna().all():
            continue
        present = events.loc[events[col].notna(), [DOSSIER_ID, col]]
        counts = present.groupby(DOSSIER_ID, observed=True, sort=False)[col].nunique()
        bad = counts[counts > 1]
        if len(bad):
            dossier = str(bad.index[0])
            values = present.loc[present[DOSSIER_ID] == dossier, col].unique()[:3]
            # the first row that departs from the dossier's first value
            mine = (events[DOSSIER_ID] == dossier).to_numpy(dtype=bool)
            departs = mine & events[col].notna().to_numpy(dtype=bool)
            departs &= (events[col] != values[0]).to_numpy(dtype=bool, na_value=False)
            raise InconsistentDossierError(
                f"rows of the dossier disagree on a dossier-level column: {list(values)}",
                row=int(np.flatnonzero(departs)[0]) + 1,
                column=col,
                dossier=dossier,
            )


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events in canonical order: by dossier, then time, ties broken by source order.

    A frame already in that order is returned as it is (with a fresh range index), which
    spares a full copy of large logs that were written sorted.
    """
    if is_sorted(events):
        return events.reset_index(drop=True)
    return events.sort_values([DOSSIER_ID, TIMESTAMP, SEQ], kind="stable", ignore_index=True)


def _non_decreasing(values: pd.Series) -> bool:
    # Compared in Arrow: pandas would build millions of Python strings to check this.
    arrow = pa.array(values.array) if not isinstance(values.dtype, pd.CategoricalDtype) else None
    if arrow is None or not pa.types.is_string(arrow.type):
        return bool(values.is_monotonic_increasing)
    return bool(pc.all(pc.greater_equal(arrow[1:], arrow[:-1])).as_py())


def is_sorted(events: pd.DataFrame) -> bool:
    """Whether ``events`` are in canonical order (dossier, timestamp, seq)."""
    if len(events) < 2:
        return True
    dossiers = events[DOSSIER_ID]
    if dossiers.isna().any() or not _non_decreasing(dossiers):
        return False
    codes = pd.factorize(dossiers, sort=False)[0]
    stamps = events[TIMESTAMP]
    if stamps.isna().any():
        return False
    t = stamps.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    seq = events[SEQ].to_numpy()
    new_dossier = np.diff(codes) > 0
    dt = np.diff(t)
    return bool((new_dossier | (dt > 0) | ((dt == 0) & (np.diff(seq) > 0))).all())
