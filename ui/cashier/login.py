"""The cashier's login: id and PIN open a shift, or resume the shift they left open.

The check runs on the store worker (`Shifts.login`); a wrong PIN shows the core's message with
the tries left, a locked cashier is told to see a supervisor. GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from terminal.rules import Decision
from ui import present
from ui.context import UiContext


class LoginPage(QWidget):
    """Emits `logged_in(cashier id, shift id)`."""

    logged_in = Signal(str, str)

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.title = QLabel()
        self.title.setObjectName("title")
        self.cashier = QLineEdit()
        self.cashier.setObjectName("cashier")
        self.pin = QLineEdit()
        self.pin.setObjectName("pin")
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.button = QPushButton()
        self.button.setDefault(True)
        self.button.clicked.connect(self.submit)
        self.cashier.returnPressed.connect(self.pin.setFocus)
        self.pin.returnPressed.connect(self.submit)
        box = QFrame()
        box.setObjectName("panel")
        box.setMaximumWidth(520)
        self.form = QFormLayout()
        self._cashier_label, self._pin_label = QLabel(), QLabel()
        self.form.addRow(self._cashier_label, self.cashier)
        self.form.addRow(self._pin_label, self.pin)
        inner = QVBoxLayout(box)
        inner.addWidget(self.title)
        inner.addLayout(self.form)
        inner.addWidget(self.message)
        inner.addWidget(self.button)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.retranslate()

    def reset(self, resume_cashier: str | None = None) -> None:
        """Back to an empty form; `resume_cashier` names the cashier whose shift is open."""
        self.cashier.setText(resume_cashier or "")
        self.pin.clear()
        self._resume = resume_cashier
        self.message.clear()
        self.retranslate()
        (self.pin if resume_cashier else self.cashier).setFocus()

    def submit(self) -> None:
        cashier, pin = self.cashier.text().strip(), self.pin.text()
        if not cashier or not pin or self.ctx.worker.busy:
            return
        self.pin.clear()
        self.ctx.worker.run(lambda: self.ctx.station.shifts.login(cashier, pin),
                            lambda answer: self._answered(cashier, *answer), self._failed)

    def _answered(self, cashier: str, decision: Decision, shift: str | None) -> None:
        if decision.approved and shift is not None:
            self.logged_in.emit(cashier, shift)
            return
        said = present.say(decision, self.ctx.lang, self.ctx.currency)
        self.message.setText(" ".join(said.reasons) or said.headline)

    def _failed(self, exc: Exception) -> None:
        self.message.setText(present.error_text(exc, self.ctx.lang))

    _resume: str | None = None

    def retranslate(self) -> None:
        self.title.setText(self.tr("Continue the shift of %1").replace("%1", self._resume)
                           if self._resume else self.tr("Cashier login"))
        self._cashier_label.setText(self.tr("Cashier id"))
        self._pin_label.setText(self.tr("PIN"))
        self.button.setText(self.tr("Continue shift") if self._resume
                            else self.tr("Open shift"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
