"""What the kiosk says about a card, on screen and aloud: one place, so the screen and the
voice agree. Its own sentences are Qt-translated (context "Words"); the core's reasons come
from terminal/messages.py, except those that tell staff to keep the card, which a card holder
reads differently ("ask a member of staff"). GUI thread (it reads the current language).
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from cardpos.render import reason_texts
from terminal.buyback import Quote
from terminal.reasons import WARNINGS, Reason
from terminal.rules import Decision
from terminal.services import CardView
from ui import present
from ui.context import UiContext

#: Reasons after which the holder must not get the card's balance, only "see staff".
STAFF = frozenset({Reason.LOST, Reason.DENYLISTED, Reason.CARD_MISMATCH})


class Words(QObject):
    """See the module docstring."""

    def __init__(self, ctx: UiContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx

    def for_staff(self, decision: Decision) -> bool:
        """The card is to be kept and shown to staff: no balance, no offers."""
        return bool(STAFF & set(decision.reasons))

    def reasons(self, decision: Decision) -> list[str]:
        """The blocking reasons, in the holder's words."""
        staff = {Reason.LOST: self.tr(
                     "This card was reported lost. Please keep it and ask a member of staff."),
                 Reason.DENYLISTED: self.tr(
                     "This card is blocked. Please keep it and ask a member of staff."),
                 Reason.CARD_MISMATCH: self.tr(
                     "This card cannot be read safely. Please keep it and ask a member of "
                     "staff.")}
        return [staff.get(reason, sentence) for reason, sentence in
                reason_texts(decision, self.ctx.lang, self.ctx.currency)
                if reason not in WARNINGS]

    def warnings(self, decision: Decision) -> list[str]:
        return list(present.say(decision, self.ctx.lang, self.ctx.currency).warnings)

    def headline(self, decision: Decision) -> str:
        return present.say(decision, self.ctx.lang, self.ctx.currency).headline

    def balance(self, card: CardView) -> str:
        """The total when the purses share a currency, else each purse."""
        whole = present.total(card)
        if whole is not None:
            return present.money(*whole)
        return ", ".join(f"{p.name} {present.money(p.balance, p.currency)}" for p in card.purses)

    def balance_sentence(self, card: CardView) -> str:
        return self.tr("Your balance is %1.").replace("%1", self.balance(card))

    def new_balance_sentence(self, card: CardView) -> str:
        return self.tr("Your balance is now %1.").replace("%1", self.balance(card))

    def expiry(self, card: CardView) -> str:
        if card.expiry is None or card.days_to_expiry is None:
            return self.tr("No expiry date.")
        if card.days_to_expiry < 0:
            return self.tr("Expired on %1.").replace("%1", card.expiry)
        return self.tr("Valid until %1. %n day(s) left.", "", card.days_to_expiry).replace(
            "%1", card.expiry)

    def quote(self, quote: Quote) -> str:
        """The buyback offer (shown only: the kiosk pays out nothing; the counter does)."""
        season = self.tr("standard rate") if quote.season == "default" else \
            self.tr("%1 season rate").replace("%1", quote.season)
        return (self.tr("We can buy this card back for %1 at the counter (%2: %3% of the "
                        "balance).")
                .replace("%1", present.money(quote.price, quote.currency))
                .replace("%2", season)
                .replace("%3", f"{quote.rate_bp / 100:g}"))

    def taken(self, amount: int) -> str:
        return self.tr("%1 was taken from your card.").replace(
            "%1", present.money(amount, self.ctx.currency))
