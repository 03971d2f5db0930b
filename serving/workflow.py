"""The alert workflow: alerts upserted from the scorer's output, and moved through the
state machine of :mod:`serving.alerts` by people (and by the scorer: close, reopen).

An alert's id is stable per kind and subject (:func:`models.scoring.alert_id`), so a
re-run updates the alert instead of raising a second one. Every transition bumps the
alert's ``version`` with ``UPDATE ... WHERE version = <the version read>``: of two
concurrent writers one wins and the other gets :class:`AlertConflictError`. Each
transition writes its alert history row, its audit entry and its outbox message in the
caller's transaction, so they land together or not at all.

Separation of duties: a user who works for an agency (``users.agency_id``) may not
confirm or dismiss an alert about that agency: one whose ``agency_id`` it is, or whose
subject is the agency or an agency pair (``A->B``) it is an end of. Both verdicts are
refused, not only the dismissal: a confirmation is the record of what happened and a
training label too, and an interested party's "confirmed, minor" can bury a case as well
as a dismissal can. Acknowledging, escalating and reassigning stay allowed (they hand the
alert on). SLA escalation (``escalate_overdue``) lives in :mod:`serving.sla`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.scoring import alert_id as make_alert_id
from serving import audit, webhooks
from serving.alerts import (
    ACTIVE,
    LEVELS,
    SYSTEM_ACTIONS,
    TRANSITIONS,
    Action,
    Alert,
    Status,
    get_alert,
)
from serving.errors import (
    AlertConflictError,
    AlertTransitionError,
    InvalidAlertError,
    NotFoundError,
    PermissionDeniedError,
)
from serving.tables import alert_history, alerts
from serving.users import ALERT_WORKERS, SYSTEM, User, can_see, get_user

__all__ = ["UpsertResult", "close_passed", "interested_agency", "transition", "upsert_alerts"]

_FIELDS = ("kind", "subject_type", "subject_id", "score", "severity")
#: the verdicts a user of the agency the alert is about may not give.
VERDICTS = frozenset({Action.CONFIRM, Action.DISMISS})


@dataclass(frozen=True)
class UpsertResult:
    raised: int
    updated: int
    reopened: int


def _clean_alert(index: int, record: Mapping[str, Any]) -> dict[str, Any]:
    def fail(field: str, message: str) -> InvalidAlertError:
        return InvalidAlertError(f"alert {index}, field {field!r}: {message}")

    for field in _FIELDS:
        if record.get(field) is None or record.get(field) == "":
            raise fail(field, "missing value")
    kind, subject_type, subject_id = (str(record[f]) for f in _FIELDS[:3])
    pattern = record.get("pattern") or None
    # one alert per kind and subject; entity alerts: per kind, pattern and subject
    ids = [make_alert_id(kind, subject_type, subject_id)]
    if pattern is not None:
        ids.append(make_alert_id(f"{kind}:{pattern}", subject_type, subject_id))
    given = record.get("alert_id")
    if given is not None and given not in ids:
        raise fail("alert_id", f"{given!r} is not the id of this kind and subject ({ids[0]})")
    score = float(record["score"])
    if not 0.0 <= score <= 1.0:
        raise fail("score", f"{score} outside 0..1")
    level = record.get("level") or LEVELS[0]
    if level not in LEVELS:
        raise fail("level", f"{level!r} is not one of {list(LEVELS)}")

    def text(field: str) -> str | None:
        value = record.get(field)
        return None if value is None or value == "" else str(value)

    return {
        "alert_id": given or ids[0],
        "kind": kind,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "score": score,
        "severity": str(record["severity"]),
        "jurisdiction": text("jurisdiction"),
        "agency_id": text("agency_id"),
        "reasons": text("reasons") or "",
        "pattern": None if pattern is None else str(pattern),
        "dossiers": _dossier_list(record.get("dossiers")),
        "level": level,
    }


def _dossier_list(value: Any) -> list[str] | None:
    """The supporting dossiers: the scorer writes ``a;b;c`` (a list is fine too)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [d for d in value.split(";") if d]
    return [str(d) for d in value]


