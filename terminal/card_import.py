"""Bulk import of cards from CSV into the local cache, all or nothing.

Columns: number,uid,program,purse,balance,currency,expiry,status,pin — one row per purse, so a
card with two purses has two rows that must agree on everything but purse, balance and currency.
The file is streamed inside one write transaction: rows are validated and inserted in batches
(sqlite-utils), errors are collected with their line numbers, and if there is any error the
transaction is rolled back, so nothing from a bad file is imported. PINs in clear are hashed here
(on a thread pool: scrypt releases the GIL); issuer files may carry ready-made hashes instead.
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlite_utils

from terminal.errors import BadInput, ImportRejected, RowError
from terminal.luhn import CARD_NUMBER, is_valid
from terminal.model import CardStatus
from terminal.money import parse_major
from terminal.pin import PIN_FORMAT, hash_pin, is_encoded_hash

COLUMNS = ("number", "uid", "program", "purse", "balance", "currency", "expiry", "status", "pin")
PROGRAM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
PURSE = re.compile(r"^[a-z0-9_]{1,16}$")
_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # fromisoformat alone also takes 2030-W01-1
STATUSES = frozenset(s.value for s in CardStatus)
BATCH = 5_000
MAX_REPORTED = 200


@dataclass(frozen=True)
class ImportSummary:
    cards: int
    purses: int
    pins_hashed: int

    def as_json(self) -> dict[str, int]:
        return {"cards": self.cards, "purses": self.purses, "pins_hashed": self.pins_hashed}


class Collector:
    """Row errors of one import: all are counted, the first MAX_REPORTED are kept."""

    def __init__(self) -> None:
        self.kept: list[RowError] = []
        self.count = 0

    def add(self, line: int, column: str, code: str, **params: Any) -> None:
        self.count += 1
        if len(self.kept) < MAX_REPORTED:
            self.kept.append(RowError(line, column, code, params))


def _check_row(row: dict[str, str], line: int, errors: Collector) -> dict[str, Any] | None:
    """Validate one row's fields; returns the parsed row or None (errors recorded)."""
    before = errors.count
    number = row["number"].strip()
    if not is_valid(number):
        errors.add(line, "number", "bad_check_digit" if CARD_NUMBER.match(number)
                   else "bad_card_number", number=number)
    uid = row["uid"].strip().upper() or None
    if uid is not None and not _UID.match(uid):
        errors.add(line, "uid", "bad_uid", uid=row["uid"])
    program = row["program"].strip()
    if not PROGRAM.match(program):
        errors.add(line, "program", "bad_program", program=program)
    purse = row["purse"].strip()
    if not PURSE.match(purse):
        errors.add(line, "purse", "bad_purse", purse=purse)
    currency = row["currency"].strip().upper()
    balance = 0
    try:
        balance = parse_major(row["balance"], currency)
    except BadInput as exc:
        column = "currency" if exc.code == "unknown_currency" else "balance"
        errors.add(line, column, exc.code, **exc.params)
    expiry_text = row["expiry"].strip()
    expiry = None
    if expiry_text:
        try:
            if not _DATE.match(expiry_text):
                raise ValueError(expiry_text)
            expiry = date.fromisoformat(expiry_text).isoformat()
        except ValueError:
            errors.add(line, "expiry", "bad_date", value=expiry_text)
    status = row["status"].strip().lower()
    if status not in STATUSES:
        errors.add(line, "status", "bad_status", value=status)
    pin = row["pin"].strip()
    if pin and not PIN_FORMAT.match(pin) and not is_encoded_hash(pin):
        errors.add(line, "pin", "bad_pin_format")
    if errors.count > before:
        return None
    return {"number": number, "uid": uid, "program": program, "purse": purse,
            "balance": balance, "currency": currency, "expiry": expiry, "status": status,
            "pin": pin or None}


class _CountingLines:
    """Feeds a file to csv.reader line by line and counts the lines it has handed out, so a
    record's first line number is known even after blank lines or quoted newlines."""

    def __init__(self, handle: Iterator[str]) -> None:
        self.handle = handle
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.count += 1
            yield line


