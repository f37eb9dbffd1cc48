"""Pull: what a terminal caches (cards with purses and balances, the denylist, keys, its limits
and prices), as changes after a server-issued cursor (docs/server-api.md).

The cursor is a `changes.seq` (docs/server.md, "The pull cursor"): the change log holds one row
per object ever changed — every imported card has one — so "everything after 0" is a full
snapshot and "everything after N" the delta since N. A page is ONE statement: a range scan of
`ix_changes_seq` with, per change, an index lookup of the card (and its purses) or denylist row
it names — one consistent view on both databases; its cursor is the last seq it scanned.

Reset rule: the answer is a full snapshot (`reset: true`; the terminal drops its cache before
applying it) when the cursor is 0, when it is above the newest change (it came from another or a
restored database), or when it is below `counters['pull_floor']` (raised by an operator who
compacts the change log; absent means 0). A snapshot pages like a delta: its first page says
`reset`, the next ones are fetched with the returned cursor as ordinary deltas.

Branches (sync/server/branches.py): a terminal sees only the cards of its own branch and those
without one, and denylist rows only for those cards. A change the terminal may not see still
counts toward the page's `limit` and moves the cursor past it, so a page may hold fewer objects
than `limit` while `more` is true.

Limits and prices (sync/server/settings.py) are sent — the terminal's effective values — on the
first page of a snapshot when any are set, and on any page whose changes include a settings
change of a scope that covers the terminal; otherwise they are null ("no change").

Speed (bench/sync_snapshot.py, docs/benchmarks-sync.md): the database writes each card's wire
object as canonical JSON text itself (keys sorted, no whitespace, strings escaped by `to_json` /
`json_quote`, which escape exactly as Python's `json` does with `ensure_ascii=False`), balances
come from `purses.balance` (the ledger sum kept in each posting's transaction), and the answer
is those texts joined into the canonical JSON of the body — the bytes the checksum hashes —
with the checksum appended; no per-card Python objects, no response-model re-validation.
Runs on the request's worker thread; holds no state between requests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync import protocol
from sync.server import settings
from sync.server.auth import Identity
from sync.server.branches import visible
from sync.server.schema import counters, keys
from terminal.journal import canonical

FLOOR = "pull_floor"
_SETTINGS_KINDS = frozenset(settings.SCOPE_KINDS.values())

# One card as the canonical JSON of protocol.Card: {expiry, number, pin_hash, program, purses:
# [{balance, currency, name}] in the card's order, status, uid}.
_PG_CARD = """'{"expiry":' || coalesce(to_json(cards.expiry)::text, 'null')
    || ',"number":' || to_json(cards.number)::text
    || ',"pin_hash":' || coalesce(to_json(cards.pin_hash)::text, 'null')
    || ',"program":' || to_json(cards.program)::text
    || ',"purses":[' || coalesce((
        SELECT string_agg('{"balance":' || p.balance::text
                          || ',"currency":' || to_json(p.currency)::text
                          || ',"name":' || to_json(p.name)::text || '}', ',' ORDER BY p.position)
        FROM purses p WHERE p.card = cards.number), '')
    || '],"status":' || to_json(cards.status)::text
    || ',"uid":' || coalesce(to_json(cards.uid)::text, 'null') || '}'"""

_SQLITE_CARD = """'{"expiry":' || json_quote(cards.expiry)
    || ',"number":' || json_quote(cards.number)
    || ',"pin_hash":' || json_quote(cards.pin_hash)
    || ',"program":' || json_quote(cards.program)
    || ',"purses":[' || coalesce((
        SELECT group_concat(purse, ',') FROM (
            SELECT '{"balance":' || p.balance || ',"currency":' || json_quote(p.currency)
                   || ',"name":' || json_quote(p.name) || '}' AS purse
            FROM purses p WHERE p.card = cards.number ORDER BY p.position)), '')
    || '],"status":' || json_quote(cards.status)
    || ',"uid":' || json_quote(cards.uid) || '}'"""

# The upper bound (the newest change issued) changes no result; it makes the condition a range,
# which keeps PostgreSQL on the seq index when a bulk import left the table without statistics
# (a one-sided `seq > x` is then guessed to match a third of the table: a full scan per page).
_WINDOW = """WITH w AS (SELECT seq, kind, key FROM changes WHERE seq > :start AND seq <= :top
                        ORDER BY seq LIMIT :n)"""

# PostgreSQL: the card lookup is a LATERAL subquery with LIMIT 1, which the planner cannot turn
# into a hash join over the whole cards table (what it does when an import left its statistics
# stale); one index probe per change instead. The page's plan is fixed further by _PG_PLAN.
_PG_PAGE = sa.text(f"""{_WINDOW}
SELECT w.seq, w.kind, w.key, c.branch, c.card, d.reason
FROM w
LEFT JOIN LATERAL (SELECT cards.branch, {_PG_CARD} AS card FROM cards
                   WHERE cards.number = w.key AND w.kind IN ('card', 'denylist') LIMIT 1) c
       ON true
