"""Dashboard facts (issue 8 items 3-5): per dossier what scorecards aggregate
(``dossier_facts``) and its handovers between agencies (``dossier_transfers``), written
with the dossier's scores. Existing stores fill them at the next scoring run
(``giamsat rescore``); until then the dashboards count only re-scored dossiers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 200


def upgrade() -> None:
    op.create_table(
        "dossier_facts",
        sa.Column("dossier_id", sa.String(_ID), nullable=False),
        sa.Column("agency_id", sa.String(_ID), nullable=True),
        sa.Column("procedure_code", sa.String(_ID), nullable=True),
        sa.Column("jurisdiction", sa.String(_ID), nullable=True),
        sa.Column("officer_id", sa.String(_ID), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_day", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_day", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("statutory_days", sa.Float(), nullable=True),
        sa.Column("honest_days", sa.Float(), nullable=True),
        sa.Column("reported_days", sa.Float(), nullable=True),
        sa.Column("duration_ratio", sa.Float(), nullable=True),
        sa.Column("late_honest", sa.SmallInteger(), nullable=True),
        sa.Column("late_reported", sa.SmallInteger(), nullable=True),
        sa.Column("online", sa.SmallInteger(), nullable=True),
        sa.Column("paid", sa.SmallInteger(), nullable=False),
        sa.Column("paid_online", sa.SmallInteger(), nullable=True),
        sa.Column("digitised", sa.SmallInteger(), nullable=True),
        sa.Column("supplement_requests", sa.Integer(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("waste_days", sa.Float(), nullable=True),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id", name=op.f("pk_dossier_facts")),
    )
    op.create_index("ix_dossier_facts_received", "dossier_facts", ["received_day"])
    op.create_index("ix_dossier_facts_closed", "dossier_facts", ["closed_day"])
    op.create_index("ix_dossier_facts_agency", "dossier_facts", ["agency_id", "received_day"])
    op.create_table(
        "dossier_transfers",
        sa.Column("dossier_id", sa.String(_ID), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("from_agency", sa.String(_ID), nullable=False),
        sa.Column("to_agency", sa.String(_ID), nullable=False),
        sa.Column("jurisdiction", sa.String(_ID), nullable=True),
        sa.Column("procedure_code", sa.String(_ID), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("holding_days", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("dossier_id", "n", name=op.f("pk_dossier_transfers")),
    )
    op.create_index("ix_dossier_transfers_day", "dossier_transfers", ["day"])


def downgrade() -> None:
    op.drop_index("ix_dossier_transfers_day", table_name="dossier_transfers")
    op.drop_table("dossier_transfers")
    op.drop_index("ix_dossier_facts_agency", table_name="dossier_facts")
    op.drop_index("ix_dossier_facts_closed", table_name="dossier_facts")
    op.drop_index("ix_dossier_facts_received", table_name="dossier_facts")
    op.drop_table("dossier_facts")
