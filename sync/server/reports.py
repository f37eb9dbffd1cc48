"""Reports for the issuer and branch managers, computed from the ledger and the applied journal
entries (never from the cached `purses.balance`): liability, exceptions, activity.

Every report is SQLAlchemy Core and runs the same on SQLite and PostgreSQL; the heavy lifting
(sums per purse, per group) is done in SQL, so the size of a report is the number of groups,
not the number of cards. Times are UTC; a naive datetime passed in is taken as UTC.
See docs/server-reports.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.schema import cards, denylist, entries, ledger, purses, terminals
from sync.server.schema import exceptions as exceptions_table

# The entry kinds that move money; activity reports these (shift and admin entries are left out).
MONEY_KINDS = ("redeem", "void", "topup", "activate", "buyback", "transfer")
GROUPINGS = ("branch", "terminal", "program", "day")
NONE = "-"  # the group of an entry with no branch / no card


def _utc(value: datetime | None) -> datetime | None:
    """UTC, tz-aware. SQLite stores the UTC wall time, so parameters must be UTC too."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat()  # type: ignore[union-attr]
    return str(value)


# -- liability ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiabilityLine:
    """One program / purse / currency. `outstanding` is the sum of the positive balances (what
    the issuer owes card holders), `overspent` the sum of the negative ones (what overspent
    cards owe), `net` their sum."""

    program: str
    purse: str
    currency: str
    cards: int            # cards with a positive balance in this purse
    outstanding: int
    overspent_cards: int  # cards with a negative balance in this purse
    overspent: int
    net: int

    def as_json(self) -> dict[str, Any]:
        return {"program": self.program, "purse": self.purse, "currency": self.currency,
                "cards": self.cards, "outstanding": self.outstanding,
                "overspent_cards": self.overspent_cards, "overspent": self.overspent,
                "net": self.net}


@dataclass(frozen=True)
class NegativeBalance:
    card: str
    program: str
    purse: str
    currency: str
    balance: int
    denylisted: bool

    def as_json(self) -> dict[str, Any]:
        return {"card": self.card, "program": self.program, "purse": self.purse,
                "currency": self.currency, "balance": self.balance,
                "denylisted": self.denylisted}


