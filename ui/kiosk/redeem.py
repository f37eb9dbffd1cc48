"""Self-redemption screens: choose an amount (presets or a pad), confirm, and the outcome.
The window runs the core call between them. GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from terminal.errors import BadInput
from terminal.money import parse_major
from terminal.services import CardView, Result
from ui import present, theme
from ui.kiosk.widgets import Flip, big_button, big_label
from ui.kiosk.words import Words

#: Preset amounts in major units of the terminal's currency (those above the balance hide).
PRESETS = (5, 10, 20, 50)
#: The pad's keys are a little lower than other buttons, so pad and presets fit side by side
#: on a 1080-pixel-high landscape screen (still above theme.MIN_TOUCH).
PAD_KEY_PX = 64
PAD_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", ".", "0", "⌫")


class AmountPage(QWidget):
    """`chosen(amount in minor units)` from a preset or the pad; `cancel` to start over."""

    chosen = Signal(int)
    cancel = Signal()

    def __init__(self, words: Words, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.words = words
        self.card: CardView | None = None
        self.error: str | None = None
        self.title = big_label("title")
        self.balance = big_label()
        self.preset_box = QWidget()
        self.preset_grid = QGridLayout(self.preset_box)
        self.preset_grid.setContentsMargins(0, 0, 0, 0)
        self.preset_grid.setSpacing(12)
        self.presets: dict[int, QPushButton] = {}
        self.other_label = big_label()
        self.display = QLineEdit()
        self.display.setReadOnly(True)
        self.display.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.display.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.display.setMaxLength(9)
        pad = QWidget()
        pad.setStyleSheet(f"QPushButton {{ min-height: {PAD_KEY_PX}px; }}")
        grid = QGridLayout(pad)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(12)
        self.keys: dict[str, QPushButton] = {}
        for i, key in enumerate(PAD_KEYS):
            button = big_button()
            button.setText(key)
            button.clicked.connect(lambda _=False, k=key: self._press(k))
            grid.addWidget(button, i // 3, i % 3)
            self.keys[key] = button
        self.ok_button = big_button(primary=True)
        self.ok_button.clicked.connect(self._typed)
        self.message = big_label()
        self.message.setStyleSheet(f"color: {theme.BAD}; font-weight: 700;")
        self.cancel_button = big_button()
        self.cancel_button.clicked.connect(self.cancel)

        left = QVBoxLayout()
        left.addWidget(self.balance)
        left.addWidget(self.preset_box)
        right = QVBoxLayout()
        right.addWidget(self.other_label)
        right.addWidget(self.display)
        right.addWidget(pad)
        right.addWidget(self.ok_button)
        self.columns = Flip()
        self.columns.add_column(left)
        self.columns.add_column(right)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.columns)
        layout.addStretch(1)
        layout.addWidget(self.message)
        layout.addWidget(self.cancel_button)
        self.retranslate()

    def set_card(self, card: CardView) -> None:
        """Offer the presets the card can pay (in the terminal's currency)."""
        self.card, self.error = card, None
        self.display.clear()
        currency = self.words.ctx.currency
        available = sum(p.balance for p in card.purses if p.currency == currency)
        for button in self.presets.values():
            button.deleteLater()
        self.presets = {}
        for major in PRESETS:
            amount = parse_major(str(major), currency)
            if amount <= available:
                button = big_button(primary=True)
                button.clicked.connect(lambda _=False, a=amount: self.chosen.emit(a))
                self.preset_grid.addWidget(button, len(self.presets) // 2, len(self.presets) % 2)
                self.presets[amount] = button
        self.retranslate()

    def set_landscape(self, landscape: bool) -> None:
        self.columns.set_landscape(landscape)

    def _press(self, key: str) -> None:
        self.error = None
        if key == "⌫":
            self.display.backspace()
        else:
            self.display.insert(key)
        self.retranslate()

    def _typed(self) -> None:
        typed = self.display.text()
        if not typed:
            return
        try:
            amount = parse_major(typed, self.words.ctx.currency)
            if amount <= 0:
                raise BadInput("amount_not_positive")
        except BadInput as exc:
            self.error = exc.message(self.words.ctx.lang)
            self.display.clear()
            self.retranslate()
            return
        self.chosen.emit(amount)

    def retranslate(self) -> None:
        currency = self.words.ctx.currency
        self.title.setText(self.tr("How much?"))
        self.balance.setText(self.words.balance_sentence(self.card) if self.card else "")
        for amount, button in self.presets.items():
            button.setText(present.money(amount, currency))
        self.other_label.setText(self.tr("Another amount (%1)").replace("%1", currency))
        self.ok_button.setText(self.tr("OK"))
        self.message.setText(self.error or "")
        self.message.setVisible(bool(self.error))
        self.cancel_button.setText(self.tr("Cancel"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class ConfirmPage(QWidget):
    """"Take 10.00 EUR from card ****1234?" — Confirm or Cancel."""

    confirm = Signal()
    cancel = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.amount = 0
        self.currency = ""
        self.card = ""
        self.question = big_label("title")
        self.confirm_button = big_button(primary=True)
        self.cancel_button = big_button()
        self.confirm_button.clicked.connect(self.confirm)
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons = Flip()
        self.buttons.addWidget(self.cancel_button)
        self.buttons.addWidget(self.confirm_button)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.question)
        layout.addStretch(1)
        layout.addLayout(self.buttons)
        self.retranslate()

    def ask(self, amount: int, currency: str, masked_number: str) -> None:
        self.amount, self.currency, self.card = amount, currency, "****" + masked_number[-4:]
        self.confirm_button.setEnabled(True)
        self.retranslate()

    def set_landscape(self, landscape: bool) -> None:
        self.buttons.set_landscape(landscape)

    def retranslate(self) -> None:
        self.question.setText(self.tr("Take %1 from card %2?")
                              .replace("%1", present.money(self.amount, self.currency))
                              .replace("%2", self.card) if self.currency else "")
        self.confirm_button.setText(self.tr("Confirm"))
        self.cancel_button.setText(self.tr("Cancel"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class DonePage(QWidget):
    """The outcome of a redemption: approved with the new balance, or why not. `print_note`
    says what became of the receipt."""

    done = Signal()

    def __init__(self, words: Words, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.words = words
        self.result: Result | None = None
        self.error: str | None = None
        self.print_note = ""
        self.banner = big_label("banner")
        self.details = big_label()
        self.balance = big_label("huge")
        self.receipt = big_label("muted")
        self.done_button = big_button(primary=True)
        self.done_button.clicked.connect(self.done)
        layout = QVBoxLayout(self)
        layout.setSpacing(32)
        layout.addStretch(1)
        for w in (self.banner, self.details, self.balance, self.receipt):
            layout.addWidget(w)
        layout.addStretch(2)
        layout.addWidget(self.done_button)
        self.retranslate()

    def show_result(self, result: Result | None, error: str | None = None) -> None:
        self.result, self.error, self.print_note = result, error, ""
        self.retranslate()

    def set_print_note(self, note: str) -> None:
        self.print_note = note
        self.receipt.setText(note)

    def set_landscape(self, landscape: bool) -> None:
        pass

    def lines(self) -> list[str]:
        """Headline, then what happened (also what is spoken)."""
        words, result = self.words, self.result
        if result is None:
            return [self.tr("Sorry, that did not work."), self.error or ""]
        if result.approved:
            moved = present.result_amount(result)
            lines = [words.headline(result.decision)]
            if moved is not None:
                lines.append(words.taken(moved))
            if result.card is not None:
                lines.append(words.new_balance_sentence(result.card))
            return lines + words.warnings(result.decision)
        return [words.headline(result.decision), *words.reasons(result.decision)]

    def retranslate(self) -> None:
        lines = self.lines()
        approved = self.result is not None and self.result.approved
        self.banner.setText(lines[0])
        self.banner.setStyleSheet(f"background: {theme.OK if approved else theme.BAD};")
        card = self.result.card if self.result else None
        if approved and card is not None:
            self.details.setText(" ".join(lines[1:2]))
            self.balance.setText(self.words.balance(card))
        else:
            self.details.setText("\n".join(line for line in lines[1:] if line))
            self.balance.setText("")
        self.balance.setVisible(bool(self.balance.text()))
        self.receipt.setText(self.print_note)
        self.done_button.setText(self.tr("Done"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
