"""The running parts of one terminal, put together from its settings: the composition root of the
windowed app (`cardpos cashier`, `cardpos kiosk`, `cardpos demo`).

A `Station` owns the store, the core services, the devices (each on its own thread), the printer
worker, the voice and the sync loop. It imports no Qt: the UI hands it two callbacks —
`on_device` for device events and `on_sync` for sync status — which are called on the devices'
and the sync loop's own threads; the UI forwards them to its GUI thread (ui/bridge.py).

The blocking core calls (`terminal`, `shifts`) must run off the GUI thread too; the UI does that
with its store worker. `start()` and `stop()` are called by the GUI thread once each; `stop()`
joins every thread in bounded time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cardpos.online import authorizer_for, client_for
from drivers import registry
from drivers.print_worker import PrinterWorker
from sync.client import OnlineAuthorizer, SyncLoop, SyncStatus, stored_status
from terminal.limits import Limits
from terminal.ports import Device, EventSink, Speaker
from terminal.services import Shifts, Terminal, utc_now
from terminal.store import queries
from terminal.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StationConfig:
    """Which devices to open and how to sync. Device specs are drivers/registry.py strings."""

    data: Path
    readers: tuple[str, ...] = ("sim",)
    cameras: tuple[str, ...] = ()
    printer: str | None = "sim"
    voice: str | None = "espeak-ng"  # None: silent
    sync_interval: float = 15.0


@dataclass
class Station:
    """The opened store, core services and devices; see the module docstring for threads."""

    config: StationConfig
    store: Store
    terminal: Terminal
    shifts: Shifts
    readers: list[Device]
    cameras: list[Device]
    printer: PrinterWorker | None
    voice: Speaker | None
    authorizer: OnlineAuthorizer | None
    sync: SyncLoop | None = None  # made by `start` when the terminal is enrolled
    _started: list[Callable[[], None]] = field(default_factory=list)
    _stopped: bool = False

    @classmethod
    def open(cls, config: StationConfig) -> Station:
        """Open the store and build the devices (nothing runs until `start`). A bad device spec
        or a missing adapter library is `BadInput`; the store is closed again then."""
        store = Store.open(config.data)
        try:
            authorizer = authorizer_for(store)
            readers = [registry.open_reader(spec) for spec in config.readers]
            cameras = [registry.open_camera(spec) for spec in config.cameras]
            printer = (PrinterWorker(registry.open_printer(config.printer))
                       if config.printer else None)
            voice = None
            if config.voice:
                from drivers.voice import open_voice
                voice = open_voice(config.voice)
        except BaseException:
            store.close()
            raise
        return cls(config, store, Terminal(store, authorizer=authorizer), Shifts(store),
                   readers, cameras, printer, voice, authorizer)

    def start(self, on_device: EventSink, on_sync: Callable[[SyncStatus], None]) -> None:
        """Start every device thread, the printer worker, the voice and the sync loop."""
        for device in [*self.readers, *self.cameras]:
            device.start(on_device)
            self._started.append(device.stop)
        if self.printer is not None:
            self.printer.start(on_device)
            self._started.append(self.printer.stop)
        if self.voice is not None:
            start = getattr(self.voice, "start", None)
            if start is not None:
                start(on_device)
            stop = getattr(self.voice, "stop", None)
            if stop is not None:
                self._started.append(stop)
        if self.authorizer is not None:
            store = self.store
            authorizer = self.authorizer

            def synced(status: SyncStatus) -> None:
                if status.online:  # the server answers again: ask it before debits at once
                    authorizer.mark_online()
                on_sync(status)

            self.sync = SyncLoop(store, lambda: client_for(store), utc_now,
                                 interval=self.config.sync_interval, on_status=synced)
            self.sync.start()
            self._started.append(self.sync.stop)

    def sync_status(self) -> SyncStatus:
        """The last known sync status (the loop's, or the store's record when not enrolled).
        Reads the store when there is no loop: call from a worker thread."""
        return self.sync.status if self.sync is not None else stored_status(self.store)

    def after_money(self, online: bool) -> None:
        """After a committed money entry: push it now if the server approved it (settles the
        hold at once), else at the next round. Returns at once (any thread)."""
        if self.sync is not None and online:
            self.sync.sync_now()

    def limits(self) -> Limits:
        """The terminal's current limits and policy (a store read: worker thread)."""
        return self.store.read(queries.load_limits)

    def stop(self) -> None:
        """Stop everything that was started, last started first, then close the store.
        Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        while self._started:
            stop = self._started.pop()
            try:
                stop()
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %r failed", stop)
        if self.authorizer is not None:
            self.authorizer.close()
        self.store.close()