def read_rows(path: Path, errors: Collector) -> Iterator[tuple[int, dict[str, Any]]]:
    """Valid rows of the file with their line numbers; a bad header stops the file at once."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput("cannot_read_file", path=str(path), detail=exc.strerror or str(exc)) \
            from exc
    with handle:
        lines = _CountingLines(handle)
        reader = csv.reader(lines, strict=True)
        try:
            header = tuple(h.strip() for h in next(reader, []))
            if sorted(header) != sorted(COLUMNS):
                errors.add(1, "", "bad_header", expected=",".join(COLUMNS),
                           found=",".join(header))
                return
            while True:
                first_line = lines.count + 1
                values = next(reader, None)
                if values is None:
                    return
                if not values:
                    continue  # a blank line
                if len(values) != len(header):
                    errors.add(first_line, "", "wrong_column_count", expected=len(COLUMNS))
                    continue
                checked = _check_row(dict(zip(header, values, strict=True)), first_line,
                                     errors)
                if checked is not None:
                    yield first_line, checked
        except (csv.Error, UnicodeDecodeError) as exc:
            errors.add(lines.count or 1, "", "unreadable_csv", detail=str(exc))


def import_cards(conn: sqlite3.Connection, path: Path) -> ImportSummary:
    """Import `path` inside the caller's write transaction; ImportRejected if any row is bad.

    Runs on the store's writer thread (via `Store.write`), so the rollback on error covers
    every batch already inserted.
    """
    errors = Collector()
    db = sqlite_utils.Database(conn)
    seen: dict[str, tuple[Any, ...]] = {}   # card number -> attributes of its first row
    purses_seen: set[tuple[str, str]] = set()
    uids: dict[str, str] = {}
    pins: dict[str, str] = {}
    cards_batch: list[dict[str, Any]] = []
    purses_batch: list[dict[str, Any]] = []
    n_cards = n_purses = 0

    def flush() -> None:
        if not errors.count:
            db.table("cards").insert_all(cards_batch, batch_size=BATCH)
            db.table("purses").insert_all(purses_batch, batch_size=BATCH)
        cards_batch.clear()
        purses_batch.clear()

    # Into an empty store (the first, largest import) no row can clash with a stored card.
    store_empty = conn.execute("SELECT 1 FROM cards LIMIT 1").fetchone() is None
    for line, row in read_rows(path, errors):
        number = row["number"]
        attrs = (row["uid"], row["program"], row["expiry"], row["status"], row["pin"])
        if number not in seen:
            if not store_empty and conn.execute("SELECT 1 FROM cards WHERE number = ?",
                                                (number,)).fetchone():
                errors.add(line, "number", "card_exists", number=number)
                continue
            uid = row["uid"]
            if uid is not None and (uid in uids or (not store_empty and conn.execute(
                    "SELECT 1 FROM cards WHERE uid = ?", (uid,)).fetchone())):
                errors.add(line, "uid", "uid_taken", uid=uid)
                continue
            seen[number] = attrs
            if uid is not None:
                uids[uid] = number
            if row["pin"] is not None:
                pins[number] = row["pin"]
            cards_batch.append({"number": number, "uid": uid, "program": row["program"],
                                "status": row["status"], "expiry": row["expiry"],
                                "pin_hash": None, "pin_failures": 0})
            n_cards += 1
        elif seen[number] != attrs:
            errors.add(line, "", "card_rows_disagree", number=number)
            continue
        if (number, row["purse"]) in purses_seen:
            errors.add(line, "purse", "duplicate_purse", number=number, purse=row["purse"])
            continue
        purses_seen.add((number, row["purse"]))
        n_purses += 1
        # A running count: ordering a card's purses by it gives the file's order.
        purses_batch.append({"card": number, "name": row["purse"], "position": n_purses,
                             "currency": row["currency"], "balance": row["balance"]})
        if len(purses_batch) >= BATCH:
            flush()
    flush()
    if errors.count:
        raise ImportRejected(errors.kept, errors.count)
    if n_cards == 0:
        raise BadInput("empty_file", path=str(path))
    _store_pins(conn, pins)
    return ImportSummary(n_cards, n_purses, sum(1 for p in pins.values() if not is_encoded_hash(p)))


def _store_pins(conn: sqlite3.Connection, pins: dict[str, str]) -> None:
    """Hash clear PINs on a thread pool and store every card's PIN hash."""
    clear = [n for n, p in pins.items() if not is_encoded_hash(p)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        hashed = dict(zip(clear, pool.map(lambda n: hash_pin(pins[n]), clear), strict=True))
    conn.executemany("UPDATE cards SET pin_hash = ? WHERE number = ?",
                     ((hashed.get(n, p), n) for n, p in pins.items()))

