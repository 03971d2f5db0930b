"""The canonical event store on disk: a Parquet dataset partitioned by dossier bucket.

Layout::

    ROOT/_CURRENT                     name of the live version, e.g. "v000003"
    ROOT/v000003/bucket=07/part-0.parquet

Every dossier lives in exactly one bucket (a stable hash of its id), so a Dask job reads
the dataset partition by partition with whole dossiers in each. A write builds a complete
new version beside the live one (untouched buckets are hard links, not copies) and then
swaps ``_CURRENT`` with an atomic rename: a crash at any point leaves the previous
version live and whole. Appending events already stored (same ``event_id``) adds nothing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema as s

CURRENT = "_CURRENT"
BUCKET = "bucket"
_CORE = (s.DOSSIER_ID, s.ACTIVITY, s.TIMESTAMP)


@dataclass(frozen=True)
class AppendReport:
    """What an append did."""

    received: int
    added: int
    already_stored: int
    version: str


def bucket_of(dossier_ids: pd.Series, buckets: int) -> np.ndarray:
    """The bucket of each dossier: a stable hash of its id, independent of the run."""
    ids = dossier_ids.astype("string")
    hashed = pd.util.hash_pandas_object(ids, index=False, hash_key="giamsat-bucket-0").to_numpy()
    return (hashed % np.uint64(buckets)).astype(np.int64)


class EventStore:
    """A versioned, bucketed Parquet dataset of canonical events."""

    def __init__(self, root: str | Path, buckets: int = 16) -> None:
        self.root = Path(root)
        self.buckets = buckets

    # -- reading --------------------------------------------------------------------------

    def version(self) -> str | None:
        """The live version's name, or None for an empty store."""
        try:
            return (self.root / CURRENT).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def dataset_path(self) -> Path | None:
        """The live version's directory (what Dask or pyarrow read), or None if empty."""
        version = self.version()
        return None if version is None else self.root / version

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All stored events in canonical order (an empty canonical frame for an empty store)."""
        path = self.dataset_path()
        if path is None:
            return s.coerce_events(pd.DataFrame({c: [] for c in s.REQUIRED_COLUMNS}))
        frames = [self._read_file(f, columns) for f in sorted(path.glob(f"{BUCKET}=*/*.parquet"))]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if columns is not None:
            return frame
        return s.sort_events(s.coerce_events(frame))

    def bucket_files(self) -> list[Path]:
        """The live version's files, one per non-empty bucket."""
        path = self.dataset_path()
        return [] if path is None else sorted(path.glob(f"{BUCKET}=*/*.parquet"))

    @staticmethod
    def _read_file(path: Path, columns: list[str] | None) -> pd.DataFrame:
        return pq.read_table(path, columns=columns).to_pandas()

    # -- writing --------------------------------------------------------------------------

    def append(self, events: pd.DataFrame) -> AppendReport:
        """Add canonical events not stored yet; all or nothing.

        Raises :class:`features.schema.DuplicateEventError` if an incoming event reuses a
        stored event_id with different content.
        """
        s.validate_events(events)
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.dataset_path()
        version = _next_version(self.version())
        staging = self.root / f".{version}.tmp"
        if staging.exists():
            shutil.rmtree(staging)  # left over by a crashed write: never live, safe to drop
        staging.mkdir()
        buckets = bucket_of(events[s.DOSSIER_ID], self.buckets)
        added = 0
        try:
            for b in range(self.buckets):
                incoming = events.loc[buckets == b]
                old_file = None if old is None else old / f"{BUCKET}={b:03d}" / "part-0.parquet"
                has_old = old_file is not None and old_file.exists()
                target = staging / f"{BUCKET}={b:03d}" / "part-0.parquet"
                if incoming.empty and not has_old:
                    continue
                target.parent.mkdir()
                if has_old:
                    assert old_file is not None
                    stored = pq.read_table(old_file).to_pandas()
                    fresh = _not_stored(incoming, stored)
                    if fresh.empty:
                        os.link(old_file, target)
                        continue
                    merged = s.coerce_events(pd.concat([stored, fresh], ignore_index=True))
                    added += len(fresh)
                else:
                    merged = incoming
                    added += len(incoming)
                _write_parquet(s.sort_events(merged), target)
            _fsync_dir(staging)
            if added == 0 and old is not None:
                shutil.rmtree(staging)
                return AppendReport(len(events), 0, len(events), old.name)
            os.replace(staging, self.root / version)
            _atomic_write(self.root / CURRENT, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return AppendReport(len(events), added, len(events) - added, version)


def _not_stored(incoming: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    if incoming.empty:
        return incoming
    known = incoming[s.EVENT_ID].isin(stored[s.EVENT_ID]).to_numpy(dtype=bool)
    if known.any():
        _check_same_content(incoming.loc[known], stored)
    return incoming.loc[~known]


def _check_same_content(incoming: pd.DataFrame, stored: pd.DataFrame) -> None:
    left = incoming[[s.EVENT_ID, *_CORE]].astype({s.ACTIVITY: "string"})
    right = stored[[s.EVENT_ID, *_CORE]].astype({s.ACTIVITY: "string"})
    both = left.merge(right, on=s.EVENT_ID, suffixes=("", "_stored"))
    for col in _CORE:
        differs = (both[col] != both[f"{col}_stored"]).to_numpy(dtype=bool)
        if differs.any():
            event_id = both.loc[differs, s.EVENT_ID].iloc[0]
            raise s.DuplicateEventError(
                f"event_id {event_id!r} is already stored with a different {col}",
                column=col,
                dossier=str(both.loc[differs, s.DOSSIER_ID].iloc[0]),
            )


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd")
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _next_version(current: str | None) -> str:
    number = 0 if current is None else int(current.lstrip("v")) + 1
    return f"v{number:06d}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
