"""Applying terminals' journal entries: exactly once, chain-verified, posted to the ledger.

`apply_push` takes one batch from one terminal in one transaction, set-based: it locks the
terminal's row (`SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` serializes all writers), so
the chain head it checks against cannot move under it; reads the batch's known ids and all its
purses with their balances in one query each (on PostgreSQL the purses are locked `FOR UPDATE`
in (card, purse) order, so two terminals' batches never deadlock on them); checks every entry
and works out running balances and overspends in Python; then writes the entries, postings,
balance changes, exceptions, denylist, status changes, hold settlements and the change log
with one multi-row statement each. The entries' insert is `ON CONFLICT (id) DO NOTHING`: should
it insert fewer rows than sent (an id applied meanwhile by another transaction) the batch is
rolled back and worked out again, as after a deadlock or serialization failure.

Offline entries are facts: a debit that takes a purse below zero is applied all the same; the
part below zero is posted to `exceptions` with the terminals involved, and the card is
denylisted. See docs/server.md; figures in docs/benchmarks-sync.md.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server import chain
from sync.server.db import insert, transaction_retrying, utc_now
from sync.server.schema import (
    card_status_log,
    cards,
    changes,
    counters,
    denylist,
    entries,
    exceptions,
    ledger,
    purses,
    terminals,
)
from terminal.errors import NotFound, StateError

# How far back (from an overspending entry's time) other terminals' offline debits of the same
# purse count as "involved" — the terminals' maximum time offline (Limits.offline_max_hours).
DEFAULT_LOOKBACK = timedelta(hours=72)
# Entry kinds that change a card's status on the server too (the terminal did it locally).
_CLOSES_SOURCE = frozenset(("buyback", "transfer"))
AFTER_REJECTED = "after_rejected"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """An entry not applied. `reason` is a chain rule (docs/journal.md) or one of
    malformed_entry, unknown_version, id_conflict, sequence_taken, unknown_purse,
    currency_mismatch, after_rejected (an earlier entry of the batch was rejected)."""

    id: str | None
    seq: int | None
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Overspend:
    entry_id: str
    card: str
    purse: str
    amount: int
    currency: str
    terminals: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"entry": self.entry_id, "card": self.card, "purse": self.purse,
                "amount": self.amount, "currency": self.currency,
                "terminals": list(self.terminals)}


@dataclass(frozen=True)
class PushResult:
    """What became of a batch. `last_seq`/`last_hash` are the terminal's chain head here after
    the batch: the terminal resends from `last_seq + 1`. `missing` is the (first, last) seq
    range the server lacks when the batch skipped some."""

    terminal: str
    applied: tuple[str, ...]
    duplicates: tuple[str, ...]
    rejected: tuple[Rejection, ...]
    missing: tuple[int, int] | None
    last_seq: int
    last_hash: str
    overspends: tuple[Overspend, ...]

    @property
    def ok(self) -> bool:
        return not self.rejected

    def as_json(self) -> dict[str, Any]:
        return {"terminal": self.terminal, "applied": list(self.applied),
                "duplicates": list(self.duplicates),
                "rejected": [r.as_json() for r in self.rejected],
                "missing": list(self.missing) if self.missing else None,
                "last_seq": self.last_seq, "last_hash": self.last_hash,
                "overspends": [o.as_json() for o in self.overspends]}


class ChangeLog:
    """Objects changed in one transaction; `flush` (last, just before COMMIT) gives each a new
    `changes.seq` from the counter row, whose lock is held until COMMIT — so sequence numbers
    become visible in order and a pull "after cursor N" can never miss a change."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()

    def add(self, kind: str, key: str) -> None:
        self.keys.add((kind, key))

    def flush(self, conn: Connection) -> None:
        if not self.keys:
            return
        n = len(self.keys)
        top = conn.execute(
            sa.update(counters).where(counters.c.name == "changes")
            .values(value=counters.c.value + n).returning(counters.c.value)).scalar_one()
        rows = [{"kind": kind, "key": key, "seq": top - n + 1 + i}
                for i, (kind, key) in enumerate(sorted(self.keys))]
        insert_many(conn, changes, rows, conflict=("kind", "key"), update=("seq",))
        self.keys.clear()


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *,
                same: Mapping[str, Any] | None = None, conflict: Sequence[str] = (),
                update: Sequence[str] = (), returning: str | None = None) -> list[Any]:
    """Insert `rows` (all with the same keys; `same`: columns equal in every row) in one
    statement: on PostgreSQL the rows travel as one JSON array (`json_to_recordset`: one short
    statement, prepared once, whatever the row count; psycopg's per-element adaptation of
    arrays costs several times more); on SQLite an executemany. A row clashing on the unique
    columns `conflict` is skipped, or with `update` those columns are set from it. Returns the
    `returning` column of the rows inserted (or updated)."""
    if not rows:
        return []
    same = same or {}
    if conn.dialect.name == "postgresql":
        sql = _json_insert(table, tuple(rows[0]), tuple(same), tuple(conflict), tuple(update),
                           returning)
        result = conn.exec_driver_sql(sql, {"rows": _pg_json(rows),
                                            **{f"same_{k}": v for k, v in same.items()}})
    else:
        rows = [{**r, **same} for r in rows] if same else rows
        stmt = insert(conn, table)
        if update:
            stmt = stmt.on_conflict_do_update(index_elements=list(conflict),
                                              set_={c: stmt.excluded[c] for c in update})
        elif conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        if returning:
            stmt = stmt.returning(table.c[returning])
        result = conn.execute(stmt, list(rows))
    return list(result.scalars()) if returning else []


