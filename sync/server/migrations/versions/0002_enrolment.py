"""Enrolment: one-time enrolment codes, and a unique index on terminals' credential hashes (a
request's credential is looked up by its hash).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "enrol_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("used_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_enrol_codes"),
    )
    op.create_index("ix_enrol_codes_terminal", "enrol_codes", ["terminal"])
    op.create_index("ix_terminals_credential_hash", "terminals", ["credential_hash"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_terminals_credential_hash", table_name="terminals")
    op.drop_table("enrol_codes")
