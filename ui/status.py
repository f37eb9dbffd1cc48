"""The status line: online/offline, entries waiting to sync, last sync, and each device's state
with a plain-language hint when one is missing or failing.

Fed on the GUI thread with `SyncStatus` and `DeviceStatus` objects that came through the inbox
(ui/bridge.py); it never asks anything itself.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from sync.client import SyncStatus
from terminal.messages import text
from terminal.ports import DeviceState, DeviceStatus
from ui import theme

DEVICES = ("reader", "camera", "printer")


class StatusLine(QWidget):
    """Badges for the network and the devices; `hint` shows the most recent problem. While a
    sync round pulls many pages (a first snapshot), it shows how far it got and a button that
    emits `cancel_sync`."""

    cancel_sync = Signal()

    def __init__(self, lang: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lang = lang
        self._sync: SyncStatus | None = None
        self._devices: dict[str, DeviceStatus] = {}
        self.network = QLabel()
        self.network.setObjectName("badge")
        self.pending = QLabel()
        self.last_sync = QLabel()
        self.last_sync.setObjectName("muted")
        self.progress = QLabel()
        self.cancel = QPushButton()
        self.cancel.setObjectName("cancelSync")
        self.cancel.clicked.connect(self.cancel_sync)
        self.device_labels = {d: QLabel() for d in DEVICES}
        self.hint = QLabel()
        self.hint.setObjectName("muted")
        self.hint.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        for w in (self.network, self.pending, self.last_sync, self.progress, self.cancel):
            layout.addWidget(w)
        layout.addSpacing(16)
        for label in self.device_labels.values():
            label.setObjectName("badge")
            layout.addWidget(label)
        layout.addWidget(self.hint, 1)
        self.retranslate()

    def set_language(self, lang: str) -> None:
        self._lang = lang
        self.retranslate()

    def show_sync(self, status: SyncStatus | None) -> None:
        """`None`: this terminal is not enrolled with a server (it always decides offline)."""
        self._sync = status
        self.retranslate()

    def show_device(self, status: DeviceStatus) -> None:
        if status.device in DEVICES:
            self._devices[status.device] = status
        self.retranslate()

    @property
    def online(self) -> bool:
        return self._sync is not None and self._sync.online

    def retranslate(self) -> None:
        sync = self._sync
        pulling = sync.pulling if sync is not None else None
        self.progress.setVisible(pulling is not None)
        self.cancel.setVisible(pulling is not None)
        self.progress.setText(self.tr("Receiving cards: %1").replace("%1", f"{pulling or 0:,}"))
        self.cancel.setText(self.tr("Stop for now"))
        if sync is None:
            self._badge(self.network, self.tr("Standalone"), theme.MUTED)
            self.pending.setText("")
            self.last_sync.setText("")
        else:
            self._badge(self.network, self.tr("Online") if sync.online else self.tr("Offline"),
                        theme.OK if sync.online else theme.BAD)
            self.pending.setText(self.tr("To sync: %n", "", sync.pending))
            self.last_sync.setText(
                self.tr("Last sync %1").replace("%1", _clock(sync.last_sync))
                if sync.last_sync else self.tr("Never synced"))
        names = {"reader": self.tr("Reader"), "camera": self.tr("Camera"),
                 "printer": self.tr("Printer")}
        problems = []
        for device, label in self.device_labels.items():
            status = self._devices.get(device)
            if status is None:
                label.setVisible(False)
                continue
            label.setVisible(True)
            ready = status.state is DeviceState.READY
            self._badge(label, names[device], theme.OK if ready else theme.BAD)
            message = text(status.code, self._lang, name=status.name, detail=status.detail)
            label.setToolTip(message)
            if not ready:
                problems.append(message)
        self.hint.setText(" ".join(problems))

    @staticmethod
    def _badge(label: QLabel, words: str, colour: str) -> None:
        label.setText(words)
        label.setStyleSheet(f"background: {colour};")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")