def upsert_alerts(
    session: Session,
    batch: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> UpsertResult:
    """Store the scorer's alerts (models.scoring's ALERT_COLUMNS): new ones are raised
    (open), closed ones that came back are reopened, the others get the new score and
    reasons (their workflow state is kept). One alert per kind and subject (and pattern,
    for the scorer's entity alerts), whose id must be :func:`models.scoring.alert_id`'s."""
    stamp = now or datetime.now(UTC)
    records = (
        batch.astype(object).where(batch.notna(), None).to_dict("records")
        if isinstance(batch, pd.DataFrame)
        else list(batch)
    )
    wanted: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(records):
        row = _clean_alert(index, record)  # type: ignore[arg-type]
        seen = wanted.get(row["alert_id"])
        if seen is None or row["score"] > seen["score"]:
            wanted[row["alert_id"]] = row
    ids = sorted(wanted)
    found: dict[str, Any] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        stmt = sa.select(alerts.c.alert_id, alerts.c.status, alerts.c.version).where(
            alerts.c.alert_id.in_(chunk)
        )
        found.update({r.alert_id: r for r in session.execute(stmt)})
    new = [wanted[i] for i in ids if i not in found]
    if new:
        extra = {"status": Status.OPEN.value, "version": 1, "opened_at": stamp, "updated_at": stamp}
        session.execute(sa.insert(alerts), [{**r, **extra} for r in new])
        _record(session, [(r, Action.RAISE, None, Status.OPEN, None, 1) for r in new], stamp)
    kept = [wanted[i] for i in ids if i in found]
    if kept:
        session.execute(
            sa.update(alerts)
            .where(alerts.c.alert_id == sa.bindparam("b_id"))
            .values(
                score=sa.bindparam("b_score"),
                severity=sa.bindparam("b_severity"),
                reasons=sa.bindparam("b_reasons"),
                agency_id=sa.bindparam("b_agency"),
                pattern=sa.bindparam("b_pattern"),
                dossiers=sa.bindparam("b_dossiers", type_=alerts.c.dossiers.type),
                updated_at=stamp,
            ),
            [
                {
                    "b_id": r["alert_id"],
                    "b_score": r["score"],
                    "b_severity": r["severity"],
                    "b_reasons": r["reasons"],
                    "b_agency": r["agency_id"],
                    "b_pattern": r["pattern"],
                    "b_dossiers": r["dossiers"],
                }
                for r in kept
            ],
        )
    back = [r["alert_id"] for r in kept if found[r["alert_id"]].status == Status.CLOSED]
    for alert_id in back:
        transition(session, alert_id, Action.REOPEN, SYSTEM, reason="risk is back", now=stamp)
    return UpsertResult(raised=len(new), updated=len(kept) - len(back), reopened=len(back))


def close_passed(
    session: Session,
    still_raised: Iterable[str],
    *,
    kinds: Iterable[str] | None = None,
    subjects: Sequence[str] | None = None,
    subject_type: str | None = None,
    now: datetime | None = None,
) -> int:
    """Close the open and acknowledged alerts (of ``kinds``; about ``subjects`` of
    ``subject_type``, for a run that scored only those) that a scoring run no longer
    raises; returns how many were closed."""
    keep = set(still_raised)
    stmt = sa.select(alerts.c.alert_id).where(alerts.c.status.in_([s.value for s in ACTIVE]))
    if kinds is not None:
        stmt = stmt.where(alerts.c.kind.in_(sorted(set(kinds))))
    if subject_type is not None:
        stmt = stmt.where(alerts.c.subject_type == subject_type)
    if subjects is None:
        found = list(session.execute(stmt.order_by(alerts.c.alert_id)).scalars())
    else:
        found = []
        for start in range(0, len(subjects), 1000):
            chunk = list(subjects[start : start + 1000])
            found += session.execute(stmt.where(alerts.c.subject_id.in_(chunk))).scalars()
        found.sort()
    passed = [i for i in found if i not in keep]
    for alert_id in passed:
        transition(session, alert_id, Action.CLOSE, SYSTEM, reason="risk passed", now=now)
    return len(passed)


def transition(
    session: Session,
    alert_id: str,
    action: Action | str,
    user: User,
    *,
    expected_version: int | None = None,
    reason: str | None = None,
    assignee: str | None = None,
    now: datetime | None = None,
) -> Alert:
    """Apply a workflow action to an alert as ``user``; returns the alert after it.

    Raises :class:`AlertTransitionError` for an action the alert's status does not allow
    (or a dismissal without a reason, a reassignment without an assignee, an escalation
    past the top level); :class:`AlertConflictError` when the alert is not at
    ``expected_version`` or another writer changed it meanwhile;
    :class:`PermissionDeniedError` for a user whose role may not act on alerts.
    """
    try:
        act = Action(action)
    except ValueError:
        raise AlertTransitionError(f"unknown action {action!r}") from None
    if act is Action.RAISE:
        raise AlertTransitionError("alerts are raised by upsert_alerts, not by a transition")
    if user.role not in ALERT_WORKERS:
        raise PermissionDeniedError(f"role {user.role.value} may not act on alerts")
    if act in SYSTEM_ACTIONS and user is not SYSTEM:
        raise PermissionDeniedError(f"{act.value} is done by the scorer, not by a user")
    current = get_alert(session, user, alert_id)
    if act in VERDICTS and (agency := interested_agency(user, current)) is not None:
        raise PermissionDeniedError(
            f"user {user.name} works for agency {agency}, which alert {alert_id} is about: "
            f"someone outside it must {act.value} it (separation of duties)"
        )
    if expected_version is not None and expected_version != current.version:
        raise AlertConflictError(alert_id, expected_version)
    allowed, after = TRANSITIONS[act]
    if current.status not in allowed:
        raise AlertTransitionError(
            f"cannot {act.value} alert {alert_id}: it is {current.status.value} "
            f"({act.value} applies to {', '.join(sorted(s.value for s in allowed))})"
        )
    status = after or current.status
    note = reason.strip() if reason and reason.strip() else None
    stamp = now or datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status.value,
        "version": current.version + 1,
        "updated_at": stamp,
    }
    level = current.level
    if act is Action.DISMISS and note is None:
        raise AlertTransitionError(f"dismissing alert {alert_id} needs a reason")
    if act in (Action.CONFIRM, Action.DISMISS):
        values.update(decided_at=stamp, decided_by=user.name, verdict_reason=note)
    elif act is Action.ESCALATE:
        step = LEVELS.index(level) + 1
        if step >= len(LEVELS):
            raise AlertTransitionError(f"alert {alert_id} is at the top level ({level})")
        level = values["level"] = LEVELS[step]
    elif act is Action.REASSIGN:
        values["assignee_id"] = _assignable(session, alert_id, current, assignee)
    elif act is Action.ACKNOWLEDGE and current.assignee is None and user.id is not None:
        values["assignee_id"] = user.id
    elif act is Action.CLOSE:
        values["closed_at"] = stamp
    elif act is Action.REOPEN:
        values.update(closed_at=None, opened_at=stamp)
    done = session.execute(
        sa.update(alerts)
        .where(alerts.c.alert_id == alert_id, alerts.c.version == current.version)
        .values(**values)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise AlertConflictError(alert_id, current.version)
    row = {
        "alert_id": alert_id,
        "jurisdiction": current.jurisdiction,
        "kind": current.kind,
        "subject_type": current.subject_type,
        "subject_id": current.subject_id,
        "score": current.score,
        "severity": current.severity,
        "agency_id": current.agency_id,
        "level": level,
    }
    extra = {"assignee": assignee} if act is Action.REASSIGN else {}
    _record(
        session,
        [(row, act, current.status, status, note, current.version + 1)],
        stamp,
        actor=user.name,
        from_level=current.level,
        extra=extra,
    )
    return get_alert(session, SYSTEM, alert_id)


def interested_agency(user: User, alert: Alert) -> str | None:
    """The user's agency if the alert is about it (its ``agency_id``, or its subject: the
    agency, or an end of an agency pair ``A->B``); else None."""
    agency = user.agency_id
    if agency is None:
        return None
    about = {alert.agency_id}
    if alert.subject_type == "agency":
        about.add(alert.subject_id)
    elif alert.subject_type == "agency_pair":
        about.update(alert.subject_id.split("->"))
    return agency if agency in about else None


def _assignable(session: Session, alert_id: str, current: Alert, name: str | None) -> int:
    if not name:
        raise AlertTransitionError(f"reassigning alert {alert_id} needs an assignee")
    try:
        target = get_user(session, name)
    except NotFoundError:
        raise AlertTransitionError(
            f"cannot assign alert {alert_id} to unknown user {name!r}"
        ) from None
    if not target.active or target.role not in ALERT_WORKERS:
        raise AlertTransitionError(f"user {name!r} cannot work on alerts")
    if not can_see(target, current.jurisdiction):
        raise AlertTransitionError(
            f"user {name!r} does not cover jurisdiction {current.jurisdiction!r}"
        )
    assert target.id is not None
    return target.id


def _record(
    session: Session,
    changes: list[tuple[dict[str, Any], Action, Status | None, Status, str | None, int]],
    stamp: datetime,
    *,
    actor: str = SYSTEM.name,
    from_level: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """History rows, audit entries and outbox messages of ``changes``."""
    history, entries, messages = [], [], []
    for row, act, before, after, note, version in changes:
        was = from_level if before is not None else None
        history.append(
            {
                "alert_id": row["alert_id"],
                "at": stamp,
                "actor": actor,
                "action": act.value,
                "from_status": before.value if before else None,
                "to_status": after.value,
                "from_level": was,
                "to_level": row["level"],
                "reason": note,
                "version": version,
            }
        )
        details = {
            "from": before.value if before else None,
            "to": after.value,
            "level": row["level"],
            "reason": note,
            "version": version,
            **(extra or {}),
        }
        entries.append(
            audit.AuditAction(actor, f"alert.{act.value}", "alert", row["alert_id"], details)
        )
        # kind, severity and jurisdiction route the message to webhook subscriptions
        keys = ("alert_id", "kind", "subject_type", "subject_id", "score", "severity", "agency_id")
        payload = {k: row.get(k) for k in keys}
        payload.update(details, actor=actor, at=stamp.isoformat())
        messages.append((f"alert.{act.value}", payload, row["jurisdiction"]))
    session.execute(sa.insert(alert_history), history)
    audit.append_many(session, entries, now=stamp)
    webhooks.enqueue_many(session, messages, now=stamp)
