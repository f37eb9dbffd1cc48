"""Building blocks of the kiosk's pages: big buttons, big labels, and a box layout that lays
its items side by side on a landscape screen and one under the other on a portrait one.
GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QBoxLayout, QLabel, QLayout, QPushButton, QSizePolicy, QWidget

from ui import theme


def big_button(*, primary: bool = False) -> QPushButton:
    """A touch button (the KIOSK sheet makes it at least 2 × MIN_TOUCH high). It takes no
    keyboard focus: the kiosk has no keyboard, and a stray Enter must not press it."""
    button = QPushButton()
    if primary:
        button.setObjectName("primary")
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    button.setMinimumSize(theme.MIN_TOUCH, theme.MIN_TOUCH)
    button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return button


def big_label(name: str | None = None, *, centre: bool = True) -> QLabel:
    label = QLabel()
    if name:
        label.setObjectName(name)
    label.setWordWrap(True)
    if centre:
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    return label


class Flip(QBoxLayout):
    """Side by side in landscape, stacked in portrait (`set_landscape` from the window).
    Columns keep their natural height, top-aligned: the page puts the spare room below."""

    def __init__(self) -> None:
        super().__init__(QBoxLayout.Direction.TopToBottom)
        self.setSpacing(24)

    def add_column(self, layout: QLayout) -> QWidget:
        column = QWidget()
        column.setLayout(layout)
        layout.setContentsMargins(0, 0, 0, 0)
        self.addWidget(column, 0, Qt.AlignmentFlag.AlignTop)
        return column

    def set_landscape(self, landscape: bool) -> None:
        self.setDirection(QBoxLayout.Direction.LeftToRight if landscape
                          else QBoxLayout.Direction.TopToBottom)
        for i in range(self.count()):  # equal widths side by side; no gaps when stacked
            self.setStretch(i, 1 if landscape else 0)