@dataclass(frozen=True)
class Liability:
    as_of: datetime | None
    lines: tuple[LiabilityLine, ...]
    negative: tuple[NegativeBalance, ...]

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency: cards (with a positive balance, counted once), outstanding,
        overspent, net."""
        out: dict[str, dict[str, int]] = {}
        for line in self.lines:
            t = out.setdefault(line.currency, {"outstanding": 0, "overspent": 0, "net": 0})
            t["outstanding"] += line.outstanding
            t["overspent"] += line.overspent
            t["net"] += line.net
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {"as_of": _iso(self.as_of), "lines": [x.as_json() for x in self.lines],
                "negative": [x.as_json() for x in self.negative], "totals": self.totals()}


def _purse_balances(as_of: datetime | None) -> sa.Subquery:
    """purse_id -> sum of its ledger postings (with entry time `at` <= as_of)."""
    q = sa.select(ledger.c.purse_id, sa.func.sum(ledger.c.amount).label("balance"))
    if as_of is not None:
        q = q.where(ledger.c.at <= as_of)
    return q.group_by(ledger.c.purse_id).subquery("balances")


def liability(engine: Engine, as_of: datetime | None = None) -> Liability:
    """Outstanding balances per program, purse and currency from the ledger; the postings
    counted are those whose entry time is at or before `as_of` (all when None), as the server
    knows them now — an offline entry that arrives later changes a past report."""
    as_of = _utc(as_of)
    bal = _purse_balances(as_of)
    amount = bal.c.balance
    joined = (bal.join(purses, purses.c.id == bal.c.purse_id)
              .join(cards, cards.c.number == purses.c.card))
    pos = sa.case((amount > 0, amount), else_=0)
    neg = sa.case((amount < 0, amount), else_=0)
    keys = (cards.c.program, purses.c.name, purses.c.currency)
    summary = (sa.select(*keys,
                         sa.func.sum(sa.case((amount > 0, 1), else_=0)).label("cards"),
                         sa.func.sum(pos).label("outstanding"),
                         sa.func.sum(sa.case((amount < 0, 1), else_=0)).label("overspent_cards"),
                         sa.func.sum(neg).label("overspent"),
                         sa.func.sum(amount).label("net"))
               .select_from(joined).group_by(*keys).order_by(*keys))
    negatives = (sa.select(cards.c.number, cards.c.program, purses.c.name, purses.c.currency,
                           amount.label("balance"),
                           (denylist.c.card.is_not(None)).label("denylisted"))
                 .select_from(joined.outerjoin(denylist, denylist.c.card == cards.c.number))
                 .where(amount < 0).order_by(amount, cards.c.number, purses.c.name))
    with engine.connect() as conn:
        lines = tuple(LiabilityLine(r.program, r.name, r.currency, int(r.cards),
                                    int(r.outstanding), int(r.overspent_cards), int(r.overspent),
                                    int(r.net))
                      for r in conn.execute(summary) if r.cards or r.overspent_cards)
        neg_rows = tuple(NegativeBalance(r.number, r.program, r.name, r.currency,
                                         int(r.balance), bool(r.denylisted))
                         for r in conn.execute(negatives))
    return Liability(as_of, lines, neg_rows)


# -- exceptions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ExceptionCase:
    id: int
    card: str
    program: str
    purse: str
    amount: int
    currency: str
    entry: str
    terminal: str            # the terminal whose entry took the purse below zero
    branch: str | None
    terminals: tuple[str, ...]  # all terminals involved
    at: datetime             # when the overspending entry was made (terminal time)
    posted_at: datetime      # when the server applied it
    resolved_at: datetime | None
    denylisted: bool
    denylist_reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "card": self.card, "program": self.program, "purse": self.purse,
                "amount": self.amount, "currency": self.currency, "entry": self.entry,
                "terminal": self.terminal, "branch": self.branch,
                "terminals": list(self.terminals), "at": _iso(self.at),
                "posted_at": _iso(self.posted_at), "resolved_at": _iso(self.resolved_at),
                "denylisted": self.denylisted, "denylist_reason": self.denylist_reason}


@dataclass(frozen=True)
class Exceptions:
    cases: tuple[ExceptionCase, ...]

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency: number of cases, amount, of them still open (unresolved)."""
        out: dict[str, dict[str, int]] = {}
        for c in self.cases:
            t = out.setdefault(c.currency, {"cases": 0, "amount": 0, "open": 0,
                                            "open_amount": 0})
            t["cases"] += 1
            t["amount"] += c.amount
            if c.resolved_at is None:
                t["open"] += 1
                t["open_amount"] += c.amount
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {"cases": [c.as_json() for c in self.cases], "totals": self.totals()}


def exceptions(engine: Engine) -> Exceptions:
    """Every overspend posted to the exceptions account, oldest first."""
    x = exceptions_table
    q = (sa.select(x.c.id, x.c.card, cards.c.program, purses.c.name, x.c.amount, x.c.currency,
                   x.c.entry_id, x.c.terminal, terminals.c.branch, x.c.terminals,
                   entries.c.at, x.c.created_at, x.c.resolved_at,
                   denylist.c.reason.label("deny_reason"))
         .select_from(x.join(purses, purses.c.id == x.c.purse_id)
                      .join(cards, cards.c.number == purses.c.card)
                      .join(entries, entries.c.id == x.c.entry_id)
                      .outerjoin(terminals, terminals.c.id == x.c.terminal)
                      .outerjoin(denylist, denylist.c.card == x.c.card))
         .order_by(x.c.id))
    with engine.connect() as conn:
        cases = tuple(
            ExceptionCase(int(r.id), r.card, r.program, r.name, int(r.amount), r.currency,
                          r.entry_id, r.terminal, r.branch, tuple(json.loads(r.terminals)),
                          _utc(r.at), _utc(r.created_at), _utc(r.resolved_at),  # type: ignore[arg-type]
                          r.deny_reason is not None, r.deny_reason)
            for r in conn.execute(q))
    return Exceptions(cases)


