"""The terminal's side of sync, as store operations: the outbox, acknowledgements, pulled data.

The journal is the outbox: every entry after the last one the server acknowledged is pending.
When the server acknowledges, the offline counters are recomputed from what is still pending
(the server now knows the rest), and the offline clock restarts. A pulled page (format in
docs/server-api.md) replaces cached cards, denylist, keys, limits and prices; a card's local
balance is the server's ledger balance plus this terminal's own entries the server has not yet
applied, so nothing is counted twice or lost between a push and a pull.

The HTTP client (sync/client.py) calls these inside `Store.write` jobs; nothing here does I/O
beyond the store.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from terminal import journal
from terminal.buyback import BuybackTable
from terminal.errors import CardposError
from terminal.limits import Limits
from terminal.store import queries

DEBIT_KINDS = ("redeem", "buyback", "transfer")


class SyncError(CardposError):
    """The server's answer cannot be used (bad checksum, malformed page); nothing was applied."""

    code = "sync_error"


def acked_seq(conn: sqlite3.Connection) -> int:
    return int(queries.get_meta(conn, "acked_seq") or 0)


def outbox(conn: sqlite3.Connection, limit: int = 500) -> list[dict[str, Any]]:
    """The next `limit` entries the server has not acknowledged, oldest first, as sent."""
    after = acked_seq(conn)  # sequences have no gaps, so a range is exactly `limit` entries
    return [e.as_json() for e in journal.entries(conn, "seq > ? AND seq <= ?",
                                                 (after, after + limit))]


