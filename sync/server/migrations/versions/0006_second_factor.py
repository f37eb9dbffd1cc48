"""Phone numbers, one-time codes, expiry reminders.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "card_phones",
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("bound_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["card"], ["cards.number"], name="fk_card_phones_card_cards"),
        sa.PrimaryKeyConstraint("card", name="pk_card_phones"),
    )
    op.create_table(
        "otp_challenges",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("used_at", Time, nullable=True),
        sa.ForeignKeyConstraint(["card"], ["cards.number"],
                                name="fk_otp_challenges_card_cards"),
        sa.ForeignKeyConstraint(["terminal"], ["terminals.id"],
                                name="fk_otp_challenges_terminal_terminals"),
        sa.PrimaryKeyConstraint("id", name="pk_otp_challenges"),
    )
    op.create_index("ix_otp_challenges_card_created_at", "otp_challenges",
                    ["card", "created_at"])
    op.create_table(
        "expiry_reminders",
        sa.Column("card", sa.String(19), nullable=False),
        sa.Column("expiry", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("last_attempt_at", Time, nullable=False),
        sa.Column("sent_at", Time, nullable=True),
        sa.ForeignKeyConstraint(["card"], ["cards.number"],
                                name="fk_expiry_reminders_card_cards"),
        sa.PrimaryKeyConstraint("card", "expiry", name="pk_expiry_reminders"),
    )


def downgrade() -> None:
    op.drop_table("expiry_reminders")
    op.drop_index("ix_otp_challenges_card_created_at", table_name="otp_challenges")
    op.drop_table("otp_challenges")
    op.drop_table("card_phones")
