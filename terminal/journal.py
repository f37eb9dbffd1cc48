"""The journal: append-only, hash-chained entries — one per operation, made on this terminal.

Each entry is a JSON object in a canonical form (sorted keys, no spaces, UTF-8, integers only);
its hash is SHA-256 over that form, which includes the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain from there on. docs/journal.md is the spec the
server follows to verify the same chain. Corrections (voids) are new entries that point back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uuid6

from terminal.model import Delta

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64


def canonical(obj: dict[str, Any]) -> bytes:
    """The byte form that is hashed and stored: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(body: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical body; the body already holds the previous hash as `prev`."""
    return hashlib.sha256(canonical(body)).hexdigest()


def timestamp(at: datetime) -> str:
    """UTC time with milliseconds, as written in entries: 2026-11-21T23:28:41.123Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One journal entry as stored: the hashed body plus its hash."""

    body: dict[str, Any]
    hash: str

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def seq(self) -> int:
        return int(self.body["seq"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def at(self) -> datetime:
        return parse_timestamp(self.body["at"])

    @property
    def deltas(self) -> list[Delta]:
        return [Delta(**d) for d in self.body["deltas"]]

    def as_json(self) -> dict[str, Any]:
        return {**self.body, "hash": self.hash}


@dataclass(frozen=True)
class NewEntry:
    """What a service asks to append; the journal adds id, sequence, time and chain."""

    kind: str
    card: str | None = None
    deltas: Sequence[Delta] = ()
    cashier: str | None = None
    shift: str | None = None
    ref: str | None = None
    online: bool = False
    data: dict[str, Any] | None = None


def new_id() -> str:
    """A UUIDv7: time-ordered, made here without asking anyone, unique across terminals."""
    return str(uuid6.uuid7())


def append(conn: sqlite3.Connection, terminal_id: str, entry: NewEntry, at: datetime) -> Entry:
    """Append one entry inside the caller's write transaction (which must be BEGIN IMMEDIATE).

    Reads the head, chains to it and inserts; the caller's COMMIT makes it durable together with
    the balance changes it describes, so there is never an entry without its effect or the reverse.
    """
    head = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    body: dict[str, Any] = {
        "v": FORMAT_VERSION, "id": new_id(), "terminal": terminal_id, "seq": seq,
        "kind": entry.kind, "at": timestamp(at), "cashier": entry.cashier, "shift": entry.shift,
        "card": entry.card, "deltas": [d.as_json() for d in entry.deltas], "ref": entry.ref,
        "online": entry.online, "data": entry.data or {}, "prev": prev,
    }
    text = canonical(body)
    digest = hashlib.sha256(text).hexdigest()
    conn.execute(
        "INSERT INTO journal (seq, id, kind, at, card, cashier, shift, ref, body, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, body["id"], entry.kind, body["at"], entry.card, entry.cashier, entry.shift,
         entry.ref, text.decode("utf-8"), digest))
    # The head is recorded apart from the rows, so cutting entries off the end is detected.
    conn.execute("INSERT INTO meta (key, value) VALUES ('journal_head_seq', ?)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(seq),))
    return Entry(body, digest)


def from_row(body_text: str, digest: str) -> Entry:
    return Entry(json.loads(body_text), digest)


SELECT_ENTRIES = "SELECT seq, id, kind, at, card, cashier, shift, ref, body, hash FROM journal"


def entries(conn: sqlite3.Connection, where: str = "", params: Sequence[Any] = ()
            ) -> Iterator[Entry]:
    """Entries in sequence order, optionally filtered by a SQL `where` clause on the columns."""
    sql = f"{SELECT_ENTRIES} {('WHERE ' + where) if where else ''} ORDER BY seq"
    for row in conn.execute(sql, params):
        yield from_row(row[8], row[9])


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: str | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "bad_seq": self.bad_seq,
                "bad_id": self.bad_id, "problem": self.problem}


_COLUMNS = ("seq", "id", "kind", "at", "card", "cashier", "shift", "ref")


def verify_rows(rows: Iterable[Sequence[Any]], terminal_id: str, head_seq: int | None
                ) -> VerifyResult:
    """Walk rows (as `SELECT_ENTRIES` returns them, in rowid order) and name the first bad one.

    Checks per entry: the body parses and is canonical, its columns match the body, it belongs
    to this terminal, the sequence has no gap and no reordering, `prev` is the previous hash,
    and the hash recomputes. `head_seq` is the last sequence the store recorded in its meta
    table: fewer entries than that means the tail was cut off.
    """
    prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for row in rows:
        problem = row_problem(row, terminal_id, expected_seq, prev)
        if problem is not None:
            return VerifyResult(False, checked, row[0], row[1], problem)
        prev, expected_seq, checked = row[9], expected_seq + 1, checked + 1
    if head_seq is not None and checked < head_seq:
        return VerifyResult(False, checked, checked + 1, None, "entries_missing_at_end")
    return VerifyResult(True, checked)


def row_problem(row: Sequence[Any], terminal_id: str, expected_seq: int, prev: str
                 ) -> str | None:
    """What is wrong with one journal row given what came before it, or None."""
    try:
        body = json.loads(row[8])
    except (TypeError, ValueError):
        return "body_unreadable"
    if not isinstance(body, dict) or canonical(body).decode("utf-8") != row[8]:
        return "body_not_canonical"
    if tuple(body.get(c) for c in _COLUMNS) != tuple(row[:8]):
        return "columns_differ_from_body"
    if body.get("terminal") != terminal_id:
        return "wrong_terminal"
    if row[0] != expected_seq:
        return "sequence_gap" if row[0] > expected_seq else "sequence_out_of_order"
    if body.get("prev") != prev:
        return "chain_broken"
    if entry_hash(body) != row[9]:
        return "hash_mismatch"
    return None