def pending_count(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM journal WHERE seq > ?", (acked_seq(conn),)).fetchone()
    return int(row[0])


def _pending(conn: sqlite3.Connection) -> list[journal.Entry]:
    return list(journal.entries(conn, "seq > ?", (acked_seq(conn),)))


def record_push(conn: sqlite3.Connection, server_last_seq: int, now: datetime) -> int:
    """The server has applied this terminal's entries up to `server_last_seq`: move the
    acknowledgement, recompute the offline counters from what is still pending, restart the
    offline clock. Returns how many entries remain pending."""
    head = int(queries.get_meta(conn, "journal_head_seq") or 0)
    if not 0 <= server_last_seq <= head:
        raise SyncError("bad_ack", last_seq=server_last_seq, head=head)
    # The server is the authority on what it holds: after a restore from backup it may know
    # less than it once acknowledged, and the terminal then sends those entries again.
    queries.set_meta(conn, "acked_seq", str(server_last_seq))
    limits = queries.load_limits(conn)
    pending = _pending(conn)
    total, per_day = _exposure(pending, ZoneInfo(limits.timezone))
    queries.set_meta(conn, "offline_total", str(total))
    conn.execute("DELETE FROM card_day_spend")
    conn.executemany("INSERT INTO card_day_spend (card, day, amount) VALUES (?, ?, ?)",
                     [(card, day.isoformat(), amount) for (card, day), amount in per_day.items()
                      if amount > 0])
    queries.set_meta(conn, "last_sync_at", now.isoformat())
    return len(pending)


def _exposure(entries: list[journal.Entry], zone: ZoneInfo
              ) -> tuple[int, dict[tuple[str, date], int]]:
    """Offline debits of `entries` less what their voids gave back: in total and per card-day."""
    total = 0
    per_day: dict[tuple[str, date], int] = defaultdict(int)
    by_id = {e.id: e for e in entries}
    for e in entries:
        if e.body["online"]:
            continue
        own = [d.amount for d in e.deltas if d.card == e.body["card"]]
        if e.kind in DEBIT_KINDS:
            taken, debit = -sum(a for a in own if a < 0), e
        elif e.kind == "void" and e.body["ref"] in by_id:
            # Only a void of a still-pending debit changes the pending exposure (of its day).
            taken, debit = -sum(own), by_id[e.body["ref"]]
        else:
            continue
        total += taken
        per_day[(str(debit.body["card"]), debit.at.astimezone(zone).date())] += taken
    return max(total, 0), per_day


def checksum(page: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a pulled page without its checksum member."""
    return hashlib.sha256(journal.canonical(
        {k: v for k, v in page.items() if k != "checksum"})).hexdigest()


def parse_pull(raw: bytes) -> dict[str, Any]:
    """A pulled page from the bytes of the server's answer, its checksum checked (SyncError
    `bad_checksum`; ValueError when it is not a JSON object). Called on the fetching thread, so
    the store's writer does not pay for it. This project's server sends the canonical JSON of
    the body with the checksum appended as the last member: then the bytes themselves are
    hashed (no re-serialization). Any other form is checked as documented, over the parsed
    object."""
    page = json.loads(raw)
    if not isinstance(page, dict):
        raise ValueError("the page is not a JSON object")
    head, _sep, tail = raw.rpartition(b',"checksum":"')
    stated = page.get("checksum")
    if isinstance(stated, str) and tail == stated.encode("ascii", "replace") + b'"}' \
            and hashlib.sha256(head + b"}").hexdigest() == stated:
        return page
    if stated != checksum(page):
        raise SyncError("bad_checksum")
    return page


@dataclass(frozen=True)
class PullSummary:
    cursor: int
    reset: bool
    cards: int
    denylist: int
    keys: int
    more: bool

    def as_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "reset": self.reset, "cards": self.cards,
                "denylist": self.denylist, "keys": self.keys, "more": self.more}


class PendingDeltas:
    """This terminal's entries the server has not applied, summed per (card, purse), for the
    pages of one sync round: the first page sums them, later pages add only the entries
    journalled since (the journal is append-only), and a moved acknowledgement starts over. So
    a redemption made while a round pages is counted, and a round of many pages does not
    re-read the whole unpushed journal per page. Used on the store's writer thread only."""

    def __init__(self) -> None:
        self._acked = -1
        self._head = 0
        self.sums: dict[tuple[str, str], int] = defaultdict(int)

    def refresh(self, conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
        acked = acked_seq(conn)
        if acked != self._acked:
            self._acked, self._head, self.sums = acked, acked, defaultdict(int)
        head = int(conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0])
        if head > self._head:
            for e in journal.entries(conn, "seq > ? AND seq <= ?", (max(self._head, acked),
                                                                   head)):
                for d in e.deltas:
                    self.sums[(d.card, d.purse)] += d.amount
            self._head = head
        return self.sums


# A reset snapshot rewrites the whole cache: a bigger page cache (KiB, negative = size) keeps the
# cards' and purses' B-trees in memory while it loads. Durability is unchanged: every page still
# COMMITs with the store's synchronous=FULL. Back to SQLite's default once the snapshot is done.
SNAPSHOT_CACHE_KIB = 65_536
DEFAULT_CACHE_KIB = 2_000


def apply_pull(conn: sqlite3.Connection, page: dict[str, Any],
               pending: PendingDeltas | None = None, *, checked: bool = False) -> PullSummary:
    """Apply one pulled page inside the caller's write transaction (all of it or none).
    `pending`: the round's `PendingDeltas` (a fresh one when None). `checked`: the page comes
    from `parse_pull`, which checked its checksum already."""
    if not isinstance(page, dict) or (not checked and page.get("checksum") != checksum(page)):
        raise SyncError("bad_checksum")
    try:
        if page["reset"]:
            conn.execute(f"PRAGMA cache_size = -{SNAPSHOT_CACHE_KIB}")
            conn.execute("DELETE FROM purses")
            conn.execute("DELETE FROM cards")
            conn.execute("DELETE FROM denylist")
        _put_card(conn, page["cards"], (pending or PendingDeltas()).refresh(conn))
        listed = [(i["card"], i["reason"] or "") for i in page["denylist"] if i["listed"]]
        conn.executemany("INSERT OR REPLACE INTO denylist (card, reason, added_at)"
                         " VALUES (?, ?, datetime('now'))", listed)
        conn.executemany("DELETE FROM denylist WHERE card = ?",
                         [(i["card"],) for i in page["denylist"] if not i["listed"]])
        for key in page["keys"]:
            if key["revoked"]:
                conn.execute("DELETE FROM keys WHERE key_id = ?", (key["key_id"],))
            else:
                conn.execute("INSERT OR REPLACE INTO keys (key_id, public_key, added_at)"
                             " VALUES (?, ?, datetime('now'))",
                             (key["key_id"], bytes.fromhex(key["public_key_hex"])))
        if page.get("limits") is not None:
            # The server sends the members it manages; the others stay as this terminal has
            # them (docs/server-api.md).
            queries.save_limits(conn, Limits.from_json(
                {**queries.load_limits(conn).as_json(), **page["limits"]}))
        if page.get("prices") is not None:
            BuybackTable.from_json(page["prices"])
            queries.set_meta(conn, "buyback", json.dumps(page["prices"], sort_keys=True))
        cursor = int(page["cursor"])
        queries.set_meta(conn, "sync_cursor", str(cursor))
        if not page["more"]:
            conn.execute(f"PRAGMA cache_size = -{DEFAULT_CACHE_KIB}")
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError("bad_pull_page", detail=f"{type(exc).__name__}: {exc}") from exc
    return PullSummary(cursor, bool(page["reset"]), len(page["cards"]), len(page["denylist"]),
                       len(page["keys"]), bool(page["more"]))


def _put_card(conn: sqlite3.Connection, cards: list[dict[str, Any]],
              pending: dict[tuple[str, str], int]) -> None:
    """Upsert a page's cards and replace their purses in a few statements per page;
    balance = server balance + this terminal's pending deltas (never below 0 here: an
    overspent card is denylisted by the server anyway).

    Two lookups first (the page's keys as one JSON array) find the cards already held and the
    UIDs held by other cards, so the per-card work — dropping old purses, moving a UID off
    another card (the index is unique) — is done only where it is needed: a snapshot into an
    empty cache is two bulk inserts."""
    rows = [(str(c["number"]), c["uid"], c["program"], c["status"], c["expiry"], c["pin_hash"])
            for c in cards]
    numbers = json.dumps([r[0] for r in rows])
    held = [number for (number,) in conn.execute(
        "SELECT number FROM cards WHERE number IN (SELECT value FROM json_each(?))", (numbers,))]
    uids = json.dumps([r[1] for r in rows if r[1] is not None])
    taken = dict(conn.execute("SELECT uid, number FROM cards WHERE uid IS NOT NULL"
                              " AND uid IN (SELECT value FROM json_each(?))", (uids,)).fetchall())
    conn.executemany("UPDATE cards SET uid = NULL WHERE uid = ? AND number != ?",
                     [(r[1], r[0]) for r in rows if r[1] in taken and taken[r[1]] != r[0]])
    conn.executemany(
        "INSERT INTO cards (number, uid, program, status, expiry, pin_hash) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT (number) DO UPDATE SET uid = excluded.uid, program = excluded.program,"
        " status = excluded.status, expiry = excluded.expiry, pin_hash = excluded.pin_hash",
        rows)
    conn.executemany("DELETE FROM purses WHERE card = ?", [(n,) for n in held])
    conn.executemany(
        "INSERT INTO purses (card, name, position, currency, balance) VALUES (?, ?, ?, ?, ?)",
        [(number, p["name"], i, p["currency"],
          max(int(p["balance"]) + pending.get((number, p["name"]), 0), 0))
         for (number, *_rest), c in zip(rows, cards, strict=True)
         for i, p in enumerate(c["purses"], start=1)])
