"""Online authorization holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("purse_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("settled_at", Time, nullable=True),
        sa.Column("entry_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(["terminal"], ["terminals.id"], name="fk_holds_terminal_terminals"),
        sa.ForeignKeyConstraint(["purse_id"], ["purses.id"], name="fk_holds_purse_id_purses"),
        sa.PrimaryKeyConstraint("id", "purse_id", name="pk_holds"),
    )
    op.create_index("ix_holds_open", "holds", ["purse_id", "expires_at"],
                    sqlite_where=sa.text("settled_at IS NULL"),
                    postgresql_where=sa.text("settled_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_holds_open", table_name="holds")
    op.drop_table("holds")