def _pg_json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as the JSON text `json_to_recordset` reads (times in ISO 8601 with offset)."""
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"), default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


@functools.cache
def _json_insert(table: sa.Table, names: tuple[str, ...], same: tuple[str, ...],
                 conflict: tuple[str, ...], update: tuple[str, ...], returning: str | None
                 ) -> str:
    """PostgreSQL `INSERT ... SELECT ... FROM json_to_recordset(%(rows)s)` for `insert_many`,
    in the rows' order (ids from a sequence follow it). Text is read as text (not
    varchar(n)): the column's own assignment check then refuses a value too long, as a plain
    insert would."""
    columns = ", ".join(f'"{n}"' for n in names)
    types = ", ".join(f'"{n}" {_pg_type(table.c[n].type)}' for n in names)
    targets = ", ".join([columns, *(f'"{n}"' for n in same)])
    values = ", ".join([columns, *(f"CAST(%(same_{n})s AS {_pg_type(table.c[n].type)})"
                                   for n in same)])
    sql = (f'INSERT INTO "{table.name}" ({targets}) SELECT {values} FROM ROWS FROM '
           f"(json_to_recordset(CAST(%(rows)s AS json)) AS ({types})) WITH ORDINALITY"
           f' AS u ({columns}, "row") ORDER BY "row"')
    if conflict:
        target = ", ".join(f'"{c}"' for c in conflict)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in update)
        sql += f" ON CONFLICT ({target}) " + (f"DO UPDATE SET {sets}" if update else "DO NOTHING")
    if returning:
        sql += f' RETURNING "{returning}"'
    return sql


def _pg_type(type_: sa.types.TypeEngine[Any]) -> str:
    for base, name in ((sa.String, "text"), (sa.Integer, "bigint"),
                       (sa.DateTime, "timestamptz"), (sa.Boolean, "boolean")):
        if isinstance(type_, base):
            return name
    raise TypeError(f"no array type for {type_!r}")


def changes_after(conn: Connection, cursor: int, limit: int = 1000) -> list[tuple[int, str, str]]:
    """(seq, kind, key) of the objects changed after `cursor`, oldest first."""
    rows = conn.execute(sa.select(changes.c.seq, changes.c.kind, changes.c.key)
                        .where(changes.c.seq > cursor).order_by(changes.c.seq).limit(limit))
    return [(r.seq, r.kind, r.key) for r in rows]


# -- balances -----------------------------------------------------------------------------------

def balance(conn: Connection, card: str, purse: str) -> int:
    """The purse's balance from the ledger (the sum of its postings, the import's included)."""
    found = conn.execute(sa.select(purses.c.id).where(purses.c.card == card,
                                                      purses.c.name == purse)).scalar()
    if found is None:
        raise NotFound("unknown_purse", card=card, purse=purse)
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
                         .where(ledger.c.purse_id == found)).scalar_one()
    return int(total)


@dataclass(frozen=True)
class Mismatch:
    card: str
    purse: str
    cached: int
    ledger: int


def check_balances(conn: Connection) -> list[Mismatch]:
    """Every purse whose cached balance differs from the sum of its ledger postings."""
    sums = (sa.select(ledger.c.purse_id, sa.func.sum(ledger.c.amount).label("total"))
            .group_by(ledger.c.purse_id).subquery())
    total = sa.func.coalesce(sums.c.total, 0)
    rows = conn.execute(
        sa.select(purses.c.card, purses.c.name, purses.c.balance, total.label("total"))
        .select_from(purses.outerjoin(sums, sums.c.purse_id == purses.c.id))
        .where(purses.c.balance != total).order_by(purses.c.card, purses.c.name))
    return [Mismatch(r.card, r.name, int(r.balance), int(r.total)) for r in rows]


# -- pushing ------------------------------------------------------------------------------------

def apply_push(engine: Engine, terminal_id: str, batch: Sequence[Any], *,
               now: datetime | None = None, lookback: timedelta = DEFAULT_LOOKBACK
               ) -> PushResult:
    """Apply a batch of `terminal_id`'s journal entries (export form: members plus `hash`), in
    its order, in one transaction. NotFound for an unknown terminal, StateError if revoked."""
    # Shape, canonical form and hash need no database: worked out once, before any lock is
    # taken (on shared cards other terminals' batches wait for this one's purse locks).
    parsed = [chain.parse(raw) for raw in batch]
    return transaction_retrying(
        engine, lambda conn: _apply(conn, terminal_id, batch, parsed, now or utc_now(), lookback),
        what=f"push of {terminal_id}", also=(ConcurrentlyApplied,))


class ConcurrentlyApplied(Exception):
    """Some of the batch's new entries were inserted by another transaction after this one
    looked up the known ids (the insert's ON CONFLICT skipped them). What was worked out for the
    batch no longer holds, so `apply_push` rolls back and starts the batch again; the next
    attempt finds those entries and acknowledges them as duplicates."""


@dataclass(slots=True)
class _Purse:
    """A purse the batch may post to, as locked at the start of the batch; `balance` is
    running (after the batch's postings so far), `posted` the batch's net posting so far."""

    id: int
    currency: str
    balance: int
    posted: int = 0


@dataclass(frozen=True)
class _Overspent:
    entry: chain.Pushed
    delta: dict[str, Any]
    purse: _Purse
    amount: int


@dataclass
class _Batch:
    """One batch worked out in Python before anything is written: what is applied, and the
    rows that applying it writes."""

    terminal: str
    now: datetime
    lookback: timedelta
    last_seq: int
    last_hash: str
    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    missing: tuple[int, int] | None = None
    log: ChangeLog = field(default_factory=ChangeLog)
    new: list[chain.Pushed] = field(default_factory=list)
    postings: list[tuple[chain.Pushed, dict[str, Any], _Purse]] = field(default_factory=list)
    overspent: list[_Overspent] = field(default_factory=list)


def _apply(conn: Connection, terminal_id: str, batch: Sequence[Any],
           parsed: Sequence[chain.Pushed | str], now: datetime, lookback: timedelta
           ) -> PushResult:
    """Check the whole batch (`parsed`: `chain.parse` of each entry) against the terminal's
    head, the known ids and the purses' locked balances in Python, then write it with a few
    multi-row statements."""
    term = conn.execute(sa.select(terminals.c.revoked, terminals.c.last_seq,
                                  terminals.c.last_hash)
                        .where(terminals.c.id == terminal_id).with_for_update()).first()
    if term is None:
        raise NotFound("unknown_terminal", terminal=terminal_id)
    if term.revoked:
        raise StateError("terminal_revoked", terminal=terminal_id)
    b = _Batch(terminal_id, now, lookback, int(term.last_seq), str(term.last_hash))
    well_formed: list[chain.Pushed] = []  # up to the first malformed entry: it stops the batch
    for entry in parsed:
        if isinstance(entry, str):
            break
        well_formed.append(entry)
    known = _known(conn, well_formed)
    targets = _lock_purses(conn, well_formed)  # held until COMMIT: as late as can be
    for index, (raw, entry) in enumerate(zip(batch, parsed, strict=True)):
        rejection = _check(b, raw, entry, known, targets)
        if rejection is not None:
            b.rejected.append(rejection)
            b.rejected.extend(_after(rest, rejection) for rest in batch[index + 1:])
            break
    overspends: list[Overspend] = []
    if b.new:
        _insert_entries(conn, b)
        _post(conn, b)
        overspends = _overspends(conn, b)
        _status_effects(conn, b)
        _settle_holds(conn, b)
        conn.execute(sa.update(terminals).where(terminals.c.id == terminal_id)
                     .values(last_seq=b.last_seq, last_hash=b.last_hash, last_push_at=now))
    b.log.flush(conn)
    return PushResult(terminal_id, tuple(b.applied), tuple(b.duplicates), tuple(b.rejected),
                      b.missing, b.last_seq, b.last_hash, tuple(overspends))


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _lock_purses(conn: Connection, batch: Sequence[chain.Pushed]
                 ) -> dict[tuple[str, str], _Purse]:
    """Every purse the entries name, by (card, purse), with its balance — on PostgreSQL locked
    (`FOR UPDATE`) in one fixed order (card, purse) before any posting: two terminals' batches
    that touch the same purses in different orders would otherwise deadlock (each holding a row
    the other needs). SQLite needs no row locks: its writers are serialized by BEGIN
    IMMEDIATE."""
    keys = sorted({(d["card"], d["purse"]) for e in batch for d in e.body["deltas"]})
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        rows: Iterable[Any] = conn.exec_driver_sql(
            _LOCK_PURSES, {"keys": _pg_json([{"card": c, "name": n} for c, n in keys])})
    else:
        rows = (r for chunk in _chunks(keys) for r in conn.execute(
            sa.select(purses.c.id, purses.c.card, purses.c.name, purses.c.currency,
                      purses.c.balance)
            .where(sa.tuple_(purses.c.card, purses.c.name).in_(chunk))))
    return {(card, name): _Purse(int(pid), str(currency), int(balance))
            for pid, card, name, currency, balance in rows}


_LOCK_PURSES = """
SELECT p.id, p.card, p.name, p.currency, p.balance
FROM purses AS p
JOIN json_to_recordset(CAST(%(keys)s AS json)) AS k (card text, name text)
  ON p.card = k.card AND p.name = k.name
ORDER BY p.card, p.name
FOR UPDATE OF p
"""
_INSERT_ENTRIES = r"""
INSERT INTO entries (id, terminal, seq, kind, at, card, online, prev, hash, body, received_at)
SELECT u.id, %(terminal)s, u.seq, u.kind, CAST(u.at AS timestamptz), u.card, u.online, u.prev,
       u.hash, u.body, CAST(%(now)s AS timestamptz)
FROM ROWS FROM (json_to_recordset(CAST(%(rows)s AS json))
                  AS (id text, seq bigint, kind text, card text, online boolean, prev text),
                string_to_table(%(bodies)s, E'\n'), string_to_table(%(hashes)s, E'\n'),
                string_to_table(%(ats)s, E'\n'))
     WITH ORDINALITY AS u (id, seq, kind, card, online, prev, body, hash, at, n)
ORDER BY u.n
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
_KNOWN = """
SELECT e.id, e.terminal, e.seq, e.hash
FROM entries AS e JOIN json_array_elements_text(CAST(%(ids)s AS json)) AS k (id) ON e.id = k.id
"""
_INSERT_POSTINGS = """
INSERT INTO ledger (purse_id, amount, currency, kind, entry_id, terminal, seq, at, posted_at)
SELECT p.id, CAST(m.amount AS bigint), p.currency, e.kind, e.id, e.terminal, e.seq, e.at,
       CAST(%(now)s AS timestamptz)
FROM ROWS FROM (string_to_table(%(seqs)s, ','), string_to_table(%(purses)s, ','),
                string_to_table(%(amounts)s, ',')) WITH ORDINALITY AS m (seq, purse, amount, n)
JOIN entries AS e ON e.terminal = %(terminal)s AND e.seq = CAST(m.seq AS bigint)
  AND e.seq BETWEEN %(first)s AND %(last)s
JOIN purses AS p ON p.id = CAST(m.purse AS bigint)
ORDER BY m.n
"""
_MOVE_BALANCES = """
UPDATE purses SET balance = purses.balance + CAST(m.posted AS bigint)
FROM ROWS FROM (string_to_table(%(ids)s, ','), string_to_table(%(posted)s, ',')) AS m (id, posted)
WHERE purses.id = CAST(m.id AS bigint)
"""


def _known(conn: Connection, batch: Sequence[chain.Pushed]) -> dict[str, tuple[str, int, str]]:
    """(terminal, seq, hash) of the entries' ids the server holds already."""
    ids = sorted({e.body["id"] for e in batch})
    if not ids:
        return {}
    if conn.dialect.name == "postgresql":
        rows: Iterable[Any] = conn.exec_driver_sql(_KNOWN, {"ids": json.dumps(ids)})
    else:
        rows = (r for chunk in _chunks(ids) for r in conn.execute(
            sa.select(entries.c.id, entries.c.terminal, entries.c.seq, entries.c.hash)
            .where(entries.c.id.in_(chunk))))
    return {r.id: (r.terminal, int(r.seq), r.hash) for r in rows}


def _after(raw: Any, first: Rejection) -> Rejection:
    return Rejection(*_id_seq(raw), AFTER_REJECTED, {"first": first.id, "first_seq": first.seq})


def _check(b: _Batch, raw: Any, parsed: chain.Pushed | str,
           known: dict[str, tuple[str, int, str]], targets: dict[tuple[str, str], _Purse]
           ) -> Rejection | None:
    """Take one entry (`parsed`: `chain.parse(raw)`) into the batch (applied, or acknowledged
    as a duplicate), or say why it cannot be: the first rejection stops the batch."""
    if isinstance(parsed, str):
        return Rejection(*_id_seq(raw), parsed)
    body, digest = parsed.body, parsed.digest
    entry_id, seq = str(body["id"]), int(body["seq"])
    held = known.get(entry_id)
    if held is not None:
        if held == (b.terminal, seq, digest):
            b.duplicates.append(entry_id)
            return None
        return Rejection(entry_id, seq, "id_conflict",
                         {"held_terminal": held[0], "held_seq": held[1]})
    if body["terminal"] == b.terminal and seq <= b.last_seq:
        # Not a resend (its id is new) but its place is taken: the terminal's journal forked
        # (restored from an old backup?). Needs a person; nothing after it can apply.
        return Rejection(entry_id, seq, "sequence_taken", {"last_seq": b.last_seq})
    problem = chain.problem(parsed, b.terminal, b.last_seq + 1, b.last_hash)
    if problem is not None:
        detail: dict[str, Any] = {}
        if problem == "sequence_gap":
            b.missing = (b.last_seq + 1, seq - 1)
            detail = {"missing_from": b.last_seq + 1, "missing_to": seq - 1}
        elif problem == "chain_broken":
            detail = {"expected_prev": b.last_hash}
        return Rejection(entry_id, seq, problem, detail)

    deltas: list[dict[str, Any]] = body["deltas"]
    found: list[_Purse] = []
    for d in deltas:
        purse = targets.get((d["card"], d["purse"]))
        if purse is None:
            return Rejection(entry_id, seq, "unknown_purse",
                             {"card": d["card"], "purse": d["purse"]})
        if purse.currency != d["currency"]:
            return Rejection(entry_id, seq, "currency_mismatch",
                             {"card": d["card"], "purse": d["purse"], "held": purse.currency,
                              "sent": d["currency"]})
        found.append(purse)
    for d, purse in zip(deltas, found, strict=True):
        amount = int(d["amount"])
        purse.balance += amount
        purse.posted += amount
        b.postings.append((parsed, d, purse))
        b.log.add("card", d["card"])
        if amount < 0 and purse.balance < 0:
            b.overspent.append(_Overspent(parsed, d, purse, min(-amount, -purse.balance)))
    if body["card"]:
        b.log.add("card", body["card"])
    b.new.append(parsed)
    b.last_seq, b.last_hash = seq, digest
    known[entry_id] = (b.terminal, seq, digest)
    b.applied.append(entry_id)
    return None


def _id_seq(raw: Any) -> tuple[str | None, int | None]:
    body = raw if isinstance(raw, dict) else {}
    entry_id, seq = body.get("id"), body.get("seq")
    return (entry_id if isinstance(entry_id, str) else None,
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None)


def _insert_entries(conn: Connection, b: _Batch) -> None:
    """One multi-row insert of the batch's new entries. `ON CONFLICT (id) DO NOTHING`: if an id
    was inserted meanwhile by a concurrent transaction, fewer rows come back than were sent,
    and the batch starts again (ConcurrentlyApplied)."""
    if conn.dialect.name == "postgresql":
        # The canonical bodies hold no raw newline (JSON escapes it), nor do hashes and times:
        # they travel newline-joined, not escaped again inside JSON; the short columns as JSON.
        inserted = conn.exec_driver_sql(_INSERT_ENTRIES, {
            "terminal": b.terminal, "now": b.now,
            "rows": _pg_json([{"id": e.body["id"], "seq": e.body["seq"], "kind": e.body["kind"],
                              "card": e.body["card"], "online": e.body["online"],
                              "prev": e.body["prev"]} for e in b.new]),
            "bodies": "\n".join(e.text for e in b.new),
            "hashes": "\n".join(e.digest for e in b.new),
            "ats": "\n".join(e.at.isoformat() for e in b.new)}).scalars().all()
    else:
        inserted = insert_many(conn, entries, [
            {"id": e.body["id"], "seq": e.body["seq"], "kind": e.body["kind"], "at": e.at,
             "card": e.body["card"], "online": e.body["online"], "prev": e.body["prev"],
             "hash": e.digest, "body": e.text} for e in b.new],
            same={"terminal": b.terminal, "received_at": b.now}, conflict=("id",),
            returning="id")
    if len(inserted) != len(b.new):
        raise ConcurrentlyApplied(
            f"{len(b.new) - len(inserted)} of {len(b.new)} entries applied concurrently")


def _post(conn: Connection, b: _Batch) -> None:
    """The batch's ledger postings, then each purse's balance moved by its net posting."""
    if not b.postings:
        return
    moved = sorted({purse.id: purse.posted for _, _, purse in b.postings if purse.posted}.items())
    if conn.dialect.name == "postgresql":
        # Numbers only, comma-joined; the rest of each posting is its entry's, just inserted.
        conn.exec_driver_sql(_INSERT_POSTINGS, {
            "terminal": b.terminal, "now": b.now, "first": b.new[0].body["seq"],
            "last": b.new[-1].body["seq"],
            "seqs": ",".join(str(e.body["seq"]) for e, _, _ in b.postings),
            "purses": ",".join(str(purse.id) for _, _, purse in b.postings),
            "amounts": ",".join(str(d["amount"]) for _, d, _ in b.postings)})
        if moved:
            conn.exec_driver_sql(_MOVE_BALANCES, {"ids": ",".join(str(k) for k, _ in moved),
                                                  "posted": ",".join(str(v) for _, v in moved)})
        return
    insert_many(conn, ledger, [
        {"purse_id": purse.id, "amount": d["amount"], "currency": d["currency"],
         "kind": e.body["kind"], "entry_id": e.body["id"], "seq": e.body["seq"], "at": e.at}
        for e, d, purse in b.postings], same={"terminal": b.terminal, "posted_at": b.now})
    if moved:
        conn.execute(sa.update(purses).where(purses.c.id == sa.bindparam("purse"))
                     .values(balance=purses.c.balance + sa.bindparam("posted")),
                     [{"purse": k, "posted": v} for k, v in moved])


def _overspends(conn: Connection, b: _Batch) -> list[Overspend]:
    """The part of each debit below zero, posted to `exceptions` with the terminals involved
    (this one and those whose offline debits of the purse are at most `lookback` older than
    the entry); each such card denylisted."""
    if not b.overspent:
        return []
    # Per purse and terminal, the time of its latest offline debit; the batch's own postings
    # are in the ledger already, and they are this terminal's, which is always involved.
    latest: dict[int, dict[str, datetime]] = {}
    ids = sorted({o.purse.id for o in b.overspent})
    for r in conn.execute(
            sa.select(ledger.c.purse_id, entries.c.terminal, sa.func.max(entries.c.at))
            .select_from(ledger.join(entries, entries.c.id == ledger.c.entry_id))
            .where(ledger.c.purse_id.in_(ids), ledger.c.amount < 0,
                   entries.c.online.is_(False))
            .group_by(ledger.c.purse_id, entries.c.terminal)):
        latest.setdefault(int(r[0]), {})[str(r[1])] = _aware(r[2])
    found: list[Overspend] = []
    for o in b.overspent:
        since = o.entry.at - b.lookback
        others = [t for t, at in latest.get(o.purse.id, {}).items() if at >= since]
        found.append(Overspend(str(o.entry.body["id"]), str(o.delta["card"]),
                               str(o.delta["purse"]), o.amount, str(o.delta["currency"]),
                               tuple(sorted({b.terminal, *others}))))
    insert_many(conn, exceptions, [
        {"card": s.card, "purse_id": o.purse.id, "amount": s.amount, "currency": s.currency,
         "entry_id": s.entry_id, "terminal": b.terminal, "terminals": json.dumps(list(s.terminals)),
         "created_at": b.now} for o, s in zip(b.overspent, found, strict=True)])
    overspent_cards = sorted({s.card for s in found})
    added = insert_many(conn, denylist, [{"card": c, "reason": "overspend", "added_at": b.now}
                                         for c in overspent_cards],
                        conflict=("card",), returning="card")
    for card in added:
        b.log.add("denylist", card)
    return found


def _aware(at: datetime) -> datetime:
    """SQLite gives timestamps back naive (they are stored in UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _status_effects(conn: Connection, b: _Batch) -> None:
    """What the terminal did to the card's status, done here too: an activation activates (a
    card not activated), a buyback or transfer closes the (source) card. The cards' rows are
    locked in card order; their changes are worked out in entry order."""
    effects = [(e.body["id"], e.body["card"], e.body["kind"]) for e in b.new
               if e.body["card"] is not None
               and (e.body["kind"] == "activate" or e.body["kind"] in _CLOSES_SOURCE)]
    if not effects:
        return
    numbers = sorted({card for _, card, _ in effects})
    status: dict[str, str] = {}
    for chunk in _chunks(numbers):
        for number, old in conn.execute(
                sa.select(cards.c.number, cards.c.status).where(cards.c.number.in_(chunk))
                .order_by(cards.c.number).with_for_update()):
            status[number] = old
    transitions: list[dict[str, Any]] = []
    for entry_id, card, kind in effects:
        old = status.get(card)
        new = "active" if kind == "activate" else "closed"
        if old is None or old == new or (kind == "activate" and old != "not_activated"):
            continue
        transitions.append({"card": card, "old": old, "new": new, "source": entry_id,
                         "at": b.now})
        status[card] = new
        b.log.add("card", card)
    if transitions:
        final = {c["card"]: c["new"] for c in transitions}
        conn.execute(sa.update(cards).where(cards.c.number == sa.bindparam("card"))
                     .values(status=sa.bindparam("new_status"), updated_at=b.now),
                     [{"card": k, "new_status": v} for k, v in sorted(final.items())])
        insert_many(conn, card_status_log, transitions)


def _settle_holds(conn: Connection, b: _Batch) -> None:
    """The holds the applied entries name (`data.hold`, online authorizations) are settled in
    this transaction, so a held amount is never counted besides its posting."""
    settled = [(e.body["data"]["hold"], str(e.body["id"])) for e in b.new
               if isinstance(e.body["data"].get("hold"), str)]
    if settled:
        from sync.server import holds  # holds -> settings -> ledger.ChangeLog: import when used

        holds.settle(conn, settled, b.now)


def set_status(conn: Connection, card: str, new: str, source: str, now: datetime, *,
               only_from: Sequence[str] | None = None, log: ChangeLog) -> str | None:
    """Change a card's status (row-locked), log it and record the change for the pull. Returns
    the old status, or None if the card is unknown, already `new`, or not in `only_from`."""
    old = conn.execute(sa.select(cards.c.status).where(cards.c.number == card)
                       .with_for_update()).scalar()
    if old is None or old == new or (only_from is not None and old not in only_from):
        return None
    conn.execute(sa.update(cards).where(cards.c.number == card)
                 .values(status=new, updated_at=now))
    conn.execute(sa.insert(card_status_log).values(card=card, old=old, new=new, source=source,
                                                   at=now))
    log.add("card", card)
    return str(old)
