"""A keyboard-wedge scanner recognised anywhere in the window, in one Qt event filter.

Installed on the application, it feeds every printable key press (and Enter/Tab) that goes to
the focused widget to `drivers.wedge.WedgeDetector`. Keys the detector holds back are swallowed
and later either re-sent to the widget they were meant for, in order (a person typed them), or
dropped as one `scanned(text)` signal (the scanner "typed" them). Other keys — F-keys, arrows,
shortcuts with Ctrl/Alt — first release whatever is held, then pass untouched, so shortcuts and
editing keep working. A person's keys are delayed by at most the detector's `max_gap` (30 ms).
GUI thread only.
"""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget

from drivers.wedge import Keys, Output, Scan, WedgeConfig, WedgeDetector

_NAMED = {Qt.Key.Key_Return: "Enter", Qt.Key.Key_Enter: "Enter", Qt.Key.Key_Tab: "Tab"}
_COMMAND_MODIFIERS = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                      | Qt.KeyboardModifier.MetaModifier)


class WedgeFilter(QObject):
    """Emits `scanned(text)` for each scan; see the module docstring."""

    scanned = Signal(str)

    def __init__(self, config: WedgeConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.detector = WedgeDetector(config or WedgeConfig())
        self._held: deque[tuple[QWidget, QKeyEvent]] = deque()
        self._replaying = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._replaying or event.type() != QEvent.Type.KeyPress:
            return False
        if not isinstance(watched, QWidget):
            return False
        target = QApplication.focusWidget()
        if target is not None and watched is not target:
            # sent straight to another widget (or passed on to a parent): keys held for the
            # focused widget go first, so nothing is reordered
            self._apply(self.detector.flush())
            return False
        assert isinstance(event, QKeyEvent)
        key = self._key_name(event)
        if key is None:
            self._apply(self.detector.flush())
            return False
        self._held.append((watched, QKeyEvent(event.type(), event.key(), event.modifiers(),
                                              event.text(), event.isAutoRepeat(),
                                              event.count())))
        self._apply(self.detector.feed(key, time.monotonic()))
        return True

    @staticmethod
    def _key_name(event: QKeyEvent) -> str | None:
        """The detector's name for a key, or None for keys that never belong to a scan."""
        if event.modifiers() & _COMMAND_MODIFIERS:
            return None
        named = _NAMED.get(Qt.Key(event.key()))
        if named is not None:
            return named
        chars = event.text()
        return chars if len(chars) == 1 and chars.isprintable() else None

    def _tick(self) -> None:
        self._apply(self.detector.tick(time.monotonic()))

    def _apply(self, outputs: list[Output]) -> None:
        for output in outputs:
            taken = [self._held.popleft() for _ in output.keys]
            if isinstance(output, Scan):
                self.scanned.emit(output.text)
            elif isinstance(output, Keys):
                self._replay(taken)
        deadline = self.detector.deadline()
        if deadline is None:
            self._timer.stop()
        else:
            self._timer.start(max(0, int((deadline - time.monotonic()) * 1000) + 1))

    def _replay(self, taken: list[tuple[QWidget, QKeyEvent]]) -> None:
        self._replaying = True
        try:
            for widget, event in taken:
                QApplication.sendEvent(widget, event)
        finally:
            self._replaying = False
