"""Watching touches for the kiosk: the idle timer and the staff's hidden way out.

An application-wide event filter sees every press (mouse, touch, key) before any widget: each
one restarts the idle timer, whose `expired` signal sends the kiosk back to its start screen.
Five presses in the window's top-left corner within a few seconds are the staff's `secret`
gesture (a card holder has no reason to tap an empty corner five times). The application's
own Quit event is reported as `quitting`: Qt 6 asks every window to close first, and the
kiosk lets the program (not a person) end it. GUI thread only.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QPoint, QTimer, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QWidget

PRESSES = frozenset({QEvent.Type.MouseButtonPress, QEvent.Type.TouchBegin,
                     QEvent.Type.KeyPress})
CORNER_PX = 120
CORNER_TAPS = 5
CORNER_WINDOW_S = 4.0


class TouchWatch(QObject):
    """Install with `QApplication.installEventFilter`; `interval_ms` is the idle time."""

    expired = Signal()
    secret = Signal()
    quitting = Signal()  # the application itself is ending (QCoreApplication.quit)

    def __init__(self, window: QWidget, interval_ms: int) -> None:
        super().__init__(window)
        self._window = window
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.expired)
        self._corner: list[float] = []
        self._last: tuple[int, QPoint] | None = None

    @property
    def interval_ms(self) -> int:
        return self.timer.interval()

    def set_interval(self, ms: int) -> None:
        self.timer.setInterval(ms)
        if self.timer.isActive():
            self.timer.start()

    def poke(self) -> None:
        """Someone is there: start the idle time again (a touch, a key, a card tap)."""
        self.timer.start()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Quit and watched is QCoreApplication.instance():
            self.quitting.emit()
        if event.type() in PRESSES:
            self.poke()
        # The press a widget of this window gets (a touch arrives as a synthesized mouse
        # press too); one press offered to several widgets in turn is counted once.
        if (event.type() == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent)
                and isinstance(watched, QWidget) and watched.window() is self._window):
            where = event.globalPosition().toPoint()
            if (event.timestamp(), where) != self._last:
                self._last = (event.timestamp(), where)
                self._pressed_at(where)
        return False

    def _pressed_at(self, where: QPoint) -> None:
        local = self._window.mapFromGlobal(where)
        if not (0 <= local.x() < CORNER_PX and 0 <= local.y() < CORNER_PX):
            self._corner.clear()
            return
        now = time.monotonic()
        self._corner = [t for t in self._corner if now - t < CORNER_WINDOW_S] + [now]
        if len(self._corner) >= CORNER_TAPS:
            self._corner.clear()
            self.secret.emit()
