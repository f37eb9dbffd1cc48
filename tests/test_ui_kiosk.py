"""The kiosk window driven as a card holder (and the staff) would: taps on the simulated
reader, codes shown to the simulated camera, touches on its buttons.

Each flow ends on what the screen shows, what was said aloud (a recording voice stands in for
espeak, which has its own tests), and what the store and the simulated printer hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QDialog, QPushButton, QWidget

from cardpos.demo import CARD_PIN, SUPERVISOR, SUPERVISOR_PIN, DemoCard, Seeded, card_qr
from cardpos.station import Station
from terminal import admin
from terminal.credentials import NfcUid
from terminal.receipt import Receipt
from terminal.services import utc_now
from terminal.store import queries
from tests.ui_fixtures import WAIT_MS, Sims, open_shift
from ui import theme
from ui.kiosk.window import KioskWindow

pytestmark = pytest.mark.usefixtures("qapp")


class RecordingVoice:
    """Stands in for the station's voice: keeps what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def say(self, text: str, lang: str) -> None:
        self.said.append((text, lang))


@pytest.fixture
def voice(station: Station) -> RecordingVoice:
    recorder = RecordingVoice()
    station.voice = recorder
    return recorder


@pytest.fixture
def redeem_ctx(qapp: Any, station: Station) -> Iterator[Any]:
    """A context whose limits allow self-redemption, with the attendant's shift open."""
    from ui.context import UiContext
    from ui.i18n import Language

    admin.set_limit(station.store, "kiosk_self_redeem", "true", utc_now())
    open_shift(station)
    context = UiContext(station, Language("en"), station.limits())
    context.start()
    yield context
    context.language.set("en")
    context.stop()


@contextmanager
def kiosk(qtbot: Any, ctx: Any, idle_ms: int | None = None) -> Iterator[KioskWindow]:
    """A shown kiosk window on its start screen; unlocked and closed afterwards."""
    w = KioskWindow(ctx, idle_ms=idle_ms)
    qtbot.addWidget(w)
    w.resize(1080, 1920)
    w.show()
    w.begin()
    settle(qtbot, w)
    try:
        yield w
    finally:
        w.unlocked = True  # the test is over: let it close (stops its idle timer)
        w.close()


@pytest.fixture
def window(qtbot: Any, ctx: Any, voice: RecordingVoice) -> Iterator[KioskWindow]:
    with kiosk(qtbot, ctx) as w:
        yield w


@pytest.fixture
def redeem_window(qtbot: Any, redeem_ctx: Any, voice: RecordingVoice
                  ) -> Iterator[KioskWindow]:
    with kiosk(qtbot, redeem_ctx) as w:
        yield w


def settle(qtbot: Any, w: KioskWindow) -> None:
    qtbot.waitUntil(lambda: not w.ctx.worker.busy, timeout=WAIT_MS)


def click(qtbot: Any, button: QPushButton) -> None:
    assert button.isVisible(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def tap(qtbot: Any, w: KioskWindow, sims: Sims, card: DemoCard) -> None:
    """Tap a card on the start (or card) screen and wait for its card screen."""
    before = w.result
    sims.reader.tap(card.uid)
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.card_page
                    and w.result is not None and w.result is not before, timeout=WAIT_MS)
    settle(qtbot, w)


def balance(station: Station, number: str) -> int:
    card = station.store.read(lambda conn: queries.load_card(conn, number=number))
    assert card is not None
    return sum(p.balance for p in card.purses)


def test_tap_shows_the_balance_and_says_it(
        qtbot: Any, window: KioskWindow, sims: Sims, station: Station, voice: RecordingVoice,
        demo_cards: dict[str, DemoCard]) -> None:
    fuel = demo_cards["fuel"]
    tap(qtbot, window, sims, fuel)
    page = window.card_page
    assert page.balance.text() == "100.00 EUR"
    assert "80.00 EUR" in page.purses.text() and "20.00 EUR" in page.purses.text()
    assert page.expiry.text() == f"Valid until {fuel.expiry.isoformat()}. 400 days left."
    assert page.number.text().endswith(fuel.number[-4:])
    assert not page.banner.isVisible()
    quote = station.terminal.quote(NfcUid(fuel.uid)).quote
    assert quote is not None
    assert page.quote.text().startswith(
        f"We can buy this card back for {quote.price // 100}.{quote.price % 100:02d} EUR")
    assert window.spoken == "Your balance is 100.00 EUR."
    assert voice.said == [("Your balance is 100.00 EUR.", "en")]
    click(qtbot, page.speak_button)
    assert voice.said[-1] == ("Your balance is 100.00 EUR.", "en") and len(voice.said) == 2
    assert not page.use_button.isVisible()  # self-redemption is off by default
    click(qtbot, page.done_button)
    assert window.pages.currentWidget() is window.start
    assert window.result is None and window.credential is None


