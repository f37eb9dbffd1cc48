"""What a screen says about a card or a result, in a language: shared by cashier and kiosk.

Plain functions over the core's views (no widgets), so both front ends word things alike and
tests can check the words. Core codes are translated by terminal/messages.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardpos.render import reason_texts
from terminal.messages import text
from terminal.money import format_minor
from terminal.reasons import WARNINGS
from terminal.rules import Decision
from terminal.services import CardView, Result


def money(amount: int, currency: str) -> str:
    return f"{format_minor(amount, currency)} {currency}"


@dataclass(frozen=True)
class Said:
    """A decision in words: the headline (approved/declined/...), the outcome code for the
    colour, the blocking reasons and the warnings."""

    outcome: str
    headline: str
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    def speech(self) -> str:
        """What the kiosk's voice says: headline, then the reasons."""
        return " ".join((self.headline, *self.reasons, *self.warnings))


def say(decision: Decision, lang: str, currency: str) -> Said:
    texts = reason_texts(decision, lang, currency)
    return Said(decision.outcome.value, text(decision.outcome.value, lang),
                tuple(t for r, t in texts if r not in WARNINGS),
                tuple(t for r, t in texts if r in WARNINGS))


def total(card: CardView) -> tuple[int, str] | None:
    """The card's total balance when all purses share one currency (else None)."""
    currencies = {p.currency for p in card.purses}
    if len(currencies) != 1:
        return None
    return sum(p.balance for p in card.purses), currencies.pop()


def error_text(exc: Exception, lang: str) -> str:
    """A failed job's message: the core's typed errors are translated, anything else is a
    bug, shown as such (and logged by the worker)."""
    from terminal.errors import CardposError

    if isinstance(exc, CardposError):
        return exc.message(lang)
    return text("internal_error", lang, detail=type(exc).__name__)


def result_amount(result: Result) -> int | None:
    """The amount a money entry moved on the presented card (positive), if there is one."""
    if result.entry is None:
        return None
    card = result.entry.body.get("card")
    return abs(sum(d.amount for d in result.entry.deltas if d.card == card)) or None
