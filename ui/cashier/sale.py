"""The cashier's sale screen: one card at a time, keyboard first.

A tap, a scan (camera or wedge) or a typed number + Enter shows the card: masked number,
program, status, expiry, purses and warnings (an inquiry, which writes nothing). The entry field
then takes the amount: digits, Enter — a redemption in as few as two keypresses after the tap.
F-keys switch what Enter does (redeem, top-up, activate, buyback). Esc forgets the card.

Results are shown only after the core returns, i.e. after COMMIT; the receipt preview is built
from the committed entry, then the receipt goes to the printer worker. Every core call runs on
the store worker (ui/bridge.py); while one runs, further Enters are ignored. GUI thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from drivers.print_worker import PrintOutcome
from terminal.credentials import CardNumber, Credential, NfcCard, QrCode
from terminal.errors import BadInput
from terminal.messages import text
from terminal.money import parse_major
from terminal.ports import CardPresented, CodeScanned, DeviceEvent
from terminal.receipt import TITLES, Receipt, build_receipt
from terminal.services import CardView, Result
from ui import present, theme
from ui.context import UiContext
from ui.dialogs import DialogAsker
from ui.operation import Extras, Operation
from ui.present import Said

_NUMBER = re.compile(r"^[\d \-]{8,32}$")
_AMOUNT = re.compile(r"^\d{1,7}([.,]\d{0,3})?$")


class Mode(StrEnum):
    REDEEM = "redeem"
    TOPUP = "topup"
    ACTIVATE = "activate"
    BUYBACK = "buyback"


def credential_for_code(code: str) -> Credential:
    """A scanned or typed code: digits are a printed card number, anything else a QR token."""
    code = code.strip()
    return CardNumber(code) if _NUMBER.match(code) else QrCode(code)


class SalePage(QWidget):
    """See the module docstring. `cashier` is set by the window after login."""

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.asker = DialogAsker(self, pad=True)
        self.cashier: str | None = None
        self.credential: Credential | None = None
        self.card: CardView | None = None
        self.mode = Mode.REDEEM
        self.result: Result | None = None  # the last answer shown
        self.error: str | None = None       # or the last error shown (already translated)
        self.receipt: Receipt | None = None
        self.print_note = ""
        self._build()
        self.retranslate()

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        panel = QFrame()
        panel.setObjectName("panel")
        self.prompt = QLabel()
        self.prompt.setObjectName("hint")
        self.prompt.setWordWrap(True)
        self.number = QLabel()
        self.number.setObjectName("cardNumber")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.purses = QLabel()
        self.purses.setTextFormat(Qt.TextFormat.RichText)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(f"color: {theme.ASK}; font-weight: 600;")
        card_box = QVBoxLayout(panel)
        for w in (self.prompt, self.number, self.details, self.purses, self.warnings):
            card_box.addWidget(w)
        card_box.addStretch(1)
        self.entry_label = QLabel()
        self.entry = QLineEdit()
        self.entry.setObjectName("entry")
        self.entry.returnPressed.connect(self.enter)
        left = QVBoxLayout()
        left.addWidget(panel, 1)
        left.addWidget(self.entry_label)
        left.addWidget(self.entry)

        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.reasons = QLabel()
        self.reasons.setWordWrap(True)
        self.preview_label = QLabel()
        self.preview = QPlainTextEdit()
        self.preview.setObjectName("receipt")
        self.preview.setReadOnly(True)
        self.preview.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.print_state = QLabel()
        self.print_state.setObjectName("muted")
        self.print_state.setWordWrap(True)
        right = QVBoxLayout()
        right.addWidget(self.banner)
        right.addWidget(self.reasons)
        right.addWidget(self.preview_label)
        right.addWidget(self.preview, 1)
        right.addWidget(self.print_state)

        self.fkeys = QLabel()
        self.fkeys.setObjectName("fkeys")
        self.fkeys.setWordWrap(True)
        grid = QGridLayout(self)
        columns = QHBoxLayout()
        columns.addLayout(left, 3)
        columns.addSpacing(12)
        columns.addLayout(right, 2)
        grid.addLayout(columns, 0, 0)
        grid.addWidget(self.fkeys, 1, 0)

    # -- presenting a card --------------------------------------------------------------------

    def on_device(self, event: DeviceEvent) -> None:
        """A tap or a camera scan (from the window, GUI thread)."""
        if isinstance(event, CardPresented):
            self.present(NfcCard(event.uid, event.token))
        elif isinstance(event, CodeScanned):
            self.present(credential_for_code(event.text))

    def on_scan(self, code: str) -> None:
        """A keyboard-wedge scan."""
        self.present(credential_for_code(code))

    def present(self, credential: Credential) -> None:
        """Show the card a credential names (an inquiry); the amount comes next."""
        if self.ctx.worker.busy or self.asker.current is not None:
            return  # one thing at a time: a second tap while the first is answered is ignored
        self.credential, self.card, self.receipt, self.print_note = credential, None, None, ""
        self.mode = Mode.REDEEM
        self._run(lambda ex: self.ctx.station.terminal.inquire(credential, pin=ex.pin),
                  self._shown)

    def _shown(self, result: Result) -> None:
        self.card = result.card
        if result.card is None:
            self.credential = None
        self._show(result)

    def forget(self) -> None:
        """Esc: the next customer."""
        self.credential, self.card, self.result, self.error = None, None, None, None
        self.receipt, self.print_note, self.mode = None, "", Mode.REDEEM
        self.entry.clear()
        self.retranslate()

    # -- what Enter does ----------------------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self.entry.clear()
        self.entry.setFocus()
        if mode is Mode.BUYBACK and self.credential is not None:
            credential = self.credential
            self._run(lambda ex: self.ctx.station.terminal.quote(credential, pin=ex.pin),
                      self._show)
        else:
            self.retranslate()

    def enter(self) -> None:
        typed = self.entry.text().strip()
        if self.ctx.worker.busy:
            return
        if self.credential is None:
            self.entry.clear()
            if _AMOUNT.match(typed):  # an amount, but no card was presented (or it was refused)
                self.result, self.error = None, self.tr(
                    "No card yet: tap it, scan its code or type its number first.")
                self.retranslate()
            elif typed:
                self.present(credential_for_code(typed))
            return
        if self.mode is Mode.BUYBACK:
            self._money(lambda cred, ex: self.ctx.station.terminal.buyback(
                cred, pin=ex.pin, cashier=self.cashier, supervisor=ex.supervisor,
                supervisor_pin=ex.supervisor_pin, second_factor=ex.second_factor))
            return
        if not typed and self.mode is not Mode.ACTIVATE:
            return
        try:
            amount = parse_major(typed or "0", self.ctx.currency)
        except BadInput as exc:
            self._show_error(exc)
            return
        self.entry.clear()
        terminal = self.ctx.station.terminal
        if self.mode is Mode.REDEEM:
            self._money(lambda cred, ex: terminal.redeem(
                cred, amount, pin=ex.pin, cashier=self.cashier, supervisor=ex.supervisor,
                supervisor_pin=ex.supervisor_pin, second_factor=ex.second_factor))
        elif self.mode is Mode.TOPUP:
            self._money(lambda cred, ex: terminal.topup(cred, amount, cashier=self.cashier))
        else:
            self._money(lambda cred, ex: terminal.activate(cred, amount=amount,
                                                           cashier=self.cashier))

    def _money(self, call: Callable[[Credential, Extras], Result]) -> None:
        credential = self.credential
        assert credential is not None
        self._run(lambda ex: call(credential, ex), self._moved)

    def _moved(self, result: Result) -> None:
        if result.card is not None:
            self.card = result.card
        self.receipt, self.print_note = None, ""
        entry = result.entry
        if result.approved and entry is not None:
            self.ctx.station.after_money(bool(entry.body.get("online")))
            if entry.kind in TITLES:
                self.receipt = build_receipt(entry, self.ctx.limits.timezone, self.ctx.lang)
                self._print(self.receipt)
            if isinstance(self.credential, QrCode):
                self.credential = None  # a used code is spent: the next operation needs a new one
            self.mode = Mode.REDEEM
        self._show(result)

    # -- receipts -----------------------------------------------------------------------------

    def _print(self, receipt: Receipt, *, again: bool = False) -> None:
        printer = self.ctx.station.printer
        if printer is None:
            self.print_note = self.tr("No receipt printer: the receipt is on screen only.")
            return
        self.print_note = self.tr("Printing…")

        def done(outcome: PrintOutcome) -> None:  # on the printer's thread
            self.ctx.inbox.post(lambda: self._printed(outcome))

        (printer.reprint if again else printer.submit)(receipt, done)

    def _printed(self, outcome: PrintOutcome) -> None:
        if outcome.ok:
            self.print_note = self.tr("Receipt printed.")
        elif outcome.error is not None:
            self.print_note = outcome.error.message(self.ctx.lang) + " " + self.tr(
                "F8 prints it again.")
        else:
            self.print_note = self.tr("Receipt not printed (the printer was stopped).")
        self.print_state.setText(self.print_note)

    def reprint(self) -> None:
        if self.receipt is not None:
            self.receipt = replace(self.receipt, copy=True)
            self.preview.setPlainText("\n".join(self.receipt.text_lines()))
            self._print(self.receipt, again=True)
            self.print_state.setText(self.print_note)

    # -- running and showing ------------------------------------------------------------------

    def _run(self, call: Callable[[Extras], Result], done: Callable[[Result], None]) -> None:
        self.banner.setText(self.tr("Working…"))
        self.banner.setStyleSheet(f"background: {theme.MUTED};")
        Operation(self.ctx.worker, self.asker, call, done=done, failed=self._show_error,
                  message=self._question).start()

    def _question(self, result: Result) -> str:
        """The words of a question the operation asks (also shown on the banner meanwhile)."""
        said = present.say(result.decision, self.ctx.lang, self.ctx.currency)
        self.banner.setText(said.headline)
        self.banner.setStyleSheet(f"background: {theme.ASK};")
        return " ".join(said.reasons) or said.headline

    def _show(self, result: Result) -> None:
        self.result, self.error = result, None
        self.retranslate()
        self.entry.setFocus()

    def _show_error(self, exc: Exception) -> None:
        self.result, self.error = None, present.error_text(exc, self.ctx.lang)
        self.retranslate()
        self.entry.setFocus()

    def retranslate(self) -> None:
        lang, currency = self.ctx.lang, self.ctx.currency
        card = self.card
        self.prompt.setVisible(card is None)
        self.prompt.setText(self.tr(
            "Tap a card, scan its QR code, or type the card number and press Enter."))
        self.number.setText(card.masked_number if card else "")
        if card is not None:
            expiry = (self.tr("expires %1 (in %n day(s))", "", card.days_to_expiry or 0)
                      .replace("%1", card.expiry) if card.expiry else self.tr("no expiry"))
            self.details.setText(" · ".join(
                (card.program, self._status(card.status), expiry)
                + ((self.tr("PIN"),) if card.has_pin else ())))
            rows = "".join(f"<tr><td>{p.name}</td><td align='right'>&nbsp;&nbsp;"
                           f"<b>{present.money(p.balance, p.currency)}</b></td></tr>"
                           for p in card.purses)
            whole = present.total(card)
            if whole is not None and len(card.purses) > 1:
                rows += (f"<tr><td>{self.tr('Total')}</td><td align='right'>&nbsp;&nbsp;"
                         f"<b>{present.money(*whole)}</b></td></tr>")
            self.purses.setText(f"<table style='font-size:28px' cellpadding='4'>{rows}</table>")
        else:
            self.details.setText("")
            self.purses.setText("")
        said = present.say(self.result.decision, lang, currency) if self.result else None
        self.warnings.setText(" ".join(said.warnings) if said else "")
        self.entry_label.setText(self._entry_words())
        if self.error is not None:
            self.banner.setText(self.error)
            self.banner.setStyleSheet(f"background: {theme.BAD};")
            self.reasons.setText("")
        elif said is not None and self.result is not None:
            self.banner.setText(self._headline(self.result, said))
            self.banner.setStyleSheet(f"background: {theme.banner_colour(said.outcome)};")
            self.reasons.setText("\n".join(said.reasons))
        else:
            self.banner.setText(self.tr("Ready"))
            self.banner.setStyleSheet(f"background: {theme.ACCENT};")
            self.reasons.setText("")
        self.preview_label.setText(self.tr("Receipt"))
        if self.receipt is not None and self.receipt.labels["card"] != text("receipt_card", lang):
            self.receipt = build_receipt_again(self.result, self.receipt, self.ctx.limits.timezone,
                                               lang)
        self.preview.setPlainText("\n".join(self.receipt.text_lines()) if self.receipt else "")
        self.print_state.setText(self.print_note)
        self.fkeys.setText(self.tr(
            "Enter: do it   Esc: next customer   F2 inquiry   F3 redeem   F4 void   F5 top-up   "
            "F6 activate   F7 buyback   F8 reprint   F9 shift   F10 sync   F12 lock   "
            "Ctrl+L language"))

    def _headline(self, result: Result, said: Said) -> str:
        moved = present.result_amount(result)
        quote = result.quote
        if result.approved and result.entry is not None and moved is not None:
            words = {"redeem": self.tr("Redeemed %1"), "topup": self.tr("Topped up %1"),
                     "activate": self.tr("Activated with %1"),
                     "buyback": self.tr("Bought back: %1 taken off the card"),
                     "void": self.tr("Voided: %1 back on the card")}
            template = words.get(result.entry.kind, "%1")
            return template.replace("%1", present.money(moved, self.ctx.currency))
        if result.approved and quote is not None:
            return self.tr("Buyback price %1 — Enter to pay it out").replace(
                "%1", present.money(quote.price, quote.currency))
        if result.approved and result.entry is None and self.card is not None:
            return self.tr("Card OK")  # an inquiry: nothing was approved yet
        return said.headline

    def _entry_words(self) -> str:
        currency = self.ctx.currency
        if self.credential is None:
            return self.tr("Card number")
        words: dict[Mode, str] = {
            Mode.REDEEM: self.tr("Amount to redeem (%1)"),
            Mode.TOPUP: self.tr("Amount to top up (%1)"),
            Mode.ACTIVATE: self.tr("First amount to load (%1), or Enter for none"),
            Mode.BUYBACK: self.tr("Buyback: press Enter to pay out the price (%1)")}
        return words[self.mode].replace("%1", currency)

    def _status(self, status: str) -> str:
        return {"active": self.tr("active"), "not_activated": self.tr("not activated"),
                "frozen": self.tr("frozen"), "lost": self.tr("reported lost"),
                "closed": self.tr("closed")}.get(status, status)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def build_receipt_again(result: Result | None, receipt: Receipt, timezone: str, lang: str
                        ) -> Receipt:
    """The same receipt in another language (after a language switch)."""
    if result is None or result.entry is None:
        return receipt
    return build_receipt(result.entry, timezone, lang, copy=receipt.copy)
