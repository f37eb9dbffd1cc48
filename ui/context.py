"""What every screen needs: the station, the GUI-thread inbox, the store worker, the language,
and the terminal's limits as last read (refreshed off the GUI thread after each sync round).

`UiContext.start()` starts the station with callbacks that hop to the GUI thread and fans the
events out as Qt signals: `device(DeviceEvent)` and `sync(SyncStatus)`. GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from cardpos.station import Station
from sync.client import SyncStatus
from terminal.limits import Limits
from terminal.ports import DeviceEvent, DeviceStatus
from ui.bridge import Inbox, Worker
from ui.i18n import Language


class UiContext(QObject):
    device = Signal(object)  # a DeviceEvent, on the GUI thread
    sync = Signal(object)    # a SyncStatus, on the GUI thread
    limits_changed = Signal(object)  # Limits

    def __init__(self, station: Station, language: Language, limits: Limits,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.language = language
        self.limits = limits
        self.inbox = Inbox(self)
        self.worker = Worker(self.inbox, self)
        self.last_sync: SyncStatus | None = None
        #: The last state each device reported, for windows made after it was reported.
        self.devices: dict[str, DeviceStatus] = {}

    @property
    def lang(self) -> str:
        return self.language.lang

    @property
    def currency(self) -> str:
        return self.limits.currency

    def start(self) -> None:
        """Start the station's threads; their events reach the signals above."""
        self.station.start(lambda event: self.inbox.post(lambda: self._device(event)),
                           lambda status: self.inbox.post(lambda: self._sync(status)))

    def _device(self, event: DeviceEvent) -> None:
        if isinstance(event, DeviceStatus):
            self.devices[event.device] = event
        self.device.emit(event)

    def _sync(self, status: SyncStatus) -> None:
        self.last_sync = status
        self.sync.emit(status)
        # a round may have brought new limits (per branch or terminal): read them off-thread
        self.worker.run(self.station.limits, self._set_limits, lambda exc: None)

    def _set_limits(self, limits: Limits) -> None:
        if limits != self.limits:
            self.limits = limits
            self.limits_changed.emit(limits)

    def stop(self) -> None:
        """Stop the worker, then the station (joins every thread; GUI thread, at exit)."""
        self.worker.shutdown()
        self.station.stop()
