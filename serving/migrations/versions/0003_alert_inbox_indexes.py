"""Indexes matching the alert inbox's order (score DESC, alert_id) after its equality
filters, and (status, opened_at) for time windows, replacing the single-column status and
jurisdiction indexes they start with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 05:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: name -> the equality columns before (score DESC, alert_id); as serving.tables has them
#: at this revision (copied, so that a later change there does not rewrite history).
INDEXES = {
    "ix_alerts_inbox": ("status",),
    "ix_alerts_inbox_severity": ("status", "severity"),
    "ix_alerts_inbox_kind": ("status", "kind"),
    "ix_alerts_inbox_jurisdiction": ("jurisdiction", "status"),
    "ix_alerts_inbox_agency": ("agency_id", "status"),
}


def upgrade() -> None:
    for name, prefix in INDEXES.items():
        op.create_index(name, "alerts", [*prefix, sa.text("score DESC"), "alert_id"])
    op.create_index("ix_alerts_status_opened", "alerts", ["status", "opened_at"])
    # both are prefixes of the new indexes (status; jurisdiction, status): dead weight
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_index("ix_alerts_jurisdiction", table_name="alerts")


def downgrade() -> None:
    op.create_index("ix_alerts_jurisdiction", "alerts", ["jurisdiction"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.drop_index("ix_alerts_status_opened", table_name="alerts")
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="alerts")
