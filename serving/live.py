"""Live re-scoring: the dossiers an ingestion touched are re-scored with the champion's
online scorer, and their alerts raised, updated or closed.

Ingestion stays fast: ``POST /v1/events`` only stores the events and marks their
dossiers (``events_changed_at``). A worker thread (:class:`LiveScoring`, started with the
app) takes the waiting dossiers from the store's partial index (revision 0004), reads
their events, re-scores them with :class:`models.online.OnlineScorer` (the batch
pipeline's features and scores, without its per-call frames) and writes scores and alerts
through :func:`serving.rescoring.write_scores` in one short transaction per batch of
dossiers (the scoring itself holds no transaction, so ingestion never waits for it). The
store is the queue: after a crash the worker finds what was waiting, and a dossier whose
events change while it is being scored stays waiting.

The per-model state (the scorer, and the :class:`features.online_context.OnlineContext`
of the province: recent outcomes, backlogs) is built from the stored events when a model
is loaded (:meth:`ModelHolder.on_swap`), and kept current by observing each re-scored
dossier. Entity alerts (officers, intermediaries, agencies) need the whole log: the
batch job ``giamsat rescore`` raises them.

The time dossiers are scored as of is the wall clock (``GIAMSAT_SCORING_CLOCK=wall``) or,
for a replay of past events, the latest event received (``events``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from features import schema as s
from features.engine import Reference
from features.online_context import OnlineContext
from giamsat.settings import Settings
from models.online import OnlineScore, OnlineScorer
from models.scoring import SCORE_COLUMNS, Scores, dossier_alerts
from serving.db import Store
from serving.facts import scored_facts, upsert_facts
from serving.metrics import Metrics
from serving.models import LoadedModel, ModelHolder
from serving.rescoring import (
    RescoreResult,
    changed_at,
    count_pending,
    mark_scored,
    pending_dossiers,
    stored_events,
    write_scores,
)

__all__ = ["LiveScoring", "LiveState", "score_tables"]

log = logging.getLogger("giamsat.live")
#: the key of the live state in :attr:`LoadedModel.state`.
STATE = "live"
#: seconds the worker sleeps when nothing waits (an ingestion wakes it at once).
IDLE = 1.0


@dataclass
class LiveState:
    """What one loaded model scores with: its online scorer and the province's context
    (changed only under ``lock``: the worker observes, scoring requests read)."""

    scorer: OnlineScorer
    context: OnlineContext
    ref: Reference
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Progress:
    """What the worker has done since start-up (``GET /v1/admin/rescoring``)."""

    batches: int = 0
    dossiers: int = 0
    raised: int = 0
    closed: int = 0
    failed: int = 0
    last_as_of: datetime | None = None
    last_error: str | None = None
    #: seconds from the oldest waiting change to its scores being written, last batch.
    last_lag_seconds: float | None = None


def score_tables(results: Sequence[OnlineScore], as_of: pd.Timestamp) -> Scores:
    """Online scores as the batch scorer's two tables (scores and dossier alerts)."""
    scores = pd.DataFrame([r.row() for r in results], columns=list(SCORE_COLUMNS))
    ids = [r.dossier_id for r in results]
    texts = {
        "delay": pd.Series(["; ".join(x.text for x in r.delay_reasons) for r in results], ids),
        "waste": pd.Series([r.waste_reasons for r in results], index=ids),
        "integrity": pd.Series([r.integrity_reasons for r in results], index=ids),
    }
    patterns = pd.Series([r.integrity_pattern for r in results], index=ids)
    return Scores(scores, dossier_alerts(scores, texts, patterns), as_of)


