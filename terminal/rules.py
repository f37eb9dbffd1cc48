"""The rules: pure functions from a card snapshot, a request and the limits to a `Decision`.

No I/O and no clock here — the services read the store and the time, call these, and write. That
keeps every rule unit-testable and the decision fast (it runs inside the write transaction of a
redemption, so the balance it sees is the balance that gets debited).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from terminal.limits import Limits
from terminal.model import Card, CardStatus, Delta, Purse
from terminal.reasons import WARNINGS, Outcome, Reason


@dataclass(frozen=True)
class Decision:
    """An outcome with the reasons behind it (blocking reasons and warnings) and their details."""

    outcome: Outcome
    reasons: tuple[Reason, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVE

    @property
    def warnings(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r in WARNINGS)

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "reasons": [r.value for r in self.reasons],
                **({"details": dict(self.params)} if self.params else {})}


APPROVE = Decision(Outcome.APPROVE)


def decline(reason: Reason, **params: Any) -> Decision:
    return Decision(Outcome.DECLINE, (reason,), params)


def combine(*decisions: Decision) -> Decision:
    """The first decision that is not an approval wins; approvals pool their warnings."""
    for d in decisions:
        if not d.approved:
            return d
    reasons = tuple(r for d in decisions for r in d.reasons)
    params = {k: v for d in decisions for k, v in d.params.items()}
    return Decision(Outcome.APPROVE, reasons, params)


def card_state(card: Card | None, today: date, limits: Limits, *, denylisted: bool = False,
               activating: bool = False) -> Decision:
    """Can this card be used at all today? `activating` flips the not-activated rule."""
    if card is None:
        return decline(Reason.UNKNOWN_CARD)
    if denylisted:
        return decline(Reason.DENYLISTED)
    blocking = {CardStatus.CLOSED: Reason.CLOSED, CardStatus.LOST: Reason.LOST,
                CardStatus.FROZEN: Reason.FROZEN, CardStatus.EXPIRED: Reason.EXPIRED}
    if card.status in blocking:
        return decline(blocking[card.status])
    if card.expiry is not None and card.expiry < today:
        return decline(Reason.EXPIRED, expiry=card.expiry.isoformat())
    if activating != (card.status is CardStatus.NOT_ACTIVATED):
        return decline(Reason.ALREADY_ACTIVE if activating else Reason.NOT_ACTIVATED)
    if card.expiry is not None and (card.expiry - today).days <= limits.expiring_soon_days:
        days_left = (card.expiry - today).days
        return Decision(Outcome.APPROVE, (Reason.EXPIRING_SOON,), {"days_left": days_left})
    return APPROVE


def pin_gate(card: Card, pin_given: bool, limits: Limits) -> Decision:
    """Before any PIN is checked: is the card locked, and was a PIN given at all?"""
    if card.pin_failures >= limits.pin_max_failures:
        return decline(Reason.PIN_LOCKED)
    if not pin_given:
        return Decision(Outcome.NEEDS_PIN, (Reason.PIN_REQUIRED,))
    return APPROVE


def pin_checked(ok: bool, failures_after: int, limits: Limits) -> Decision:
    """After a PIN check: approve, or say how many tries are left (or that it is now locked)."""
    if ok:
        return APPROVE
    tries_left = max(limits.pin_max_failures - failures_after, 0)
    if tries_left == 0:
        return decline(Reason.PIN_LOCKED)
    return decline(Reason.WRONG_PIN, tries_left=tries_left)


def eligible_purses(card: Card, purse: str | None, limits: Limits) -> tuple[Decision, list[Purse]]:
    """The purses a debit may take from, in order: the named one, or the configured order."""
    if purse is not None:
        chosen = card.purse(purse)
        if chosen is None:
            return decline(Reason.UNKNOWN_PURSE, purse=purse), []
        purses = [chosen]
    elif limits.purse_order:
        purses = [p for name in limits.purse_order if (p := card.purse(name)) is not None]
    else:
        purses = list(card.purses)
    usable = [p for p in purses if p.currency == limits.currency]
    if purses and not usable:
        return decline(Reason.CURRENCY_MISMATCH, currency=purses[0].currency), []
    if not usable:
        return decline(Reason.NOTHING_TO_REDEEM), []
    return APPROVE, usable


def plan_debit(card: Card, amount: int, purse: str | None, limits: Limits, *,
               allow_partial: bool = False) -> tuple[Decision, tuple[Delta, ...]]:
    """Split a debit of `amount` over the eligible purses; decline if the balance is short.

    With `allow_partial` a short balance approves what is there (the cashier takes the rest in
    another tender) and says so with a PARTIAL_APPROVAL warning.
    """
    decision, purses = eligible_purses(card, purse, limits)
    if not decision.approved:
        return decision, ()
    available = sum(p.balance for p in purses)
    take = amount
    if available < amount:
        if not allow_partial or available == 0:
            return decline(Reason.INSUFFICIENT_BALANCE, available=available), ()
        take = available
        decision = Decision(Outcome.APPROVE, (Reason.PARTIAL_APPROVAL,),
                            {"approved_amount": available, "requested_amount": amount})
    deltas = []
    remaining = take
    for p in purses:
        part = min(p.balance, remaining)
        if part > 0:
            deltas.append(Delta(card.number, card.program, p.name, -part, p.currency))
            remaining -= part
    return decision, tuple(deltas)


def debit_all(card: Card) -> tuple[Delta, ...]:
    """Deltas that empty every purse of the card (buyback, transfer)."""
    return tuple(Delta(card.number, card.program, p.name, -p.balance, p.currency)
                 for p in card.purses if p.balance > 0)


@dataclass(frozen=True)
class OfflineExposure:
    """What this terminal has approved offline so far, as the offline limits count it."""

    last_sync_at: datetime
    terminal_total: int
    card_day_total: int


def offline_gate(amount: int, now: datetime, exposure: OfflineExposure, limits: Limits) -> Decision:
    """Would approving `amount` offline stay inside every offline limit?

    A request over a limit is not refused outright: it `NEEDS_ONLINE`, since the server could
    still approve it.
    """
    def needs_online(reason: Reason, **params: Any) -> Decision:
        return Decision(Outcome.NEEDS_ONLINE, (reason,), params)

    if now - exposure.last_sync_at > timedelta(hours=limits.offline_max_hours):
        return needs_online(Reason.OFFLINE_TOO_LONG, hours=limits.offline_max_hours)
    if amount > limits.offline_per_transaction:
        return needs_online(Reason.OFFLINE_LIMIT_TRANSACTION, limit=limits.offline_per_transaction)
    if exposure.card_day_total + amount > limits.offline_per_card_day:
        return needs_online(Reason.OFFLINE_LIMIT_CARD_DAY,
                            remaining=max(limits.offline_per_card_day - exposure.card_day_total, 0))
    if exposure.terminal_total + amount > limits.offline_terminal_total:
        return needs_online(
            Reason.OFFLINE_LIMIT_TERMINAL,
            remaining=max(limits.offline_terminal_total - exposure.terminal_total, 0))
    return APPROVE


def credit_gate(card: Card, purse: str | None, amount: int, limits: Limits
                ) -> tuple[Decision, Delta | None]:
    """Top-up or activation load: the purse exists, the amount and the new balance are allowed."""
    target = card.purse(purse) if purse is not None else (card.purses[0] if card.purses else None)
    if target is None:
        return decline(Reason.UNKNOWN_PURSE, purse=purse or ""), None
    if target.currency != limits.currency:
        return decline(Reason.CURRENCY_MISMATCH, currency=target.currency), None
    if amount > limits.max_topup:
        return decline(Reason.TOPUP_LIMIT, limit=limits.max_topup), None
    if target.balance + amount > limits.max_purse_balance:
        return decline(Reason.BALANCE_LIMIT, limit=limits.max_purse_balance), None
    return APPROVE, Delta(card.number, card.program, target.name, amount, target.currency)


def total(deltas: Sequence[Delta]) -> int:
    """Sum of the money taken off cards by `deltas` (positive number)."""
    return -sum(d.amount for d in deltas if d.amount < 0)
