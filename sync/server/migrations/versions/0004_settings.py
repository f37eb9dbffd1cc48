"""Limits, prices and config per branch or terminal; cards' branch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    # NULL: the card is valid in every branch.
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("branch", sa.String(64), nullable=True))
    op.create_table(
        "settings",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("limits", sa.Text, nullable=True),
        sa.Column("prices", sa.Text, nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("scope", "name", name="pk_settings"),
    )


def downgrade() -> None:
    op.drop_table("settings")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("branch")
