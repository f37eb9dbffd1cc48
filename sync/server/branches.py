"""Branch scoping: which cards a terminal sees, and the entries that crossed branches.

A card may belong to one branch (`cards.branch`, set by `cardpos server cards import --branch`);
NULL means it is valid in every branch. A terminal's pull carries only the cards of its own
branch and those without one (sync/server/pull.py); a terminal enrolled without a branch sees
only cards without one.

A terminal can still journal an entry for a card of another branch (a number typed in, a card
cached before it was moved, a QR code). Offline entries are facts: the server applies such an
entry like any other — refusing it would drop money already handed over — and this report
(`cardpos server report branch-crossings`) lists every applied entry whose card belongs to a
branch other than its terminal's, with what it moved, for a person to look at.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.schema import cards, entries, ledger, terminals
from terminal.errors import BadInput

MAX_BRANCH = 64  # terminals.branch, cards.branch


def check_branch(name: str) -> str:
    """`name` if it can be a branch (1..64 characters, not blank), else BadInput."""
    if not name.strip() or len(name) > MAX_BRANCH:
        raise BadInput("bad_branch", name=name)
    return name


def visible(card_branch: str | None, terminal_branch: str | None) -> bool:
    """May a terminal of `terminal_branch` cache a card of `card_branch`?"""
    return card_branch is None or card_branch == terminal_branch


@dataclass(frozen=True)
class Crossing:
    """An applied entry of a terminal for a card of another branch."""

    entry_id: str
    terminal: str
    terminal_branch: str | None
    card: str
    card_branch: str
    kind: str
    at: datetime
    online: bool
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> sum of its postings

    def as_json(self) -> dict[str, Any]:
        return {"entry": self.entry_id, "terminal": self.terminal,
                "terminal_branch": self.terminal_branch, "card": self.card,
                "card_branch": self.card_branch, "kind": self.kind,
                "at": self.at.isoformat(), "online": self.online, "amounts": self.amounts}


def crossings(engine: Engine) -> list[Crossing]:
    """Every applied entry whose card has a branch that is not its terminal's, oldest first."""
    crossed = sa.and_(cards.c.branch.is_not(None),
                      sa.or_(terminals.c.branch.is_(None), terminals.c.branch != cards.c.branch))
    query = (sa.select(entries.c.id, entries.c.terminal, terminals.c.branch.label("t_branch"),
                       entries.c.card, cards.c.branch.label("c_branch"), entries.c.kind,
                       entries.c.at, entries.c.online, ledger.c.currency,
                       sa.func.sum(ledger.c.amount).label("amount"))
             .select_from(entries.join(terminals, terminals.c.id == entries.c.terminal)
                          .join(cards, cards.c.number == entries.c.card)
                          .outerjoin(ledger, ledger.c.entry_id == entries.c.id))
             .where(crossed)
             .group_by(entries.c.id, entries.c.terminal, terminals.c.branch, entries.c.card,
                       cards.c.branch, entries.c.kind, entries.c.at, entries.c.online,
                       ledger.c.currency)
             .order_by(entries.c.at, entries.c.id))
    found: dict[str, Crossing] = {}
    amounts: dict[str, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for r in conn.execute(query):
            if r.id not in found:
                at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)  # SQLite drops the zone
                found[r.id] = Crossing(r.id, r.terminal, r.t_branch, r.card, r.c_branch, r.kind,
                                       at, bool(r.online), amounts[r.id])
            if r.currency is not None:
                amounts[r.id][r.currency] = int(r.amount)
    return list(found.values())
