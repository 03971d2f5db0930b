"""Webhook delivery (issue 8): subscriptions filter by alert kind and minimum severity;
deliveries carry the dispatcher's claim (lease token) and last latency; every attempt is
logged in ``webhook_attempts``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# plain ALTER TABLE ADD/DROP COLUMN on both backends: a batch rebuild of the subscriptions
# table on SQLite would cascade-delete their deliveries.
def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("kinds", sa.JSON(), nullable=True))
    op.add_column(
        "webhook_subscriptions", sa.Column("min_severity", sa.String(length=10), nullable=True)
    )
    op.add_column(
        "webhook_subscriptions", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "webhook_deliveries", sa.Column("claim_token", sa.String(length=32), nullable=True)
    )
    op.add_column("webhook_deliveries", sa.Column("last_latency_ms", sa.Float(), nullable=True))
    op.create_table(
        "webhook_attempts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("delivery_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_column("webhook_deliveries", "last_latency_ms")
    op.drop_column("webhook_deliveries", "claim_token")
    op.drop_column("webhook_subscriptions", "updated_at")
    op.drop_column("webhook_subscriptions", "min_severity")
    op.drop_column("webhook_subscriptions", "kinds")
