"""Scores and alerts in the store, from the store's events.

Two ways in, one way out:

- :func:`rescore_all` runs the batch pipeline (:func:`models.scoring.score_log`) over every
  stored event: every dossier's scores, the dossier alerts and the entity alerts (officers,
  intermediaries, agencies), and alerts no longer raised are closed. ``giamsat rescore``
  runs it; the main job runs it after replaying events.
- the service re-scores the dossiers a batch of events touched with the online scorer
  (:mod:`serving.live`), and writes through the same :func:`write_scores`.

:func:`write_scores` makes a scoring result the store's truth in the caller's
transaction: scores upserted, alerts raised, updated (same kind and subject: same id) or
reopened, and the alerts of the scored subjects that the result no longer raises closed
("risk passed"). A crash before the commit leaves the previous scores and alerts whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features import schema as s
from features.engine import Reference
from models.bundle import ModelBundle
from models.scoring import EntityBudget, Scores, score_log
from serving.facts import refresh_facts
from serving.tables import PENDING, dossiers, events
from serving.workflow import close_passed, upsert_alerts

__all__ = [
    "RescoreResult",
    "changed_at",
    "count_pending",
    "mark_scored",
    "pending_dossiers",
    "rescore_all",
    "stored_events",
    "write_scores",
]

#: the event columns the feature pipeline reads (the store's ``attributes`` stay behind).
_COLUMNS = [c for c in s.CANONICAL_COLUMNS if c in events.c]
#: ids per ``IN (...)`` list: inside SQLite's and PostgreSQL's parameter limits.
_CHUNK = 1000
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RescoreResult:
    """What a scoring run wrote: dossiers scored, alerts raised, updated, reopened and
    closed, and the time the scores are as of."""

    dossiers: int
    raised: int
    updated: int
    reopened: int
    closed: int
    as_of: datetime

    def describe(self) -> str:
        return (
            f"{self.dossiers:,} dossiers scored as of {self.as_of.isoformat()}: "
            f"{self.raised:,} alerts raised, {self.updated:,} updated, "
            f"{self.reopened:,} reopened, {self.closed:,} closed"
        )


def stored_events(
    session: Session, dossier_ids: Sequence[str] | None = None, *, tz: str = s.DEFAULT_TZ
) -> pd.DataFrame:
    """The stored events (of ``dossier_ids``, default all) as a canonical frame in ``tz``
    with their extra source columns, sorted as the feature pipeline wants them (events
    sent without ``seq`` count as 0 and tie in event-id order)."""
    seq = sa.func.coalesce(events.c.seq, 0)  # no source order given: the event id's
    table = sa.select(*(events.c[c] for c in _COLUMNS), events.c.attributes).order_by(
        events.c.dossier_id, events.c.timestamp, seq, events.c.event_id
    )
    if dossier_ids is None:
        rows = [tuple(r) for r in session.execute(table)]
    else:
        ids = sorted(set(dossier_ids))
        rows = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows += [tuple(r) for r in session.execute(table.where(events.c.dossier_id.in_(chunk)))]
    frame = pd.DataFrame.from_records([r[:-1] for r in rows], columns=_COLUMNS)
    extra = [r[-1] or {} for r in rows]
    if any(extra):  # the source's own columns (a step's channel, ...), as they came
        frame = frame.join(pd.DataFrame.from_records(extra, index=frame.index))
    for column in s.TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame[s.SEQ] = frame[s.SEQ].fillna(0).astype("int64")
    return s.sort_events(s.coerce_events(frame, tz=tz))


def pending_dossiers(session: Session, *, limit: int | None = None) -> list[str]:
    """Dossiers whose events changed since the events their scores were computed from
    (or never scored), read from the partial index that holds only them."""
    stmt = sa.select(dossiers.c.dossier_id).where(sa.text(PENDING)).order_by(dossiers.c.dossier_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def count_pending(session: Session) -> int:
    """How many dossiers :func:`pending_dossiers` would give (counted in the index)."""
    stmt = sa.select(sa.func.count()).select_from(dossiers).where(sa.text(PENDING))
    return int(session.execute(stmt).scalar_one())


def changed_at(session: Session, dossier_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """``events_changed_at`` of the dossiers (default all): read *before* their events, so
    that scores are never marked as reflecting events they did not read."""
    stmt = sa.select(dossiers.c.dossier_id, dossiers.c.events_changed_at)
    if dossier_ids is None:
        return dict(tuple(r) for r in session.execute(stmt))
    ids = sorted(set(dossier_ids))
    out: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        where = dossiers.c.dossier_id.in_(ids[start : start + _CHUNK])
        out.update(dict(tuple(r) for r in session.execute(stmt.where(where))))
    return out


def mark_scored(session: Session, seen: dict[str, Any]) -> None:
    """Record which ``events_changed_at`` each dossier's scores reflect (:func:`changed_at`
    before reading the events): a dossier whose events changed since stays pending."""
    if not seen:
        return
    session.execute(
        sa.update(dossiers)
        .where(dossiers.c.dossier_id == sa.bindparam("b_id"))
        .values(scored_events_at=sa.bindparam("b_seen", type_=dossiers.c.scored_events_at.type)),
        [{"b_id": k, "b_seen": v} for k, v in sorted(seen.items())],
    )


def write_scores(
    session: Session,
    scores: Scores,
    *,
    model_version: str | None,
    subjects: Iterable[str] | None = None,
    now: datetime | None = None,
) -> RescoreResult:
    """Make ``scores`` the store's current scores and alerts (see the module's text).

    ``subjects``: the dossiers this result covers; only their dossier alerts are closed when
    no longer raised (None: the result covers the whole store, every alert it does not
    raise is closed, entity alerts included)."""
    from serving.store import upsert_scores

    as_of = scores.as_of.to_pydatetime()
    written = upsert_scores(session, scores.scores, as_of=as_of, model_version=model_version,
                            now=now)  # fmt: skip
    upserted = upsert_alerts(session, scores.alerts, now=now)
    raised = scores.alerts["alert_id"].astype(str).tolist()
    if subjects is None:
        closed = close_passed(session, raised, now=now)
    else:
        closed = close_passed(
            session, raised, subjects=sorted(set(subjects)), subject_type="dossier", now=now
        )
    return RescoreResult(
        written, upserted.raised, upserted.updated, upserted.reopened, closed, as_of
    )


def rescore_all(
    session: Session,
    bundle: ModelBundle,
    ref: Reference,
    *,
    as_of: pd.Timestamp | None = None,
    model_version: str | None = None,
    budget: EntityBudget | None = None,
    tz: str = s.DEFAULT_TZ,
    say: Progress | None = None,
) -> RescoreResult:
    """Score every stored dossier with the batch pipeline as of ``as_of`` (default: the
    latest stored event) and write the result (:func:`write_scores`)."""
    tell = say or (lambda _: None)
    tell("reading the stored events")
    seen = changed_at(session)
    known = stored_events(session, tz=tz)
    if not len(known):
        raise s.EventSchemaError("the store holds no event to score", column=s.EVENT_ID)
    if as_of is not None and pd.Timestamp(as_of).tzinfo is None:
        raise s.EventSchemaError("the scoring time (as_of) must be tz-aware", column="as_of")
    tell(f"scoring {known[s.DOSSIER_ID].nunique():,} dossiers ({len(known):,} events)")
    scored = score_log(bundle, known, ref, as_of=as_of, progress=tell, entity_budget=budget)
    tell("writing scores and alerts")
    done = write_scores(session, scored, model_version=model_version)
    refresh_facts(session, known, ref, scored)  # the dashboards' facts, in the same transaction
    # a dossier with events after the scoring time is scored, not up to date
    last = known.groupby(s.DOSSIER_ID, observed=True)[s.TIMESTAMP].max()
    current = set(last.index[last <= scored.as_of].astype(str))
    mark_scored(session, {k: v for k, v in seen.items() if k in current})
    return done
