"""Schema of the local store, as numbered migrations applied by `PRAGMA user_version`.

Migration N turns a version N-1 store into version N. A migration is never edited once it has
shipped; a change is a new migration appended here. A store newer than this code is refused.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

    CREATE TABLE cards (
        number TEXT PRIMARY KEY,
        uid TEXT,
        program TEXT NOT NULL,
        status TEXT NOT NULL,
        expiry TEXT,
        pin_hash TEXT,
        pin_failures INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX cards_uid ON cards (uid) WHERE uid IS NOT NULL;

    CREATE TABLE purses (
        card TEXT NOT NULL,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        currency TEXT NOT NULL,
        balance INTEGER NOT NULL CHECK (balance >= 0),
        PRIMARY KEY (card, name)
    ) WITHOUT ROWID;

    CREATE TABLE denylist (card TEXT PRIMARY KEY, reason TEXT NOT NULL, added_at TEXT NOT NULL)
        WITHOUT ROWID;

    CREATE TABLE keys (
        key_id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        added_at TEXT NOT NULL
    ) WITHOUT ROWID;

    -- Dynamic codes already used, kept until their window has passed (replay protection).
    CREATE TABLE seen_codes (
        key_id TEXT NOT NULL,
        card TEXT NOT NULL,
        counter INTEGER NOT NULL,
        forget_after INTEGER NOT NULL,
        PRIMARY KEY (key_id, card, counter)
    ) WITHOUT ROWID;

    -- What each card spent offline per local day, for the per-card daily offline limit.
    CREATE TABLE card_day_spend (
        card TEXT NOT NULL,
        day TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (card, day)
    ) WITHOUT ROWID;

    CREATE TABLE cashiers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        pin_hash TEXT NOT NULL,
        pin_failures INTEGER NOT NULL DEFAULT 0,
        active INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID;

    CREATE TABLE shifts (
        id TEXT PRIMARY KEY,
        cashier TEXT NOT NULL REFERENCES cashiers (id),
        opened_at TEXT NOT NULL,
        closed_at TEXT,
        -- Journal sequence of the shift_open entry: a shift's entries are found by a range
        -- scan from here, so the journal needs no index on shift (one page less per write).
        first_seq INTEGER
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX one_open_shift ON shifts ((closed_at IS NULL)) WHERE closed_at IS NULL;

    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        card TEXT,
        cashier TEXT,
        shift TEXT,
        ref TEXT,
        body TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX journal_ref ON journal (ref) WHERE ref IS NOT NULL;
    CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
        BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
    CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
        BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
