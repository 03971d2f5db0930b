"""The events a dossier's scores reflect: ``scored_events_at`` is the ``events_changed_at``
the scorer read, so a dossier waits for re-scoring exactly while the two differ (new events
arrived after its events were read, whatever the order in which ingestions commit); a
partial index holds only the dossiers waiting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: as serving.tables has it at this revision (copied, so that history is not rewritten).
PENDING = "scored_events_at IS NULL OR events_changed_at <> scored_events_at"


def upgrade() -> None:
    with op.batch_alter_table("dossiers") as batch:
        batch.add_column(sa.Column("scored_events_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_dossiers_pending",
        "dossiers",
        ["dossier_id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_dossiers_pending", table_name="dossiers")
    with op.batch_alter_table("dossiers") as batch:
        batch.drop_column("scored_events_at")
