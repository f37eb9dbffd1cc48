"""Issuer operations on the server: import cards, show a card, freeze / report lost / unfreeze.

The import reads the terminal's CSV format with the terminal's own row checks
(`terminal.card_import`), all or nothing, and posts every opening balance to the ledger as an
"issue" posting — so a balance is always the sum of its purse's ledger rows.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server.db import utc_now
from sync.server.ledger import ChangeLog, set_status
from sync.server.schema import (
    card_status_log,
    cards,
    denylist,
    exceptions,
    ledger,
    programs,
    purses,
)
from terminal.card_import import Collector, ImportSummary, read_rows
from terminal.errors import BadInput, ImportRejected, NotFound, StateError
from terminal.luhn import normalize_card_number
from terminal.pin import hash_pin, is_encoded_hash

_CHUNK = 500
ISSUER = "issuer"


def import_cards(engine: Engine, path: Path, *, now: datetime | None = None) -> ImportSummary:
    """Import a card CSV (the terminal's columns and rules); ImportRejected if any row is bad,
    and then nothing is imported. Cards already on the server are errors (`card_exists`)."""
    now = now or utc_now()
    errors = Collector()
    seen: dict[str, tuple[Any, ...]] = {}
    lines: dict[str, int] = {}
    uids: dict[str, str] = {}
    card_rows: list[dict[str, Any]] = []
    purse_rows: list[dict[str, Any]] = []
    purse_keys: set[tuple[str, str]] = set()
    for line, row in read_rows(path, errors):
        number = row["number"]
        attrs = (row["uid"], row["program"], row["expiry"], row["status"], row["pin"])
        if number not in seen:
            if row["uid"] is not None and row["uid"] in uids:
                errors.add(line, "uid", "uid_taken", uid=row["uid"])
                continue
            seen[number], lines[number] = attrs, line
            if row["uid"] is not None:
                uids[row["uid"]] = number
            card_rows.append({"number": number, "uid": row["uid"], "program": row["program"],
                              "status": row["status"],
                              "expiry": date.fromisoformat(row["expiry"]) if row["expiry"]
                              else None, "pin_hash": row["pin"], "created_at": now,
                              "updated_at": now})
        elif seen[number] != attrs:
            errors.add(line, "", "card_rows_disagree", number=number)
            continue
        if (number, row["purse"]) in purse_keys:
            errors.add(line, "purse", "duplicate_purse", number=number, purse=row["purse"])
            continue
        purse_keys.add((number, row["purse"]))
        purse_rows.append({"card": number, "name": row["purse"], "currency": row["currency"],
                           "position": len(purse_rows) + 1, "balance": row["balance"]})

    with engine.begin() as conn:
        _clashes(conn, lines, uids, errors)
        if errors.count:
            raise ImportRejected(errors.kept, errors.count)
        if not card_rows:
            raise BadInput("empty_file", path=str(path))
        clear = [c for c in card_rows if c["pin_hash"] and not is_encoded_hash(c["pin_hash"])]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for c, hashed in zip(clear, pool.map(lambda c: hash_pin(c["pin_hash"]), clear),
                                 strict=True):
                c["pin_hash"] = hashed
        _ensure_programs(conn, {c["program"] for c in card_rows}, now)
        for i in range(0, len(card_rows), _CHUNK):
            conn.execute(sa.insert(cards), card_rows[i:i + _CHUNK])
        for i in range(0, len(purse_rows), _CHUNK):
            conn.execute(sa.insert(purses), purse_rows[i:i + _CHUNK])
        _post_issue(conn, list(lines), now)
        log = ChangeLog()
        for number in lines:
            log.add("card", number)
        log.flush(conn)
    return ImportSummary(len(card_rows), len(purse_rows), len(clear))


def _clashes(conn: Connection, lines: dict[str, int], uids: dict[str, str],
             errors: Collector) -> None:
    """Cards and UIDs of the file that the server already holds."""
    numbers = list(lines)
    for i in range(0, len(numbers), _CHUNK):
        for number in conn.execute(sa.select(cards.c.number)
                                   .where(cards.c.number.in_(numbers[i:i + _CHUNK]))).scalars():
            errors.add(lines[number], "number", "card_exists", number=number)
    taken = list(uids)
    for i in range(0, len(taken), _CHUNK):
        for uid in conn.execute(sa.select(cards.c.uid)
                                .where(cards.c.uid.in_(taken[i:i + _CHUNK]))).scalars():
            errors.add(lines[uids[uid]], "uid", "uid_taken", uid=uid)


def _ensure_programs(conn: Connection, names: set[str], now: datetime) -> None:
    have = set(conn.execute(sa.select(programs.c.id).where(programs.c.id.in_(names))).scalars())
    missing = sorted(names - have)
    if missing:
        conn.execute(sa.insert(programs), [{"id": p, "name": None, "created_at": now}
                                           for p in missing])


def _post_issue(conn: Connection, numbers: list[str], now: datetime) -> None:
    """The opening balance of each new purse, as an "issue" ledger posting."""
    for i in range(0, len(numbers), _CHUNK):
        rows = conn.execute(sa.select(purses.c.id, purses.c.balance, purses.c.currency)
                            .where(purses.c.card.in_(numbers[i:i + _CHUNK]),
                                   purses.c.balance != 0)).all()
        if rows:
            conn.execute(sa.insert(ledger), [
                {"purse_id": r.id, "amount": r.balance, "currency": r.currency, "kind": "issue",
                 "entry_id": None, "terminal": None, "seq": None, "at": now, "posted_at": now}
                for r in rows])


@dataclass(frozen=True)
class PurseInfo:
    name: str
    currency: str
    balance: int


@dataclass(frozen=True)
class CardInfo:
    """A card as the issuer sees it; balances summed from the ledger."""

    number: str
    uid: str | None
    program: str
    status: str
    expiry: str | None
    has_pin: bool
    denylisted: str | None
    purses: tuple[PurseInfo, ...]
    exceptions: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "uid": self.uid, "program": self.program,
                "status": self.status, "expiry": self.expiry, "has_pin": self.has_pin,
                "denylisted": self.denylisted,
                "purses": [{"name": p.name, "currency": p.currency, "balance": p.balance}
                           for p in self.purses],
                "exceptions": list(self.exceptions)}


def card_show(engine: Engine, number: str) -> CardInfo:
    number = normalize_card_number(number)
    with engine.connect() as conn:
        card = conn.execute(sa.select(cards).where(cards.c.number == number)).first()
        if card is None:
            raise NotFound("unknown_card", number=number)
        total = sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)
        rows = conn.execute(
            sa.select(purses.c.name, purses.c.currency, total.label("total"))
            .select_from(purses.outerjoin(ledger, ledger.c.purse_id == purses.c.id))
            .where(purses.c.card == number)
            .group_by(purses.c.id, purses.c.name, purses.c.currency, purses.c.position)
            .order_by(purses.c.position))
        purse_info = tuple(PurseInfo(r.name, r.currency, int(r.total)) for r in rows)
        reason = conn.execute(sa.select(denylist.c.reason)
                              .where(denylist.c.card == number)).scalar()
        excs = tuple(
            {"entry": e.entry_id, "amount": int(e.amount), "currency": e.currency,
             "terminals": json.loads(e.terminals), "resolved": e.resolved_at is not None}
            for e in conn.execute(sa.select(exceptions).where(exceptions.c.card == number)
                                  .order_by(exceptions.c.id)))
    return CardInfo(card.number, card.uid, card.program, card.status,
                    card.expiry.isoformat() if card.expiry else None, card.pin_hash is not None,
                    reason, purse_info, excs)


def freeze(engine: Engine, number: str, *, now: datetime | None = None) -> str:
    """Active (or not yet activated) card -> frozen. Returns the new status."""
    return _change(engine, number, "frozen", ("active", "not_activated"), now)


def report_lost(engine: Engine, number: str, *, now: datetime | None = None) -> str:
    """Active, not activated or frozen card -> lost (final: its value moves by a transfer)."""
    return _change(engine, number, "lost", ("active", "not_activated", "frozen"), now)


def unfreeze(engine: Engine, number: str, *, now: datetime | None = None) -> str:
    """Frozen card -> the status it had before it was frozen."""
    return _change(engine, number, None, ("frozen",), now)


def _change(engine: Engine, number: str, new: str | None, allowed: tuple[str, ...],
            now: datetime | None) -> str:
    number = normalize_card_number(number)
    now = now or utc_now()
    with engine.begin() as conn:
        status = conn.execute(sa.select(cards.c.status).where(cards.c.number == number)
                              .with_for_update()).scalar()
        if status is None:
            raise NotFound("unknown_card", number=number)
        if new is None:  # unfreeze: back to what it was before the freeze
            before = conn.execute(
                sa.select(card_status_log.c.old)
                .where(card_status_log.c.card == number, card_status_log.c.new == "frozen")
                .order_by(card_status_log.c.id.desc()).limit(1)).scalar()
            if status != "frozen":
                if status == "active":
                    return "active"
                raise StateError("status_change_refused", status=status, to="active")
            new = str(before or "active")
        if status == new:
            return str(status)
        if status not in allowed:
            raise StateError("status_change_refused", status=status, to=new)
        log = ChangeLog()
        set_status(conn, number, new, ISSUER, now, log=log)
        log.flush(conn)
    return new
