"""Starting the windowed terminal: QApplication, language, context, the cashier or kiosk window,
and the screenshot mode used for docs and checks.

`run()` is what `cardpos cashier|kiosk|demo` call. With `screenshot=PATH` the window is
rendered once startup has settled — no job on the store worker, the first sync answer in (or
`SETTLE_LIMIT_S` passed) — saved as a PNG at the requested size, and the app exits. Rendering
works without a display (QT_QPA_PLATFORM=offscreen, which `run` selects for a screenshot when
there is no DISPLAY or WAYLAND_DISPLAY; a window without a display is refused).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

from cardpos.station import Station
from terminal.errors import BadInput
from ui.context import UiContext
from ui.i18n import Language

if TYPE_CHECKING:
    from ui.cashier.window import CashierWindow
    from ui.kiosk.window import KioskWindow

log = logging.getLogger(__name__)

SETTLE_LIMIT_S = 5.0
CASHIER_SIZE = (1920, 1080)
KIOSK_SIZE = (1080, 1920)


@dataclass(frozen=True)
class Launch:
    """How to show the window."""

    mode: str  # "cashier" | "kiosk"
    lang: str
    screenshot: Path | None = None
    size: tuple[int, int] | None = None  # None: the mode's default size (windowed)
    fullscreen: bool = False
    #: Called with the window once it is built (the demo adds its simulator panel here).
    extend: Callable[[QMainWindow], None] | None = None
    #: The cashier whose shift is already open and who needs no login (the demo).
    signed_in: str | None = None
    #: Called on the GUI thread with the window once it is ready: shown, painted, and its
    #: first store job done (bench/ui_start.py times this).
    on_ready: Callable[[QMainWindow], None] | None = None


def parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()) or not (
            200 <= int(width) <= 8000 and 200 <= int(height) <= 8000):
        raise BadInput("bad_size", size=text)
    return int(width), int(height)


def ensure_platform(screenshot: bool) -> None:
    """Render offscreen for a screenshot when there is no display (CI, ssh). Without a display
    a window nobody can see would run forever: that is refused with a message."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get(
            "QT_QPA_PLATFORM"):
        return
    if not screenshot:
        raise BadInput("no_display")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"


def run(station: Station, launch: Launch) -> int:
    """Show the window until it is closed (or the screenshot is saved); stops the station."""
    started = time.monotonic()
    try:
        ensure_platform(launch.screenshot is not None)
    except BadInput:
        station.stop()
        raise
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("cardpos")
    language = Language(launch.lang)
    ctx = UiContext(station, language, station.limits())
    try:
        window = build_window(ctx, launch.mode)
        if launch.extend is not None:
            launch.extend(window)
        ctx.start()
        size = launch.size or (KIOSK_SIZE if launch.mode == "kiosk" else CASHIER_SIZE)
        if launch.screenshot is not None:
            window.resize(*size)
            window.show()
            window.begin(launch.signed_in)
            return _screenshot(app, ctx, window, launch.screenshot, started)
        if launch.fullscreen:
            window.showFullScreen()
        else:
            window.resize(*_fit(size, app))
            window.show()
        window.begin(launch.signed_in)
        _when_settled(ctx, lambda: _ready(window, launch, started))
        return app.exec()
    finally:
        ctx.stop()


def build_window(ctx: UiContext, mode: str) -> CashierWindow | KioskWindow:
    if mode == "kiosk":
        from ui.kiosk.window import KioskWindow

        return KioskWindow(ctx)
    from ui.cashier.window import CashierWindow

    return CashierWindow(ctx)


def _fit(size: tuple[int, int], app: QApplication) -> tuple[int, int]:
    """The default size, shrunk to the screen if the screen is smaller."""
    screen = app.primaryScreen()
    if screen is None:
        return size
    available = screen.availableGeometry()
    return min(size[0], available.width()), min(size[1], available.height())


def _ready(window: QMainWindow, launch: Launch, started: float) -> None:
    log.info("window ready in %.0f ms", (time.monotonic() - started) * 1000)
    if launch.on_ready is not None:
        launch.on_ready(window)


def _when_settled(ctx: UiContext, then: Callable[[], None]) -> None:
    """Call `then` once no store job is running (polled from the event loop, never waited)."""
    def check() -> None:
        if not ctx.worker.busy:
            timer.stop()
            then()

    timer = QTimer(ctx)
    timer.timeout.connect(check)
    timer.start(5)


def _screenshot(app: QApplication, ctx: UiContext, window: QMainWindow, path: Path,
                started: float) -> int:
    saved: list[bool] = []

    def settled() -> bool:
        waiting_for_sync = ctx.station.sync is not None and ctx.last_sync is None
        return not ctx.worker.busy and not waiting_for_sync

    def check() -> None:
        if not settled() and time.monotonic() - started < SETTLE_LIMIT_S:
            return
        timer.stop()
        app.processEvents()
        path.parent.mkdir(parents=True, exist_ok=True)
        saved.append(window.grab().save(str(path), "PNG"))
        window.close()
        app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    app.exec()
    if not saved or not saved[0]:
        raise BadInput("screenshot_failed", path=str(path))
    return 0
