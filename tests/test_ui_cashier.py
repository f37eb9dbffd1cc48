"""The cashier window driven as a person would: keys, taps on the simulated reader, dialogs.

Every flow ends on what the cashier sees (banner, card panel, receipt preview) and on what the
store and the simulated printer hold, so a screen that lies about a commit fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton

from cardpos.demo import (
    CARD_PIN,
    CASHIER,
    CASHIER_PIN,
    SUPERVISOR,
    SUPERVISOR_PIN,
    DemoCard,
    Seeded,
)
from cardpos.station import Station
from terminal import journal
from terminal.receipt import Receipt
from terminal.store import queries
from tests.ui_fixtures import WAIT_MS, Sims
from ui.cashier.window import CashierWindow

pytestmark = pytest.mark.usefixtures("qapp")


@pytest.fixture
def window(qtbot: Any, ctx: Any) -> CashierWindow:
    w = CashierWindow(ctx)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    w.begin()
    qtbot.waitUntil(lambda: not ctx.worker.busy, timeout=WAIT_MS)
    return w


def log_in(qtbot: Any, w: CashierWindow, cashier: str = CASHIER, pin: str = CASHIER_PIN) -> None:
    qtbot.keyClicks(w.login.cashier, cashier)
    qtbot.keyClicks(w.login.pin, pin)
    qtbot.keyClick(w.login.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.sale, timeout=WAIT_MS)


def type_into(qtbot: Any, field: Any, text: str) -> None:
    """Type as a test does (instantly), then let the wedge filter hand the keys on: a burst
    this fast is held back for up to 30 ms in case it is a scanner."""
    qtbot.keyClicks(field, text)
    qtbot.waitUntil(lambda: field.text().endswith(text), timeout=WAIT_MS)


def settle(qtbot: Any, w: CashierWindow) -> None:
    qtbot.waitUntil(lambda: not w.ctx.worker.busy, timeout=WAIT_MS)


def tap(qtbot: Any, w: CashierWindow, sims: Sims, card: DemoCard) -> None:
    sims.reader.tap(card.uid)
    qtbot.waitUntil(lambda: w.sale.card is not None or w.sale.result is not None
                    or w.sale.error is not None, timeout=WAIT_MS)
    settle(qtbot, w)


def redeem_by_keys(qtbot: Any, w: CashierWindow, sims: Sims, card: DemoCard, amount: str
                   ) -> None:
    """Tap, type the amount, Enter, and wait for the receipt: a cashier's redemption."""
    tap(qtbot, w, sims, card)
    qtbot.keyClicks(w.sale.entry, amount)
    qtbot.keyClick(w.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.sale.receipt is not None, timeout=WAIT_MS)


def balance(station: Station, number: str) -> int:
    card = station.store.read(lambda conn: queries.load_card(conn, number=number))
    assert card is not None
    return sum(p.balance for p in card.purses)


def money_entries(station: Station) -> list[journal.Entry]:
    return station.store.read(lambda conn: list(journal.entries(
        conn, "kind IN ('redeem', 'void', 'topup', 'activate', 'buyback')")))


def test_tap_amount_enter_is_approved_with_receipt(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    phone = demo_cards["phone"]
    tap(qtbot, window, sims, phone)
    assert window.sale.number.text().endswith(phone.number[-4:])
    assert "30.00 EUR" in window.sale.purses.text()
    # after the tap: "5", Enter — two keypresses
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_5)
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.receipt is not None, timeout=WAIT_MS)
    assert window.sale.banner.text() == "Redeemed 5.00 EUR"
    assert "25.00 EUR" in window.sale.purses.text()
    assert balance(station, phone.number) == 25_00
    [entry] = money_entries(station)
    assert entry.kind == "redeem" and entry.id in window.sale.preview.toPlainText()
    printed = sims.printer.wait_printed(1, timeout=5)
    assert isinstance(printed[0], Receipt) and printed[0].entry_id == entry.id


