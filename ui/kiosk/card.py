"""The "check my card" screen: the balance in huge type, the purses, the expiry in words,
warnings, and the buyback offer. `speech()` is what the kiosk says aloud about it. GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from terminal.services import Result
from ui import present, theme
from ui.kiosk.widgets import Flip, big_button, big_label
from ui.kiosk.words import Words


class CardPage(QWidget):
    """Renders `result` (a quote or inquiry) or `error` (a translated failure)."""

    speak_again = Signal()
    use = Signal()
    done = Signal()

    def __init__(self, words: Words, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.words = words
        self.result: Result | None = None
        self.error: str | None = None
        self.can_use = False  # "Use this card" is offered (set by the window)
        self.number = big_label("muted")
        self.banner = big_label("banner")
        self.balance_label = big_label("muted")
        self.balance = big_label("huge")
        self.purses = big_label()
        self.purses.setTextFormat(Qt.TextFormat.RichText)
        self.expiry = big_label()
        self.warnings = big_label()
        self.warnings.setStyleSheet(f"color: {theme.ASK}; font-weight: 700;")
        self.quote = big_label()
        self.speak_button = big_button()
        self.use_button = big_button()
        self.done_button = big_button(primary=True)
        self.speak_button.clicked.connect(self.speak_again)
        self.use_button.clicked.connect(self.use)
        self.done_button.clicked.connect(self.done)

        money = QVBoxLayout()
        for w in (self.number, self.banner, self.balance_label, self.balance, self.purses):
            money.addWidget(w)
        about = QVBoxLayout()
        about.setSpacing(24)
        for w in (self.expiry, self.warnings, self.quote):
            about.addWidget(w)
        self.columns = Flip()
        self.columns.add_column(money)
        self.columns.add_column(about)
        self.buttons = Flip()
        for b in (self.speak_button, self.use_button, self.done_button):
            self.buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setSpacing(24)
        layout.addLayout(self.columns)
        layout.addStretch(1)
        layout.addLayout(self.buttons)
        self.retranslate()

    def show_result(self, result: Result | None, error: str | None = None) -> None:
        self.result, self.error = result, error
        self.retranslate()

    def set_landscape(self, landscape: bool) -> None:
        self.columns.set_landscape(landscape)
        self.buttons.set_landscape(landscape)

    @property
    def shows_balance(self) -> bool:
        result = self.result
        return (result is not None and result.card is not None
                and not self.words.for_staff(result.decision))

    def speech(self) -> str:
        """Balance and warnings for a card in order; headline and reasons otherwise."""
        words, result = self.words, self.result
        if result is None:
            return self.error or ""
        parts = [] if result.approved else [words.headline(result.decision),
                                            *words.reasons(result.decision)]
        if self.shows_balance and result.card is not None:
            parts.append(words.balance_sentence(result.card))
        parts += words.warnings(result.decision)
        return " ".join(parts)

    def retranslate(self) -> None:
        words, result = self.words, self.result
        card = result.card if result else None
        decision = result.decision if result else None
        self.number.setText(self.tr("Card %1").replace("%1", card.masked_number[-8:])
                            if card else "")
        if self.error is not None or (decision is not None and not decision.approved):
            said = [self.error] if self.error is not None else \
                words.reasons(decision) if decision else []
            self.banner.setText("\n".join(s for s in said if s))
            self.banner.setStyleSheet(f"background: {theme.BAD};")
            self.banner.setVisible(True)
        else:
            self.banner.setVisible(False)
        shown = self.shows_balance and card is not None
        self.balance_label.setText(self.tr("Balance") if shown else "")
        self.balance.setText(words.balance(card) if shown and card else "")
        self.balance.setVisible(shown)
        if shown and card is not None and len(card.purses) > 1:
            rows = "".join(f"<tr><td>{p.name}</td><td align='right'>&nbsp;&nbsp;"
                           f"<b>{present.money(p.balance, p.currency)}</b></td></tr>"
                           for p in card.purses)
            self.purses.setText(f"<table align='center'>{rows}</table>")
        else:
            self.purses.setText("")
        self.expiry.setText(words.expiry(card) if shown and card else "")
        self.warnings.setText("\n".join(words.warnings(decision)) if decision else "")
        quote = result.quote if result else None
        self.quote.setText(words.quote(quote) if shown and quote is not None else "")
        self.speak_button.setText(self.tr("Speak again"))
        self.use_button.setText(self.tr("Use this card"))
        self.use_button.setVisible(self.can_use and decision is not None and decision.approved
                                   and shown)
        self.done_button.setText(self.tr("Done"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
