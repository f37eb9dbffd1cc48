"""The bridge between the app's threads and the GUI thread (ui/bridge.py)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from terminal.errors import BadInput
from ui.bridge import Inbox, Worker

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("qapp")


def test_inbox_runs_posted_callables_on_the_gui_thread_in_order(qtbot: Any) -> None:
    inbox = Inbox()
    ran: list[tuple[int, str]] = []
    n = 500

    def record(i: int) -> None:
        ran.append((i, threading.current_thread().name))

    def post_all() -> None:
        for i in range(n):
            inbox.post(functools.partial(record, i))

    poster = threading.Thread(target=post_all, name="device")
    poster.start()
    poster.join()
    qtbot.waitUntil(lambda: len(ran) == n, timeout=5000)
    assert [i for i, _ in ran] == list(range(n))
    assert {name for _, name in ran} == {threading.main_thread().name}


def test_worker_runs_jobs_off_the_gui_thread_and_delivers_results_and_errors(
        qtbot: Any) -> None:
    inbox = Inbox()
    worker = Worker(inbox)
    got: list[Any] = []
    try:
        worker.run(lambda: threading.current_thread().name, got.append, got.append)
        def bad() -> str:
            raise BadInput("bad_amount", amount="x", currency="EUR")

        worker.run(bad, got.append, got.append)
        assert worker.busy
        qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
        assert not worker.busy
        assert got[0].startswith("store-worker")
        assert isinstance(got[1], BadInput) and got[1].code == "bad_amount"
    finally:
        worker.shutdown()


def test_many_posts_from_threads_keep_reference_counts_sound() -> None:
    """PySide6 6.12.0 over-releases None and the booleans when Qt is called from a Python
    thread; a terminal posting a few thousand device and sync events then dies with
    "none_dealloc". Run in a child process: such a crash must fail this test, not the run."""
    code = textwrap.dedent("""
        import sys, threading
        from PySide6.QtWidgets import QApplication
        from ui.bridge import Inbox
        app = QApplication([])
        inbox = Inbox()
        done = []
        before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
        n = 30000
        posters = [threading.Thread(target=lambda: [inbox.post(lambda: done.append(1))
                                                    for _ in range(n // 3)]) for _ in range(3)]
        for t in posters: t.start()
        for t in posters: t.join()
        while len(done) < n:
            app.processEvents()
        after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
        print("DRIFT", *(a - b for a, b in zip(after, before)))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, check=False,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr[-1500:]
    drift = [int(x) for x in run.stdout.split("DRIFT")[1].split()]
    assert all(d > -100 for d in drift), f"reference counts drained: {drift}"
