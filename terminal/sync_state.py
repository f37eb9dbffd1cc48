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


def apply_pull(conn: sqlite3.Connection, page: dict[str, Any]) -> PullSummary:
    """Apply one pulled page inside the caller's write transaction (all of it or none)."""
    if not isinstance(page, dict) or page.get("checksum") != checksum(page):
        raise SyncError("bad_checksum")
    try:
        if page["reset"]:
            conn.execute("DELETE FROM purses")
            conn.execute("DELETE FROM cards")
            conn.execute("DELETE FROM denylist")
        pending: dict[tuple[str, str], int] = defaultdict(int)
        for e in _pending(conn):
            for d in e.deltas:
                pending[(d.card, d.purse)] += d.amount
        for card in page["cards"]:
            _put_card(conn, card, pending)
        for item in page["denylist"]:
            if item["listed"]:
                conn.execute("INSERT OR REPLACE INTO denylist (card, reason, added_at)"
                             " VALUES (?, ?, datetime('now'))",
                             (item["card"], item["reason"] or ""))
            else:
                conn.execute("DELETE FROM denylist WHERE card = ?", (item["card"],))
        for key in page["keys"]:
            if key["revoked"]:
                conn.execute("DELETE FROM keys WHERE key_id = ?", (key["key_id"],))
            else:
                conn.execute("INSERT OR REPLACE INTO keys (key_id, public_key, added_at)"
                             " VALUES (?, ?, datetime('now'))",
                             (key["key_id"], bytes.fromhex(key["public_key_hex"])))
        if page.get("limits") is not None:
            queries.save_limits(conn, Limits.from_json(page["limits"]))
        if page.get("prices") is not None:
            BuybackTable.from_json(page["prices"])
            queries.set_meta(conn, "buyback", json.dumps(page["prices"], sort_keys=True))
        cursor = int(page["cursor"])
        queries.set_meta(conn, "sync_cursor", str(cursor))
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError("bad_pull_page", detail=f"{type(exc).__name__}: {exc}") from exc
    return PullSummary(cursor, bool(page["reset"]), len(page["cards"]), len(page["denylist"]),
                       len(page["keys"]), bool(page["more"]))


def _put_card(conn: sqlite3.Connection, card: dict[str, Any],
              pending: dict[tuple[str, str], int]) -> None:
    """Upsert a card and its purses; balance = server ledger + this terminal's pending deltas
    (never below 0 here: an overspent card is denylisted by the server anyway)."""
    number, uid = str(card["number"]), card["uid"]
    if uid is not None:
        conn.execute("UPDATE cards SET uid = NULL WHERE uid = ? AND number != ?", (uid, number))
    conn.execute(
        "INSERT INTO cards (number, uid, program, status, expiry, pin_hash) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT (number) DO UPDATE SET uid = excluded.uid, program = excluded.program,"
        " status = excluded.status, expiry = excluded.expiry, pin_hash = excluded.pin_hash",
        (number, uid, card["program"], card["status"], card["expiry"], card["pin_hash"]))
    conn.execute("DELETE FROM purses WHERE card = ?", (number,))
    conn.executemany(
        "INSERT INTO purses (card, name, position, currency, balance) VALUES (?, ?, ?, ?, ?)",
        [(number, p["name"], i, p["currency"],
          max(int(p["balance"]) + pending.get((number, p["name"]), 0), 0))
         for i, p in enumerate(card["purses"], start=1)])
