"""The questions an operation may need answered: card PIN (with an on-screen pad for touch),
supervisor id and PIN, the one-time code from the card holder's phone.

Dialogs are window-modal and opened with `open()`, never `exec()`: the answer arrives by
callback, so no nested event loop runs and nothing waits. `DialogAsker` implements
`ui.operation.Asker` with them. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class _Question(QDialog):
    """A message, one or two fields, OK/Cancel; an optional digit pad for touch screens."""

    def __init__(self, parent: QWidget, message: str, *, secret: bool, pad: bool,
                 with_id: bool = False, digits: int = 12) -> None:
        super().__init__(parent)
        self._with_id = with_id
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self._message = QLabel(message)
        self._message.setWordWrap(True)
        self.who = QLineEdit()
        self.who.setObjectName("who")
        self.who.setVisible(with_id)
        self._who_label = QLabel()
        self._who_label.setVisible(with_id)
        self._secret_label = QLabel()
        self.field = QLineEdit()
        self.field.setObjectName("secret")
        self.field.setMaxLength(digits)
        if secret:
            self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setInputMethodHints(Qt.InputMethodHint.ImhDigitsOnly)
        self._buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                         | QDialogButtonBox.StandardButton.Cancel)
        self._buttons.accepted.connect(self._accept_if_filled)
        self._buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self._message)
        layout.addWidget(self._who_label)
        layout.addWidget(self.who)
        layout.addWidget(self._secret_label)
        layout.addWidget(self.field)
        if pad:
            layout.addWidget(self._pad())
        layout.addWidget(self._buttons)
        (self.who if with_id else self.field).setFocus()
        self.retranslate()

    def _pad(self) -> QWidget:
        pad = QWidget()
        grid = QGridLayout(pad)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "C"]
        for i, key in enumerate(keys):
            button = QPushButton(key)
            button.setObjectName(f"pad_{key}")
            button.setMinimumSize(72, 72)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, k=key: self._press(k))
            grid.addWidget(button, i // 3, i % 3)
        return pad

    def _press(self, key: str) -> None:
        if key == "⌫":
            self.field.backspace()
        elif key == "C":
            self.field.clear()
        else:
            self.field.insert(key)

    def _accept_if_filled(self) -> None:
        if self.field.text() and (not self._with_id or self.who.text().strip()):
            self.accept()

    def retranslate(self) -> None:
        self._who_label.setText(self.tr("Supervisor id"))
        self._secret_label.setText(self.tr("PIN") if self.field.echoMode()
                                   == QLineEdit.EchoMode.Password else self.tr("Code"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class PinDialog(_Question):
    """The card holder's PIN (or a cashier's)."""

    def __init__(self, parent: QWidget, message: str, *, pad: bool = True) -> None:
        super().__init__(parent, message, secret=True, pad=pad)
        self.setWindowTitle(self.tr("PIN"))


class SupervisorDialog(_Question):
    """A supervisor's id and PIN."""

    def __init__(self, parent: QWidget, message: str) -> None:
        super().__init__(parent, message, secret=True, pad=False, with_id=True)
        self.setWindowTitle(self.tr("Supervisor"))


class CodeDialog(_Question):
    """The one-time code the server sent to the card holder's phone."""

    def __init__(self, parent: QWidget, message: str, *, pad: bool = True) -> None:
        super().__init__(parent, message, secret=False, pad=pad, digits=8)
        self.setWindowTitle(self.tr("One-time code"))


class DialogAsker:
    """`ui.operation.Asker` with these dialogs, parented to `parent`; `pad` for touch."""

    def __init__(self, parent: QWidget, *, pad: bool = True) -> None:
        self._parent, self._pad = parent, pad
        self.current: _Question | None = None  # the open question (tests answer it)

    def _open(self, dialog: _Question, answer: Callable[[QDialog], None],
              cancelled: Callable[[], None]) -> None:
        self.current = dialog

        def finished(code: int) -> None:
            self.current = None
            dialog.deleteLater()
            if code == QDialog.DialogCode.Accepted:
                answer(dialog)
            else:
                cancelled()

        dialog.finished.connect(finished)
        dialog.open()

    def ask_pin(self, message: str, answer: Callable[[str | None], None]) -> None:
        dialog = PinDialog(self._parent, message, pad=self._pad)
        self._open(dialog, lambda d: answer(dialog.field.text()), lambda: answer(None))

    def ask_supervisor(self, message: str,
                       answer: Callable[[tuple[str, str] | None], None]) -> None:
        dialog = SupervisorDialog(self._parent, message)
        self._open(dialog, lambda d: answer((dialog.who.text().strip(), dialog.field.text())),
                   lambda: answer(None))

    def ask_code(self, message: str, answer: Callable[[str | None], None]) -> None:
        dialog = CodeDialog(self._parent, message, pad=self._pad)
        self._open(dialog, lambda d: answer(dialog.field.text().strip()), lambda: answer(None))
