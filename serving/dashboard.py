"""The dashboards' other queries: dossiers by risk with filters (a page, or every row as
CSV), and the transfer graph between agencies.

Scores come from ``dossiers`` (the current scores), the period, officer and clock figures
from ``dossier_facts`` (:mod:`serving.facts`); both are restricted to the jurisdictions
the user may see.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.bulk import dialect_of
from serving.db import Store
from serving.scorecards import FactFilters, Period
from serving.tables import dossier_facts, dossier_transfers, dossiers
from serving.users import User, restrict

__all__ = [
    "COUNT_CAP",
    "CSV_COLUMNS",
    "DossierQuery",
    "TransferGraph",
    "csv_rows",
    "search_risk",
    "transfer_graph",
]

D, F, T = dossiers.c, dossier_facts.c, dossier_transfers.c
ScoreName = Literal["risk", "delay", "waste", "integrity"]
SCORES: dict[str, sa.Column[Any]] = {
    "risk": D.risk_score,
    "delay": D.delay_risk,
    "waste": D.waste_score,
    "integrity": D.integrity_score,
}
#: a page's ``total`` counts at most this many matches (``total_exact`` false above).
COUNT_CAP = 10_000
#: rows per read of a CSV export (keyset pages by dossier id).
CSV_BATCH = 2_000
CSV_COLUMNS = (
    "dossier_id",
    "agency_id",
    "procedure_code",
    "jurisdiction",
    "officer_id",
    "status",
    "received_at",
    "closed_at",
    "due_at",
    "risk_score",
    "delay_risk",
    "remaining_days_p50",
    "waste_score",
    "integrity_score",
    "late_honest",
    "late_reported",
    "duration_ratio",
    "waste_days",
    "scored_as_of",
    "reasons",
)
_SELECTED = (
    D.dossier_id,
    D.agency_id,
    D.procedure_code,
    D.jurisdiction,
    F.officer_id,
    D.status,
    F.received_at,
    F.closed_at,
    F.due_at,
    D.risk_score,
    D.delay_risk,
    D.remaining_days_p50,
    D.waste_score,
    D.integrity_score,
    F.late_honest,
    F.late_reported,
    F.duration_ratio,
    F.waste_days,
    D.scored_as_of,
    D.reasons,
)


@dataclass(frozen=True)
class DossierQuery:
    """Which dossiers: by a score's range, received in a period, open or closed, and the
    facts' filters (agency, procedure, jurisdiction, officer)."""

    score: ScoreName = "risk"
    min_score: float | None = None
    max_score: float | None = None
    period: Period | None = None
    status: Literal["open", "closed"] | None = None
    filters: FactFilters = field(default_factory=FactFilters)

    def select(self, user: User) -> sa.Select[Any]:
        """The matching rows the user may see (unordered)."""
        facts_needed = self.period is not None or self.filters.officer_id is not None
        on = D.dossier_id == F.dossier_id
        if facts_needed:
            source = dossiers.join(dossier_facts, on)
        else:  # dossiers not scored since revision 0006 have no facts yet
            source = dossiers.outerjoin(dossier_facts, on)
        stmt = sa.select(*_SELECTED).select_from(source)
        score = SCORES[self.score]
        if self.min_score is not None:
            stmt = stmt.where(score >= self.min_score)
        if self.max_score is not None:
            stmt = stmt.where(score <= self.max_score)
        if self.period is not None:
            first, last = self.period.days
            stmt = stmt.where(F.received_day.between(first, last))
        if self.status is not None:
            stmt = stmt.where(D.status == self.status)
        return self.filters.apply(
            stmt, user, agency=D.agency_id, procedure=D.procedure_code, jurisdiction=D.jurisdiction
        )


