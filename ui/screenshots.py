"""The screenshots in docs/screenshots, made by driving the real windows on the demo site:

    python -m ui.screenshots docs/screenshots

Each main screen, in English and Chinese: the cashier at 1920x1080 (login, a card, an approved
redemption with its receipt, a declined card, the PIN pad, the Z report, the demo with its
device simulator) and the kiosk at 1080x1920 portrait and 1920x1080 (start, a card's balance,
self-redemption). Dialogs are drawn onto their window where they sit, as a person sees them.
Renders offscreen; the files are what the README shows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QWidget  # noqa: E402

from cardpos.demo import CARD_PIN, CASHIER, CASHIER_PIN  # noqa: E402
from cardpos.demo_site import DemoSite, start_demo_site  # noqa: E402
from cardpos.station import Station, StationConfig  # noqa: E402
from drivers.sim import SimReader  # noqa: E402
from terminal import admin  # noqa: E402
from terminal.services import utc_now  # noqa: E402
from terminal.store.db import Store  # noqa: E402
from ui.cashier.window import CashierWindow  # noqa: E402
from ui.context import UiContext  # noqa: E402
from ui.i18n import Language  # noqa: E402
from ui.simulator import attach_simulator  # noqa: E402

WAIT_S = 15.0


def wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        QApplication.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: waited too long for {what}")
        time.sleep(0.005)
    for _ in range(5):
        QApplication.processEvents()


def save(window: QWidget, path: Path, dialog: QDialog | None = None) -> None:
    """The window as shown, with an open dialog drawn where it sits."""
    shot: QPixmap = window.grab()
    if dialog is not None and dialog.isVisible():
        painter = QPainter(shot)
        top_left = window.mapFromGlobal(dialog.mapToGlobal(QPoint(0, 0)))
        centred = QPoint((window.width() - dialog.width()) // 2,
                         (window.height() - dialog.height()) // 3)
        painter.drawPixmap(top_left if window.rect().contains(top_left) else centred,
                           dialog.grab())
        painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not shot.save(str(path), "PNG"):
        raise OSError(f"could not save {path}")
    print(path)


class Scene:
    """A fresh demo site and a station on it (one per language, so screens start clean)."""

    def __init__(self, root: Path, lang: str, *, kiosk: bool) -> None:
        self.site: DemoSite = start_demo_site(root / f"{lang}-{'kiosk' if kiosk else 'cashier'}")
        if kiosk:
            with Store.open(self.site.data) as store:
                admin.set_limit(store, "kiosk_self_redeem", "true", utc_now())
        self.station = Station.open(StationConfig(self.site.data, readers=("sim",),
                                                  cameras=("sim",), printer="sim", voice=None))
        self.language = Language(lang)
        self.ctx = UiContext(self.station, self.language, self.station.limits())
        self.ctx.start()
        reader = self.station.readers[0]
        assert isinstance(reader, SimReader)
        self.reader = reader
        wait(lambda: self.ctx.last_sync is not None, "the first sync")

    def card(self, label: str) -> str:
        return next(c.uid for c in self.site.cards if c.label == label)

    def close(self) -> None:
        self.ctx.stop()
        self.site.stop()


def cashier_screens(root: Path, out: Path, lang: str) -> None:
    scene = Scene(root, lang, kiosk=False)
    try:
        w = CashierWindow(scene.ctx)
        w.resize(1920, 1080)
        w.show()
        w.begin()
        wait(lambda: not scene.ctx.worker.busy and w.login.isVisible(), "the login")
        save(w, out / f"cashier-login-{lang}.png")
        QTest.keyClicks(w.login.cashier, CASHIER)
        QTest.keyClicks(w.login.pin, CASHIER_PIN)
        QTest.keyClick(w.login.pin, Qt.Key.Key_Return)
        wait(lambda: w.pages.currentWidget() is w.sale, "the sale screen")
        save(w, out / f"cashier-ready-{lang}.png")
        scene.reader.tap(scene.card("fuel + general"))
        wait(lambda: w.sale.card is not None and not scene.ctx.worker.busy, "the card")
        save(w, out / f"cashier-card-{lang}.png")
        QTest.keyClicks(w.sale.entry, "12.50")
        QTest.keyClick(w.sale.entry, Qt.Key.Key_Return)
        wait(lambda: w.sale.receipt is not None and not scene.ctx.worker.busy, "the receipt")
        save(w, out / f"cashier-approved-{lang}.png")
        scene.reader.tap(scene.card("phone credit, reported lost"))
        wait(lambda: w.sale.result is not None and not scene.ctx.worker.busy
             and w.sale.receipt is None, "the lost card")
        save(w, out / f"cashier-declined-{lang}.png")
        scene.reader.tap(scene.card("shopping, with PIN"))
        wait(lambda: w.sale.card is not None and not scene.ctx.worker.busy, "the PIN card")
        QTest.keyClicks(w.sale.entry, "20")
        QTest.keyClick(w.sale.entry, Qt.Key.Key_Return)
        wait(lambda: w.sale.asker.current is not None, "the PIN pad")
        dialog = w.sale.asker.current
        assert dialog is not None
        QTest.keyClicks(dialog.field, CARD_PIN[:2])
        wait(lambda: bool(dialog.field.text()), "the PIN digits")
        save(w, out / f"cashier-pin-{lang}.png", dialog)
        dialog.reject()
        wait(lambda: not scene.ctx.worker.busy, "the cancelled PIN")
        w.shift()
        wait(lambda: w.shift_dialog is not None and w.shift_dialog.isVisible(), "the shift")
        save(w, out / f"cashier-shift-{lang}.png", w.shift_dialog)
        assert w.shift_dialog is not None
        w.shift_dialog.reject()
        attach_simulator(w, scene.station, scene.site)
        w.sale.forget()
        scene.reader.tap(scene.card("shopping, expiring soon"))
        wait(lambda: w.sale.card is not None and not scene.ctx.worker.busy, "the demo card")
        save(w, out / f"demo-{lang}.png")
        w.close()
    finally:
        scene.close()


def kiosk_screens(root: Path, out: Path, lang: str) -> None:
    from ui.kiosk.window import KioskWindow

    for width, height in ((1080, 1920), (1920, 1080)):
        scene = Scene(root / f"{width}", lang, kiosk=True)
        try:
            decision, _ = scene.station.shifts.open(CASHIER, CASHIER_PIN)  # attendant
            assert decision.approved
            w = KioskWindow(scene.ctx)
            w.resize(width, height)
            w.show()
            w.begin()
            wait(lambda: not scene.ctx.worker.busy, "the kiosk start")
            size = f"{width}x{height}"
            save(w, out / f"kiosk-start-{size}-{lang}.png")
            scene.reader.tap(scene.card("shopping, expiring soon"))
            wait(lambda: w.card_shown() and not scene.ctx.worker.busy, "the kiosk card")
            save(w, out / f"kiosk-card-{size}-{lang}.png")
            w.screenshot_self_redeem(scene.reader, scene.card("fuel + general"))
            wait(lambda: not scene.ctx.worker.busy, "the kiosk amounts")
            save(w, out / f"kiosk-redeem-{size}-{lang}.png")
            w.unlock_for_exit()
            w.close()
        finally:
            scene.close()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("docs/screenshots")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cardpos")
    with tempfile.TemporaryDirectory(prefix="cardpos-shots-") as tmp:
        for lang in ("en", "zh_CN"):
            cashier_screens(Path(tmp), out, lang)
            kiosk_screens(Path(tmp), out, lang)
    Language("en")  # leave the process as it started
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