LEFT JOIN denylist d ON d.card = w.key AND w.kind = 'denylist'
ORDER BY w.seq""")

_SQLITE_PAGE = sa.text(f"""{_WINDOW}
SELECT w.seq, w.kind, w.key, cards.branch,
       CASE WHEN cards.number IS NULL THEN NULL ELSE {_SQLITE_CARD} END AS card, d.reason
FROM w
LEFT JOIN cards ON cards.number = w.key AND w.kind IN ('card', 'denylist')
LEFT JOIN denylist d ON d.card = w.key AND w.kind = 'denylist'
ORDER BY w.seq""")


# For the pull's own transaction on PostgreSQL. Right after a bulk import (no statistics yet)
# the planner guesses: it chose a bitmap or parallel sequential scan of every change after the
# cursor plus a sort, per page, and JIT-compiled the statement for ~350 ms because of the
# inflated estimates (EXPLAIN ANALYZE of one page at 1M cards: 584 ms; with these, 36 ms). The
# page wants exactly an ordered range scan of ix_changes_seq and index probes.
_PG_PLAN = ("SET LOCAL jit = off", "SET LOCAL enable_seqscan = off",
            "SET LOCAL enable_bitmapscan = off")


def _counter(conn: Connection, name: str) -> int:
    value = conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar()
    return int(value or 0)


def pull(engine: Engine, cursor: int, limit: int = protocol.DEFAULT_PULL_LIMIT,
         who: Identity | None = None) -> dict[str, Any]:
    """One page of changes after `cursor` for the terminal `who` (None: a terminal of no branch
    with no settings of its own), as the parsed JSON of a PullResponse (checksum included)."""
    parsed: dict[str, Any] = json.loads(pull_json(engine, cursor, limit, who))
    return parsed


def pull_json(engine: Engine, cursor: int, limit: int = protocol.DEFAULT_PULL_LIMIT,
              who: Identity | None = None) -> bytes:
    """The same page as the UTF-8 JSON bytes of the HTTP answer: the canonical JSON of the body,
    which is what the checksum hashes, with the checksum appended as its last member (clients
    parse it, so member order does not matter)."""
    cards, rest = _page(engine, cursor, limit, who)
    # "cards" sorts first among the members: the canonical body is {"cards":[...], <rest>}.
    text = b"".join((b'{"cards":[', b",".join(cards), b"],", canonical(rest)[1:]))
    digest = hashlib.sha256(text).hexdigest()
    return b"".join((text[:-1], b',"checksum":"', digest.encode("ascii"), b'"}'))


def _page(engine: Engine, cursor: int, limit: int, who: Identity | None
          ) -> tuple[list[bytes], dict[str, Any]]:
    """One page: the canonical JSON of each card to send, and the other members of the body."""
    branch = who.branch if who is not None else None
    terminal = who.terminal_id if who is not None else None
    with engine.connect() as conn:
        top = _counter(conn, "changes")
        reset = cursor <= 0 or cursor > top or cursor < _counter(conn, FLOOR)
        start = 0 if reset else cursor
        if conn.dialect.name == "postgresql":
            for setting in _PG_PLAN:
                conn.execute(sa.text(setting))
        rows = conn.execute(_PG_PAGE if conn.dialect.name == "postgresql" else _SQLITE_PAGE,
                            {"start": start, "top": top, "n": limit + 1}).all()
        more = len(rows) > limit
        rows = rows[:limit]
        card_texts: list[bytes] = []
        deny_list: list[dict[str, Any]] = []
        key_ids: list[str] = []
        policy_changed = reset
        for _seq, kind, key, card_branch, card, reason in rows:
            if kind == "card":
                # A change of a card the server does not hold (an entry naming a card never
                # imported here) has no card: skipped.
                if card is not None and visible(card_branch, branch):
                    card_texts.append(card.encode("utf-8"))
            elif kind == "denylist":
                if visible(card_branch, branch):
                    deny_list.append({"card": key, "reason": reason, "listed": reason is not None})
            elif kind == "key":
                key_ids.append(key)
            elif kind in _SETTINGS_KINDS:
                policy_changed = policy_changed or settings.relevant(kind, key, branch, terminal)
        policy = settings.effective(conn, branch, terminal) if policy_changed else None
        rest: dict[str, Any] = {
            "cursor": rows[-1][0] if rows else start,
            "reset": reset,
            "more": more,
            "denylist": deny_list,
            # Keys are few: a snapshot's first page carries all of them; later key changes
            # come as `key` rows of the change log.
            "keys": _keys(conn, None if reset else key_ids),
            "limits": policy.limits if policy is not None else None,
            "prices": policy.prices if policy is not None else None,
        }
        conn.rollback()
    return card_texts, rest


def _keys(conn: Connection, kids: list[str] | None) -> list[dict[str, Any]]:
    """All keys (`kids` None) or those named."""
    if kids is not None and not kids:
        return []
    query = sa.select(keys).order_by(keys.c.kid)
    if kids is not None:
        query = query.where(keys.c.kid.in_(kids))
    return [{"key_id": k.kid, "public_key_hex": bytes(k.public_key).hex(),
             "revoked": k.status == "revoked"} for k in conn.execute(query)]
