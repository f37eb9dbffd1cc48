"""Card batches, bulk orders, key rotation.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_keys_one_active", "keys", ["status"], unique=True,
                    sqlite_where=sa.text("status = 'active'"),
                    postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "issuer_keys",
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("retired_at", Time, nullable=True),
        sa.Column("revoked_at", Time, nullable=True),
        sa.ForeignKeyConstraint(["kid"], ["keys.kid"], name="fk_issuer_keys_kid_keys"),
        sa.PrimaryKeyConstraint("kid", name="pk_issuer_keys"),
    )
    op.create_table(
        "program_purses",
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["program"], ["programs.id"],
                                name="fk_program_purses_program_programs"),
        sa.PrimaryKeyConstraint("program", "name", name="pk_program_purses"),
    )
    op.create_table(
        "batches",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("prefix", sa.String(18), nullable=False),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["program"], ["programs.id"], name="fk_batches_program_programs"),
        sa.ForeignKeyConstraint(["kid"], ["keys.kid"], name="fk_batches_kid_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
    )
    op.add_column("cards", sa.Column("batch", sa.BigInteger, nullable=True))
    op.create_index("ix_cards_batch", "cards", ["batch"])
    op.create_table(
        "orders",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
    )
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("purse", sa.String(16), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("code", sa.String(40), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("applied_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name="fk_order_lines_order_id_orders"),
        sa.PrimaryKeyConstraint("order_id", "card", name="pk_order_lines"),
    )


def downgrade() -> None:
    op.drop_table("order_lines")
    op.drop_table("orders")
    op.drop_index("ix_cards_batch", table_name="cards")
    op.drop_column("cards", "batch")  # SQLite >= 3.35 drops a column in place
    op.drop_table("batches")
    op.drop_table("program_purses")
    op.drop_table("issuer_keys")
    op.drop_index("ix_keys_one_active", table_name="keys")
