"""Simulated devices for the demo and the tests: a card reader, a camera and a receipt printer
driven from code (and later from a "device simulator" panel).

They behave like the real adapters where it matters to the rest of the terminal: the reader and
the camera run their own worker thread and deliver events on it — never on the thread that
called `tap()` or `show()` — and report unplugging and failures as the same `DeviceStatus` codes
the real adapters use. The printer, like `EscposPrinter`, has no thread of its own: it is driven
by a `drivers.printer.PrinterWorker`, whose thread is then the one that prints and reports.

Spec strings: "sim" or "sim:NAME" (`open_sim_reader`, `open_sim_camera`, `open_sim_printer`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from terminal.credentials import normalize_uid
from terminal.errors import DeviceError
from terminal.ports import (
    CardPresented,
    CardRemoved,
    CodeScanned,
    DeviceEvent,
    DeviceState,
    DeviceStatus,
    EventSink,
)
from terminal.receipt import Receipt, Slip, label

log = logging.getLogger(__name__)

_STOP = object()
Command = Callable[[], None]


class _SimDevice:
    """A worker thread that runs control commands in order and passes their events to the sink.

    Control methods may be called from any thread, before or after `start()`; they only queue a
    command. `wait_idle()` lets a test wait until everything queued so far has happened.
    """

    kind = "device"  # DeviceStatus.device

    def __init__(self, name: str = "sim") -> None:
        self.name = name
        self._commands: queue.Queue[Command | object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._sink: EventSink | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._stopped = False
        self.plugged = True

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; it first reports READY (or MISSING if unplugged)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.kind} {self.name} already started")
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}:{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the worker thread (commands still queued are dropped) and join it."""
        self._stopped = True
        self._commands.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s %s: worker did not stop within %.1f s", self.kind, self.name,
                          timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every command queued so far has run (True), or `timeout` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def unplug(self) -> None:
        """Simulate pulling the device's cable."""
        self._post(self._do_unplug)

    def plug(self) -> None:
        """Simulate plugging it back in."""
        self._post(self._do_plug)

    def fail(self, code: str) -> None:
        """Simulate a failure the real adapter reports with `code` (e.g. "pcscd_unavailable")."""
        self._post(lambda: self._status(DeviceState.FAILED, code))

    def recover(self) -> None:
        """Simulate recovery after `fail()`."""
        self._post(lambda: self._status(DeviceState.READY, self._ready_code))

    @property
    def _ready_code(self) -> str:
        return f"{self.kind}_ready"

    @property
    def _missing_code(self) -> str:
        return f"{self.kind}_missing"

    def _do_unplug(self) -> None:
        if self.plugged:
            self.plugged = False
            self._status(DeviceState.MISSING, self._missing_code, "unplugged (simulated)")

    def _do_plug(self) -> None:
        if not self.plugged:
            self.plugged = True
            self._status(DeviceState.READY, self._ready_code)

    def _post(self, command: Command) -> None:
        if self._stopped:
            log.warning("%s %s is stopped; simulated action ignored", self.kind, self.name)
            return
        with self._idle:
            self._pending += 1
        self._commands.put(command)

    def _run(self) -> None:
        if self.plugged:
            self._status(DeviceState.READY, self._ready_code)
        else:
            self._status(DeviceState.MISSING, self._missing_code, "unplugged (simulated)")
        while True:
            command = self._commands.get()
            if command is _STOP:
                return
            assert callable(command)
            try:
                command()
            except Exception:  # a bad simulated action must not end the device
                log.exception("%s %s: simulated action failed", self.kind, self.name)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _status(self, state: DeviceState, code: str, detail: str = "") -> None:
        self._emit(DeviceStatus(self.kind, self.name, state, code, detail))

    def _emit(self, event: DeviceEvent) -> None:
        assert self._sink is not None
        try:
            self._sink(event)
        except Exception:
            log.exception("%s %s: the event sink failed on %s", self.kind, self.name, event)