def test_expiring_card_warns(qtbot: Any, window: KioskWindow, sims: Sims,
                             demo_cards: dict[str, DemoCard]) -> None:
    tap(qtbot, window, sims, demo_cards["expiring"])
    assert window.card_page.warnings.text() == "This card expires in 5 days."
    assert window.spoken == "Your balance is 45.50 EUR. This card expires in 5 days."


def test_camera_code_on_the_start_screen_checks_the_card(
        qtbot: Any, window: KioskWindow, sims: Sims, ui_seeded: Seeded, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    phone = demo_cards["phone"]
    code = station.store.read(lambda conn: card_qr(conn, ui_seeded.key, phone.number,
                                                   dynamic=False))
    sims.camera.show(code)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.card_page, timeout=WAIT_MS)
    assert window.card_page.balance.text() == "30.00 EUR"


def test_a_printed_number_is_not_accepted(
        qtbot: Any, window: KioskWindow, sims: Sims, demo_cards: dict[str, DemoCard]) -> None:
    sims.camera.show(demo_cards["phone"].number)  # a barcode of the number: weak proof
    qtbot.waitUntil(lambda: window.result is not None, timeout=WAIT_MS)
    assert window.card is None
    assert window.card_page.banner.text() == "This code cannot be read."
    assert window.card_page.balance.text() == ""


def test_frozen_card_says_so_and_lost_card_sends_to_staff(
        qtbot: Any, window: KioskWindow, sims: Sims, demo_cards: dict[str, DemoCard]) -> None:
    tap(qtbot, window, sims, demo_cards["frozen"])
    page = window.card_page
    assert page.banner.text() == "This card is frozen. Please contact the issuer."
    assert page.balance.text() == "60.00 EUR"
    assert page.quote.text() == ""
    tap(qtbot, window, sims, demo_cards["lost"])  # a new tap on the card screen
    lost = "This card was reported lost. Please keep it and ask a member of staff."
    assert page.banner.text() == lost
    assert not page.balance.isVisible() and page.expiry.text() == ""
    assert window.spoken == f"Declined. {lost}"


