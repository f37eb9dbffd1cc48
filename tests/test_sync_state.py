"""The terminal's sync state: outbox, acknowledgements and pulled pages, on a real store."""

from __future__ import annotations

from typing import Any

import pytest

from terminal import sync_state
from terminal.credentials import NfcUid
from terminal.reasons import Reason
from terminal.store import queries
from tests.conftest import SUPERVISOR_PIN, Till

FUEL = "79927398713"
UID = NfcUid("04A1B2C3")


@pytest.fixture
def card(till: Till) -> Till:
    till.import_rows(f"{FUEL},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,")
    return till


def page(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cursor": 7, "reset": False, "more": False, "cards": [],
                            "denylist": [], "keys": [], "limits": None, "prices": None}
    body.update(changes)
    return {**body, "checksum": sync_state.checksum(body)}


def server_card(balance: int, status: str = "active") -> dict[str, Any]:
    return {"number": FUEL, "uid": "04A1B2C3", "program": "fuel", "status": status,
            "expiry": "2027-12-31", "pin_hash": None,
            "purses": [{"name": "fuel", "currency": "EUR", "balance": balance}]}


def write(till: Till, job: Any) -> Any:
    return till.store.write(job)


def test_outbox_is_everything_after_the_acknowledgement(card: Till) -> None:
    for amount in (1_00, 2_00, 3_00):
        assert card.terminal.redeem(UID, amount).approved
    out = card.store.read(sync_state.outbox)
    assert [e["seq"] for e in out] == [1, 2, 3, 4] and all("hash" in e for e in out)
    left = write(card, lambda c: sync_state.record_push(c, 2, card.clock()))
    assert left == 2
    assert [e["seq"] for e in card.store.read(sync_state.outbox)] == [3, 4]
    with pytest.raises(sync_state.SyncError):
        write(card, lambda c: sync_state.record_push(c, 99, card.clock()))


def test_acknowledged_spend_no_longer_counts_against_offline_limits(card: Till) -> None:
    card.store.write(lambda c: queries.save_limits(
        c, queries.load_limits(c).with_setting("offline_terminal_total", "1500")))
    assert card.terminal.redeem(UID, 10_00).approved
    assert card.terminal.redeem(UID, 6_00).decision.reasons == (Reason.OFFLINE_LIMIT_TERMINAL,)
    card.clock.advance(hours=80)  # too long offline ...
    assert card.terminal.redeem(UID, 1).decision.reasons == (Reason.OFFLINE_TOO_LONG,)
    write(card, lambda c: sync_state.record_push(c, 2, card.clock()))  # ... until a sync
    assert card.store.read(queries.offline_total) == 0
    assert card.terminal.redeem(UID, 6_00).approved
    assert card.store.read(queries.offline_total) == 6_00


def test_pending_void_gives_back_exposure_of_a_pending_debit(card: Till) -> None:
    first = card.terminal.redeem(UID, 10_00).entry
    assert first is not None
    card.terminal.void(first.id, supervisor_pin=SUPERVISOR_PIN)
    card.terminal.redeem(UID, 4_00)
    write(card, lambda c: sync_state.record_push(c, 1, card.clock()))  # only shift_open acked
    assert card.store.read(queries.offline_total) == 4_00
    days = card.store.read(lambda c: c.execute("SELECT card, amount FROM card_day_spend"
                                               ).fetchall())
    assert days == [(FUEL, 4_00)]


def test_pulled_balance_adds_this_terminals_pending_entries(card: Till) -> None:
    assert card.terminal.redeem(UID, 10_00).approved  # pending: the server has not seen it
    # The server says 35.00 (another terminal spent 15.00); ours is still on top of it.
    summary = write(card, lambda c: sync_state.apply_pull(c, page(cards=[server_card(35_00)])))
    assert summary.cards == 1 and summary.cursor == 7
    assert card.terminal.inquire(UID).card.purses[0].balance == 25_00  # type: ignore[union-attr]
    write(card, lambda c: sync_state.record_push(c, 2, card.clock()))
    # Now the server has applied our 10.00 as well: its balance is 25.00, pending is empty.
    write(card, lambda c: sync_state.apply_pull(c, page(cursor=8, cards=[server_card(25_00)])))
    assert card.terminal.inquire(UID).card.purses[0].balance == 25_00  # type: ignore[union-attr]
    assert card.store.read(lambda c: queries.get_meta(c, "sync_cursor")) == "8"


def test_denylist_keys_limits_and_prices_arrive(card: Till) -> None:
    write(card, lambda c: sync_state.apply_pull(c, page(
        denylist=[{"card": FUEL, "reason": "overspend", "listed": True}],
        keys=[{"key_id": "k1", "public_key_hex": "11" * 32, "revoked": False}],
        limits={"currency": "EUR", "offline_per_transaction": 5_00},
        prices={"seasons": [], "default_rate_bp": 9000, "expiry_brackets": [],
                "balance_brackets": []})))
    assert card.terminal.inquire(UID).decision.reasons == (Reason.DENYLISTED,)
    assert card.store.read(queries.public_keys) == {"k1": bytes.fromhex("11" * 32)}
    assert card.store.read(queries.load_limits).offline_per_transaction == 5_00
    write(card, lambda c: sync_state.apply_pull(c, page(
        denylist=[{"card": FUEL, "reason": "", "listed": False}],
        keys=[{"key_id": "k1", "public_key_hex": "11" * 32, "revoked": True}])))
    assert card.terminal.inquire(UID).approved
    assert card.store.read(queries.public_keys) == {}
    assert card.terminal.quote(UID).quote.rate_bp == 9000  # type: ignore[union-attr]


def test_reset_replaces_the_card_cache(card: Till) -> None:
    other = {**server_card(5_00), "number": "4539578763621486", "uid": "04A1B2C3"}
    write(card, lambda c: sync_state.apply_pull(c, page(reset=True, cards=[other])))
    numbers = card.store.read(lambda c: [r[0] for r in c.execute("SELECT number FROM cards")])
    assert numbers == ["4539578763621486"]
    assert card.terminal.inquire(UID).card.purses[0].balance == 5_00  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [
    {"checksum": "0" * 64},
    {"cards": [{"number": FUEL}]},
    {"limits": {"nonsense": 1}},
])
def test_a_bad_page_changes_nothing(card: Till, bad: dict[str, Any]) -> None:
    before = card.store.read(lambda c: c.execute("SELECT * FROM purses").fetchall())
    broken = page(**{k: v for k, v in bad.items() if k != "checksum"})
    if "checksum" in bad:
        broken["checksum"] = bad["checksum"]
    with pytest.raises(Exception) as err:
        write(card, lambda c: sync_state.apply_pull(c, broken))
    assert getattr(err.value, "code", None) in ("bad_checksum", "bad_pull_page", "unknown_setting")
    assert card.store.read(lambda c: c.execute("SELECT * FROM purses").fetchall()) == before
    assert card.store.read(lambda c: queries.get_meta(c, "sync_cursor")) is None


def test_pending_count(card: Till) -> None:
    card.terminal.redeem(UID, 1_00)
    assert card.store.read(sync_state.pending_count) == 2
    write(card, lambda c: sync_state.record_push(c, 2, card.clock()))
    assert card.store.read(sync_state.pending_count) == 0
