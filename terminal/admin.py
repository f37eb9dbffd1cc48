"""Setting a terminal up and looking after it: the store, issuer keys, limits, cashiers,
card imports and the journal's own checks. Used by the CLI; blocking calls.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from terminal import journal
from terminal.card_import import ImportSummary, import_cards
from terminal.errors import BadInput, StateError
from terminal.limits import Limits
from terminal.model import Cashier, Role
from terminal.people import add_cashier, list_cashiers
from terminal.store import queries
from terminal.store.db import Store

TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,16}$")


def init_store(data_dir: Path, terminal_id: str, limits: Limits, now: datetime) -> Store:
    """Create the store of a new terminal. The offline clock starts now: until the first sync,
    the terminal counts as offline since its creation."""
    if not TERMINAL_ID.match(terminal_id):
        raise BadInput("bad_terminal_id", terminal_id=terminal_id)
    limits.validated()
    store = Store.create(data_dir)

    def job(conn: sqlite3.Connection) -> None:
        queries.set_meta(conn, "terminal_id", terminal_id)
        queries.set_meta(conn, "created_at", now.isoformat())
        queries.set_meta(conn, "last_sync_at", now.isoformat())
        queries.set_meta(conn, "offline_total", "0")
        queries.save_limits(conn, limits)

    store.write(job)
    return store


def add_key(store: Store, key_id: str, public_key_hex: str, now: datetime) -> None:
    """Trust an issuer's Ed25519 public key (32 bytes, hex) under `key_id`."""
    if not KEY_ID.match(key_id):
        raise BadInput("bad_key_id", key_id=key_id)
    try:
        raw = bytes.fromhex(public_key_hex.strip())
    except ValueError:
        raise BadInput("bad_public_key") from None
    if len(raw) != 32:
        raise BadInput("bad_public_key")

    def job(conn: sqlite3.Connection) -> None:
        existing = conn.execute("SELECT public_key FROM keys WHERE key_id = ?",
                                (key_id,)).fetchone()
        if existing is not None and bytes(existing[0]) != raw:
            raise StateError("key_exists", key_id=key_id)
        conn.execute("INSERT OR IGNORE INTO keys (key_id, public_key, added_at) VALUES (?, ?, ?)",
                     (key_id, raw, now.isoformat()))

    store.write(job)


def list_keys(store: Store) -> dict[str, str]:
    return store.read(lambda conn: {k: v.hex() for k, v in queries.public_keys(conn).items()})


def get_limits(store: Store) -> Limits:
    return store.read(queries.load_limits)


def set_limit(store: Store, name: str, value: str, now: datetime) -> Limits:
    """Change one setting locally; journaled, since raising a limit raises the offline risk."""
    def job(conn: sqlite3.Connection) -> Limits:
        old = queries.load_limits(conn)
        new = old.with_setting(name, value)
        queries.save_limits(conn, new)
        journal.append(conn, queries.terminal_id(conn), journal.NewEntry(
            "limits", data={"name": name, "old": old.as_json()[name],
                            "new": new.as_json()[name]}), now)
        return new

    return store.write(job)


def new_cashier(store: Store, cashier_id: str, name: str, role: Role, pin: str) -> None:
    store.write(lambda conn: add_cashier(conn, cashier_id, name, role, pin))


def cashiers(store: Store) -> list[Cashier]:
    return store.read(list_cashiers)


def import_card_file(store: Store, path: Path) -> ImportSummary:
    return store.write(lambda conn: import_cards(conn, path))


def verify_journal(store: Store) -> journal.VerifyResult:
    """Walk the whole chain (see `journal.verify_rows`)."""
    def job(conn: sqlite3.Connection) -> journal.VerifyResult:
        head = queries.get_meta(conn, "journal_head_seq")
        rows = conn.execute(f"{journal.SELECT_ENTRIES} ORDER BY seq")
        return journal.verify_rows(rows, queries.terminal_id(conn),
                                   int(head) if head else None)

    return store.read(job)


EXPORT_FIELDS = ("seq", "id", "kind", "at", "terminal", "cashier", "shift", "card", "ref",
                 "online", "deltas", "data", "prev", "hash")


def export_journal(store: Store, fmt: str, write: Callable[[str], object]) -> int:
    """Write every entry as JSON lines or CSV (deltas and data as JSON in their cells)."""
    if fmt not in ("csv", "jsonl"):
        raise BadInput("bad_format", format=fmt, allowed="csv, jsonl")

    def lines(conn: sqlite3.Connection) -> Iterator[str]:
        if fmt == "csv":
            yield ",".join(EXPORT_FIELDS) + "\r\n"
        for entry in journal.entries(conn):
            record = entry.as_json()
            if fmt == "jsonl":
                yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
                continue
            buf = io.StringIO()
            csv.writer(buf).writerow(
                json.dumps(record[f], sort_keys=True, ensure_ascii=False)
                if isinstance(record[f], list | dict | bool) or record[f] is None else record[f]
                for f in EXPORT_FIELDS)
            yield buf.getvalue()

    def job(conn: sqlite3.Connection) -> int:
        count = 0
        for line in lines(conn):
            write(line)
            count += 1
        return count - (fmt == "csv")

    return store.read(job)
