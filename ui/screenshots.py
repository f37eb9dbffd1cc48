"""The screenshots in docs/screenshots, made by driving the real windows on the demo site:

    python -m ui.screenshots docs/screenshots

Each main screen, in English and Chinese: the cashier at 1920x1080 (login, a card, an approved
redemption with its receipt, a declined card, the PIN pad, the Z report, the demo with its
device simulator) and the kiosk at 1080x1920 portrait and 1920x1080 (start, a card's balance,
self-redemption: amounts, done). Dialogs are drawn onto their window where they sit, as a
person sees them. Renders offscreen; the files are what the README shows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QWidget

from cardpos.demo import CARD_PIN, CASHIER, CASHIER_PIN
from cardpos.demo_site import DemoSite, start_demo_site
from cardpos.station import Station, StationConfig
from drivers.sim import SimReader
from terminal import admin
from terminal.services import utc_now
from terminal.store.db import Store
from ui.cashier.window import CashierWindow
from ui.context import UiContext
from ui.i18n import Language
from ui.kiosk.window import KioskWindow
from ui.simulator import attach_simulator

WAIT_S = 15.0


def wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        QApplication.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: waited too long for {what} (the window says: "
                               f"{[lbl.text() for lbl in window_labels()][:12]})")
        time.sleep(0.005)
    for _ in range(5):
        QApplication.processEvents()


def window_labels() -> list[QLabel]:
    return [label for w in QApplication.topLevelWidgets() if w.isVisible()
            for label in w.findChildren(QLabel) if label.isVisible() and label.text()]


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

    def tap(self, w: CashierWindow, label: str) -> None:
        """Tap a demo card and wait until the sale screen shows it."""
        number = next(c.number for c in self.site.cards if c.label == label)
        self.reader.tap(self.card(label))
        wait(lambda: w.sale.number.text().endswith(number[-4:]) and not self.ctx.worker.busy,
             f"the card {label}")

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
        scene.tap(w, "fuel + general")
        save(w, out / f"cashier-card-{lang}.png")
        QTest.keyClicks(w.sale.entry, "12.50")
        QTest.keyClick(w.sale.entry, Qt.Key.Key_Return)
        wait(lambda: w.sale.receipt is not None and not scene.ctx.worker.busy, "the receipt")
        save(w, out / f"cashier-approved-{lang}.png")
        scene.tap(w, "phone credit, reported lost")
        save(w, out / f"cashier-declined-{lang}.png")
        scene.tap(w, "shopping, with PIN")
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
        scene.tap(w, "shopping, expiring soon")
        save(w, out / f"demo-{lang}.png")
        scene.site.link.cut()  # the network goes: the till goes on, offline
        assert scene.station.sync is not None
        scene.station.sync.sync_now()
        wait(lambda: not w.status_line.online, "the offline badge")
        QTest.keyClicks(w.sale.entry, "7")
        QTest.keyClick(w.sale.entry, Qt.Key.Key_Return)
        wait(lambda: w.sale.receipt is not None and not scene.ctx.worker.busy, "offline sale")
        scene.station.sync.sync_now()
        wait(lambda: w.status_line.pending.text().endswith("1"), "the pending count")
        save(w, out / f"cashier-offline-{lang}.png")
        w.close()
    finally:
        scene.close()


def kiosk_screens(root: Path, out: Path, lang: str) -> None:
    for width, height in ((1080, 1920), (1920, 1080)):
        size = f"{width}x{height}"
        scene = Scene(root / size, lang, kiosk=True)
        try:
            decision, _ = scene.station.shifts.open(CASHIER, CASHIER_PIN)  # the attendant
            assert decision.approved
            kiosk_pages(scene, KioskWindow(scene.ctx), out, f"{size}-{lang}", (width, height))
        finally:
            scene.close()


def kiosk_pages(scene: Scene, w: KioskWindow, out: Path, tag: str, size: tuple[int, int]) -> None:
    w.resize(*size)
    w.show()
    w.begin()

    def idle() -> bool:
        return not scene.ctx.worker.busy

    wait(lambda: idle() and w.start.use_button.isVisibleTo(w), "the kiosk start")
    save(w, out / f"kiosk-start-{tag}.png")
    scene.reader.tap(scene.card("shopping, expiring soon"))
    wait(lambda: w.pages.currentWidget() is w.card_page and idle(), "the kiosk card")
    save(w, out / f"kiosk-card-{tag}.png")
    w.reset()
    wait(idle, "the start again")
    w.start.use_button.click()
    scene.reader.tap(scene.card("fuel + general"))
    wait(lambda: w.pages.currentWidget() is w.amount_page and idle(), "the amounts")
    save(w, out / f"kiosk-amount-{tag}.png")
    w._chosen(10_00)
    w._confirmed()
    wait(lambda: w.pages.currentWidget() is w.done_page and idle(), "the approval")
    save(w, out / f"kiosk-done-{tag}.png")
    w.unlocked = True
    w.close()


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