def test_empty_card_shows_zero_without_an_offer(
        qtbot: Any, window: KioskWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    phone = demo_cards["phone"]
    open_shift(station)
    assert station.terminal.redeem(NfcUid(phone.uid), 30_00).approved
    tap(qtbot, window, sims, phone)  # the quote says nothing_to_redeem: an inquiry instead
    assert window.result is not None and window.result.approved
    assert window.card_page.balance.text() == "0.00 EUR"
    assert not window.card_page.banner.isVisible()
    assert window.card_page.quote.text() == ""


def test_use_my_card_needs_the_limit_and_an_open_shift(
        qtbot: Any, window: KioskWindow, station: Station) -> None:
    assert not window.start.use_button.isVisible()  # off by default, even...
    open_shift(station)
    window.reset()
    settle(qtbot, window)
    assert window.shift_open
    assert not window.start.use_button.isVisible()  # ...with a shift open


def test_self_redeem_with_pin_prints_a_receipt(
        qtbot: Any, redeem_window: KioskWindow, sims: Sims, station: Station,
        voice: RecordingVoice, demo_cards: dict[str, DemoCard]) -> None:
    w = redeem_window
    card = demo_cards["pin_card"]
    click(qtbot, w.start.use_button)
    assert w.pages.currentWidget() is w.present_page
    sims.reader.tap(card.uid)
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.amount_page, timeout=WAIT_MS)
    assert [b.text() for b in w.amount_page.presets.values()] == [
        "5.00 EUR", "10.00 EUR", "20.00 EUR", "50.00 EUR"]
    click(qtbot, w.amount_page.presets[20_00])
    assert w.pages.currentWidget() is w.confirm_page
    assert w.confirm_page.question.text() == f"Take 20.00 EUR from card ****{card.number[-4:]}?"
    click(qtbot, w.confirm_page.confirm_button)
    qtbot.waitUntil(lambda: w.asker.current is not None, timeout=WAIT_MS)
    dialog = w.asker.current
    assert dialog is not None and dialog._message.text() == "Please enter the PIN."
    for digit in CARD_PIN:
        qtbot.mouseClick(dialog.findChild(QPushButton, f"pad_{digit}"),
                         Qt.MouseButton.LeftButton)
    dialog.accept()
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.done_page, timeout=WAIT_MS)
    assert w.done_page.banner.text() == "Approved."
    assert w.done_page.balance.text() == "130.00 EUR"
    assert w.spoken == "Approved. 20.00 EUR was taken from your card. Your balance is now " \
                       "130.00 EUR."
    assert voice.said[-1] == (w.spoken, "en")
    assert balance(station, card.number) == 130_00
    printed = sims.printer.wait_printed(1, timeout=5)
    assert w.outcome is not None and w.outcome.entry is not None
    assert [r.entry_id if isinstance(r, Receipt) else r for r in printed] == [w.outcome.entry.id]
    qtbot.waitUntil(lambda: w.done_page.receipt.text() == "Please take your receipt.",
                    timeout=WAIT_MS)


def test_other_amount_on_the_pad_beyond_the_balance_is_declined(
        qtbot: Any, redeem_window: KioskWindow, sims: Sims, station: Station,
        demo_cards: dict[str, DemoCard]) -> None:
    w = redeem_window
    phone = demo_cards["phone"]
    tap(qtbot, w, sims, phone)  # check first, then "Use this card"
    click(qtbot, w.card_page.use_button)
    assert w.pages.currentWidget() is w.amount_page
    assert sorted(w.amount_page.presets) == [5_00, 10_00, 20_00]  # no 50: more than 30.00
    for key in "45":
        click(qtbot, w.amount_page.keys[key])
    click(qtbot, w.amount_page.ok_button)
    assert w.confirm_page.question.text().startswith("Take 45.00 EUR")
    click(qtbot, w.confirm_page.confirm_button)
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.done_page, timeout=WAIT_MS)
    assert w.done_page.banner.text() == "Declined."
    assert "Not enough balance: 30.00 available." in w.done_page.details.text()
    assert w.spoken == "Declined. Not enough balance: 30.00 available."
    assert balance(station, phone.number) == 30_00
    assert sims.printer.printed == []


def test_idle_returns_to_start_and_forgets_the_card(
        qtbot: Any, ctx: Any, sims: Sims, voice: RecordingVoice,
        demo_cards: dict[str, DemoCard]) -> None:
    with kiosk(qtbot, ctx, idle_ms=300) as w:
        tap(qtbot, w, sims, demo_cards["fuel"])
        assert w.card_page.balance.text() == "100.00 EUR"
        qtbot.waitUntil(lambda: w.pages.currentWidget() is w.start, timeout=WAIT_MS)
        assert (w.credential, w.result, w.card, w.spoken) == (None, None, None, None)
        assert w.card_page.balance.text() == ""


def test_idle_closes_the_pin_question_and_takes_nothing(
        qtbot: Any, redeem_ctx: Any, sims: Sims, station: Station, voice: RecordingVoice,
        demo_cards: dict[str, DemoCard]) -> None:
    card = demo_cards["pin_card"]
    with kiosk(qtbot, redeem_ctx, idle_ms=60_000) as w:
        tap(qtbot, w, sims, card)
        click(qtbot, w.card_page.use_button)
        click(qtbot, w.amount_page.presets[10_00])
        click(qtbot, w.confirm_page.confirm_button)
        qtbot.waitUntil(lambda: w.asker.current is not None, timeout=WAIT_MS)
        w.watch.set_interval(200)  # the holder walks away at the PIN
        w.watch.poke()
        qtbot.waitUntil(lambda: w.pages.currentWidget() is w.start, timeout=WAIT_MS)
        assert w.asker.current is None
        assert [d for d in w.findChildren(QDialog) if d.isVisible()] == []
        assert w.outcome is None and w.amount is None
        settle(qtbot, w)
        assert balance(station, card.number) == 150_00


