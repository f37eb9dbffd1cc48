"""Applying terminals' journal entries: exactly once, chain-verified, posted to the ledger.

`apply_push` takes one batch from one terminal in one transaction. It first locks the terminal's
row (`SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` serializes all writers), so the chain
head it checks against cannot move under it; each new entry is inserted with
`ON CONFLICT (id) DO NOTHING`, so even without that lock an id is applied once. Balances change
by atomic `UPDATE purses SET balance = balance + :amount ... RETURNING balance`, which takes the
purse's row lock until COMMIT. A deadlock or serialization failure retries the whole batch.

Offline entries are facts: a debit that takes a purse below zero is applied all the same; the
part below zero is posted to `exceptions` with the terminals involved, and the card is
denylisted. See docs/server.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server import chain
from sync.server.db import insert, utc_now
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
from terminal.journal import canonical, parse_timestamp

# How far back (from an overspending entry's time) other terminals' offline debits of the same
# purse count as "involved" — the terminals' maximum time offline (Limits.offline_max_hours).
DEFAULT_LOOKBACK = timedelta(hours=72)
RETRIES = 5
_RETRY_SQLSTATES = frozenset(("40001", "40P01"))  # serialization failure, deadlock
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
        stmt = insert(conn, changes)
        conn.execute(stmt.on_conflict_do_update(index_elements=["kind", "key"],
                                                set_={"seq": stmt.excluded.seq}), rows)
        self.keys.clear()


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
    for attempt in range(RETRIES):
        try:
            with engine.begin() as conn:
                return _apply(conn, terminal_id, batch, now or utc_now(), lookback)
        except sa.exc.DBAPIError as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
            log.warning("push of %s retried (attempt %d): %s", terminal_id, attempt + 1,
                        type(exc.orig).__name__)
            time.sleep(0.01 * 2 ** attempt)
    raise AssertionError("unreachable")


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


@dataclass
class _Batch:
    terminal: str
    now: datetime
    lookback: timedelta
    last_seq: int
    last_hash: str
    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    overspends: list[Overspend] = field(default_factory=list)
    missing: tuple[int, int] | None = None
    log: ChangeLog = field(default_factory=ChangeLog)


def _apply(conn: Connection, terminal_id: str, batch: Sequence[Any], now: datetime,
           lookback: timedelta) -> PushResult:
    term = conn.execute(sa.select(terminals.c.revoked, terminals.c.last_seq,
                                  terminals.c.last_hash)
                        .where(terminals.c.id == terminal_id).with_for_update()).first()
    if term is None:
        raise NotFound("unknown_terminal", terminal=terminal_id)
    if term.revoked:
        raise StateError("terminal_revoked", terminal=terminal_id)
    b = _Batch(terminal_id, now, lookback, int(term.last_seq), str(term.last_hash))
    _lock_purses(conn, batch)
    ids = [e["id"] for e in batch if isinstance(e, dict) and isinstance(e.get("id"), str)]
    known: dict[str, tuple[str, int, str]] = {}
    for i in range(0, len(ids), 500):
        for r in conn.execute(sa.select(entries.c.id, entries.c.terminal, entries.c.seq,
                                        entries.c.hash).where(entries.c.id.in_(ids[i:i + 500]))):
            known[r.id] = (r.terminal, int(r.seq), r.hash)

    for index, raw in enumerate(batch):
        rejection = _apply_one(conn, b, raw, known)
        if rejection is not None:
            b.rejected.append(rejection)
            b.rejected.extend(_after(rest, rejection) for rest in batch[index + 1:])
            break

    if b.applied:
        conn.execute(sa.update(terminals).where(terminals.c.id == terminal_id)
                     .values(last_seq=b.last_seq, last_hash=b.last_hash, last_push_at=now))
    b.log.flush(conn)
    return PushResult(terminal_id, tuple(b.applied), tuple(b.duplicates), tuple(b.rejected),
                      b.missing, b.last_seq, b.last_hash, tuple(b.overspends))


def _lock_purses(conn: Connection, batch: Sequence[Any]) -> None:
    """Lock every purse the batch will post to, in one fixed order (card, purse), before any
    posting. Two terminals' batches that touch the same purses in different orders would
    otherwise deadlock on PostgreSQL (each holding a row the other needs). SQLite needs no
    row locks: its writers are serialized by BEGIN IMMEDIATE."""
    if conn.dialect.name != "postgresql":
        return
    deltas = [d for e in batch if isinstance(e, dict) and isinstance(e.get("deltas"), list)
              for d in e["deltas"]]
    keys = sorted({(d["card"], d["purse"]) for d in deltas if isinstance(d, dict)
                   and isinstance(d.get("card"), str) and isinstance(d.get("purse"), str)})
    for i in range(0, len(keys), 500):
        conn.execute(sa.select(purses.c.id)
                     .where(sa.tuple_(purses.c.card, purses.c.name).in_(keys[i:i + 500]))
                     .order_by(purses.c.card, purses.c.name).with_for_update()).all()


def _after(raw: Any, first: Rejection) -> Rejection:
    return Rejection(*_id_seq(raw), AFTER_REJECTED, {"first": first.id, "first_seq": first.seq})


def _apply_one(conn: Connection, b: _Batch, raw: Any, known: dict[str, tuple[str, int, str]]
               ) -> Rejection | None:
    parsed = chain.split(raw)
    if isinstance(parsed, str):
        return Rejection(*_id_seq(raw), parsed)
    body, digest = parsed
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
    problem = chain.problem(body, digest, b.terminal, b.last_seq + 1, b.last_hash)
    if problem is not None:
        detail: dict[str, Any] = {}
        if problem == "sequence_gap":
            b.missing = (b.last_seq + 1, seq - 1)
            detail = {"missing_from": b.last_seq + 1, "missing_to": seq - 1}
        elif problem == "chain_broken":
            detail = {"expected_prev": b.last_hash}
        return Rejection(entry_id, seq, problem, detail)

    targets = _purses_of(conn, body["deltas"])
    if isinstance(targets, Rejection):
        return Rejection(entry_id, seq, targets.reason, targets.detail)

    at = parse_timestamp(body["at"])
    done = conn.execute(insert(conn, entries).values(
        id=entry_id, terminal=b.terminal, seq=seq, kind=body["kind"], at=at, card=body["card"],
        online=body["online"], prev=body["prev"], hash=digest,
        body=canonical(body).decode("utf-8"), received_at=b.now,
    ).on_conflict_do_nothing(index_elements=["id"]))
    if done.rowcount == 0:  # applied meanwhile by a concurrent push of the same entry
        b.duplicates.append(entry_id)
        return None
    for delta, (purse_id, _currency) in zip(body["deltas"], targets, strict=True):
        _post(conn, b, body, at, delta, purse_id)
    _status_effects(conn, b, body)
    if body["card"]:
        b.log.add("card", body["card"])
    b.last_seq, b.last_hash = seq, digest
    known[entry_id] = (b.terminal, seq, digest)
    b.applied.append(entry_id)
    return None


def _id_seq(raw: Any) -> tuple[str | None, int | None]:
    body = raw if isinstance(raw, dict) else {}
    entry_id, seq = body.get("id"), body.get("seq")
    return (entry_id if isinstance(entry_id, str) else None,
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None)


def _purses_of(conn: Connection, deltas: list[dict[str, Any]]
               ) -> list[tuple[int, str]] | Rejection:
    """(purse id, currency) for each delta, or why one cannot be posted."""
    found: list[tuple[int, str]] = []
    for d in deltas:
        row = conn.execute(sa.select(purses.c.id, purses.c.currency)
                           .where(purses.c.card == d["card"], purses.c.name == d["purse"])).first()
        if row is None:
            return Rejection(None, None, "unknown_purse",
                             {"card": d["card"], "purse": d["purse"]})
        if row.currency != d["currency"]:
            return Rejection(None, None, "currency_mismatch",
                             {"card": d["card"], "purse": d["purse"], "held": row.currency,
                              "sent": d["currency"]})
        found.append((int(row.id), str(row.currency)))
    return found


def _post(conn: Connection, b: _Batch, body: dict[str, Any], at: datetime,
          delta: dict[str, Any], purse_id: int) -> None:
    amount = int(delta["amount"])
    after = int(conn.execute(
        sa.update(purses).where(purses.c.id == purse_id)
        .values(balance=purses.c.balance + amount).returning(purses.c.balance)).scalar_one())
    conn.execute(sa.insert(ledger).values(
        purse_id=purse_id, amount=amount, currency=delta["currency"], kind=body["kind"],
        entry_id=body["id"], terminal=b.terminal, seq=body["seq"], at=at, posted_at=b.now))
    b.log.add("card", delta["card"])
    if amount < 0 and after < 0:
        _overspend(conn, b, body, at, delta, purse_id, min(-amount, -after))


def _overspend(conn: Connection, b: _Batch, body: dict[str, Any], at: datetime,
               delta: dict[str, Any], purse_id: int, amount: int) -> None:
    """Post the part of a debit below zero to `exceptions` and denylist the card."""
    others = conn.execute(
        sa.select(entries.c.terminal).distinct()
        .select_from(ledger.join(entries, entries.c.id == ledger.c.entry_id))
        .where(ledger.c.purse_id == purse_id, ledger.c.amount < 0,
               entries.c.online.is_(False), entries.c.at >= at - b.lookback)).scalars()
    involved = tuple(sorted({b.terminal, *others}))
    card = str(delta["card"])
    conn.execute(sa.insert(exceptions).values(
        card=card, purse_id=purse_id, amount=amount, currency=delta["currency"],
        entry_id=body["id"], terminal=b.terminal, terminals=json.dumps(list(involved)),
        created_at=b.now))
    added = conn.execute(insert(conn, denylist).values(
        card=card, reason="overspend", added_at=b.now).on_conflict_do_nothing())
    if added.rowcount:
        b.log.add("denylist", card)
    b.overspends.append(Overspend(str(body["id"]), card, str(delta["purse"]), amount,
                                  str(delta["currency"]), involved))


def _status_effects(conn: Connection, b: _Batch, body: dict[str, Any]) -> None:
    """What the terminal did to the card's status, done here too: an activation activates, a
    buyback or transfer closes the (source) card."""
    card = body["card"]
    if card is None:
        return
    if body["kind"] == "activate":
        set_status(conn, card, "active", str(body["id"]), b.now, only_from=("not_activated",),
                   log=b.log)
    elif body["kind"] in _CLOSES_SOURCE:
        set_status(conn, card, "closed", str(body["id"]), b.now, log=b.log)


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
