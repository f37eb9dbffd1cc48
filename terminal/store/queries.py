"""Small queries over the store's tables, each taking the connection it runs on.

Write helpers are called only inside `Store.write` jobs (the writer thread's transaction); read
helpers work on either kind of connection.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from datetime import date
from typing import Any

from terminal.errors import NotFound, StateError
from terminal.limits import Limits
from terminal.model import Card, CardStatus, Cashier, Delta, Purse, Role


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def terminal_id(conn: sqlite3.Connection) -> str:
    value = get_meta(conn, "terminal_id")
    if value is None:
        raise StateError("no_store", path="?")
    return value


def load_limits(conn: sqlite3.Connection) -> Limits:
    return parse_limits(get_meta(conn, "limits"))


@functools.lru_cache(maxsize=8)
def parse_limits(text: str | None) -> Limits:
    """Limits from their stored JSON; cached by text, since every operation reads them."""
    return Limits() if text is None else Limits.from_json(json.loads(text))


def meta_values(conn: sqlite3.Connection, *keys: str) -> dict[str, str]:
    """Several meta values in one query (absent keys are missing from the result)."""
    marks = ",".join("?" * len(keys))
    return {k: v for k, v in conn.execute(
        f"SELECT key, value FROM meta WHERE key IN ({marks})", keys)}


def save_limits(conn: sqlite3.Connection, limits: Limits) -> None:
    set_meta(conn, "limits", json.dumps(limits.as_json(), sort_keys=True))


def _card_from_row(row: Sequence[Any], purses: list[Purse]) -> Card:
    return Card(number=row[0], uid=row[1], program=row[2], status=CardStatus(row[3]),
                expiry=date.fromisoformat(row[4]) if row[4] else None, pin_hash=row[5],
                pin_failures=row[6], purses=tuple(purses))


_CARD_SELECT = (
    "SELECT c.number, c.uid, c.program, c.status, c.expiry, c.pin_hash, c.pin_failures,"
    " p.name, p.currency, p.balance FROM cards c LEFT JOIN purses p ON p.card = c.number"
    " WHERE c.{key} = ? ORDER BY p.position")


def load_card(conn: sqlite3.Connection, *, number: str | None = None, uid: str | None = None
              ) -> Card | None:
    """The card with this printed number or NFC UID (upper-case hex), with its purses — in
    one statement, since this is on every decision's path."""
    key, value = ("number", number) if number is not None else ("uid", uid)
    rows = conn.execute(_CARD_SELECT.format(key=key), (value,)).fetchall()
    if not rows:
        return None
    purses = [Purse(r[7], r[8], r[9]) for r in rows if r[7] is not None]
    return _card_from_row(rows[0], purses)


def apply_deltas(conn: sqlite3.Connection, deltas: Sequence[Delta], *, clamp: bool = False
                 ) -> None:
    """Add each delta to its purse. The schema's CHECK refuses a negative balance outright;
    with `clamp` (a debit the server authorized against a fresher balance) it stops at 0."""
    sql = ("UPDATE purses SET balance = max(balance + ?, 0) WHERE card = ? AND name = ?" if clamp
           else "UPDATE purses SET balance = balance + ? WHERE card = ? AND name = ?")
    for d in deltas:
        cur = conn.execute(sql, (d.amount, d.card, d.purse))
        if cur.rowcount != 1:
            raise NotFound("no_such_purse", card=d.card, purse=d.purse)


def set_card_status(conn: sqlite3.Connection, number: str, status: CardStatus) -> None:
    conn.execute("UPDATE cards SET status = ? WHERE number = ?", (status.value, number))


def set_pin_failures(conn: sqlite3.Connection, number: str, failures: int) -> None:
    conn.execute("UPDATE cards SET pin_failures = ? WHERE number = ?", (failures, number))


def is_denylisted(conn: sqlite3.Connection, number: str) -> bool:
    return conn.execute("SELECT 1 FROM denylist WHERE card = ?", (number,)).fetchone() is not None


def card_day_total(conn: sqlite3.Connection, number: str, day: date) -> int:
    row = conn.execute("SELECT amount FROM card_day_spend WHERE card = ? AND day = ?",
                       (number, day.isoformat())).fetchone()
    return 0 if row is None else int(row[0])


def add_card_day(conn: sqlite3.Connection, number: str, day: date, amount: int) -> None:
    """Add `amount` (negative for a void) to the card's offline spend of `day`, never below 0."""
    conn.execute(
        "INSERT INTO card_day_spend (card, day, amount) VALUES (?, ?, max(?, 0))"
        " ON CONFLICT (card, day) DO UPDATE SET amount = max(amount + excluded.amount, 0)"
        if amount >= 0 else
        "UPDATE card_day_spend SET amount = max(amount + ?3, 0) WHERE card = ?1 AND day = ?2",
        (number, day.isoformat(), amount))


def offline_total(conn: sqlite3.Connection) -> int:
    return int(get_meta(conn, "offline_total") or 0)


def add_offline_total(conn: sqlite3.Connection, amount: int) -> None:
    """Add `amount` (negative for a void) to the offline total since the last sync, never
    below 0."""
    conn.execute("UPDATE meta SET value = CAST(max(CAST(value AS INTEGER) + ?, 0) AS TEXT)"
                 " WHERE key = 'offline_total'", (amount,))


def public_keys(conn: sqlite3.Connection) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in conn.execute("SELECT key_id, public_key FROM keys")}


def mark_code_seen(conn: sqlite3.Connection, key_id: str, card: str, counter: int,
                   forget_after: int, now: int) -> bool:
    """Remember a dynamic code; False if it was already seen (a replay). Forgets expired ones."""
    conn.execute("DELETE FROM seen_codes WHERE forget_after < ?", (now,))
    cur = conn.execute("INSERT OR IGNORE INTO seen_codes (key_id, card, counter, forget_after)"
                       " VALUES (?, ?, ?, ?)", (key_id, card, counter, forget_after))
    return cur.rowcount == 1


def code_seen(conn: sqlite3.Connection, key_id: str, card: str, counter: int) -> bool:
    return conn.execute("SELECT 1 FROM seen_codes WHERE key_id = ? AND card = ? AND counter = ?",
                        (key_id, card, counter)).fetchone() is not None


def load_cashier(conn: sqlite3.Connection, cashier_id: str) -> Cashier | None:
    row = conn.execute("SELECT id, name, role, pin_hash, pin_failures, active FROM cashiers"
                       " WHERE id = ?", (cashier_id,)).fetchone()
    return None if row is None else Cashier(row[0], row[1], Role(row[2]), row[3], row[4],
                                            bool(row[5]))


def supervisors(conn: sqlite3.Connection) -> list[Cashier]:
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM cashiers WHERE role = 'supervisor' AND active = 1 ORDER BY id")]
    return [c for i in ids if (c := load_cashier(conn, i)) is not None]


def open_shift(conn: sqlite3.Connection) -> tuple[str, str, str] | None:
    """(shift id, cashier id, opened at) of the open shift, if any."""
    row = conn.execute("SELECT id, cashier, opened_at FROM shifts WHERE closed_at IS NULL"
                       ).fetchone()
    return None if row is None else (row[0], row[1], row[2])