def search_risk(
    session: Session, user: User, query: DossierQuery, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int, bool]:
    """A page of matching dossiers, highest score first (unscored last), the number of
    matches (counted up to :data:`COUNT_CAP`) and whether that count is exact."""
    stmt = query.select(user)
    score = SCORES[query.score]
    # unscored last, in a form the score's index serves (SQLite sorts NULLs last in DESC
    # by itself; ``x IS NULL, x DESC`` would sort every match)
    first = score.desc() if dialect_of(session) == "sqlite" else score.desc().nulls_last()
    ordered = stmt.order_by(first, D.dossier_id)
    rows = [dict(r) for r in session.execute(ordered.limit(limit).offset(offset)).mappings()]
    capped = stmt.with_only_columns(D.dossier_id).limit(COUNT_CAP + 1).subquery()
    total = int(session.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one())
    return rows, min(total, COUNT_CAP), total <= COUNT_CAP


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def csv_rows(store: Store, user: User, query: DossierQuery) -> Iterator[str]:
    """The matching dossiers as CSV text (a header, then one line per dossier in id
    order), read in keyset batches with a session of its own, so a large export streams
    without holding every row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    after: str | None = None
    base = query.select(user).order_by(D.dossier_id).limit(CSV_BATCH)
    while True:
        stmt = base if after is None else base.where(D.dossier_id > after)
        with store.read() as session:
            batch = session.execute(stmt).all()
        if not batch:
            return
        for row in batch:
            writer.writerow([_cell(v) for v in row])
        after = batch[-1][0]
        yield flush()


# --- the transfer graph -------------------------------------------------------------------


@dataclass
class TransferGraph:
    """Agencies as nodes and handovers as directed edges, each with volumes and holding
    times (working days the receiving agency held the dossiers)."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


def transfer_graph(
    session: Session,
    user: User,
    period: Period,
    filters: FactFilters | None = None,
    *,
    min_transfers: int = 1,
) -> TransferGraph:
    """The handovers made in the period (by their day) between agencies, of the dossiers
    the user may see; ``filters.agency_id`` keeps the edges into or out of that agency,
    ``min_transfers`` drops thinner edges. Edges heaviest first; nodes by id."""
    filters = filters or FactFilters()
    first, last = period.days
    stmt = sa.select(
        T.from_agency,
        T.to_agency,
        sa.func.count().label("transfers"),
        sa.func.count(T.holding_days).label("released"),
        sa.func.coalesce(sa.func.sum(T.holding_days), 0.0).label("holding_days_total"),
        sa.func.max(T.holding_days).label("holding_days_max"),
    ).where(T.day.between(first, last))
    if filters.agency_id is not None:
        agency = filters.agency_id
        stmt = stmt.where(sa.or_(T.from_agency == agency, T.to_agency == agency))
    if filters.procedure_code is not None:
        stmt = stmt.where(T.procedure_code == filters.procedure_code)
    if filters.jurisdiction is not None:
        stmt = stmt.where(T.jurisdiction == filters.jurisdiction)
    stmt = restrict(stmt, user, T.jurisdiction).group_by(T.from_agency, T.to_agency)
    if min_transfers > 1:
        stmt = stmt.having(sa.func.count() >= min_transfers)
    edges = []
    nodes: dict[str, dict[str, Any]] = {}
    for row in session.execute(stmt).mappings():
        released = int(row["released"])
        total = float(row["holding_days_total"])
        edges.append(
            {
                "source": row["from_agency"],
                "target": row["to_agency"],
                "transfers": int(row["transfers"]),
                "still_held": int(row["transfers"]) - released,
                "holding_days_mean": total / released if released else None,
                "holding_days_max": row["holding_days_max"],
                "holding_days_total": total,
            }
        )
        for agency, side in ((row["from_agency"], "sent"), (row["to_agency"], "received")):
            node = nodes.setdefault(
                agency,
                {"id": agency, "sent": 0, "received": 0, "_held": 0.0, "_released": 0},
            )
            node[side] += int(row["transfers"])
        target = nodes[row["to_agency"]]
        target["_held"] += total
        target["_released"] += released
    out_nodes = []
    for agency in sorted(nodes):
        node = nodes[agency]
        held, released = node.pop("_held"), node.pop("_released")
        node["holding_days_mean"] = held / released if released else None
        out_nodes.append(node)
    edges.sort(key=lambda e: (-e["transfers"], e["source"], e["target"]))
    return TransferGraph(out_nodes, edges)
