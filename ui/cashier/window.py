"""The cashier window: login, then the sale screen, with the status line at the bottom.

Owns the F-key actions (they work wherever the focus is), the wedge scanner filter, and the
routing of device events: taps and camera scans go to the sale screen, device states to the
status line. GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from cardpos.render import z_lines
from sync.client import SyncStatus
from terminal.ports import CardPresented, CodeScanned, DeviceEvent, DeviceStatus
from terminal.reports import ZReport
from terminal.rules import Decision
from terminal.services import Voidable
from ui import present, theme
from ui.cashier.login import LoginPage
from ui.cashier.sale import Mode, SalePage
from ui.cashier.shift import ShiftDialog
from ui.cashier.void import VoidDialog
from ui.context import UiContext
from ui.operation import Operation
from ui.status import StatusLine
from ui.wedge_filter import WedgeFilter


class CashierWindow(QMainWindow):
    """See the module docstring."""

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setStyleSheet(theme.CASHIER)
        self.login = LoginPage(ctx)
        self.sale = SalePage(ctx)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.login)
        self.pages.addWidget(self.sale)
        self.status_line = StatusLine(ctx.lang)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 12, 12, 4)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.status_line)
        self.setCentralWidget(body)
        self.shift_dialog: ShiftDialog | None = None
        self.void_dialog: VoidDialog | None = None

        self.login.logged_in.connect(self._logged_in)
        ctx.device.connect(self._device)
        ctx.sync.connect(self.status_line.show_sync)
        self.status_line.cancel_sync.connect(self._cancel_sync)
        ctx.language.changed.connect(self._language)
        ctx.limits_changed.connect(lambda _limits: self.sale.retranslate())
        self.wedge = WedgeFilter(parent=self)
        self.wedge.scanned.connect(self._scanned)
        _app().installEventFilter(self.wedge)
        self._actions()
        self.status_line.show_sync(ctx.last_sync if ctx.station.authorizer else None)
        for status in ctx.devices.values():
            self.status_line.show_device(status)
        self.retranslate()

    def _actions(self) -> None:
        def add(key: QKeySequence | QKeySequence.StandardKey | str,
                do: Callable[[], None], on_sale: bool = True) -> None:
            action = QAction(self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda: self._if_selling(do) if on_sale else do())
            self.addAction(action)

        add("F2", self._inquiry)
        add("F3", lambda: self.sale.set_mode(Mode.REDEEM))
        add("F4", self.void)
        add("F5", lambda: self.sale.set_mode(Mode.TOPUP))
        add("F6", lambda: self.sale.set_mode(Mode.ACTIVATE))
        add("F7", lambda: self.sale.set_mode(Mode.BUYBACK))
        add("F8", self.sale.reprint)
        add("F9", self.shift)
        add("F10", self._sync_now, on_sale=False)
        add("F12", self.lock)
        add("Esc", self.sale.forget)
        add("Ctrl+L", lambda: self.ctx.language.set(self.ctx.language.next()), on_sale=False)

    def _if_selling(self, do: Callable[[], None]) -> None:
        if self.pages.currentWidget() is self.sale:
            do()

    # -- start, login, lock -------------------------------------------------------------------

    def begin(self, signed_in: str | None = None) -> None:
        """Show the login (for the cashier of a shift left open, if there is one). The demo
        opens a shift first and passes its cashier as `signed_in`: straight to the sale."""
        self.ctx.worker.run(self.ctx.station.shifts.current,
                            lambda shift: self._current_shift(shift, signed_in), self._error)

    def _current_shift(self, shift: tuple[str, str, str] | None, signed_in: str | None) -> None:
        if shift is not None and shift[1] == signed_in:
            self._logged_in(shift[1], shift[0])
            return
        self.pages.setCurrentWidget(self.login)
        self.login.reset(shift[1] if shift else None)

    def _logged_in(self, cashier: str, shift: str) -> None:
        self.sale.cashier = cashier
        self.sale.forget()
        self.pages.setCurrentWidget(self.sale)
        self.sale.entry.setFocus()

    def lock(self) -> None:
        """F12: back to the login; the shift stays open for the same cashier's PIN."""
        self.sale.forget()
        self.begin()  # no one is signed in: the PIN again

    # -- devices and scans --------------------------------------------------------------------

    def _device(self, event: DeviceEvent) -> None:
        if isinstance(event, DeviceStatus):
            self.status_line.show_device(event)
        elif isinstance(event, CardPresented | CodeScanned) and \
                self.pages.currentWidget() is self.sale:
            self.sale.on_device(event)

    def _scanned(self, code: str) -> None:
        if self.pages.currentWidget() is self.sale and self.isActiveWindow():
            self.sale.on_scan(code)

    def _inquiry(self) -> None:
        if self.sale.credential is not None:
            self.sale.present(self.sale.credential)
        else:
            self.sale.entry.setFocus()

    def _cancel_sync(self) -> None:
        if self.ctx.station.sync is not None:
            self.ctx.station.sync.cancel_round()

    def _sync_now(self) -> None:
        if self.ctx.station.sync is not None:
            self.ctx.station.sync.sync_now()

    # -- void ---------------------------------------------------------------------------------

    def void(self) -> None:
        self.ctx.worker.run(self.ctx.station.terminal.voidable, self._void_list, self._error)

    def _void_list(self, rows: list[Voidable]) -> None:
        self.void_dialog = VoidDialog(self, rows, self._void)
        self.void_dialog.open()

    def _void(self, entry_id: str) -> None:
        terminal, cashier = self.ctx.station.terminal, self.sale.cashier
        self.sale.banner.setText(self.tr("Working…"))
        Operation(self.ctx.worker, self.sale.asker,
                  lambda ex: terminal.void(entry_id, supervisor_pin=ex.supervisor_pin,
                                           supervisor=ex.supervisor, cashier=cashier),
                  done=self.sale._moved, failed=self.sale._show_error,
                  message=self.sale._question).start()

    # -- shift --------------------------------------------------------------------------------

    def shift(self) -> None:
        self.ctx.worker.run(self.ctx.station.shifts.z_report,
                            lambda report: self._show_shift(report, final=False), self._error)

    def _show_shift(self, report: ZReport, *, final: bool) -> None:
        self.shift_dialog = ShiftDialog(self, report, final=final, close=self._close_shift,
                                        print_report=self._print_z)
        if final:
            self.shift_dialog.finished.connect(lambda _code: self.begin())
        self.shift_dialog.open()

    def _close_shift(self, pin: str) -> None:
        self.ctx.worker.run(lambda: self.ctx.station.shifts.close(pin),
                            lambda answer: self._closed(*answer), self._error)

    def _closed(self, decision: Decision, report: ZReport | None) -> None:
        dialog = self.shift_dialog
        if report is None:
            said = present.say(decision, self.ctx.lang, self.ctx.currency)
            if dialog is not None:
                dialog.message.setText(" ".join(said.reasons) or said.headline)
                dialog.pin.clear()
            return
        if dialog is not None:
            dialog.done(0)
        self.sale.forget()
        self._show_shift(report, final=True)

    def _print_z(self, report: ZReport) -> None:
        from terminal.receipt import Slip

        printer = self.ctx.station.printer
        if printer is not None and self.shift_dialog is not None:
            dialog = self.shift_dialog
            dialog.message.setText(self.tr("Printing…"))
            printer.submit(Slip(self.tr("Z report"), tuple(z_lines(report))),
                           lambda outcome: self.ctx.inbox.post(
                                    lambda: dialog.message.setText(
                                        self.tr("Printed.") if outcome.ok else
                                        self.tr("Not printed: %1").replace(
                                            "%1", outcome.error.message(self.ctx.lang)
                                            if outcome.error else "-"))))

    # -- language, errors, closing ------------------------------------------------------------

    def _language(self, lang: str) -> None:
        self.status_line.set_language(lang)
        self.sale.retranslate()

    def _error(self, exc: Exception) -> None:
        self.sale._show_error(exc)

    def show_sync(self, status: SyncStatus) -> None:
        self.status_line.show_sync(status)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("cardpos — cashier"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        _app().removeEventFilter(self.wedge)
        super().closeEvent(event)


def _app() -> QApplication:
    app = QApplication.instance()
    assert isinstance(app, QApplication), "the window needs a QApplication"
    return app
