"""The shift: the running Z report, and closing the shift with the cashier's PIN.

The report is read on the store worker; closing runs `Shifts.close`, whose final Z report is
shown (and printable) before the window returns to the login. GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cardpos.render import z_lines
from terminal.reports import ZReport


class ShiftDialog(QDialog):
    """Shows `report`; "Close shift" calls `close(pin)`; "Print" calls `print_report`."""

    def __init__(self, parent: QWidget, report: ZReport, *, final: bool,
                 close: Callable[[str], None], print_report: Callable[[ZReport], None]) -> None:
        super().__init__(parent)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setWindowTitle(self.tr("Z report") if final else self.tr("Shift"))
        self.report = report
        self.text = QPlainTextEdit("\n".join(z_lines(report)))
        self.text.setObjectName("receipt")
        self.text.setReadOnly(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.pin = QLineEdit()
        self.pin.setObjectName("pin")
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setPlaceholderText(self.tr("Your PIN, to close the shift"))
        self.pin.setMinimumWidth(300)
        self.close_button = QPushButton(self.tr("Close shift"))
        self.close_button.clicked.connect(lambda: close(self.pin.text()) if self.pin.text()
                                          else None)
        self.pin.returnPressed.connect(self.close_button.click)
        self.print_button = QPushButton(self.tr("Print"))
        self.print_button.clicked.connect(lambda: print_report(self.report))
        done = QPushButton(self.tr("Done") if final else self.tr("Back"))
        done.clicked.connect(self.accept)
        row = QHBoxLayout()
        if not final:
            row.addWidget(self.pin, 1)
            row.addWidget(self.close_button)
        row.addStretch(1)
        row.addWidget(self.print_button)
        row.addWidget(done)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.message)
        layout.addLayout(row)
        self.resize(640, 520)
        (done if final else self.pin).setFocus()
