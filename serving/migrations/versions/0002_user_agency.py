"""Users get an optional agency (separation of duties: nobody gives the verdict on an
alert about their own agency).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 02:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# plain ALTER TABLE on both backends (SQLite 3.35+ drops columns natively): a batch
# rebuild of ``users`` would cascade-delete the API keys and jurisdictions under it.
def upgrade() -> None:
    op.add_column("users", sa.Column("agency_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "agency_id")
