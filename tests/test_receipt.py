"""Receipts are built from the committed entry alone, masked, and reprint identically."""

from __future__ import annotations

import pytest

from terminal import journal
from terminal.credentials import NfcUid
from terminal.receipt import build_receipt
from tests.conftest import SUPERVISOR_PIN, Till


@pytest.fixture
def card(till: Till) -> Till:
    till.import_rows("79927398713,04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,",
                     "79927398713,04A1B2C3,fuel,general,20.00,EUR,2027-12-31,active,")
    return till


def test_redemption_receipt(card: Till) -> None:
    entry = card.terminal.redeem(NfcUid("04A1B2C3"), 60_00).entry
    assert entry is not None
    receipt = build_receipt(entry, "Europe/Vienna", "en")
    assert receipt.card == "*******8713" and receipt.program == "fuel"
    assert receipt.changes == (("fuel", "-50.00 EUR"), ("general", "-10.00 EUR"))
    assert receipt.balances == (("fuel", "0.00 EUR"), ("general", "10.00 EUR"))
    assert receipt.at == "2026-06-01 14:00:00 CEST"
    assert receipt.support_code == f"cardpos:e/T1/{entry.seq}/{entry.id}/{entry.hash}"
    text = "\n".join(receipt.text_lines(42))
    assert "REDEMPTION" in text and "79927398713" not in text and entry.id in text
    assert all(len(line) <= 42 for line in receipt.text_lines(42))


def test_reprint_from_the_journal_is_the_same_but_marked(card: Till) -> None:
    first = card.terminal.redeem(NfcUid("04A1B2C3"), 5_00).entry
    assert first is not None
    card.terminal.redeem(NfcUid("04A1B2C3"), 7_00)  # later activity must not change the reprint
    again = card.store.read(lambda c: next(journal.entries(c, "id = ?", (first.id,))))
    original, copy = build_receipt(first, "UTC", "en"), build_receipt(again, "UTC", "en",
                                                                        copy=True)
    assert copy.balances == original.balances == (("fuel", "45.00 EUR"),
                                                   ("general", "20.00 EUR"))
    assert "*** COPY ***" in "\n".join(copy.text_lines())
    assert "COPY" not in "\n".join(original.text_lines())


def test_void_and_chinese(card: Till) -> None:
    entry = card.terminal.redeem(NfcUid("04A1B2C3"), 5_00).entry
    assert entry is not None
    void = card.terminal.void(entry.id, supervisor_pin=SUPERVISOR_PIN).entry
    assert void is not None
    receipt = build_receipt(void, "Asia/Shanghai", "zh_CN")
    assert receipt.title == "撤销凭条" and receipt.changes == (("fuel", "5.00 EUR"),)
    assert receipt.labels["balance"] == "交易后余额"


def test_no_receipt_for_a_shift_entry(card: Till) -> None:
    first = card.store.read(lambda c: next(journal.entries(c)))
    assert first.kind == "shift_open"
    with pytest.raises(ValueError):
        build_receipt(first, "UTC", "en")