def test_declined_card_shows_the_reason_and_writes_nothing(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    tap(qtbot, window, sims, demo_cards["lost"])
    assert "reported lost" in window.sale.reasons.text()
    assert "Keep the card" in window.sale.reasons.text()
    qtbot.keyClicks(window.sale.entry, "5")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    settle(qtbot, window)
    assert window.sale.banner.text() == "Declined."
    assert money_entries(station) == []


def test_pin_card_asks_for_the_pin_and_locks_after_wrong_ones(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    card = demo_cards["pin_card"]
    tap(qtbot, window, sims, card)
    qtbot.keyClicks(window.sale.entry, "20")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    for attempt in range(3):
        qtbot.waitUntil(lambda: window.sale.asker.current is not None, timeout=WAIT_MS)
        dialog = window.sale.asker.current
        assert dialog is not None
        if attempt:
            assert "Wrong PIN" in dialog._message.text()
        for digit in "0000":
            qtbot.mouseClick(dialog.findChild(QPushButton, f"pad_{digit}"),
                             Qt.MouseButton.LeftButton)
        dialog.accept()
        qtbot.waitUntil(lambda d=dialog: window.sale.asker.current is not d, timeout=WAIT_MS)
        settle(qtbot, window)
    assert window.sale.asker.current is None
    assert "locked" in window.sale.reasons.text()
    assert balance(station, card.number) == 150_00
    assert money_entries(station) == []


def test_right_pin_redeems(qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
                           demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    card = demo_cards["pin_card"]
    tap(qtbot, window, sims, card)
    qtbot.keyClicks(window.sale.entry, "20")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.asker.current is not None, timeout=WAIT_MS)
    dialog = window.sale.asker.current
    assert dialog is not None
    qtbot.keyClicks(dialog.field, CARD_PIN)
    qtbot.keyClick(dialog.field, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.receipt is not None, timeout=WAIT_MS)
    assert balance(station, card.number) == 130_00


def test_void_needs_a_supervisor(qtbot: Any, window: CashierWindow, sims: Sims,
                                 station: Station, demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    phone = demo_cards["phone"]
    tap(qtbot, window, sims, phone)
    qtbot.keyClicks(window.sale.entry, "7")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.receipt is not None, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: window.void_dialog is not None and window.void_dialog.isVisible(),
                    timeout=WAIT_MS)
    assert window.void_dialog is not None
    assert window.void_dialog.list.count() == 1
    window.void_dialog.accept()
    qtbot.waitUntil(lambda: window.sale.asker.current is not None, timeout=WAIT_MS)
    dialog = window.sale.asker.current
    assert dialog is not None
    qtbot.keyClicks(dialog.who, SUPERVISOR)
    qtbot.keyClicks(dialog.field, SUPERVISOR_PIN)
    dialog.accept()
    qtbot.waitUntil(lambda: window.sale.banner.text().startswith("Voided"), timeout=WAIT_MS)
    assert balance(station, phone.number) == 30_00
    assert [e.kind for e in money_entries(station)] == ["redeem", "void"]


def test_wedge_scan_anywhere_presents_the_card(
        qtbot: Any, window: CashierWindow, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    fuel = demo_cards["fuel"]
    # a scanner "types" the number fast and ends with Enter, while the focus is elsewhere
    window.sale.preview.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    window.sale.preview.setFocus()
    QApplication.processEvents()
    qtbot.keyClicks(window.sale.preview, fuel.number)
    qtbot.keyClick(window.sale.preview, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.card is not None, timeout=WAIT_MS)
    assert window.sale.number.text().endswith(fuel.number[-4:])
    assert window.sale.entry.text() == ""


def test_language_switch_retranslates_the_screen(
        qtbot: Any, window: CashierWindow, sims: Sims, demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    tap(qtbot, window, sims, demo_cards["lost"])
    english = window.sale.reasons.text()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.ctx.lang == "zh_CN"
    assert window.sale.reasons.text() != english
    assert "挂失" in window.sale.reasons.text()
    assert window.sale.entry_label.text() == "兑换金额（EUR）"


# --- with a server: the demo site (embedded uvicorn + SQLite, a cuttable link) ----------------


@pytest.fixture
def site_station(tmp_path: Any) -> Any:
    from cardpos.demo_site import start_demo_site
    from cardpos.station import StationConfig

    site = start_demo_site(tmp_path / "site")
    st = Station.open(StationConfig(site.data, readers=("sim",), cameras=("sim",),
                                    printer="sim", voice=None, sync_interval=0.2))
    yield site, st
    st.stop()
    site.stop()


def test_offline_badge_when_the_server_goes_away_and_online_redeem_before(
        qtbot: Any, site_station: Any) -> None:
    from ui.context import UiContext
    from ui.i18n import Language

    site, st = site_station
    ctx = UiContext(st, Language("en"), st.limits())
    ctx.start()
    try:
        w = CashierWindow(ctx)
        qtbot.addWidget(w)
        w.show()
        w.begin()
        qtbot.waitUntil(lambda: w.status_line.network.text() == "Online", timeout=WAIT_MS)
        settle(qtbot, w)
        log_in(qtbot, w)
        reader = st.readers[0]
        phone = site.cards[1]
        reader.tap(phone.uid)
        qtbot.waitUntil(lambda: w.sale.card is not None, timeout=WAIT_MS)
        settle(qtbot, w)
        qtbot.keyClicks(w.sale.entry, "4")
        qtbot.keyClick(w.sale.entry, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: w.sale.receipt is not None, timeout=WAIT_MS)
        [entry] = money_entries(st)
        assert entry.body["online"] is True  # the server held the money first
        site.link.cut()
        qtbot.waitUntil(lambda: w.status_line.network.text() == "Offline", timeout=WAIT_MS)
        assert "Offline" in w.status_line.network.text()
        site.link.restore()
        qtbot.waitUntil(lambda: w.status_line.network.text() == "Online", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: w.status_line.pending.text() == "To sync: 0", timeout=WAIT_MS)
    finally:
        ctx.stop()


def test_shift_close_shows_the_z_report_and_returns_to_the_login(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    redeem_by_keys(qtbot, window, sims, demo_cards["phone"], "3")
    qtbot.keyClick(window, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: window.shift_dialog is not None, timeout=WAIT_MS)
    dialog = window.shift_dialog
    assert dialog is not None and "(open)" in dialog.text.toPlainText()
    type_into(qtbot, dialog.pin, "0000")  # a wrong PIN keeps the shift open
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Wrong PIN" in dialog.message.text(), timeout=WAIT_MS)
    assert station.shifts.current() is not None
    type_into(qtbot, dialog.pin, CASHIER_PIN)
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.shift_dialog is not dialog, timeout=WAIT_MS)
    final = window.shift_dialog
    assert final is not None
    z = final.text.toPlainText()
    assert "(open)" not in z and "redeem" in z and "-3.00 EUR" in z
    qtbot.mouseClick(final.print_button, Qt.MouseButton.LeftButton)
    slips = sims.printer.wait_printed(2, timeout=5)  # the receipt, then the Z report
    assert not isinstance(slips[1], Receipt) and slips[1].title == "Z report"
    final.accept()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.login, timeout=WAIT_MS)
    assert station.shifts.current() is None


def test_reprint_is_marked_as_a_copy(qtbot: Any, window: CashierWindow, sims: Sims,
                                     demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    redeem_by_keys(qtbot, window, sims, demo_cards["phone"], "2")
    qtbot.keyClick(window, Qt.Key.Key_F8)
    first, again = sims.printer.wait_printed(2, timeout=5)
    assert isinstance(first, Receipt) and isinstance(again, Receipt)
    assert (first.copy, again.copy) == (False, True) and first.entry_id == again.entry_id
    assert "*** COPY ***" in window.sale.preview.toPlainText()


def test_printer_out_of_paper_keeps_the_sale_and_says_so(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    sims.printer.set_paper("out")
    tap(qtbot, window, sims, demo_cards["phone"])
    qtbot.keyClicks(window.sale.entry, "2")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "out of paper" in window.sale.print_state.text(), timeout=WAIT_MS)
    assert "F8" in window.sale.print_state.text()
    assert balance(station, demo_cards["phone"].number) == 28_00
    qtbot.waitUntil(lambda: "out of paper" in window.status_line.hint.text(), timeout=WAIT_MS)


def test_qr_code_from_the_camera_and_its_replay(
        qtbot: Any, window: CashierWindow, sims: Sims, station: Station, ui_seeded: Seeded,
        demo_cards: dict[str, DemoCard]) -> None:
    from cardpos.demo import card_qr

    log_in(qtbot, window)
    fuel = demo_cards["fuel"]
    qr = station.store.read(lambda conn: card_qr(conn, ui_seeded.key, fuel.number,
                                                 dynamic=True, counter=7))
    sims.camera.show(qr)
    qtbot.waitUntil(lambda: window.sale.card is not None, timeout=WAIT_MS)
    settle(qtbot, window)
    qtbot.keyClicks(window.sale.entry, "1")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.receipt is not None, timeout=WAIT_MS)
    sims.camera.show(qr)  # the same code again: a screenshot of it
    qtbot.waitUntil(lambda: window.sale.result is not None and window.sale.receipt is None,
                    timeout=WAIT_MS)
    settle(qtbot, window)
    assert "already been used" in window.sale.reasons.text()
    assert window.sale.card is None  # nothing to take money from
    qtbot.keyClicks(window.sale.entry, "1")  # an amount typed anyway: told to present a card
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    settle(qtbot, window)
    assert window.sale.banner.text().startswith("No card yet")
    assert len(money_entries(station)) == 1


def test_top_up_and_activate_modes(qtbot: Any, window: CashierWindow, sims: Sims,
                                   station: Station, demo_cards: dict[str, DemoCard]) -> None:
    log_in(qtbot, window)
    gift = demo_cards["gift"]
    tap(qtbot, window, sims, gift)
    assert "not activated" in window.sale.details.text()
    qtbot.keyClick(window, Qt.Key.Key_F6)
    assert window.sale.entry_label.text().startswith("First amount to load")
    qtbot.keyClicks(window.sale.entry, "25")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.banner.text() == "Activated with 25.00 EUR",
                    timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.keyClicks(window.sale.entry, "10")
    qtbot.keyClick(window.sale.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sale.banner.text() == "Topped up 10.00 EUR", timeout=WAIT_MS)
    assert balance(station, gift.number) == 35_00
    assert window.sale.entry_label.text() == "Amount to redeem (EUR)"  # back to the default


def test_sync_progress_shows_and_can_be_stopped(qtbot: Any, window: CashierWindow) -> None:
    from dataclasses import replace

    from sync.client import SyncStatus

    stopped: list[bool] = []
    window.status_line.cancel_sync.connect(lambda: stopped.append(True))
    status = SyncStatus(True, 0, None, 0, None)
    window.status_line.show_sync(replace(status, pulling=120_000))
    assert window.status_line.progress.text() == "Receiving cards: 120,000"
    assert not window.status_line.cancel.isHidden()
    qtbot.mouseClick(window.status_line.cancel, Qt.MouseButton.LeftButton)
    assert stopped == [True]
    window.status_line.show_sync(status)
    assert window.status_line.cancel.isHidden()