def test_closing_needs_a_supervisor(qtbot: Any, window: KioskWindow, station: Station) -> None:
    assert not window.close()  # Alt+F4, the window manager: refused
    assert window.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Q,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = window.lock_asker.current
    assert dialog is not None
    qtbot.keyClicks(dialog.who, SUPERVISOR)
    qtbot.keyClicks(dialog.field, "0000")
    dialog.accept()
    qtbot.waitUntil(lambda: window.lock_asker.current is not None
                    and window.lock_asker.current is not dialog, timeout=WAIT_MS)
    assert window.lock_message == "Wrong PIN. 2 tries left."
    assert window.isVisible() and not window.unlocked
    again = window.lock_asker.current
    assert again is not None
    qtbot.keyClicks(again.who, SUPERVISOR)
    qtbot.keyClicks(again.field, SUPERVISOR_PIN)
    again.accept()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
    assert window.unlocked


def test_five_taps_in_the_corner_ask_for_a_supervisor(qtbot: Any, window: KioskWindow) -> None:
    for _ in range(4):
        qtbot.mouseClick(window, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert window.lock_asker.current is None
    qtbot.mouseClick(window, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    dialog = window.lock_asker.current
    assert dialog is not None
    dialog.reject()
    assert window.isVisible() and not window.unlocked


def test_language_button_switches_the_screen(
        qtbot: Any, window: KioskWindow, sims: Sims, demo_cards: dict[str, DemoCard]) -> None:
    assert window.start.language_button.text() == "中文"
    click(qtbot, window.start.language_button)
    assert window.ctx.lang == "zh_CN"
    assert window.start.title.text() == "请刷卡或出示二维码"
    assert window.start.check_button.text() == "查询我的卡"
    assert window.start.language_button.text() == "English"
    tap(qtbot, window, sims, demo_cards["lost"])
    assert window.card_page.banner.text() == "这张卡已挂失。请保留卡片并咨询工作人员。"
    assert window.card_page.done_button.text() == "完成"
    window.ctx.language.set("en")
    assert window.card_page.banner.text().startswith("This card was reported lost.")


def _small_buttons(page: QWidget) -> list[str]:
    QApplication.processEvents()
    return [f"{b.text()!r} {b.width()}x{b.height()}" for b in page.findChildren(QPushButton)
            if b.isVisible() and (b.width() < theme.MIN_TOUCH or b.height() < theme.MIN_TOUCH)]


@pytest.mark.parametrize("size", [(1080, 1920), (1920, 1080)])
def test_every_touch_target_is_big_enough(
        qtbot: Any, redeem_window: KioskWindow, sims: Sims, size: tuple[int, int],
        demo_cards: dict[str, DemoCard]) -> None:
    w = redeem_window
    w.resize(*size)
    assert (w.width(), w.height()) == size  # the pages fit the screen in either orientation
    assert _small_buttons(w.start) == []
    click(qtbot, w.start.check_button)
    assert _small_buttons(w.present_page) == []
    tap(qtbot, w, sims, demo_cards["pin_card"])
    assert _small_buttons(w.card_page) == []
    click(qtbot, w.card_page.use_button)
    assert _small_buttons(w.amount_page) == []
    click(qtbot, w.amount_page.presets[5_00])
    assert _small_buttons(w.confirm_page) == []
    click(qtbot, w.confirm_page.confirm_button)
    qtbot.waitUntil(lambda: w.asker.current is not None, timeout=WAIT_MS)
    assert w.asker.current is not None and _small_buttons(w.asker.current) == []
    w.asker.current.reject()  # cancelled at the PIN: back to the start, nothing taken
    qtbot.waitUntil(lambda: w.pages.currentWidget() is w.start, timeout=WAIT_MS)
    w.done_page.show_result(None, "x")
    w.pages.setCurrentWidget(w.done_page)
    assert _small_buttons(w.done_page) == []
