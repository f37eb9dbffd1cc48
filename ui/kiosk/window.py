"""The self-service kiosk window: one task per screen, for a stranger at arm's length.

Start → (tap, scan, or "Check my card") → the card's balance, expiry, warnings and buyback
offer, spoken once. Where the terminal's limits allow it (`kiosk_self_redeem`) and the
attendant's shift is open, "Use my card" → amount → confirm → the card's PIN if it has one →
the outcome, spoken, with a receipt. Only taps and camera scans present a card: a typed number
is weak proof and there is no keyboard.

After `kiosk_idle_seconds` without a touch the kiosk forgets the card and everything shown
about it (answers still under way are dropped: each flow has a number and stale answers are
ignored — a committed redemption still prints its receipt). Closing needs a supervisor's id
and PIN, asked after five taps in the top-left corner or Ctrl+Shift+Q; only the program's
own quit (QCoreApplication.quit) closes it without. GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from drivers.print_worker import PrintOutcome
from terminal.credentials import Credential, NfcCard, QrCode
from terminal.limits import Limits
from terminal.ports import CardPresented, CodeScanned, DeviceEvent, DeviceStatus
from terminal.reasons import Outcome, Reason
from terminal.receipt import TITLES, Receipt, build_receipt
from terminal.rules import Decision
from terminal.services import CardView, Result
from ui import present, theme
from ui.context import UiContext
from ui.dialogs import DialogAsker
from ui.i18n import NATIVE_NAMES
from ui.kiosk.card import CardPage
from ui.kiosk.redeem import AmountPage, ConfirmPage, DonePage
from ui.kiosk.start import PresentPage, StartPage
from ui.kiosk.watch import TouchWatch
from ui.kiosk.words import Words
from ui.operation import Operation
from ui.status import StatusLine

#: A quote declined only for these still shows the card: ask for a plain inquiry instead.
BUYBACK_ONLY = frozenset({Reason.NOTHING_TO_REDEEM, Reason.CURRENCY_MISMATCH})
STATUS_STYLE = """
QWidget { font-size: 16px; }
QLabel#badge { color: white; padding: 2px 8px; border-radius: 4px; font-weight: 600; }
"""


class _FlowAsker:
    """The window's asker for one flow: once the flow is over (idle reset, Done), questions
    are answered "cancelled" at once instead of opening a dialog for nobody."""

    def __init__(self, asker: DialogAsker, current: Callable[[], bool]) -> None:
        self._asker, self._current = asker, current

    def ask_pin(self, message: str, answer: Callable[[str | None], None]) -> None:
        if self._current():
            self._asker.ask_pin(message, answer)
        else:
            answer(None)

    def ask_supervisor(self, message: str,
                       answer: Callable[[tuple[str, str] | None], None]) -> None:
        if self._current():
            self._asker.ask_supervisor(message, answer)
        else:
            answer(None)

    def ask_code(self, message: str, answer: Callable[[str | None], None]) -> None:
        if self._current():
            self._asker.ask_code(message, answer)
        else:
            answer(None)


class KioskWindow(QMainWindow):
    """See the module docstring. `idle_ms` overrides the limits' idle time (tests)."""

    def __init__(self, ctx: UiContext, parent: QWidget | None = None, *,
                 idle_ms: int | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setStyleSheet(theme.KIOSK)
        self.words = Words(ctx, self)
        self.start = StartPage()
        self.present_page = PresentPage()
        self.card_page = CardPage(self.words)
        self.amount_page = AmountPage(self.words)
        self.confirm_page = ConfirmPage()
        self.done_page = DonePage(self.words)
        self.pages = QStackedWidget()
        for page in self._all_pages():
            self.pages.addWidget(page)
        self.status_line = StatusLine(ctx.lang)
        self.status_line.setStyleSheet(STATUS_STYLE)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(48, 48, 48, 4)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.status_line)
        self.setCentralWidget(body)

        self.asker = DialogAsker(self, pad=True)       # the card's PIN, a one-time code
        self.lock_asker = DialogAsker(self, pad=True)  # the supervisor who may close it
        # What the kiosk knows now; all None on the start screen.
        self.credential: Credential | None = None
        self.result: Result | None = None     # the card as checked
        self.card: CardView | None = None
        self.amount: int | None = None
        self.outcome: Result | None = None    # the redemption's answer
        self.receipt: Receipt | None = None
        self.spoken: str | None = None        # the last thing said aloud
        self.lock_message: str | None = None  # shown in the supervisor dialog
        self.unlocked = False
        self._quitting = False  # the program ends itself (app.quit(), e.g. after a screenshot)
        self.shift_open = False
        self._flow = 0
        self._busy = False

        self._idle_fixed = idle_ms is not None
        self.watch = TouchWatch(self, idle_ms if idle_ms is not None
                                else ctx.limits.kiosk_idle_seconds * 1000)
        self.watch.expired.connect(self.reset)
        self.watch.secret.connect(self._leave)
        self.watch.quitting.connect(self._app_quits)
        _app().installEventFilter(self.watch)
        leave = QAction(self)
        leave.setShortcut(QKeySequence("Ctrl+Shift+Q"))
        leave.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        leave.triggered.connect(self._leave)
        self.addAction(leave)

        self.start.check.connect(lambda: self._wait_for_card(use=False))
        self.start.use.connect(lambda: self._wait_for_card(use=True))
        self.start.language.connect(lambda: ctx.language.set(ctx.language.next()))
        self.present_page.cancel.connect(self.reset)
        self.card_page.done.connect(self.reset)
        self.card_page.speak_again.connect(lambda: self.speak(self.card_page.speech()))
        self.card_page.use.connect(self._use_checked_card)
        self.amount_page.chosen.connect(self._chosen)
        self.amount_page.cancel.connect(self.reset)
        self.confirm_page.confirm.connect(self._confirmed)
        self.confirm_page.cancel.connect(self.reset)
        self.done_page.done.connect(self.reset)
        ctx.device.connect(self._device)
        ctx.sync.connect(self.status_line.show_sync)
        ctx.language.changed.connect(self._language)
        ctx.limits_changed.connect(self._limits)
        self.status_line.show_sync(ctx.last_sync if ctx.station.authorizer else None)
        screen = _app().primaryScreen()  # full screen is the usual shape: start with it
        if screen is not None:
            self._orient(screen.size().width() > screen.size().height())
        self.retranslate()

    def _all_pages(self) -> tuple[StartPage | PresentPage | CardPage | AmountPage | ConfirmPage
                                  | DonePage, ...]:
        return (self.start, self.present_page, self.card_page, self.amount_page,
                self.confirm_page, self.done_page)

    # -- start and idle -----------------------------------------------------------------------

    def begin(self, signed_in: str | None = None) -> None:
        """Show the start screen. (`signed_in` is the cashier window's; the kiosk's
        attendant opens the shift at a cashier terminal or with the CLI.)"""
        self.reset()

    def reset(self) -> None:
        """Back to the start screen, forgetting the card and every answer about it; closes
        any open question. Done, Back, Cancel and the idle timer all come here."""
        self._flow += 1
        self._busy = False
        for asker in (self.asker, self.lock_asker):
            if asker.current is not None:
                asker.current.reject()
        self.credential = self.result = self.outcome = None
        self.card = None
        self.amount = None
        self.receipt = None
        self.spoken = None
        self.card_page.show_result(None)
        self.done_page.show_result(None)
        self.pages.setCurrentWidget(self.start)
        self.ctx.worker.run(self.ctx.station.shifts.current,
                            lambda shift: self._set_shift(shift is not None),
                            lambda exc: self._set_shift(False))

    def _set_shift(self, shift_open: bool) -> None:
        self.shift_open = shift_open
        self._offer_use()

    def _offer_use(self) -> None:
        allowed = self.ctx.limits.kiosk_self_redeem and self.shift_open
        self.start.set_use_allowed(allowed)
        self.card_page.can_use = allowed
        self.card_page.retranslate()

    def _limits(self, limits: Limits) -> None:
        if not self._idle_fixed:
            self.watch.set_interval(limits.kiosk_idle_seconds * 1000)
        self._offer_use()

    def _current(self, flow: int) -> bool:
        return flow == self._flow

    def _new_flow(self, credential: Credential) -> int:
        self._flow += 1
        self._busy = True
        self.credential = credential
        self.result = self.outcome = None
        self.card = None
        self.amount = None
        self.receipt = None
        return self._flow

    # -- a card is presented ------------------------------------------------------------------

    def _wait_for_card(self, *, use: bool) -> None:
        self.present_page.wait_for_card(use=use)
        self.pages.setCurrentWidget(self.present_page)

    def _device(self, event: DeviceEvent) -> None:
        if isinstance(event, DeviceStatus):
            self.status_line.show_device(event)
            return
        if not isinstance(event, CardPresented | CodeScanned):
            return
        self.watch.poke()
        if self._busy or self.asker.current is not None or self.lock_asker.current is not None:
            return  # one card at a time
        # A camera scan is always a signed code: a printed number is not accepted here.
        credential: Credential = NfcCard(event.uid, event.token) \
            if isinstance(event, CardPresented) else QrCode(event.text.strip())
        page = self.pages.currentWidget()
        if page is self.present_page and self.present_page.use:
            self.use_card(credential)
        elif page in (self.start, self.present_page, self.card_page, self.done_page):
            self.check_card(credential)

    def check_card(self, credential: Credential) -> None:
        """What the card holds and what it would fetch (a quote: a read, nothing written)."""
        flow = self._new_flow(credential)
        terminal = self.ctx.station.terminal
        self.present_page.wait_for_card(use=False)
        self.present_page.reading()
        self.pages.setCurrentWidget(self.present_page)

        def quoted(result: Result) -> None:
            if not self._current(flow):
                return
            if (not result.approved and result.card is not None
                    and set(result.decision.reasons) <= BUYBACK_ONLY):
                self.ctx.worker.run(lambda: terminal.inquire(credential),
                                    lambda plain: self._show_card(flow, plain),
                                    lambda exc: self._look_failed(flow, exc))
                return
            self._show_card(flow, result)

        self.ctx.worker.run(lambda: terminal.quote(credential), quoted,
                            lambda exc: self._look_failed(flow, exc))

    def _show_card(self, flow: int, result: Result) -> None:
        if not self._current(flow):
            return
        self._busy = False
        self.result, self.card = result, result.card
        self.card_page.show_result(result)
        self.pages.setCurrentWidget(self.card_page)
        self.speak(self.card_page.speech())

    def _look_failed(self, flow: int, exc: Exception) -> None:
        if not self._current(flow):
            return
        self._busy = False
        self.credential = None
        message = present.error_text(exc, self.ctx.lang)
        self.present_page.failed(message)
        self.pages.setCurrentWidget(self.present_page)
        self.speak(message)

    # -- using the card -----------------------------------------------------------------------

    def use_card(self, credential: Credential) -> None:
        """"Use my card": look at the card (an inquiry), then ask how much."""
        flow = self._new_flow(credential)
        terminal = self.ctx.station.terminal
        self.present_page.reading()
        self.ctx.worker.run(lambda: terminal.inquire(credential),
                            lambda result: self._to_amount(flow, result),
                            lambda exc: self._look_failed(flow, exc))

    def _use_checked_card(self) -> None:
        if self.result is not None and not self._busy:
            self._to_amount(self._flow, self.result)

    def _to_amount(self, flow: int, result: Result) -> None:
        if not self._current(flow):
            return
        self._busy = False
        self.result, self.card = result, result.card
        if not result.approved or result.card is None:
            self._show_outcome(result)
            return
        self.amount_page.set_card(result.card)
        self.pages.setCurrentWidget(self.amount_page)

    def _chosen(self, amount: int) -> None:
        if self.card is None:
            return
        self.amount = amount
        self.confirm_page.ask(amount, self.ctx.currency, self.card.masked_number)
        self.pages.setCurrentWidget(self.confirm_page)

    def _confirmed(self) -> None:
        credential, amount = self.credential, self.amount
        if self._busy or credential is None or amount is None:
            return
        self._busy = True
        self.confirm_page.confirm_button.setEnabled(False)
        flow = self._flow
        terminal = self.ctx.station.terminal
        Operation(self.ctx.worker, _FlowAsker(self.asker, lambda: self._current(flow)),
                  lambda ex: terminal.redeem(
                      credential, amount, pin=ex.pin, cashier=None, supervisor=ex.supervisor,
                      supervisor_pin=ex.supervisor_pin, second_factor=ex.second_factor),
                  done=lambda result: self._redeemed(flow, result),
                  failed=lambda exc: self._redeem_failed(flow, exc),
                  message=self._question).start()

    def _question(self, result: Result) -> str:
        return " ".join(self.words.reasons(result.decision)) or \
            self.words.headline(result.decision)

    def _redeemed(self, flow: int, result: Result) -> None:
        entry = result.entry
        receipt = None
        if result.approved and entry is not None:  # committed: whatever the screen does now
            self.ctx.station.after_money(bool(entry.body.get("online")))
            if entry.kind in TITLES:
                receipt = build_receipt(entry, self.ctx.limits.timezone, self.ctx.lang)
        if self._current(flow):
            self._busy = False
            if result.decision.outcome in (Outcome.NEEDS_PIN, Outcome.NEEDS_SUPERVISOR,
                                           Outcome.NEEDS_SECOND_FACTOR):
                self.reset()  # the holder cancelled the question: nothing was taken
            else:
                self.outcome, self.receipt = result, receipt
                if result.card is not None:
                    self.card = result.card
                self._show_outcome(result)
        if receipt is not None:
            self._print(receipt, flow)

    def _redeem_failed(self, flow: int, exc: Exception) -> None:
        if not self._current(flow):
            return
        self._busy = False
        self.done_page.show_result(None, present.error_text(exc, self.ctx.lang))
        self.pages.setCurrentWidget(self.done_page)
        self.speak(" ".join(line for line in self.done_page.lines() if line))

    def _show_outcome(self, result: Result) -> None:
        self.done_page.show_result(result)
        self.pages.setCurrentWidget(self.done_page)
        self.speak(" ".join(self.done_page.lines()))

    def _print(self, receipt: Receipt, flow: int) -> None:
        printer = self.ctx.station.printer
        if printer is None:
            self._print_note(flow, self.tr("No receipt printer here."))
            return
        self._print_note(flow, self.tr("Printing your receipt…"))

        def done(outcome: PrintOutcome) -> None:  # on the printer's thread
            self.ctx.inbox.post(lambda: self._print_note(
                flow, self.tr("Please take your receipt.") if outcome.ok else
                self.tr("The receipt could not be printed. Please ask a member of staff.")))

        printer.submit(receipt, done)

    def _print_note(self, flow: int, note: str) -> None:
        if self._current(flow):
            self.done_page.set_print_note(note)

    # -- voice --------------------------------------------------------------------------------

    def speak(self, words: str) -> None:
        """Say `words` aloud in the screen's language (if the station has a voice)."""
        self.spoken = words
        voice = self.ctx.station.voice
        if voice is not None and words:
            voice.say(words, self.ctx.lang)

    # -- the way out --------------------------------------------------------------------------

    def _leave(self) -> None:
        self.ask_unlock()

    def ask_unlock(self, message: str | None = None) -> None:
        """Ask for a supervisor's id and PIN; the right ones close the kiosk."""
        if self.lock_asker.current is not None:
            return
        self.lock_message = message
        self.lock_asker.ask_supervisor(
            message or self.tr("Staff only: a supervisor's id and PIN close the kiosk."),
            self._unlock_answer)

    def _unlock_answer(self, who: tuple[str, str] | None) -> None:
        if who is None:
            self.lock_message = None
            return
        shifts = self.ctx.station.shifts
        self.ctx.worker.run(lambda: shifts.check_supervisor(*who), self._unlock_checked,
                            lambda exc: self.ask_unlock(present.error_text(exc, self.ctx.lang)))

    def _unlock_checked(self, decision: Decision) -> None:
        if decision.approved:
            self.unlocked = True
            self.close()
            return
        self.ask_unlock(" ".join(self.words.reasons(decision))
                        or self.words.headline(decision))

    def _app_quits(self) -> None:
        self._quitting = True

    def closeEvent(self, event: QCloseEvent) -> None:
        """Refused unless a supervisor unlocked the kiosk, or the program itself quits (a
        person cannot make it quit: Alt+F4 and the window manager send a close, not a quit)."""
        if not (self.unlocked or self._quitting):
            event.ignore()
            return
        self.watch.timer.stop()
        _app().removeEventFilter(self.watch)
        super().closeEvent(event)

    # -- layout and language ------------------------------------------------------------------

    def resize(self, *size: Any) -> None:
        """Lay the pages out for the new shape first: a portrait layout's height must not
        stretch a landscape window (the window grows to its pages' minimum size)."""
        wanted = QSize(*size) if len(size) == 2 else QSize(size[0])
        self._orient(wanted.width() > wanted.height())
        super().resize(*size)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._orient(event.size().width() > event.size().height())
        super().resizeEvent(event)

    def _orient(self, landscape: bool) -> None:
        for page in self._all_pages():
            page.set_landscape(landscape)

    def _language(self, lang: str) -> None:
        self.status_line.set_language(lang)
        self.retranslate()
        for page in self._all_pages():
            page.retranslate()

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("cardpos — kiosk"))
        self.start.set_other_language(NATIVE_NAMES[self.ctx.language.next()])

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def _app() -> QApplication:
    app = QApplication.instance()
    assert isinstance(app, QApplication), "the window needs a QApplication"
    return app
