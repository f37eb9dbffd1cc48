"""Holds of online authorizations: placed by `authorize`, settled when the entry arrives.

While a terminal is online it asks the server before it debits a card (POST /v1/authorize). The
server locks the card's purses, checks the card as the terminal's rules would, and holds the
amount: a purse's *available* balance is its ledger balance less its open holds (unsettled and
not yet expired). The terminal then commits its journal entry with `online: true` and the hold's
id in `data.hold`; when the entry is pushed, `settle` closes the hold in the same transaction
that posts the entry to the ledger, so the amount is never counted twice. A hold whose entry
never comes (the terminal crashed before its commit, or the cashier's code check failed after
the server said yes) stops counting at `expires_at`.

The hold id is made by the terminal, so a retried request (a lost answer) finds the hold it
already placed and gets the same answer instead of holding twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server import auth
from sync.server import second_factor as second_factor_codes
from sync.server.db import transaction_retrying, utc_now
from sync.server.gateway import GatewayError, MessageGateway
from sync.server.schema import cards, denylist, holds, purses
from sync.server.settings import effective
from terminal.errors import StateError
from terminal.limits import Limits
from terminal.luhn import mask


def settle(conn: Connection, settled: Sequence[tuple[str, str]], now: datetime) -> int:
    """Close the holds named by applied entries: `settled` is (hold id, entry id) pairs. A hold
    that does not exist, or is settled already, is left alone (the entry is a fact anyway).
    Returns how many hold rows (one per purse) were settled."""
    done = 0
    for hold_id, entry_id in settled:
        done += conn.execute(
            sa.update(holds).where(holds.c.id == hold_id, holds.c.settled_at.is_(None))
            .values(settled_at=now, entry_id=entry_id)).rowcount
    return done


log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(minutes=10)
# What a card's status says to a debit (the terminal's rules say the same: terminal/rules.py).
_STATUS_REASONS = {"not_activated": "not_activated", "frozen": "frozen", "lost": "lost",
                   "closed": "closed"}


@dataclass(frozen=True)
class Verdict:
    """The answer to one authorization request (protocol.AuthorizeResponse)."""

    approved: bool
    hold_id: str
    reason: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    #: Approved by a branch relay whose central server did not answer (docs/relay.md): the
    #: branch's tills cannot spend the money twice, but other branches may, so the terminal
    #: still counts the debit against its offline limits.
    branch_only: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"approved": self.approved, "hold_id": self.hold_id, "reason": self.reason,
                "params": self.params,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "branch_only": self.branch_only}


def _no(hold_id: str, reason: str, **params: Any) -> Verdict:
    return Verdict(False, hold_id, reason, params)


@dataclass(frozen=True)
class SecondFactorPolicy:
    """How the server sends one-time codes (docs/second-factor.md); without one, no code is
    ever asked for. The amount above which a code is needed is the terminal's effective
    `second_factor_above` limit (sync/server/settings.py)."""

    gateway: MessageGateway
    lang: str = "en"


@dataclass(frozen=True)
class Request:
    """One authorization request, as the API received it from an authenticated terminal."""

    terminal: str
    branch: str | None
    hold_id: str
    card: str
    kind: str
    amounts: Sequence[tuple[str, int, str]]  # (purse, amount > 0, currency)
    code: tuple[str, str] | None = None  # (challenge id, one-time code)


def authorize(engine: Engine, request: Request, *, now: datetime | None = None,
              ttl: timedelta = DEFAULT_TTL, second_factor: SecondFactorPolicy | None = None,
              credential: str | None = None) -> Verdict:
    """Hold the request's amounts on its card, or say why not. One transaction: the card's
    purses are locked (PostgreSQL: FOR UPDATE, in name order; SQLite: BEGIN IMMEDIATE), so two
    terminals authorizing the same card are served one after the other and can never both hold
    the same money. Retried on deadlock. A declined answer commits too: a one-time code sent,
    or a wrong code counted, must stay so.

    With `credential`, the terminal is authenticated in the same transaction and the request's
    `terminal` and `branch` are its: one connection and three round trips fewer per request
    than a separate check, which is most of what an authorization costs
    (docs/benchmarks-sync.md)."""
    moment = now or utc_now()

    def job(conn: Connection) -> Verdict:
        nonlocal request
        if credential is not None:
            who = auth.identify(conn, credential)
            request = replace(request, terminal=who.terminal_id, branch=who.branch)
        return _authorize(conn, request, moment, ttl, second_factor)

    # The same hold id inserted by a concurrent retry of the request (IntegrityError) is cured
    # by another try too: it finds what the other placed.
    return transaction_retrying(engine, job, what=f"authorization {request.hold_id}",
                                also=(sa.exc.IntegrityError,), pause=0.005)


# The statements of an authorization, built once: building a SQLAlchemy statement costs more
# CPU than running it, and the server's CPU (one core's worth: the GIL) is what bounds its
# latency under load (docs/benchmarks-sync.md, online authorization).
_PLACED = (sa.select(holds.c.terminal, holds.c.card, holds.c.expires_at)
           .where(holds.c.id == sa.bindparam("hold_id")).limit(1).subquery())
# One round trip for the card, its denylisting and an earlier answer to this request.
_CARD = (sa.select(cards.c.status, cards.c.expiry, denylist.c.reason.label("denied"),
                   _PLACED.c.terminal.label("held_by"), _PLACED.c.card.label("held_card"),
                   _PLACED.c.expires_at.label("held_until"))
         .select_from(sa.select(sa.literal(1).label("one")).subquery()
                      .outerjoin(cards, cards.c.number == sa.bindparam("number"))
                      .outerjoin(denylist, denylist.c.card == cards.c.number)
                      .outerjoin(_PLACED, sa.true())))
# The purses, locked in name order (SQLite renders no FOR UPDATE: BEGIN IMMEDIATE serializes).
_PURSES = (sa.select(purses.c.id, purses.c.name, purses.c.currency, purses.c.balance)
           .where(purses.c.card == sa.bindparam("number"),
                  purses.c.name.in_(sa.bindparam("names", expanding=True)))
           .order_by(purses.c.name).with_for_update())
_OPEN_HOLDS = (sa.select(holds.c.purse_id, sa.func.sum(holds.c.amount))
               .where(holds.c.purse_id.in_(sa.bindparam("purse_ids", expanding=True)),
                      holds.c.settled_at.is_(None), holds.c.expires_at > sa.bindparam("now"))
               .group_by(holds.c.purse_id))
_HOLD = sa.insert(holds)


def _authorize(conn: Connection, request: Request, now: datetime, ttl: timedelta,
               second_factor: SecondFactorPolicy | None) -> Verdict:
    terminal_id, hold_id, number = request.terminal, request.hold_id, request.card
    card = conn.execute(_CARD, {"hold_id": hold_id, "number": number}).one()
    if card.held_by is not None:  # a retry of a request whose answer was lost
        if (card.held_by, card.held_card) != (terminal_id, number):
            raise StateError("hold_id_taken", hold=hold_id)
        return Verdict(True, hold_id, expires_at=_aware(card.held_until))
    if card.status is None:
        return _no(hold_id, "unknown_card")
    if card.status in _STATUS_REASONS:
        return _no(hold_id, _STATUS_REASONS[card.status])
    if card.denied is not None:
        return _no(hold_id, "denylisted")
    if card.expiry is not None and card.expiry < now.date():
        return _no(hold_id, "expired", expiry=card.expiry.isoformat())
    wanted: dict[str, tuple[int, str]] = {}
    for purse, amount, currency in request.amounts:
        held, _ = wanted.get(purse, (0, currency))
        wanted[purse] = (held + amount, currency)
    found = {r.name: r for r in conn.execute(_PURSES, {"number": number,
                                                        "names": sorted(wanted)})}
    # The open holds are summed by a statement of their own, *after* the lock: at READ
    # COMMITTED each statement sees what was committed when it started, so a sum taken in the
    # locking statement would miss the hold of the request that held the lock before us
    # (tests/test_online_auth.py, concurrent authorizations, catches exactly that).
    open_holds = dict(conn.execute(_OPEN_HOLDS, {
        "purse_ids": [r.id for r in found.values()], "now": now}).all())
    rows: list[dict[str, Any]] = []
    for name, (amount, currency) in sorted(wanted.items()):
        row = found.get(name)
        if row is None:
            return _no(hold_id, "unknown_purse", purse=name)
        if row.currency != currency:
            return _no(hold_id, "currency_mismatch", currency=row.currency)
        available = int(row.balance) - int(open_holds.get(row.id, 0))
        if amount > available:
            return _no(hold_id, "insufficient_balance", balance=max(available, 0),
                       currency=currency, purse=name)
        rows.append({"id": hold_id, "terminal": terminal_id, "card": number,
                     "purse_id": row.id, "amount": amount, "currency": currency,
                     "kind": request.kind, "created_at": now, "expires_at": now + ttl})
    if second_factor is not None:
        refused = _second_factor(conn, request, second_factor, wanted, now)
        if refused is not None:
            return refused
    conn.execute(_HOLD, rows[0] if len(rows) == 1 else rows)
    return Verdict(True, hold_id, expires_at=now + ttl)


# What the second factor's refusals say to the terminal (terminal.reasons).
_CODE_REASONS = {second_factor_codes.WRONG_CODE: "wrong_one_time_code"}


def _second_factor(conn: Connection, request: Request, policy: SecondFactorPolicy,
                   wanted: dict[str, tuple[int, str]], now: datetime) -> Verdict | None:
    """None if the debit may go on; else the answer that asks for, or refuses, the one-time
    code. A code is needed when the card is bound to a phone and the debit is above the
    terminal's effective `second_factor_above`."""
    total = sum(amount for amount, _currency in wanted.values())
    limits = Limits.from_json(effective(conn, request.branch, request.terminal).limits or {})
    if not second_factor_codes.required(conn, request.card, total, limits.second_factor_above):
        return None
    if request.code is None:
        currency = next(iter(wanted.values()))[1]
        try:
            with conn.begin_nested():  # a failed send keeps no challenge
                made = second_factor_codes.challenge(
                    conn, policy.gateway, request.card, request.terminal, total, now,
                    currency=currency, lang=policy.lang)
        except (GatewayError, StateError) as exc:
            log.warning("no one-time code for card %s: %s", mask(request.card), exc.code)
            return _no(request.hold_id, exc.code)
        return _no(request.hold_id, "second_factor_required", **made.as_json())
    checked = second_factor_codes.verify(conn, request.code[0], request.code[1], request.card,
                                         total, now, terminal=request.terminal)
    if checked.ok:
        return None
    return _no(request.hold_id, _CODE_REASONS.get(str(checked.reason), "one_time_code_expired"),
               **checked.params())


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC wall times."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
