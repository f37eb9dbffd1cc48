"""The domain model: cards with purses, cashiers, and the values the services hand back.

Plain frozen dataclasses, so a snapshot read on one thread can be handed to another (the UI thread)
without locks. Amounts are integer minor units; the currency travels with each purse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum


class CardStatus(StrEnum):
    NOT_ACTIVATED = "not_activated"
    ACTIVE = "active"
    FROZEN = "frozen"
    LOST = "lost"
    EXPIRED = "expired"
    CLOSED = "closed"


class Role(StrEnum):
    CASHIER = "cashier"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Purse:
    """One balance on a card (fuel, phone credit, general, ...)."""

    name: str
    currency: str
    balance: int


@dataclass(frozen=True)
class Card:
    """A card as the local cache knows it. `purses` keep the issuer's order."""

    number: str
    uid: str | None
    program: str
    status: CardStatus
    expiry: date | None
    pin_hash: str | None
    pin_failures: int
    purses: tuple[Purse, ...]

    @property
    def has_pin(self) -> bool:
        return self.pin_hash is not None

    def purse(self, name: str) -> Purse | None:
        return next((p for p in self.purses if p.name == name), None)

    def after(self, deltas: Sequence[Delta]) -> Card:
        """This card with `deltas` (those on this card) applied to its purses."""
        change: dict[str, int] = {}
        for d in deltas:
            if d.card == self.number:
                change[d.purse] = change.get(d.purse, 0) + d.amount
        return replace(self, purses=tuple(replace(p, balance=p.balance + change.get(p.name, 0))
                                          for p in self.purses))


@dataclass(frozen=True)
class Cashier:
    id: str
    name: str
    role: Role
    pin_hash: str
    pin_failures: int
    active: bool


@dataclass(frozen=True)
class Delta:
    """A change to one purse, as written in a journal entry (negative = money out of the card)."""

    card: str
    program: str
    purse: str
    amount: int
    currency: str

    def as_json(self) -> dict[str, str | int]:
        return {"card": self.card, "program": self.program, "purse": self.purse,
                "amount": self.amount, "currency": self.currency}
