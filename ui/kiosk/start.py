"""The kiosk's start screen and its "show me your card" screen. GUI thread only."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ui.kiosk.widgets import Flip, big_button, big_label


class StartPage(QWidget):
    """Title, "Check my card", "Use my card" (only where self-redemption is allowed and the
    attendant's shift is open), and the language button, which names the other language in
    its own words."""

    check = Signal()
    use = Signal()
    language = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = big_label("title")
        self.hint = big_label("muted")
        self.check_button = big_button(primary=True)
        self.use_button = big_button()
        self.use_button.setVisible(False)
        self.language_button = big_button()
        self.check_button.clicked.connect(self.check)
        self.use_button.clicked.connect(self.use)
        self.language_button.clicked.connect(self.language)
        self.buttons = Flip()
        self.buttons.addWidget(self.check_button)
        self.buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.setSpacing(32)
        layout.addStretch(2)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addStretch(1)
        layout.addLayout(self.buttons)
        layout.addStretch(2)
        layout.addWidget(self.language_button)
        self.retranslate()

    def set_use_allowed(self, allowed: bool) -> None:
        self.use_button.setVisible(allowed)

    def set_other_language(self, native_name: str) -> None:
        self.language_button.setText(native_name)

    def set_landscape(self, landscape: bool) -> None:
        self.buttons.set_landscape(landscape)

    def retranslate(self) -> None:
        self.title.setText(self.tr("Tap your card or show its QR code"))
        self.hint.setText(self.tr("Hold your card on the reader, or show the QR code on your "
                                  "card or phone to the camera."))
        self.check_button.setText(self.tr("Check my card"))
        self.use_button.setText(self.tr("Use my card"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class PresentPage(QWidget):
    """Waiting for the card after a button on the start screen: what it is for, and a way
    back. `busy`/`message` show that the card is being read, or why it could not be."""

    cancel = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.use = False
        self.busy = False
        self.error: str | None = None
        self.title = big_label("title")
        self.hint = big_label()
        self.message = big_label("muted")
        self.cancel_button = big_button()
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(self)
        layout.setSpacing(32)
        layout.addStretch(2)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addWidget(self.message)
        layout.addStretch(3)
        layout.addWidget(self.cancel_button)
        self.retranslate()

    def wait_for_card(self, *, use: bool) -> None:
        self.use, self.busy, self.error = use, False, None
        self.retranslate()

    def reading(self) -> None:
        self.busy, self.error = True, None
        self.retranslate()

    def failed(self, error: str) -> None:
        self.busy, self.error = False, error
        self.retranslate()

    def set_landscape(self, landscape: bool) -> None:
        pass  # one column reads well either way

    def retranslate(self) -> None:
        self.title.setText(self.tr("Use my card") if self.use else self.tr("Check my card"))
        self.hint.setText(self.tr("Tap your card or show its QR code"))
        self.message.setText(self.tr("Reading your card…") if self.busy else self.error or "")
        self.cancel_button.setText(self.tr("Back"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
