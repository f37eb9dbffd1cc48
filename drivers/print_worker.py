"""The printer's worker thread: the UI submits receipts and slips and gets outcomes by callback.

Separate from the ESC/POS adapter (drivers/printer.py) so that a terminal on a simulated or any
other `ReceiptPrinter` does not load python-escpos.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from terminal.errors import DeviceError
from terminal.ports import DeviceState, DeviceStatus, EventSink, ReceiptPrinter
from terminal.receipt import Receipt, Slip, label

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class PrintOutcome:
    """What became of one submitted receipt or slip; `error` is None when it was printed."""

    receipt: Receipt | Slip
    error: DeviceError | None = None
    cancelled: bool = False  # the worker was stopped before the job ran

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


OnDone = Callable[[PrintOutcome], None]

_STOP = object()

#: DeviceError codes and the state a status event reports for them.
_STATES = {"printer_offline": DeviceState.MISSING, "printer_out_of_paper": DeviceState.FAILED,
           "printer_error": DeviceState.FAILED}


@dataclass
class _Job:
    receipt: Receipt | Slip
    on_done: OnDone | None
    submitted: float = field(default_factory=time.monotonic)


class PrinterWorker:
    """Owns one printer and one thread; the UI submits receipts (or slips) and gets outcomes by
    callback.

    `on_done` and the `sink` (DeviceStatus events: printer_offline, printer_out_of_paper,
    printer_ready, printer_paper_low) are called on the worker thread; a UI forwards them to its
    GUI thread. A failed receipt is not retried by itself (the redemption stands; printing twice
    would confuse the customer): `last_failed` keeps it for a "print again" button. While the
    printer is failing, the worker probes it with a bounded backoff (when the printer offers a
    `check()`) and reports `printer_ready` when it is back.
    """

    def __init__(self, printer: ReceiptPrinter, *, probe_first: float = 1.0,
                 probe_max: float = 30.0) -> None:
        self.printer = printer
        self.name = printer.name
        self.probe_first = probe_first
        self.probe_max = probe_max
        self._jobs: queue.Queue[_Job | object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._sink: EventSink | None = None
        self._stopping = threading.Event()
        self._state_code: str | None = None  # the last status code reported
        self.last_failed: Receipt | Slip | None = None

    def start(self, sink: EventSink | None = None) -> None:
        """Start the worker thread (status events go to `sink`, on that thread)."""
        if self._thread is not None:
            raise RuntimeError("printer worker already started")
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"printer:{self.name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, receipt: Receipt | Slip, on_done: OnDone | None = None) -> None:
        """Queue a receipt or slip; returns at once. `on_done(outcome)` runs on the worker
        thread."""
        if self._stopping.is_set():
            log.warning("printer %s: worker stopped, %s not printed", self.name, label(receipt))
            if on_done is not None:
                on_done(PrintOutcome(receipt, cancelled=True))
            return
        self._jobs.put(_Job(receipt, on_done))

    def reprint(self, receipt: Receipt | Slip, on_done: OnDone | None = None) -> None:
        """Queue `receipt` (or slip) again, marked as a copy."""
        self.submit(replace(receipt, copy=True), on_done)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the job in hand (queued jobs are cancelled) and join the thread."""
        self._stopping.set()
        self._jobs.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("printer %s: worker did not stop within %.0f s", self.name, timeout)

    def _run(self) -> None:
        # probe once at start (a printer that is off shows before the first sale), then only
        # while it is failing
        probe_delay: float | None = 0.0 if hasattr(self.printer, "check") else None
        while True:
            try:
                job = self._jobs.get(timeout=probe_delay)
            except queue.Empty:
                probe_delay = self._probe(probe_delay)
                continue
            if job is _STOP:
                break
            assert isinstance(job, _Job)
            if self._stopping.is_set():
                self._done(job, PrintOutcome(job.receipt, cancelled=True))
                continue
            probe_delay = self._print(job)
        while True:  # cancel what is left
            try:
                left = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(left, _Job):
                self._done(left, PrintOutcome(left.receipt, cancelled=True))

    def _print(self, job: _Job) -> float | None:
        """Print one job; the delay until the next health probe (None: printer is fine)."""
        error: DeviceError | None = None
        try:
            self.printer.print_receipt(job.receipt)
        except DeviceError as exc:
            error = exc
        except Exception:  # a bug or an unexpected library error must not kill the thread
            log.exception("printer %s: unexpected failure printing %s", self.name,
                          label(job.receipt))
            error = DeviceError("printer_error", name=self.name)
        if error is None:
            self.last_failed = None
            self._report(str(getattr(self.printer, "last_code", "printer_ready")))
            self._done(job, PrintOutcome(job.receipt))
            return None
        log.warning("printer %s: %s not printed: %s", self.name, label(job.receipt), error.code)
        self.last_failed = job.receipt
        self._report(error.code)
        self._done(job, PrintOutcome(job.receipt, error))
        return self.probe_first if hasattr(self.printer, "check") else None

    def _probe(self, delay: float | None) -> float | None:
        check: Callable[[], None] | None = getattr(self.printer, "check", None)
        if check is None:
            return None
        try:
            check()
        except DeviceError as exc:
            self._report(exc.code)
            return min((delay or self.probe_first) * 2, self.probe_max)
        except Exception:
            log.exception("printer %s: unexpected failure in the health check", self.name)
            self._report("printer_error")
            return self.probe_max
        self._report(str(getattr(self.printer, "last_code", "printer_ready")))
        return None

    def _report(self, code: str) -> None:
        if code == self._state_code or self._sink is None:
            self._state_code = code
            return
        self._state_code = code
        state = _STATES.get(code, DeviceState.READY)
        self._emit(DeviceStatus("printer", self.name, state, code))

    def _emit(self, event: DeviceStatus) -> None:
        assert self._sink is not None
        try:
            self._sink(event)
        except Exception:
            log.exception("printer %s: the event sink failed on %s", self.name, event)

    def _done(self, job: _Job, outcome: PrintOutcome) -> None:
        if job.on_done is None:
            return
        try:
            job.on_done(outcome)
        except Exception:
            log.exception("printer %s: the on_done callback failed", self.name)
