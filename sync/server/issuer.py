"""Issuer operations on the server: import cards, show a card, freeze / report lost / unfreeze,
activate (with an opening load), top up, close.

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
from terminal.limits import Limits
from terminal.luhn import normalize_card_number
from terminal.money import format_minor, parse_major
from terminal.pin import hash_pin, is_encoded_hash

_CHUNK = 500
ISSUER = "issuer"
_DEFAULT_LIMITS = Limits()


def import_cards(engine: Engine, path: Path, *, now: datetime | None = None,
                 branch: str | None = None) -> ImportSummary:
    """Import a card CSV (the terminal's columns and rules); ImportRejected if any row is bad,
    and then nothing is imported. Cards already on the server are errors (`card_exists`).
    `branch`: the cards are valid in that branch only (None: in every branch; see
    sync/server/pull.py)."""
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
                              "updated_at": now, "branch": branch})
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


# -- activate, top up, close ----------------------------------------------------------------------
#
# Each is one transaction: the card's purses and then the card are locked (the order a push locks
# them in, so an issuer operation and a terminal's push of the same card queue up instead of
# deadlocking), the balance moves by a conditional `balance = balance + :amount` with a ledger
# posting (terminal NULL: the issuer's), the status changes through `ledger.set_status`, and the
# card goes to the change log so terminals pull the new balance. Amounts are bounded by
# `Limits.max_topup` and `Limits.max_purse_balance`, in minor units of the purse's currency.

# An amount: minor units (int) or text in major units as a person types it ("12.50"), read in
# the currency of the purse it goes to.
Amount = int | str
CLOSABLE = ("active", "not_activated", "frozen", "lost", "expired")


@dataclass(frozen=True)
class Movement:
    """What an activation or top-up did: the card's status and the purse's new balance."""

    number: str
    status: str
    purse: str
    currency: str
    amount: int
    balance: int

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status, "purse": self.purse,
                "currency": self.currency, "amount": self.amount, "balance": self.balance}


@dataclass(frozen=True)
class Closing:
    """A closed card and what was posted out of each purse (positive amounts)."""

    number: str
    paid_out: tuple[PurseInfo, ...]

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "status": "closed",
                "paid_out": [{"purse": p.name, "currency": p.currency, "amount": p.balance}
                             for p in self.paid_out]}


@dataclass(frozen=True)
class _Purse:
    id: int
    name: str
    currency: str
    balance: int


@dataclass(frozen=True)
class _Locked:
    number: str
    status: str
    expiry: date | None
    purses: tuple[_Purse, ...]

    def purse(self, name: str | None) -> _Purse:
        """The named purse, or the card's first one."""
        for p in self.purses:
            if name is None or p.name == name:
                return p
        raise NotFound("unknown_purse", card=self.number, purse=name or "")


def activate(engine: Engine, number: str, amount: Amount = 0, *, purse: str | None = None,
             limits: Limits = _DEFAULT_LIMITS, now: datetime | None = None) -> Movement:
    """Not activated -> active, with an opening load (0 = none) posted as "activate"."""
    now = now or utc_now()
    with engine.begin() as conn:
        log = ChangeLog()
        done = activate_in(conn, number, amount, purse, limits, now, log)
        log.flush(conn)
    return done


def activate_in(conn: Connection, number: str, amount: Amount, purse: str | None,
                limits: Limits, now: datetime, log: ChangeLog) -> Movement:
    """`activate` inside the caller's transaction (a bulk order's line); the caller flushes
    `log` just before COMMIT."""
    card = _lock(conn, number)
    if card.status == "active":
        raise StateError("already_active", number=card.number)
    if card.status != "not_activated":
        raise StateError("status_change_refused", status=card.status, to="active")
    _check_expiry(card, now)
    target = card.purse(purse)
    minor = _minor(amount, target.currency, allow_zero=True)
    balance = _credit(conn, card, target, minor, "activate", limits, now, log)
    set_status(conn, card.number, "active", ISSUER, now, only_from=("not_activated",), log=log)
    return Movement(card.number, "active", target.name, target.currency, minor, balance)


def topup(engine: Engine, number: str, amount: Amount, *, purse: str | None = None,
          limits: Limits = _DEFAULT_LIMITS, now: datetime | None = None) -> Movement:
    """Add money to a purse of an active card, posted as "topup"."""
    now = now or utc_now()
    with engine.begin() as conn:
        log = ChangeLog()
        card = _lock(conn, number)
        if card.status != "active":
            raise StateError("card_not_active", number=card.number, status=card.status)
        _check_expiry(card, now)
        target = card.purse(purse)
        minor = _minor(amount, target.currency, allow_zero=False)
        balance = _credit(conn, card, target, minor, "topup", limits, now, log)
        log.flush(conn)
    return Movement(card.number, card.status, target.name, target.currency, minor, balance)


def close(engine: Engine, number: str, *, now: datetime | None = None) -> Closing:
    """Close a card and post each purse's balance out ("close"). A purse below zero (an
    offline overspend, see the exceptions report) refuses: `card_overspent`."""
    now = now or utc_now()
    with engine.begin() as conn:
        log = ChangeLog()
        card = _lock(conn, number)
        if card.status not in CLOSABLE:
            raise StateError("status_change_refused", status=card.status, to="closed")
        short = [p for p in card.purses if p.balance < 0]
        if short:
            raise StateError("card_overspent", number=card.number, purse=short[0].name,
                             balance=_money(short[0].balance, short[0].currency))
        paid = []
        for p in card.purses:
            if p.balance > 0:
                _post(conn, p, -p.balance, "close", now)
                paid.append(PurseInfo(p.name, p.currency, p.balance))
        set_status(conn, card.number, "closed", ISSUER, now, log=log)
        log.flush(conn)
    return Closing(card.number, tuple(paid))


def _lock(conn: Connection, number: str) -> _Locked:
    """The card with its purses, locked for this transaction: purses first (by name), then the
    card row — the order of `ledger.apply_push`."""
    number = normalize_card_number(number)
    rows = conn.execute(sa.select(purses.c.id, purses.c.name, purses.c.currency,
                                  purses.c.balance, purses.c.position)
                        .where(purses.c.card == number).order_by(purses.c.name)
                        .with_for_update()).all()
    card = conn.execute(sa.select(cards.c.status, cards.c.expiry)
                        .where(cards.c.number == number).with_for_update()).first()
    if card is None:
        raise NotFound("unknown_card", number=number)
    ordered = sorted(rows, key=lambda r: r.position)
    return _Locked(number, str(card.status), card.expiry,
                   tuple(_Purse(int(r.id), r.name, r.currency, int(r.balance)) for r in ordered))


def _check_expiry(card: _Locked, now: datetime) -> None:
    if card.expiry is not None and card.expiry < now.date():
        raise StateError("card_expired", number=card.number, expiry=card.expiry.isoformat())


def _minor(amount: Amount, currency: str, *, allow_zero: bool) -> int:
    minor = parse_major(amount, currency) if isinstance(amount, str) else amount
    if minor < 0 or (minor == 0 and not allow_zero):
        raise BadInput("amount_not_positive")
    return minor


def _credit(conn: Connection, card: _Locked, target: _Purse, amount: int, kind: str,
            limits: Limits, now: datetime, log: ChangeLog) -> int:
    """Post `amount` (>= 0) to `target` within the limits; the new balance."""
    if amount > limits.max_topup:
        raise StateError("topup_limit", limit=_money(limits.max_topup, target.currency))
    if amount == 0:
        return target.balance
    # Conditional: never above the cap, even if the cached balance moved since it was read.
    after = conn.execute(
        sa.update(purses)
        .where(purses.c.id == target.id,
               purses.c.balance + amount <= limits.max_purse_balance)
        .values(balance=purses.c.balance + amount).returning(purses.c.balance)).scalar()
    if after is None:
        raise StateError("balance_limit",
                         limit=_money(limits.max_purse_balance, target.currency))
    _ledger_row(conn, target, amount, kind, now)
    log.add("card", card.number)
    return int(after)


def _money(amount: int, currency: str) -> str:
    return f"{format_minor(amount, currency)} {currency}"


def _post(conn: Connection, target: _Purse, amount: int, kind: str, now: datetime) -> None:
    conn.execute(sa.update(purses).where(purses.c.id == target.id)
                 .values(balance=purses.c.balance + amount))
    _ledger_row(conn, target, amount, kind, now)


def _ledger_row(conn: Connection, target: _Purse, amount: int, kind: str, now: datetime) -> None:
    conn.execute(sa.insert(ledger).values(
        purse_id=target.id, amount=amount, currency=target.currency, kind=kind, entry_id=None,
        terminal=None, seq=None, at=now, posted_at=now))
