"""Demo data and a scripted walk through the terminal's operations.

`seed` makes a terminal with demo cards across programs (fuel with a general purse, phone
credit, shopping; one expiring soon, one frozen, one lost, one not yet activated, one with a
PIN), an issuer key, a cashier and a supervisor. The Qt demo (issue 5) runs on a demo site
(cardpos/demo_site.py: the same seed, plus a server it is enrolled with); `run_demo` walks
through a cashier's day headless, printing what a cashier would see (the scripted demo).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from cardpos import issuer, render
from terminal import admin
from terminal.credentials import CardNumber, NfcUid, QrCode
from terminal.limits import Limits
from terminal.luhn import check_digit
from terminal.model import Role
from terminal.services import Result, Shifts, Terminal, utc_now
from terminal.store import queries
from terminal.store.db import Store

CASHIER, CASHIER_PIN = "alice", "1111"
SUPERVISOR, SUPERVISOR_PIN = "sam", "9999"
CARD_PIN = "2468"
DEMO_KEY_ID = "demo-2026"


def demo_number(serial: int) -> str:
    body = f"6280{serial:011d}"
    return body + check_digit(body)


@dataclass(frozen=True)
class DemoCard:
    label: str
    number: str
    uid: str
    program: str
    purses: tuple[tuple[str, str], ...]  # (purse, balance in major units)
    expiry: date
    status: str
    pin: str = ""


def demo_cards(today: date) -> list[DemoCard]:
    far = today + timedelta(days=400)
    return [
        DemoCard("fuel + general", demo_number(1), "04A1B2C3D4E501", "fuel",
                 (("fuel", "80.00"), ("general", "20.00")), far, "active"),
        DemoCard("phone credit", demo_number(2), "04A1B2C3D4E502", "phone",
                 (("phone", "30.00"),), far, "active"),
        DemoCard("shopping, with PIN", demo_number(3), "04A1B2C3D4E503", "shopping",
                 (("general", "150.00"),), far, "active", CARD_PIN),
        DemoCard("shopping, expiring soon", demo_number(4), "04A1B2C3D4E504", "shopping",
                 (("general", "45.50"),), today + timedelta(days=5), "active"),
        DemoCard("fuel, frozen", demo_number(5), "04A1B2C3D4E505", "fuel",
                 (("fuel", "60.00"),), far, "frozen"),
        DemoCard("phone credit, reported lost", demo_number(6), "04A1B2C3D4E506", "phone",
                 (("phone", "25.00"),), far, "lost"),
        DemoCard("gift card, not activated", demo_number(7), "04A1B2C3D4E507", "shopping",
                 (("general", "0.00"),), far, "not_activated"),
    ]


def write_csv(path: Path, cards: list[DemoCard]) -> None:
    rows = ["number,uid,program,purse,balance,currency,expiry,status,pin"]
    rows += [f"{c.number},{c.uid},{c.program},{purse},{balance},EUR,{c.expiry.isoformat()},"
             f"{c.status},{c.pin}" for c in cards for purse, balance in c.purses]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Seeded:
    data: Path
    key: issuer.KeyFile
    cards: list[DemoCard]


def seed(data: Path, terminal_id: str = "DEMO-1", now: datetime | None = None, *,
         key: issuer.KeyFile | None = None) -> Seeded:
    """Create a demo terminal in `data` (which must not hold a store yet), trusting `key` — by
    default a new issuer key written to `issuer-key.json` (the demo site passes its server's
    signing key instead). The cards are also left in `demo-cards.csv`."""
    now = now or utc_now()
    store = admin.init_store(data, terminal_id, Limits(), now)
    try:
        key = key or issuer.generate_key_file(data / "issuer-key.json", DEMO_KEY_ID)
        admin.add_key(store, key.key_id, key.public_hex, now)
        cards = demo_cards(now.date())
        write_csv(data / "demo-cards.csv", cards)
        admin.import_card_file(store, data / "demo-cards.csv")
        admin.new_cashier(store, CASHIER, "Alice", Role.CASHIER, CASHIER_PIN)
        admin.new_cashier(store, SUPERVISOR, "Sam", Role.SUPERVISOR, SUPERVISOR_PIN)
    finally:
        store.close()
    return Seeded(data, key, cards)


def card_qr(conn: sqlite3.Connection, key: issuer.KeyFile, number: str, *, dynamic: bool,
            counter: int | None = None) -> str:
    """The QR text of card `number` signed with `key`, with the purse hints and expiry that the
    store read through `conn` holds (a dynamic code's counter: the time window's by default)."""
    return issuer.make_token(key, number, queries.load_card(conn, number=number),
                             dynamic=dynamic, counter=counter)


def run_demo(data: Path, lang: str) -> Iterator[str]:
    """Seed a terminal and walk through a cashier's day, yielding what the screen would show."""
    seeded = seed(data)
    store = Store.open(data)
    try:
        terminal, shifts = Terminal(store), Shifts(store)

        def show(title: str, result: Result) -> Iterator[str]:
            yield ""
            yield f"== {title}"
            yield from render.result_lines(result, lang, "EUR")

        decision, _ = shifts.open(CASHIER, CASHIER_PIN)
        yield f"Shift opened for {CASHIER}: {decision.outcome.value}"
        fuel, phone, pin_card, expiring, frozen, lost, gift = seeded.cards
        yield from show(f"Tap {fuel.label}", terminal.inquire(NfcUid(fuel.uid)))
        yield from show("Redeem 12.50 (fuel purse first)",
                        terminal.redeem(NfcUid(fuel.uid), 12_50))
        redeemed = terminal.redeem(NfcUid(phone.uid), 5_00)
        yield from show(f"Redeem 5.00 from {phone.label}", redeemed)
        yield from show(f"Tap {expiring.label}", terminal.inquire(NfcUid(expiring.uid)))
        yield from show(f"Tap {frozen.label}", terminal.inquire(NfcUid(frozen.uid)))
        yield from show(f"Tap {lost.label}", terminal.inquire(NfcUid(lost.uid)))
        yield from show(f"Redeem 20.00 from {pin_card.label}, no PIN",
                        terminal.redeem(NfcUid(pin_card.uid), 20_00))
        yield from show("... with a wrong PIN",
                        terminal.redeem(NfcUid(pin_card.uid), 20_00, pin="0000"))
        yield from show("... with the right PIN",
                        terminal.redeem(NfcUid(pin_card.uid), 20_00, pin=CARD_PIN))
        yield from show("Redeem 120.00 offline (over the per-transaction limit)",
                        terminal.redeem(NfcUid(pin_card.uid), 120_00, pin=CARD_PIN))
        qr = store.read(lambda conn: card_qr(conn, seeded.key, fuel.number, dynamic=True))
        yield from show("Customer shows a dynamic QR code; redeem 3.00",
                        terminal.redeem(QrCode(qr), 3_00))
        yield from show("The same QR code again (a screenshot)",
                        terminal.redeem(QrCode(qr), 3_00))
        yield from show(f"Activate {gift.label} with 25.00",
                        terminal.activate(NfcUid(gift.uid), amount=25_00))
        yield from show("Buyback quote for the expiring card",
                        terminal.quote(CardNumber(expiring.number)))
        assert redeemed.entry is not None
        yield from show("Void the phone-credit redemption (supervisor PIN)",
                        terminal.void(redeemed.entry.id, supervisor_pin=SUPERVISOR_PIN))
        decision, report = shifts.close(CASHIER_PIN)
        yield ""
        if report is not None:
            yield from render.z_lines(report)
        yield ""
        yield from render.verify_lines(admin.verify_journal(store))
    finally:
        store.close()
