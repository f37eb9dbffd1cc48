"""Getting work off the GUI thread and results back onto it.

Two pieces, after Anki's QueryOp and Electrum's event bridge:

- `Inbox` carries a callable from any thread to the GUI thread (a queued Qt signal). Device
  events, sync status and finished jobs all come home through it, so every widget is touched by
  the GUI thread only.
- `Worker` runs the core's blocking calls (store reads and writes, online authorization, which
  may wait up to 2 s for the server) on one thread of its own, in the order they were asked
  for, and delivers the result or the exception through the inbox. One thread is enough: the
  store has one writer, and a cashier does one thing at a time. `busy` tells the UI that
  something is under way (so a second Enter meanwhile is ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal

from terminal.errors import CardposError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Inbox(QObject):
    """Runs callables on the thread this object lives on (the GUI thread)."""

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], None]) -> None:
        """Queue `fn` for the GUI thread; returns at once. Any thread."""
        self._posted.emit(fn)

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a UI bug shows in the log; the event loop must go on
            log.exception("GUI callback %r failed", fn)


class Worker(QObject):
    """One thread for the core's blocking calls; results come back on the GUI thread."""

    def __init__(self, inbox: Inbox, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._inbox = inbox
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-worker")
        self._pending = 0

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def run(self, job: Callable[[], T], done: Callable[[T], None],
            failed: Callable[[Exception], None]) -> None:
        """Run `job` on the worker thread; then `done(result)` or `failed(exception)` on the
        GUI thread. Called on the GUI thread."""
        self._pending += 1
        future = self._pool.submit(job)
        future.add_done_callback(
            lambda f: self._inbox.post(lambda: self._deliver(f, done, failed)))

    def _deliver(self, future: Future[Any], done: Callable[[Any], None],
                 failed: Callable[[Exception], None]) -> None:
        self._pending -= 1
        try:
            result = future.result()
        except Exception as exc:
            log.warning("worker job failed: %r", exc, exc_info=not isinstance(exc, CardposError))
            failed(exc)
            return
        done(result)

    def shutdown(self) -> None:
        """Wait for the job in hand, drop queued ones (GUI thread, at exit)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