class SimReader(_SimDevice):
    """A card reader: `tap()` a card, `remove()` it, pull it away mid-read, unplug the reader."""

    kind = "reader"

    def __init__(self, name: str = "sim") -> None:
        super().__init__(name)
        self.card: str | None = None  # UID of the card on the reader (worker thread's view)

    def tap(self, uid: str, token: bytes | None = None) -> None:
        """Put a card on the reader: CardPresented (after CardRemoved for a card already on it).
        The UID is checked here, on the caller's thread (BadInput "bad_uid")."""
        clean = normalize_uid(uid)
        self._post(lambda: self._do_tap(clean, token))

    def remove(self) -> None:
        """Take the card away: CardRemoved."""
        self._post(self._do_remove)

    def pull_mid_read(self) -> None:
        """A card taken away while it was read: a hint, and no CardPresented."""
        self._post(self._do_pull)

    def _do_tap(self, uid: str, token: bytes | None) -> None:
        if not self.plugged:
            log.info("reader %s is unplugged; simulated tap of %s ignored", self.name, uid)
            return
        self._do_remove()
        self.card = uid
        self._emit(CardPresented(self.name, uid, token))

    def _do_pull(self) -> None:
        if self.plugged:
            self._status(DeviceState.READY, "card_removed_mid_read")

    def _do_remove(self) -> None:
        if self.card is not None:
            self.card = None
            self._emit(CardRemoved(self.name))

    def _do_unplug(self) -> None:
        if self.plugged:
            self._do_remove()
        super()._do_unplug()


class SimCamera(_SimDevice):
    """A camera: `show(text)` holds a code in front of it (one CodeScanned per showing)."""

    kind = "camera"

    def show(self, text: str) -> None:
        self._post(lambda: self._do_show(text))

    def _do_show(self, text: str) -> None:
        if not self.plugged:
            log.info("camera %s is unplugged; simulated code ignored", self.name)
            return
        self._emit(CodeScanned(self.name, text))


class SimPrinter:
    """A receipt printer that keeps what it printed (receipts and slips, in order) in `printed`;
    can be switched off (`set_offline`) or run out of paper (`set_paper`). Implements
    `ReceiptPrinter` (and the `check()` a `PrinterWorker` probes), with the same error codes as
    `EscposPrinter`."""

    def __init__(self, name: str = "sim", *, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay  # seconds per receipt, to simulate a slow printer
        self.printed: list[Receipt | Slip] = []
        self.offline = False
        self.paper = "ok"  # "ok" | "low" | "out"
        self.last_code = "printer_ready"
        self._lock = threading.Condition()

    def set_offline(self, offline: bool = True) -> None:
        with self._lock:
            self.offline = offline

    def set_paper(self, paper: str) -> None:
        """"ok", "low" (prints, with a printer_paper_low hint) or "out"."""
        if paper not in ("ok", "low", "out"):
            raise ValueError(f"paper must be ok, low or out, not {paper!r}")
        with self._lock:
            self.paper = paper

    def check(self) -> None:
        """Raise DeviceError as a real printer would; set `last_code` when it is usable."""
        with self._lock:
            if self.offline:
                raise DeviceError("printer_offline", name=self.name)
            if self.paper == "out":
                raise DeviceError("printer_out_of_paper", name=self.name)
            self.last_code = "printer_paper_low" if self.paper == "low" else "printer_ready"

    def print_receipt(self, receipt: Receipt | Slip) -> None:
        """Called from the printer worker's thread, like the real one."""
        self.check()
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.printed.append(receipt)
            self._lock.notify_all()
        log.info("sim printer %s: printed %s%s", self.name, label(receipt),
                 " (copy)" if receipt.copy else "")

    def wait_printed(self, count: int, timeout: float) -> list[Receipt | Slip]:
        """Wait until `count` receipts or slips were printed (fewer if `timeout` passes first)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.printed) >= count, timeout)
            return list(self.printed)


def _sim_name(arg: str | None) -> str:
    """The device name from "sim", "sim:NAME", or what drivers.registry passes after "sim:"
    (None or NAME)."""
    text = (arg or "").strip()
    if text.startswith("sim:"):
        text = text[4:].strip()
    return text if text and text != "sim" else "sim"


def open_sim_reader(arg: str | None = "sim") -> SimReader:
    """The reader for the spec "sim" or "sim:NAME"."""
    return SimReader(_sim_name(arg))


def open_sim_camera(arg: str | None = "sim") -> SimCamera:
    """The camera for the spec "sim" or "sim:NAME"."""
    return SimCamera(_sim_name(arg))


def open_sim_printer(arg: str | None = "sim") -> SimPrinter:
    """The printer for the spec "sim" or "sim:NAME"."""
    return SimPrinter(_sim_name(arg))
