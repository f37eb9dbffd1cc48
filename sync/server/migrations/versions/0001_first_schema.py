"""The first schema: programs, cards, purses, terminals, entries, ledger, exceptions, denylist,
keys, card status log, and the change log of the pull cursor.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_programs"),
    )
    op.create_table(
        "cards",
        sa.Column("number", sa.String(19), nullable=False),
        sa.Column("uid", sa.String(20), nullable=True),
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("pin_hash", sa.String(200), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["program"], ["programs.id"], name="fk_cards_program_programs"),
        sa.PrimaryKeyConstraint("number", name="pk_cards"),
        sa.UniqueConstraint("uid", name="uq_cards_uid"),
    )
    op.create_table(
        "purses",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["card"], ["cards.number"], name="fk_purses_card_cards"),
        sa.PrimaryKeyConstraint("id", name="pk_purses"),
        sa.UniqueConstraint("card", "name", name="uq_purses_card_name"),
    )
    op.create_table(
        "terminals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("credential_hash", sa.String(200), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("enrolled_at", Time, nullable=False),
        sa.Column("last_push_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_terminals"),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("card", sa.String(19), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["terminal"], ["terminals.id"],
                                name="fk_entries_terminal_terminals"),
        sa.PrimaryKeyConstraint("id", name="pk_entries"),
        sa.UniqueConstraint("terminal", "seq", name="uq_entries_terminal_seq"),
    )
    op.create_index("ix_entries_card", "entries", ["card"])
    op.create_table(
        "ledger",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("purse_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=True),
        sa.Column("terminal", sa.String(32), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("at", Time, nullable=False),
        sa.Column("posted_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name="fk_ledger_entry_id_entries"),
        sa.ForeignKeyConstraint(["purse_id"], ["purses.id"], name="fk_ledger_purse_id_purses"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
    )
    op.create_index("ix_ledger_entry_id", "ledger", ["entry_id"])
    op.create_index("ix_ledger_purse_id", "ledger", ["purse_id"])
    op.create_table(
        "exceptions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("purse_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("terminals", sa.Text(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("resolved_at", Time, nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"],
                                name="fk_exceptions_entry_id_entries"),
        sa.ForeignKeyConstraint(["purse_id"], ["purses.id"],
                                name="fk_exceptions_purse_id_purses"),
        sa.PrimaryKeyConstraint("id", name="pk_exceptions"),
    )
    op.create_index("ix_exceptions_card", "exceptions", ["card"])
    op.create_table(
        "denylist",
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("added_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("card", name="pk_denylist"),
    )
    op.create_table(
        "keys",
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_keys"),
    )
    op.create_table(
        "card_status_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("old", sa.String(16), nullable=False),
        sa.Column("new", sa.String(16), nullable=False),
        sa.Column("source", sa.String(36), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.ForeignKeyConstraint(["card"], ["cards.number"],
                                name="fk_card_status_log_card_cards"),
        sa.PrimaryKeyConstraint("id", name="pk_card_status_log"),
    )
    op.create_index("ix_card_status_log_card", "card_status_log", ["card"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.bulk_insert(counters, [{"name": "changes", "value": 0}])
    op.create_table(
        "changes",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_changes"),
    )
    op.create_index("ix_changes_seq", "changes", ["seq"], unique=True)


def downgrade() -> None:
    for table in ("changes", "counters", "card_status_log", "keys", "denylist", "exceptions",
                  "ledger", "entries", "terminals", "purses", "cards", "programs"):
        op.drop_table(table)