# -- activity -------------------------------------------------------------------------------

@dataclass
class ActivityLine:
    """Applied entries of one kind in one group: how many, how many were made offline, and
    the signed sum of what they posted to the ledger per currency (debits negative)."""

    group: str
    kind: str
    count: int = 0
    offline: int = 0
    amounts: dict[str, int] = field(default_factory=dict)

    @property
    def offline_share(self) -> float:
        return round(self.offline / self.count, 4) if self.count else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"group": self.group, "kind": self.kind, "count": self.count,
                "offline": self.offline, "offline_share": self.offline_share,
                "amounts": dict(sorted(self.amounts.items()))}


@dataclass(frozen=True)
class Activity:
    by: str
    since: datetime | None
    until: datetime | None
    lines: tuple[ActivityLine, ...]

    def groups(self) -> list[ActivityLine]:
        """One total line per group (kind "all")."""
        out: dict[str, ActivityLine] = {}
        for line in self.lines:
            t = out.setdefault(line.group, ActivityLine(line.group, "all"))
            t.count += line.count
            t.offline += line.offline
            for cur, amount in line.amounts.items():
                t.amounts[cur] = t.amounts.get(cur, 0) + amount
        return [out[g] for g in sorted(out)]

    def as_json(self) -> dict[str, Any]:
        return {"by": self.by, "since": _iso(self.since), "until": _iso(self.until),
                "lines": [x.as_json() for x in self.lines],
                "groups": [x.as_json() for x in self.groups()]}


def _day(engine: Engine) -> sa.ColumnElement[Any]:
    """The UTC calendar day of an entry, as YYYY-MM-DD text."""
    if engine.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", entries.c.at), "YYYY-MM-DD")
    return sa.func.substr(entries.c.at, 1, 10)  # SQLite keeps "YYYY-MM-DD HH:MM:SS..." UTC


def activity(engine: Engine, by: str = "branch", since: datetime | None = None,
             until: datetime | None = None) -> Activity:
    """Counts, offline counts and signed sums of the applied money entries per group (`by`:
    branch, terminal, program, day — UTC) and kind, for entries with since <= at < until."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    since, until = _utc(since), _utc(until)
    group_col: sa.ColumnElement[Any] = {
        "branch": terminals.c.branch, "terminal": entries.c.terminal,
        "program": cards.c.program, "day": _day(engine)}[by]
    base = entries.join(terminals, terminals.c.id == entries.c.terminal)
    if by == "program":
        base = base.outerjoin(cards, cards.c.number == entries.c.card)
    where: list[sa.ColumnElement[bool]] = [entries.c.kind.in_(MONEY_KINDS)]
    if since is not None:
        where.append(entries.c.at >= since)
    if until is not None:
        where.append(entries.c.at < until)
    g = group_col.label("grp")
    offline = sa.func.sum(sa.case((entries.c.online.is_(False), 1), else_=0))
    counts = (sa.select(g, entries.c.kind, sa.func.count().label("n"), offline.label("off"))
              .select_from(base).where(*where).group_by(group_col, entries.c.kind))
    sums = (sa.select(g, entries.c.kind, ledger.c.currency,
                      sa.func.sum(ledger.c.amount).label("amount"))
            .select_from(base.join(ledger, ledger.c.entry_id == entries.c.id)).where(*where)
            .group_by(group_col, entries.c.kind, ledger.c.currency))
    lines: dict[tuple[str, str], ActivityLine] = defaultdict(lambda: ActivityLine("", ""))
    with engine.connect() as conn:
        for r in conn.execute(counts):
            key = (_group(r.grp), r.kind)
            lines[key] = ActivityLine(key[0], key[1], int(r.n), int(r.off))
        for r in conn.execute(sums):
            line = lines[(_group(r.grp), r.kind)]
            line.amounts[r.currency] = line.amounts.get(r.currency, 0) + int(r.amount)
    order = {k: i for i, k in enumerate(MONEY_KINDS)}
    ordered = sorted(lines.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99)))
    return Activity(by, since, until, tuple(line for _, line in ordered))


def _group(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value)
