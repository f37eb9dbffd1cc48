"""A branch relay applies a page pulled from upstream to its own database (docs/relay.md).

The relay's database is a server database like central's: its branch's terminals pull from it
and push to it. A pulled page (the PullResponse format, docs/server-api.md) changes cards,
purses, denylist, keys and the relay's global limits and prices, each recorded in the relay's
change log so its terminals' next pulls carry it.

Balances: upstream's balance of a purse counts the entries upstream has applied; the relay's
also counts its terminals' entries upstream has not acknowledged yet ("pending": applied here,
after `relay_acks.acked_seq` of their terminal). So for every purse of a page

    local balance = upstream balance + the pending postings of that purse,

reached by posting the difference to the local ledger as one row of kind "upstream" (no entry),
so the local invariant `purses.balance == sum(ledger)` keeps holding. Computed in the same
transaction as the local pushes would post (SQLite: BEGIN IMMEDIATE; PostgreSQL: the purses are
row-locked first), so a till's push cannot slip between the sum and the adjustment.

Why the sum is right: the link forwards, records what upstream acknowledged, and only then
pulls, and a round that fails to forward does not pull. So a page's upstream balance includes
every entry counted as acknowledged, and excludes every pending one (upstream has not seen it,
or saw it in a forward whose answer was lost — then the round failed, the next forward finds it
a duplicate, and the card is in the next pull's delta since its change upstream came after this
relay's cursor).

A card's status comes from upstream, except that a pending buyback or transfer of it keeps it
closed, and a pending activation keeps it active, until upstream has applied them. Cards are
stored here without a branch: the relay sees only what its branch may see, and all of it is
for its terminals. Keys are stored as "retiring" (they verify, this server never signs) or
"revoked". Runs on the link thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync import protocol
from sync.server import keyring, relay_store, settings
from sync.server.db import insert, utc_now
from sync.server.ledger import ChangeLog, insert_many
from sync.server.schema import (
    cards,
    denylist,
    entries,
    keys,
    ledger,
    programs,
    purses,
    relay_acks,
    relay_balances,
)
from sync.server.schema import settings as settings_table
from terminal.sync_state import SyncError

ADJUSTMENT = "upstream"  # ledger.kind of the rows that follow upstream's balances
_CLOSING = ("buyback", "transfer")
_CHUNK = 500


@dataclass(frozen=True)
class Applied:
    """What one page did here."""

    cursor: int
    reset: bool
    more: bool
    cards: int
    adjusted: int  # purses whose local balance moved to follow upstream

    def as_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "reset": self.reset, "more": self.more,
                "cards": self.cards, "adjusted": self.adjusted}


def apply_page(engine: Engine, page: dict[str, Any]) -> Applied:
    """Apply one upstream page, all of it or nothing, and move the relay's cursor past it.
    SyncError if the page is not a well-formed PullResponse with a right checksum."""
    if not protocol.verify_checksum(page):
        raise SyncError("bad_checksum")
    try:
        parsed = protocol.PullResponse.model_validate(page)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SyncError("bad_pull_page", detail=str(exc).splitlines()[0]) from exc
    now = utc_now()
    log = ChangeLog()
    with engine.begin() as conn:
        if parsed.reset:  # a snapshot lists what is denylisted now: start from nothing
            for (card,) in conn.execute(sa.delete(denylist).returning(denylist.c.card)):
                log.add("denylist", card)
        _programs(conn, {c.program for c in parsed.cards}, now)
        _cards(conn, parsed.cards, now, log)
        adjusted = _balances(conn, parsed.cards, now, log)
        _denylist(conn, parsed.denylist, now, log)
        _keys(conn, parsed.keys, now, log)
        _policy(conn, parsed.limits, parsed.prices, now, log)
        relay_store.set_cursor(conn, parsed.cursor)
        log.flush(conn)
    return Applied(parsed.cursor, parsed.reset, parsed.more, len(parsed.cards), adjusted)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _programs(conn: Connection, wanted: set[str], now: datetime) -> None:
    if wanted:
        insert_many(conn, programs, [{"id": p, "name": None, "created_at": now}
                                     for p in sorted(wanted)], conflict=("id",))


def _cards(conn: Connection, found: list[protocol.Card], now: datetime, log: ChangeLog) -> None:
    """Upsert the page's cards, a few statements per page (a UID moves with its card: it is
    cleared from any other card first)."""
    if not found:
        return
    held = _pending_status(conn, [c.number for c in found])
    moved = [{"uid_": c.uid, "number_": c.number} for c in found if c.uid is not None]
    if moved:
        conn.execute(sa.update(cards).where(cards.c.uid == sa.bindparam("uid_"),
                                            cards.c.number != sa.bindparam("number_"))
                     .values(uid=None), moved)
    rows = []
    for card in found:
        status = card.status
        if card.number in held and (held[card.number] == "closed" or status == "not_activated"):
            status = held[card.number]
        rows.append({"number": card.number, "uid": card.uid, "program": card.program,
                     "status": status,
                     "expiry": date.fromisoformat(card.expiry) if card.expiry else None,
                     "pin_hash": card.pin_hash, "created_at": now, "updated_at": now,
                     "branch": None})
        log.add("card", card.number)
    stmt = insert(conn, cards)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["number"],
        set_={c: stmt.excluded[c] for c in ("uid", "program", "status", "expiry", "pin_hash",
                                            "updated_at")}), rows)


def _pending_status(conn: Connection, numbers: list[str]) -> dict[str, str]:
    """The status the cards' pending local entries give them: "closed" (a buyback or
    transfer) or "active" (an activation)."""
    found: dict[str, str] = {}
    for chunk in _chunks(numbers):
        for number, kind in conn.execute(
                sa.select(entries.c.card, entries.c.kind)
                .select_from(entries.outerjoin(relay_acks,
                                               relay_acks.c.terminal == entries.c.terminal))
                .where(entries.c.card.in_(chunk), entries.c.seq > relay_store.ACKED,
                       entries.c.kind.in_([*_CLOSING, "activate"]))):
            if kind in _CLOSING or found.get(number) != "closed":
                found[number] = "closed" if kind in _CLOSING else "active"
    return found


def _balances(conn: Connection, found: list[protocol.Card], now: datetime,
              log: ChangeLog) -> int:
    """Create missing purses; record upstream's balances; post what makes each local balance
    upstream's plus the pending postings. Returns how many balances moved."""
    upstream = {(c.number, p.name): (p.currency, p.balance, i)
                for c in found for i, p in enumerate(c.purses, start=1)}
    if not upstream:
        return 0
    local = _lock(conn, sorted(upstream))
    missing = [{"card": card, "name": name, "currency": currency, "position": position,
                "balance": 0}
               for (card, name), (currency, _b, position) in sorted(upstream.items())
               if (card, name) not in local]
    if missing:
        insert_many(conn, purses, missing)
        local = _lock(conn, sorted(upstream))
    by_id = {row[0]: key for key, row in local.items()}
    insert_many(conn, relay_balances, [{"purse_id": local[key][0], "balance": upstream[key][1]}
                                       for key in sorted(upstream)],
                conflict=("purse_id",), update=("balance",))
    pending = _pending_postings(conn, sorted(by_id))
    moves: list[dict[str, Any]] = []
    for purse_id, key in sorted(by_id.items()):
        _id, currency, balance = local[key]
        move = upstream[key][1] + pending.get(purse_id, 0) - balance
        if move:
            moves.append({"purse_id": purse_id, "amount": move, "currency": currency,
                          "kind": ADJUSTMENT, "entry_id": None, "terminal": None, "seq": None,
                          "at": now, "posted_at": now})
            log.add("card", key[0])
    if moves:
        insert_many(conn, ledger, moves)
        conn.execute(sa.update(purses).where(purses.c.id == sa.bindparam("purse"))
                     .values(balance=purses.c.balance + sa.bindparam("move")),
                     [{"purse": m["purse_id"], "move": m["amount"]} for m in moves])
    return len(moves)


