"""The server's tables, in SQLAlchemy Core. Alembic migrations (sync/server/migrations/) create
them; a test checks that the migrated database matches this module exactly.

Money is BigInteger minor units with the currency alongside. Times are UTC (`DateTime(timezone=
True)`: timestamptz on PostgreSQL; SQLite keeps the UTC wall time as text).
"""

from __future__ import annotations

import sqlalchemy as sa

# A 64-bit auto-increment key: BIGSERIAL/IDENTITY on PostgreSQL, the rowid on SQLite (where only
# INTEGER PRIMARY KEY auto-increments).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

Time = sa.DateTime(timezone=True)

programs = sa.Table(
    "programs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("created_at", Time, nullable=False),
)

cards = sa.Table(
    "cards", metadata,
    sa.Column("number", sa.String(19), primary_key=True),
    sa.Column("uid", sa.String(20), nullable=True, unique=True),
    sa.Column("program", sa.String(32), sa.ForeignKey("programs.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expiry", sa.Date, nullable=True),
    sa.Column("pin_hash", sa.String(200), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

purses = sa.Table(
    "purses", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("card", sa.String(19), sa.ForeignKey("cards.number"), nullable=False),
    sa.Column("name", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    # A cache of sum(ledger.amount) for this purse, changed in the same transaction as each
    # posting by an atomic `balance = balance + :amount`. The ledger is the truth.
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("card", "name"),
)

terminals = sa.Table(
    "terminals", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("branch", sa.String(64), nullable=True),
    sa.Column("credential_hash", sa.String(200), nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False),
    # The head of the terminal's chain as applied here: the next entry must have
    # seq = last_seq + 1 and prev = last_hash.
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("enrolled_at", Time, nullable=False),
    sa.Column("last_push_at", Time, nullable=True),
)

entries = sa.Table(
    "entries", metadata,
    # The entry's UUIDv7: the primary key is what makes applying exactly-once.
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("terminal", sa.String(32), sa.ForeignKey("terminals.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("card", sa.String(19), nullable=True, index=True),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The canonical form exactly as hashed (docs/journal.md), so the chain can be re-verified.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", Time, nullable=False),
    sa.UniqueConstraint("terminal", "seq"),
)

ledger = sa.Table(
    "ledger", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("purse_id", sa.BigInteger, sa.ForeignKey("purses.id"), nullable=False,
              index=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # "issue" (the opening balance of an import) or the kind of the entry that posted it.
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("entry_id", sa.String(36), sa.ForeignKey("entries.id"), nullable=True,
              index=True),
    sa.Column("terminal", sa.String(32), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("posted_at", Time, nullable=False),
)

exceptions = sa.Table(
    "exceptions", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("card", sa.String(19), nullable=False, index=True),
    sa.Column("purse_id", sa.BigInteger, sa.ForeignKey("purses.id"), nullable=False),
    # How far this entry took the purse below zero (positive, minor units).
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("entry_id", sa.String(36), sa.ForeignKey("entries.id"), nullable=False),
    sa.Column("terminal", sa.String(32), nullable=False),
    # JSON array of the terminal ids involved (sorted).
    sa.Column("terminals", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("resolved_at", Time, nullable=True),
)

denylist = sa.Table(
    "denylist", metadata,
    sa.Column("card", sa.String(19), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("added_at", Time, nullable=False),
)

keys = sa.Table(
    "keys", metadata,
    sa.Column("kid", sa.String(16), primary_key=True),
    sa.Column("public_key", sa.LargeBinary(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

card_status_log = sa.Table(
    "card_status_log", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("card", sa.String(19), sa.ForeignKey("cards.number"), nullable=False,
              index=True),
    sa.Column("old", sa.String(16), nullable=False),
    sa.Column("new", sa.String(16), nullable=False),
    # "issuer" for an issuer operation, else the id of the journal entry that caused it.
    sa.Column("source", sa.String(36), nullable=False),
    sa.Column("at", Time, nullable=False),
)

counters = sa.Table(
    "counters", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# The pull cursor: one row per changed object (kind: card | denylist | key), whose `seq` is
# raised to a fresh value from counters['changes'] by every transaction that changes it.
# "Changes after cursor N" is one range scan of the unique index on seq.
changes = sa.Table(
    "changes", metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Index("ix_changes_seq", "seq", unique=True),
)

# -- 0002: enrolment ------------------------------------------------------------------------------

# A request's credential is looked up by its SHA-256 hash.
sa.Index("ix_terminals_credential_hash", terminals.c.credential_hash, unique=True)

# One-time enrolment codes (sync/server/auth.py): only the SHA-256 of the code is kept; a code
# names the terminal it enrols, is used at most once (`used_at`) and expires (`expires_at`).
enrol_codes = sa.Table(
    "enrol_codes", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("terminal", sa.String(32), nullable=False, index=True),
    sa.Column("branch", sa.String(64), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("used_at", Time, nullable=True),
)

# -- 0003: online authorization holds -------------------------------------------------------------

# An amount held on a purse by an online authorization (sync/server/holds.py). The terminal makes
# the hold's id (a UUID) and puts it in the journal entry's data as `hold`; when that entry is
# pushed the hold is settled. An unsettled hold stops counting at `expires_at`.
holds = sa.Table(
    "holds", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("terminal", sa.String(32), sa.ForeignKey("terminals.id"), nullable=False),
    sa.Column("card", sa.String(19), nullable=False),
    sa.Column("purse_id", sa.BigInteger, sa.ForeignKey("purses.id"), primary_key=True),
    # Positive: how much of the purse the authorization holds (minor units).
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    # Set when the entry that used the hold is applied (its id in `entry_id`).
    sa.Column("settled_at", Time, nullable=True),
    sa.Column("entry_id", sa.String(36), nullable=True),
    # The open holds of a purse are summed on every authorization.
    sa.Index("ix_holds_open", "purse_id", "expires_at",
             sqlite_where=sa.text("settled_at IS NULL"),
             postgresql_where=sa.text("settled_at IS NULL")),
)

# -- 0005: issuing: issuer keys, programs' purses, card batches, company orders -------------------

# The server signs card tokens with exactly one key, its "active" one (sync/server/keyring.py):
# a second active key cannot exist, whatever two operators do at the same time.
sa.Index("ix_keys_one_active", keys.c.status, unique=True,
         sqlite_where=sa.text("status = 'active'"),
         postgresql_where=sa.text("status = 'active'"))

# The private half of the keys the server made (never pulled: `keys` is what terminals get).
issuer_keys = sa.Table(
    "issuer_keys", metadata,
    sa.Column("kid", sa.String(16), sa.ForeignKey("keys.kid"), primary_key=True),
    # PKCS#8 PEM encrypted with the passphrase in CARDPOS_ISSUER_PASSPHRASE.
    sa.Column("private_key", sa.Text, nullable=False),
    sa.Column("retired_at", Time, nullable=True),
    sa.Column("revoked_at", Time, nullable=True),
)

# The purses (and their currency) every card of a program gets when a batch is made.
program_purses = sa.Table(
    "program_purses", metadata,
    sa.Column("program", sa.String(32), sa.ForeignKey("programs.id"), primary_key=True),
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

# A batch of new cards (sync/server/batches.py), made all or nothing; `kid` signed its tokens.
batches = sa.Table(
    "batches", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("program", sa.String(32), sa.ForeignKey("programs.id"), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("prefix", sa.String(18), nullable=False),
    sa.Column("kid", sa.String(16), sa.ForeignKey("keys.kid"), nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

# The batch a card was made in (null for imported cards). No foreign key: SQLite cannot add one
# to an existing table without copying it.
cards.append_column(sa.Column("batch", sa.BigInteger, nullable=True))
sa.Index("ix_cards_batch", cards.c.batch)

# A company's bulk activation order (sync/server/orders.py) and the result of each of its cards.
# Re-running an order skips the cards it already activated: (order_id, card) is the key.
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("order_id", sa.String(64), sa.ForeignKey("orders.id"), primary_key=True),
    # The card number; for a line whose number is unreadable, "#" and the line number.
    sa.Column("card", sa.String(19), primary_key=True),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("purse", sa.String(16), nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    # "activated" (final) or "error" (retried by the next run of the order).
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("code", sa.String(40), nullable=True),
    # JSON object: the error's parameters.
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("applied_at", Time, nullable=False),
)

# -- 0006: second factor by text message, expiry reminders ----------------------------------------

# The phone (E.164, "+" and 8-15 digits) a card's one-time codes and reminders go to
# (sync/server/phones.py). A card bound to a phone needs a code for online payments above the
# configured amount (sync/server/second_factor.py).
card_phones = sa.Table(
    "card_phones", metadata,
    sa.Column("card", sa.String(19), sa.ForeignKey("cards.number"), primary_key=True),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("bound_at", Time, nullable=False),
)

# One one-time code sent for one payment: bound to the card, the amount and the terminal that
# asked. Only an HMAC-SHA-256 of the code, keyed with the challenge's own random salt, is kept.
# A challenge is spent by a right code (`used_at`) or by MAX_ATTEMPTS wrong ones (`attempts`),
# and dies at `expires_at`. Challenges of a card in the last minutes are counted (rate limit).
otp_challenges = sa.Table(
    "otp_challenges", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("card", sa.String(19), sa.ForeignKey("cards.number"), nullable=False),
    sa.Column("terminal", sa.String(32), sa.ForeignKey("terminals.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("used_at", Time, nullable=True),
    sa.Index("ix_otp_challenges_card_created_at", "card", "created_at"),
)

# One expiry reminder per card and expiry date (sync/server/reminders.py): `status` is
# "sending" (claimed by a run), "sent" or "failed" (retried by the next run; `error` says why).
expiry_reminders = sa.Table(
    "expiry_reminders", metadata,
    sa.Column("card", sa.String(19), sa.ForeignKey("cards.number"), primary_key=True),
    sa.Column("expiry", sa.Date, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("error", sa.String(200), nullable=True),
    sa.Column("last_attempt_at", Time, nullable=False),
    sa.Column("sent_at", Time, nullable=True),
)

# -- 0004: limits, prices and config per scope; cards' branch ------------------------------------

# NULL: the card is valid in every branch. A terminal's pull carries only the cards of its own
# branch and those without one (sync/server/pull.py).
cards.append_column(sa.Column("branch", sa.String(64), nullable=True))

# Terminal policy set on the server (sync/server/settings.py), per scope: ("global", ""),
# ("branch", B) or ("terminal", T). `limits` is a partial `terminal.limits.Limits` JSON object
# (only the members set at this scope), `prices` a whole `terminal.buyback.BuybackTable` JSON
# object; either may be NULL (not set here). A terminal's effective limits are global <- branch
# <- terminal, member by member; its prices are the most specific table set.
settings = sa.Table(
    "settings", metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("limits", sa.Text, nullable=True),
    sa.Column("prices", sa.Text, nullable=True),
    sa.Column("updated_at", Time, nullable=False),
)

# -- 0007: branch relay ---------------------------------------------------------------------------

# "terminal" or "relay" (docs/relay.md): a relay's credential may push other terminals' entries
# (POST /v1/relay/push) for the terminals it serves; `relay` names the relay a terminal is served
# through (NULL: enrolled directly). No foreign key: SQLite cannot add one to an existing table
# without copying it.
terminals.append_column(sa.Column("role", sa.String(16), nullable=False,
                                  server_default="terminal"))
terminals.append_column(sa.Column("relay", sa.String(32), nullable=True))
# The role the enrolled terminal gets (`cardpos server enrol-code --relay`).
enrol_codes.append_column(sa.Column("role", sa.String(16), nullable=False,
                                    server_default="terminal"))

# The relay's side (sync/server/relay*.py), empty on a central server. The one row "upstream":
# where the relay syncs to, as which terminal, its credential there (in clear: the relay must
# present it) and its pull cursor there.
relay_upstream = sa.Table(
    "relay_upstream", metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("url", sa.String(200), nullable=False),
    sa.Column("terminal", sa.String(32), nullable=False),
    sa.Column("branch", sa.String(64), nullable=True),
    sa.Column("credential", sa.String(64), nullable=False),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("enrolled_at", Time, nullable=False),
    sa.Column("last_round_at", Time, nullable=True),
    sa.Column("last_error", sa.String(200), nullable=True),
)

# Per local terminal, the last of its entries upstream has applied (its `last_seq` there): the
# entries after it are forwarded, and their postings are what the local balances hold beyond
# upstream's. `rejected`: why upstream refused the next entry (NULL when it did not).
relay_acks = sa.Table(
    "relay_acks", metadata,
    sa.Column("terminal", sa.String(32), sa.ForeignKey("terminals.id"), primary_key=True),
    sa.Column("acked_seq", sa.BigInteger, nullable=False),
    sa.Column("acked_at", Time, nullable=False),
    sa.Column("rejected", sa.String(200), nullable=True),
)

# Per purse, its balance upstream as last pulled: local balance = this + the local postings
# upstream has not acknowledged.
relay_balances = sa.Table(
    "relay_balances", metadata,
    sa.Column("purse_id", sa.BigInteger, sa.ForeignKey("purses.id"), primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
)
