"""Pull: what a terminal caches (cards with purses and ledger balances, the denylist, keys), as
changes after a server-issued cursor (docs/server-api.md).

The cursor is a `changes.seq` (docs/server.md, "The pull cursor"): the change log holds one row
per object ever changed — every imported card has one — so "everything after 0" is a full
snapshot and "everything after N" the delta since N. A page is one range scan of
`ix_changes_seq`; its cursor is the last seq it holds.

Reset rule: the answer is a full snapshot (`reset: true`; the terminal drops its cache before
applying it) when the cursor is 0, when it is above the newest change (it came from another or a
restored database), or when it is below `counters['pull_floor']` (raised by an operator who
compacts the change log; absent means 0). A snapshot pages like a delta: its first page says
`reset`, the next ones are fetched with the returned cursor as ordinary deltas.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync import protocol
from sync.server.ledger import changes_after
from sync.server.schema import cards, counters, denylist, keys, ledger, purses

FLOOR = "pull_floor"


def _counter(conn: Connection, name: str) -> int:
    value = conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar()
    return int(value or 0)


def needs_reset(conn: Connection, cursor: int) -> bool:
    return cursor <= 0 or cursor > _counter(conn, "changes") or cursor < _counter(conn, FLOOR)


def pull(engine: Engine, cursor: int, limit: int = protocol.DEFAULT_PULL_LIMIT,
         branch: str | None = None) -> dict[str, Any]:
    """One page of changes after `cursor`, as the JSON body of a PullResponse (checksum
    included). `branch` is the terminal's: cards carry no branch yet, so every branch sees every
    card (docs/server-api.md)."""
    del branch  # no branch on cards yet
    with engine.connect() as conn:
        reset = needs_reset(conn, cursor)
        start = 0 if reset else cursor
        rows = changes_after(conn, start, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        card_keys = [key for _seq, kind, key in rows if kind == "card"]
        deny_keys = [key for _seq, kind, key in rows if kind == "denylist"]
        key_keys = [key for _seq, kind, key in rows if kind == "key"]
        body: dict[str, Any] = {
            "cursor": rows[-1][0] if rows else start,
            "reset": reset,
            "more": more,
            "cards": _cards(conn, card_keys),
            "denylist": _denylist(conn, deny_keys),
            # Keys are few: a snapshot's first page carries all of them; later key changes
            # come as `key` rows of the change log.
            "keys": _keys(conn, None if reset else key_keys),
            "limits": None,  # not held by the server yet: null means "no change"
            "prices": None,
        }
        conn.rollback()
    body["checksum"] = protocol.checksum(body)
    return body


def _cards(conn: Connection, numbers: list[str]) -> list[dict[str, Any]]:
    if not numbers:
        return []
    found = {r.number: r for r in conn.execute(sa.select(cards)
                                              .where(cards.c.number.in_(numbers)))}
    total = sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)
    wallets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in conn.execute(
            sa.select(purses.c.card, purses.c.name, purses.c.currency, total.label("total"))
            .select_from(purses.outerjoin(ledger, ledger.c.purse_id == purses.c.id))
            .where(purses.c.card.in_(numbers))
            .group_by(purses.c.id, purses.c.card, purses.c.name, purses.c.currency,
                      purses.c.position)
            .order_by(purses.c.card, purses.c.position)):
        wallets[r.card].append({"name": r.name, "currency": r.currency,
                                "balance": int(r.total)})
    # In change order; a change of a card the server does not hold (an entry naming a card
    # never imported here) is skipped.
    return [{"number": c.number, "uid": c.uid, "program": c.program, "status": c.status,
             "expiry": c.expiry.isoformat() if c.expiry else None, "pin_hash": c.pin_hash,
             "purses": wallets.get(c.number, [])}
            for c in (found.get(n) for n in numbers) if c is not None]


def _denylist(conn: Connection, numbers: list[str]) -> list[dict[str, Any]]:
    if not numbers:
        return []
    listed = {r.card: r.reason for r in conn.execute(
        sa.select(denylist.c.card, denylist.c.reason).where(denylist.c.card.in_(numbers)))}
    return [{"card": n, "reason": listed.get(n), "listed": n in listed} for n in numbers]


def _keys(conn: Connection, kids: list[str] | None) -> list[dict[str, Any]]:
    """All keys (`kids` None) or those named."""
    if kids is not None and not kids:
        return []
    query = sa.select(keys).order_by(keys.c.kid)
    if kids is not None:
        query = query.where(keys.c.kid.in_(kids))
    return [{"key_id": k.kid, "public_key_hex": bytes(k.public_key).hex(),
             "revoked": k.status == "revoked"} for k in conn.execute(query)]