def _lock(conn: Connection, wanted: list[tuple[str, str]]
          ) -> dict[tuple[str, str], tuple[int, str, int]]:
    """(card, purse) -> (id, currency, balance) of the purses held here; on PostgreSQL locked
    in (card, purse) order, as a push locks them."""
    found: dict[tuple[str, str], tuple[int, str, int]] = {}
    for chunk in _chunks(wanted):
        query = (sa.select(purses.c.id, purses.c.card, purses.c.name, purses.c.currency,
                           purses.c.balance)
                 .where(sa.tuple_(purses.c.card, purses.c.name).in_(chunk))
                 .order_by(purses.c.card, purses.c.name))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        for r in conn.execute(query):
            found[(r.card, r.name)] = (int(r.id), str(r.currency), int(r.balance))
    return found


def _pending_postings(conn: Connection, purse_ids: list[int]) -> dict[int, int]:
    """Per purse, the sum of the postings of local entries upstream has not acknowledged."""
    sums: dict[int, int] = {}
    for chunk in _chunks(purse_ids):
        sums.update((int(p), int(s)) for p, s in conn.execute(
            sa.select(ledger.c.purse_id, sa.func.sum(ledger.c.amount))
            .select_from(ledger.outerjoin(relay_acks,
                                          relay_acks.c.terminal == ledger.c.terminal))
            .where(ledger.c.purse_id.in_(chunk), ledger.c.entry_id.is_not(None),
                   ledger.c.seq > relay_store.ACKED)
            .group_by(ledger.c.purse_id)))
    return sums