class LiveScoring:
    """The re-scoring worker of one service process (see the module's text)."""

    def __init__(
        self, store: Store, settings: Settings, models: ModelHolder, metrics: Metrics
    ) -> None:
        self.store = store
        self.settings = settings
        self.models = models
        self.metrics = metrics
        self.progress = Progress()
        self._latest: pd.Timestamp | None = None  # the events clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        models.on_swap(self.prepare)

    # --- per model ----------------------------------------------------------------------

    def prepare(self, model: LoadedModel) -> None:
        """Build ``model``'s live state from the stored events (runs before the model is
        published; a failure keeps the model served before)."""
        ref = model.bundle.reference(self._calendar())
        with self.store.read() as session:
            known = stored_events(session, tz=self.settings.timezone)
        if len(known):
            latest = pd.Timestamp(known[s.TIMESTAMP].max())
            self._advance(latest)
            context = OnlineContext.from_events(known, ref, self.as_of(latest))
        else:
            context = OnlineContext()
        model.state[STATE] = LiveState(OnlineScorer(model.bundle, ref), context, ref)
        log.info(
            "live state ready",
            extra={"version": model.version, "dossiers": len(context), "events": len(known)},
        )

    def _calendar(self) -> Any:
        from features.calendar import WorkingCalendar

        return WorkingCalendar.for_country(self.settings.holiday_country, tz=self.settings.timezone)

    def state(self) -> tuple[LoadedModel, LiveState]:
        """The model served and its live state (:class:`ModelUnavailableError` if none)."""
        model = self.models.require()
        live = model.state.get(STATE)
        if not isinstance(live, LiveState):  # loaded before this worker was attached
            self.prepare(model)
            live = model.state[STATE]
        return model, live

    # --- the clock ----------------------------------------------------------------------

    def _advance(self, latest: pd.Timestamp | datetime | None) -> None:
        if latest is None:
            return
        stamp = pd.Timestamp(latest)
        if self._latest is None or stamp > self._latest:
            self._latest = stamp

    def as_of(self, latest: pd.Timestamp | datetime | None = None) -> pd.Timestamp:
        """The time to score as of: now, or (events clock) the latest event received."""
        if self.settings.scoring_clock == "wall":
            return pd.Timestamp.now(tz=self.settings.timezone)
        self._advance(latest)
        if self._latest is None:
            return pd.Timestamp.now(tz=self.settings.timezone)
        return self._latest.tz_convert(self.settings.timezone)

    # --- the worker ---------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the worker that events arrived (after their transaction committed)."""
        self._wake.set()

    def rescore_pending(self, limit: int | None = None) -> RescoreResult | None:
        """Re-score up to ``limit`` (setting ``rescore_batch``) waiting dossiers in one
        transaction; None when none waits or no model is loaded."""
        model = self.models.current()
        if model is None:
            return None
        model, live = self.state()
        size = limit or self.settings.rescore_batch
        # read, then score with no transaction open (SQLite has one writer: ingestion
        # must not wait for the scoring), then write in one short transaction
        with self.store.read() as session:
            ids = pending_dossiers(session, limit=size)
            if not ids:
                return None
            seen = changed_at(session, ids)  # before the events: see changed_at
            frame = stored_events(session, ids, tz=self.settings.timezone)
        groups = _groups(frame)
        as_of = self.as_of(frame[s.TIMESTAMP].max() if len(frame) else None)
        with live.lock:
            for events in groups.values():
                live.context.observe(events, live.ref, as_of)
            results = self._score(live, list(groups.values()), as_of)
        scored = [r.dossier_id for r in results]
        tables = score_tables(results, as_of)
        facts = scored_facts(frame, live.ref, tables)  # the dashboards' (serving.facts)
        with self.store.transaction() as session:
            done = write_scores(session, tables, model_version=model.version, subjects=scored)
            upsert_facts(session, facts)
            mark_scored(session, seen)  # failed dossiers too: retried when their events change
        self._count(done, seen, len(ids) - len(scored))
        return done

    def _score(
        self,
        live: LiveState,
        dossiers: list[list[dict[str, Any]]],
        as_of: pd.Timestamp,
    ) -> list[OnlineScore]:
        """All dossiers at once; when that fails, one by one, leaving out (and logging)
        those that cannot be scored rather than stopping the queue on them."""
        try:
            return live.scorer.score_many(dossiers, as_of, live.context)
        except Exception:  # noqa: BLE001 - isolated below, dossier by dossier
            pass
        out = []
        for events in dossiers:
            try:
                out.append(live.scorer.score(events, as_of, live.context))
            except Exception as exc:  # noqa: BLE001 - logged and counted, the rest go on
                ident = str(events[0].get(s.DOSSIER_ID)) if events else "?"
                self.progress.last_error = f"dossier {ident}: {type(exc).__name__}: {exc}"
                log.error("re-scoring failed", extra={"dossier_id": ident, "error": str(exc)})
        return out

    def _count(self, done: RescoreResult, seen: Mapping[str, Any], failed: int) -> None:
        p = self.progress
        p.batches += 1
        p.dossiers += done.dossiers
        p.raised += done.raised + done.reopened
        p.closed += done.closed
        p.failed += failed
        p.last_as_of = done.as_of
        oldest = min((v for v in seen.values() if v is not None), default=None)
        if oldest is not None:
            p.last_lag_seconds = (datetime.now(UTC) - oldest).total_seconds()
        self.metrics.rescored(done.dossiers, failed)

    def pending(self) -> int:
        """Dossiers waiting for re-scoring."""
        with self.store.read() as session:
            return count_pending(session)

    def drain(self, timeout: float = 60.0) -> int:
        """Re-score until nothing waits (tests, the demo); returns dossiers re-scored."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            done = self.rescore_pending()
            if done is None:
                return total
            total += done.dossiers
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.rescore_pending()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad batch
                self.progress.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("re-scoring batch failed")
                done = None
                self._stop.wait(IDLE)
            if done is None:
                self._wake.wait(IDLE)
                self._wake.clear()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="giamsat-rescoring", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _groups(frame: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Each dossier's events as records (the frame is sorted: dossier, time, seq)."""
    if not len(frame):
        return {}
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        out.setdefault(str(record[s.DOSSIER_ID]), []).append({str(k): v for k, v in record.items()})
    return out
