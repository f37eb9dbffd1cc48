"""Branch relay: terminals' role and relay, enrolment codes' role; the relay's upstream
enrolment, what upstream acknowledged per terminal, and the upstream balance of each purse.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen copies of what schema.py said when this migration was written: migrations never change.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("terminals") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False,
                                   server_default="terminal"))
        batch.add_column(sa.Column("relay", sa.String(32), nullable=True))
    with op.batch_alter_table("enrol_codes") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False,
                                   server_default="terminal"))
    op.create_table(
        "relay_upstream",
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("url", sa.String(200), nullable=False),
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("enrolled_at", Time, nullable=False),
        sa.Column("last_round_at", Time, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_relay_upstream"),
    )
    op.create_table(
        "relay_acks",
        sa.Column("terminal", sa.String(32), nullable=False),
        sa.Column("acked_seq", sa.BigInteger, nullable=False),
        sa.Column("acked_at", Time, nullable=False),
        sa.Column("rejected", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["terminal"], ["terminals.id"],
                                name="fk_relay_acks_terminal_terminals"),
        sa.PrimaryKeyConstraint("terminal", name="pk_relay_acks"),
    )
    op.create_table(
        "relay_balances",
        sa.Column("purse_id", sa.BigInteger, nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["purse_id"], ["purses.id"],
                                name="fk_relay_balances_purse_id_purses"),
        sa.PrimaryKeyConstraint("purse_id", name="pk_relay_balances"),
    )


def downgrade() -> None:
    op.drop_table("relay_balances")
    op.drop_table("relay_acks")
    op.drop_table("relay_upstream")
    with op.batch_alter_table("enrol_codes") as batch:
        batch.drop_column("role")
    with op.batch_alter_table("terminals") as batch:
        batch.drop_column("relay")
        batch.drop_column("role")