def _denylist(conn: Connection, changes: list[protocol.Denied], now: datetime,
              log: ChangeLog) -> None:
    for item in changes:
        if item.listed:
            values = {"reason": (item.reason or "upstream")[:32], "added_at": now}
            conn.execute(insert(conn, denylist).values(card=item.card, **values)
                         .on_conflict_do_update(index_elements=["card"], set_=values))
        else:
            conn.execute(sa.delete(denylist).where(denylist.c.card == item.card))
        log.add("denylist", item.card)


def _keys(conn: Connection, found: list[protocol.Key], now: datetime, log: ChangeLog) -> None:
    for key in found:
        status = keyring.REVOKED if key.revoked else keyring.RETIRING
        values = {"public_key": bytes.fromhex(key.public_key_hex), "status": status}
        conn.execute(insert(conn, keys).values(kid=key.key_id, created_at=now, **values)
                     .on_conflict_do_update(index_elements=["kid"], set_=values))
        log.add("key", key.key_id)


def _policy(conn: Connection, limits: dict[str, Any] | None, prices: dict[str, Any] | None,
            now: datetime, log: ChangeLog) -> None:
    """Upstream's effective limits and prices for this relay become the relay's global ones
    (null: no change)."""
    if limits is None and prices is None:
        return
    scope = settings.Scope(settings.GLOBAL)
    row = conn.execute(sa.select(settings_table.c.limits, settings_table.c.prices)
                       .where(settings_table.c.scope == scope.kind,
                              settings_table.c.name == scope.name)).first()
    held_limits = row.limits if row is not None else None
    held_prices = row.prices if row is not None else None
    new_limits = json.dumps(limits, sort_keys=True) if limits is not None else held_limits
    new_prices = json.dumps(prices, sort_keys=True) if prices is not None else held_prices
    if (new_limits, new_prices) == (held_limits, held_prices):
        return
    values = {"limits": new_limits, "prices": new_prices, "updated_at": now}
    conn.execute(insert(conn, settings_table).values(scope=scope.kind, name=scope.name, **values)
                 .on_conflict_do_update(index_elements=["scope", "name"], set_=values))
    log.add(*scope.change_key)
