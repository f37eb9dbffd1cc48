"""The demo's device simulator panel: tap a demo card, show a QR code (and show it again, which
is a replay), unplug the reader, run the printer out of paper, cut the network.

It drives the simulated devices (drivers/sim.py), whose control methods only queue a command
for the device's own thread, and the demo site's link (sync/netlink.py). Signing a fresh QR
code reads the store, and cutting the link closes sockets: both run on the store worker, never
on the GUI thread. Beside the cashier window it is a dock; beside the kiosk, its own window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cardpos.demo import CARD_PIN, CASHIER, CASHIER_PIN, SUPERVISOR, SUPERVISOR_PIN, DemoCard
from cardpos.demo_site import DemoSite, fresh_qr
from cardpos.station import Station
from drivers.sim import SimCamera, SimPrinter, SimReader
from ui.context import UiContext


class SimulatorPanel(QWidget):
    """Buttons for the simulated devices and the network; see the module docstring."""

    def __init__(self, ctx: UiContext, station: Station, site: DemoSite,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.site = ctx, site
        self.reader = next((r for r in station.readers if isinstance(r, SimReader)), None)
        self.camera = next((c for c in station.cameras if isinstance(c, SimCamera)), None)
        printer = station.printer.printer if station.printer is not None else None
        self.printer = printer if isinstance(printer, SimPrinter) else None
        self.last_qr: str | None = None
        self.cards = QListWidget()
        self.cards.setObjectName("cards")
        for card in site.cards:
            item = QListWidgetItem(f"{card.label}  ·  …{card.number[-4:]}")
            item.setData(Qt.ItemDataRole.UserRole, card)
            self.cards.addItem(item)
        self.cards.setCurrentRow(0)
        self.cards.itemDoubleClicked.connect(lambda _item: self.tap())
        self.tap_button = _button(self.tap)
        self.remove_button = _button(self.remove)
        self.qr_button = _button(self.show_qr)
        self.replay_button = _button(self.show_qr_again)
        self.reader_button = _button(self.toggle_reader, checkable=True)
        self.paper_button = _button(self.toggle_paper, checkable=True)
        self.network_button = _button(self.toggle_network, checkable=True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.people = QLabel()
        self.people.setWordWrap(True)
        self.people.setObjectName("muted")
        self.card_box, self.device_box = QGroupBox(), QGroupBox()
        cards = QVBoxLayout(self.card_box)
        for w in (self.cards, self.tap_button, self.remove_button, self.qr_button,
                  self.replay_button):
            cards.addWidget(w)
        devices = QVBoxLayout(self.device_box)
        for w in (self.reader_button, self.paper_button, self.network_button):
            devices.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addWidget(self.card_box, 1)
        layout.addWidget(self.device_box)
        layout.addWidget(self.note)
        layout.addWidget(self.people)
        self.cards.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.retranslate()

    def card(self) -> DemoCard:
        item = self.cards.currentItem() or self.cards.item(0)
        card = item.data(Qt.ItemDataRole.UserRole)
        assert isinstance(card, DemoCard)
        return card

    def tap(self) -> None:
        if self.reader is not None:
            self.reader.tap(self.card().uid)

    def remove(self) -> None:
        if self.reader is not None:
            self.reader.remove()

    def show_qr(self) -> None:
        card = self.card()
        self.ctx.worker.run(lambda: fresh_qr(self.site, card), self._show, self._failed)

    def _show(self, text: str) -> None:
        self.last_qr = text
        self.replay_button.setEnabled(True)
        if self.camera is not None:
            self.camera.show(text)

    def show_qr_again(self) -> None:
        """The same code once more: what a screenshot of a customer's code would be."""
        if self.last_qr is not None and self.camera is not None:
            self.camera.show(self.last_qr)

    def toggle_reader(self, unplugged: bool) -> None:
        if self.reader is not None:
            (self.reader.unplug if unplugged else self.reader.plug)()
        self.retranslate()

    def toggle_paper(self, out: bool) -> None:
        if self.printer is not None:
            self.printer.set_paper("out" if out else "ok")
        self.retranslate()

    def toggle_network(self, cut: bool) -> None:
        link, sync = self.site.link, self.ctx.station.sync
        self.ctx.worker.run(link.cut if cut else link.restore,
                            lambda _none: sync.sync_now() if sync is not None else None,
                            self._failed)
        self.retranslate()

    def _failed(self, exc: Exception) -> None:
        from ui.present import error_text

        self.note.setText(error_text(exc, self.ctx.lang))

    def title(self) -> str:
        return self.tr("Device simulator")

    def retranslate(self) -> None:
        dock = self.parent()
        if isinstance(dock, QDockWidget):
            dock.setWindowTitle(self.title())
        self.card_box.setTitle(self.tr("Demo cards"))
        self.device_box.setTitle(self.tr("Devices and network"))
        self.tap_button.setText(self.tr("Tap the card on the reader"))
        self.remove_button.setText(self.tr("Take the card away"))
        self.qr_button.setText(self.tr("Show its QR code to the camera"))
        self.replay_button.setText(self.tr("Show the same QR code again"))
        self.replay_button.setEnabled(self.last_qr is not None)
        self.reader_button.setText(self.tr("Plug the reader in") if self.reader_button.isChecked()
                                   else self.tr("Unplug the reader"))
        self.paper_button.setText(self.tr("Load paper") if self.paper_button.isChecked()
                                  else self.tr("Printer out of paper"))
        self.network_button.setText(self.tr("Restore the network")
                                    if self.network_button.isChecked()
                                    else self.tr("Cut the network"))
        self.people.setText(self.tr(
            "Cashier %1, PIN %2. Supervisor %3, PIN %4. PIN of the PIN card: %5.")
            .replace("%1", CASHIER).replace("%2", CASHIER_PIN).replace("%3", SUPERVISOR)
            .replace("%4", SUPERVISOR_PIN).replace("%5", CARD_PIN))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def _button(action: Callable[..., None], *, checkable: bool = False) -> QPushButton:
    button = QPushButton()
    button.setCheckable(checkable)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the cashier's focus stays where it is
    button.clicked.connect(action)
    return button


def attach_simulator(window: Any, station: Station, site: DemoSite) -> SimulatorPanel:
    """Put the panel beside `window`: a dock on a main window, else a window of its own."""
    panel = SimulatorPanel(window.ctx, station, site)
    if isinstance(window, QMainWindow):
        dock = QDockWidget(panel.title(), window)
        dock.setObjectName("simulator")
        dock.setWidget(panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    else:
        panel.setWindowTitle(panel.title())
        panel.setParent(window, Qt.WindowType.Tool)
        panel.show()
    window.simulator = panel
    return panel
