"""The operations end to end on a real store: what is decided, what is written, what is not."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from terminal import admin, tokens
from terminal.credentials import CardNumber, NfcCard, NfcUid, QrCode
from terminal.errors import BadInput, StateError, StoreError
from terminal.journal import Entry
from terminal.reasons import Outcome, Reason
from terminal.services import Result, Terminal
from terminal.store import queries
from terminal.store.db import Store
from tests.conftest import CASHIER_PIN, SUPERVISOR_PIN, Till
from tests.fsfaults import remount_read_only, tmpfs

FUEL = "79927398713"      # fuel 50.00 + general 20.00, UID 04A1B2C3
PINNED = "4539578763621486"  # general 150.00, PIN 2468
PLAIN = "6011000990139424"   # general 30.00, no PIN, no UID
FROZEN = "378282246310005"
SLEEPER = "5555555555554444"  # not activated, general 0.00


@pytest.fixture
def cards(till: Till) -> Till:
    till.import_rows(
        f"{FUEL},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,",
        f"{FUEL},04A1B2C3,fuel,general,20.00,EUR,2027-12-31,active,",
        f"{PINNED},04A1B2C4,shopping,general,150.00,EUR,2027-12-31,active,2468",
        f"{PLAIN},,shopping,general,30.00,EUR,2026-06-20,active,",
        f"{FROZEN},04A1B2C5,fuel,fuel,10.00,EUR,2027-12-31,frozen,",
        f"{SLEEPER},04A1B2C6,shopping,general,0.00,EUR,2027-12-31,not_activated,",
    )
    return till


def balances(till: Till, number: str) -> dict[str, int]:
    card = till.store.read(lambda c: queries.load_card(c, number=number))
    assert card is not None
    return {p.name: p.balance for p in card.purses}


def journal_count(till: Till) -> int:
    return int(till.store.read(lambda c: c.execute("SELECT count(*) FROM journal").fetchone()[0]))


def entry_of(result: Result) -> Entry:
    assert result.entry is not None
    return result.entry


UID = NfcUid("04:a1:b2:c3")


class TestRedeem:
    def test_approved_redemption_debits_and_journals(self, cards: Till) -> None:
        before = journal_count(cards)
        result = cards.terminal.redeem(UID, 12_50)
        assert result.approved
        entry = entry_of(result)
        assert entry.kind == "redeem" and entry.body["card"] == FUEL
        assert entry.body["cashier"] == "alice" and entry.body["online"] is False
        assert [(d.purse, d.amount) for d in entry.deltas] == [("fuel", -12_50)]
        assert balances(cards, FUEL) == {"fuel": 37_50, "general": 20_00}
        assert journal_count(cards) == before + 1
        assert result.card is not None and result.card.purses[0].balance == 37_50
        assert FUEL not in str(result.card.as_json())

    def test_declined_redemption_writes_nothing(self, cards: Till) -> None:
        before = journal_count(cards)
        result = cards.terminal.redeem(UID, 70_01)
        assert result.decision.reasons == (Reason.INSUFFICIENT_BALANCE,)
        assert result.entry is None
        assert journal_count(cards) == before
        assert balances(cards, FUEL) == {"fuel": 50_00, "general": 20_00}

    def test_named_purse(self, cards: Till) -> None:
        cards.terminal.redeem(UID, 5_00, purse="general")
        assert balances(cards, FUEL) == {"fuel": 50_00, "general": 15_00}

    def test_unknown_card_and_bad_amount(self, cards: Till) -> None:
        assert cards.terminal.redeem(NfcUid("0102030405060708090A"), 1_00).decision.reasons == (
            Reason.UNKNOWN_CARD,)
        with pytest.raises(BadInput) as err:
            cards.terminal.redeem(UID, 0)
        assert err.value.code == "amount_not_positive"

    def test_mistyped_number_is_bad_input_not_a_lookup(self, cards: Till) -> None:
        with pytest.raises(BadInput) as err:
            cards.terminal.redeem(CardNumber("7992 7398 714"), 1_00)
        assert err.value.code == "bad_check_digit"

    def test_frozen_card(self, cards: Till) -> None:
        assert cards.terminal.redeem(NfcUid("04A1B2C5"), 1_00).decision.reasons == (
            Reason.FROZEN,)

    def test_expiring_card_is_approved_with_its_warning(self, cards: Till) -> None:
        result = cards.terminal.redeem(CardNumber(PLAIN), 1_00, supervisor_pin=SUPERVISOR_PIN)
        assert result.approved and result.decision.warnings == (Reason.EXPIRING_SOON,)
        assert result.decision.params["days_left"] == 19

    def test_expired_after_its_day(self, cards: Till) -> None:
        cards.clock.advance(days=20)
        result = cards.terminal.redeem(CardNumber(PLAIN), 1_00, supervisor_pin=SUPERVISOR_PIN)
        assert result.decision.reasons == (Reason.EXPIRED,)


class TestPin:
    def test_needs_pin_then_wrong_then_right(self, cards: Till) -> None:
        uid = NfcUid("04A1B2C4")
        assert cards.terminal.redeem(uid, 10_00).decision.outcome is Outcome.NEEDS_PIN
        wrong = cards.terminal.redeem(uid, 10_00, pin="0000")
        assert wrong.decision.reasons == (Reason.WRONG_PIN,)
        assert wrong.decision.params == {"tries_left": 2}
        right = cards.terminal.redeem(uid, 10_00, pin="2468")
        assert right.approved and balances(cards, PINNED) == {"general": 140_00}
        card = cards.store.read(lambda c: queries.load_card(c, number=PINNED))
        assert card is not None and card.pin_failures == 0

    def test_lockout_is_journaled_and_survives_a_restart(self, cards: Till) -> None:
        uid = NfcUid("04A1B2C4")
        for _ in range(3):
            cards.terminal.redeem(uid, 1_00, pin="0000")
        kinds = cards.store.read(lambda c: [r[0] for r in c.execute(
            "SELECT kind FROM journal ORDER BY seq")])
        assert kinds.count("pin_failure") == 3
        path = cards.store.path.parent
        cards.store.close()
        store = Store.open(path)
        try:
            terminal = Terminal(store, cards.clock)
            result = terminal.redeem(uid, 1_00, pin="2468")
            assert result.decision.reasons == (Reason.PIN_LOCKED,)
        finally:
            store.close()

    def test_typed_number_of_a_pin_card_needs_the_pin_even_to_look(self, cards: Till) -> None:
        look = cards.terminal.inquire(CardNumber(PINNED))
        assert look.decision.outcome is Outcome.NEEDS_PIN and look.card is None
        tapped = cards.terminal.inquire(NfcUid("04A1B2C4"))
        assert tapped.approved and tapped.card is not None
        wrong = cards.terminal.inquire(CardNumber(PINNED), pin="1357")
        assert wrong.decision.reasons == (Reason.WRONG_PIN,) and wrong.card is None

    def test_typed_number_of_a_pinless_card_needs_a_supervisor(self, cards: Till) -> None:
        held = cards.terminal.redeem(CardNumber(PLAIN), 1_00)
        assert held.decision.outcome is Outcome.NEEDS_SUPERVISOR
        wrong = cards.terminal.redeem(CardNumber(PLAIN), 1_00, supervisor_pin="1234")
        assert wrong.decision.reasons == (Reason.WRONG_PIN,)
        ok = cards.terminal.redeem(CardNumber(PLAIN), 1_00, supervisor_pin=SUPERVISOR_PIN)
        assert ok.approved and entry_of(ok).body["data"]["supervisor"] == "sam"


class TestVoid:
    def test_void_restores_balance_and_offline_exposure(self, cards: Till) -> None:
        original = entry_of(cards.terminal.redeem(UID, 60_00))
        assert balances(cards, FUEL) == {"fuel": 0, "general": 10_00}
        result = cards.terminal.void(original.id, supervisor_pin=SUPERVISOR_PIN)
        assert result.approved
        void = entry_of(result)
        assert void.kind == "void" and void.body["ref"] == original.id
        assert [(d.purse, d.amount) for d in void.deltas] == [("fuel", 50_00), ("general", 10_00)]
        assert balances(cards, FUEL) == {"fuel": 50_00, "general": 20_00}
        assert cards.store.read(queries.offline_total) == 0

    def test_void_rules(self, cards: Till) -> None:
        original = entry_of(cards.terminal.redeem(UID, 1_00))
        assert cards.terminal.void(original.id, supervisor_pin=None).decision.outcome is \
            Outcome.NEEDS_SUPERVISOR
        assert cards.terminal.void(original.id, supervisor_pin="0000").decision.reasons == (
            Reason.WRONG_PIN,)
        assert cards.terminal.void("nope", supervisor_pin=SUPERVISOR_PIN).decision.reasons == (
            Reason.VOID_NOT_FOUND,)
        assert cards.terminal.void(original.id, supervisor_pin=SUPERVISOR_PIN).approved
        assert cards.terminal.void(original.id, supervisor_pin=SUPERVISOR_PIN
                                   ).decision.reasons == (Reason.ALREADY_VOIDED,)
        topup = entry_of(cards.terminal.topup(UID, 1_00))
        assert cards.terminal.void(topup.id, supervisor_pin=SUPERVISOR_PIN).decision.reasons == (
            Reason.VOID_NOT_ALLOWED,)

    def test_void_window(self, cards: Till) -> None:
        original = entry_of(cards.terminal.redeem(UID, 1_00))
        cards.clock.advance(minutes=31)
        assert cards.terminal.void(original.id, supervisor_pin=SUPERVISOR_PIN).decision.reasons \
            == (Reason.VOID_TOO_LATE,)


class TestCredits:
    def test_topup(self, cards: Till) -> None:
        result = cards.terminal.topup(UID, 25_00, purse="general")
        assert result.approved and balances(cards, FUEL)["general"] == 45_00
        assert cards.terminal.topup(UID, 500_01).decision.reasons == (Reason.TOPUP_LIMIT,)
        assert cards.terminal.topup(NfcUid("04A1B2C5"), 1_00).decision.reasons == (
            Reason.FROZEN,)

    def test_activate_with_a_first_load(self, cards: Till) -> None:
        uid = NfcUid("04A1B2C6")
        assert cards.terminal.redeem(uid, 1_00).decision.reasons == (Reason.NOT_ACTIVATED,)
        result = cards.terminal.activate(uid, amount=20_00)
        assert result.approved and result.card is not None and result.card.status == "active"
        assert entry_of(result).body["data"] == {
            "status": "active", "program": "shopping",
            "after": [{"purse": "general", "balance": 20_00, "currency": "EUR"}]}
        assert balances(cards, SLEEPER) == {"general": 20_00}
        assert cards.terminal.activate(uid).decision.reasons == (Reason.ALREADY_ACTIVE,)


class TestBuybackAndTransfer:
    def test_quote_then_buyback_closes_the_card(self, cards: Till) -> None:
        q = cards.terminal.quote(UID)
        assert q.approved and q.quote is not None
        # 2026-06-01 is off season (85 %), 70.00 balance, expiry far: no adjustment.
        assert (q.quote.balance, q.quote.rate_bp, q.quote.price) == (70_00, 8500, 59_50)
        held = cards.terminal.buyback(UID)
        assert held.decision.outcome is Outcome.NEEDS_SUPERVISOR  # 59.50 > 50.00
        done = cards.terminal.buyback(UID, supervisor_pin=SUPERVISOR_PIN)
        assert done.approved
        entry = entry_of(done)
        assert entry.body["data"] == {"price": 59_50, "rate_bp": 8500, "currency": "EUR",
                                      "program": "fuel",
                                      "after": [{"purse": "fuel", "balance": 0, "currency": "EUR"},
                                                {"purse": "general", "balance": 0,
                                                 "currency": "EUR"}],
                                      "supervisor": "sam"}
        assert balances(cards, FUEL) == {"fuel": 0, "general": 0}
        assert cards.terminal.inquire(UID).decision.reasons == (Reason.CLOSED,)

    def test_buyback_counts_against_offline_limits(self, cards: Till) -> None:
        result = cards.terminal.buyback(NfcUid("04A1B2C4"), pin="2468",
                                        supervisor_pin=SUPERVISOR_PIN)
        assert result.decision.reasons == (Reason.OFFLINE_LIMIT_TRANSACTION,)
        assert balances(cards, PINNED) == {"general": 150_00}

    def test_transfer_moves_every_purse_and_closes_the_source(self, cards: Till) -> None:
        cards.terminal.activate(NfcUid("04A1B2C6"))
        result = cards.terminal.transfer(CardNumber(PLAIN), NfcUid("04A1B2C6"),
                                         supervisor_pin=SUPERVISOR_PIN)
        assert result.approved
        assert balances(cards, PLAIN) == {"general": 0}
        assert balances(cards, SLEEPER) == {"general": 30_00}
        entry = entry_of(result)
        assert entry.body["data"] == {
            "to": SLEEPER, "supervisor": "sam", "program": "shopping",
            "after": [{"purse": "general", "balance": 0, "currency": "EUR"}]}
        assert sum(d.amount for d in entry.deltas) == 0
        assert cards.terminal.inquire(CardNumber(PLAIN)).decision.reasons == (Reason.CLOSED,)

    def test_transfer_refusals(self, cards: Till) -> None:
        assert cards.terminal.transfer(UID, NfcUid("04A1B2C6"), supervisor_pin=None
                                       ).decision.outcome is Outcome.NEEDS_SUPERVISOR
        # The sleeper is not active yet.
        assert cards.terminal.transfer(UID, NfcUid("04A1B2C6"), supervisor_pin=SUPERVISOR_PIN
                                       ).decision.reasons == (Reason.NOT_ACTIVATED,)
        cards.terminal.activate(NfcUid("04A1B2C6"))
        # The fuel purse has no counterpart on a shopping card.
        refused = cards.terminal.transfer(UID, NfcUid("04A1B2C6"), supervisor_pin=SUPERVISOR_PIN)
        assert refused.decision.reasons == (Reason.UNKNOWN_PURSE,)
        with pytest.raises(BadInput):
            cards.terminal.transfer(UID, CardNumber(FUEL), supervisor_pin=SUPERVISOR_PIN)


class TestOfflineLimits:
    def test_card_day_limit_resets_the_next_local_day(self, cards: Till) -> None:
        admin.set_limit(cards.store, "offline_per_card_day", "3000", cards.clock())
        assert cards.terminal.redeem(UID, 20_00).approved
        over = cards.terminal.redeem(UID, 10_01)
        assert over.decision.reasons == (Reason.OFFLINE_LIMIT_CARD_DAY,)
        assert over.decision.params == {"remaining": 10_00}
        cards.clock.advance(hours=12)  # 2026-06-02 00:00 UTC
        assert cards.terminal.redeem(UID, 10_01).approved

    def test_terminal_total_and_hours_offline(self, cards: Till) -> None:
        admin.set_limit(cards.store, "offline_terminal_total", "2500", cards.clock())
        assert cards.terminal.redeem(UID, 20_00).approved
        assert cards.terminal.redeem(NfcUid("04A1B2C4"), 5_01, pin="2468").decision.reasons == (
            Reason.OFFLINE_LIMIT_TERMINAL,)
        cards.clock.advance(hours=73)
        assert cards.terminal.redeem(UID, 1).decision.reasons == (Reason.OFFLINE_TOO_LONG,)

    def test_limit_changes_are_journaled(self, cards: Till) -> None:
        admin.set_limit(cards.store, "offline_per_transaction", "500", cards.clock())
        last = cards.store.read(lambda c: c.execute(
            "SELECT kind, body FROM journal ORDER BY seq DESC LIMIT 1").fetchone())
        assert last[0] == "limits" and '"new":500' in last[1] and '"old":10000' in last[1]


class TestSignedCodes:
    @pytest.fixture
    def key(self, cards: Till) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        admin.add_key(cards.store, "issuer-1", tokens.public_key_bytes(key).hex(), cards.clock())
        return key

    def code(self, cards: Till, key: Ed25519PrivateKey, *, dynamic: bool = True,
             key_id: str = "issuer-1", offset: int = 0, counter: int = 7) -> QrCode:
        now = int(cards.clock().timestamp()) + offset
        payload = tokens.TokenPayload(key_id, FUEL, ("fuel",), now, None,
                                      tokens.Dynamic(30, counter) if dynamic else None)
        return QrCode(tokens.to_qr_text(tokens.sign_token(payload, key)))

    def test_static_code_can_be_used_again(self, cards: Till, key: Ed25519PrivateKey) -> None:
        code = self.code(cards, key, dynamic=False)
        assert cards.terminal.redeem(code, 1_00).approved
        assert cards.terminal.redeem(code, 1_00).approved

    def test_dynamic_code_once_but_looking_does_not_burn_it(self, cards: Till,
                                                             key: Ed25519PrivateKey) -> None:
        code = self.code(cards, key)
        assert cards.terminal.inquire(code).approved
        assert cards.terminal.redeem(code, 1_00).approved
        replay = cards.terminal.redeem(code, 1_00)
        assert replay.decision.reasons == (Reason.REPLAYED_CODE,) and replay.entry is None
        assert cards.terminal.inquire(code).decision.reasons == (Reason.REPLAYED_CODE,)
        assert cards.terminal.redeem(self.code(cards, key, counter=8), 1_00).approved

    def test_declined_redemption_does_not_burn_a_dynamic_code(
            self, cards: Till, key: Ed25519PrivateKey) -> None:
        code = self.code(cards, key)
        assert cards.terminal.redeem(code, 999_00).decision.reasons == (
            Reason.INSUFFICIENT_BALANCE,)
        admin.set_limit(cards.store, "offline_per_transaction", "500", cards.clock())
        assert cards.terminal.redeem(code, 6_00).decision.reasons == (
            Reason.OFFLINE_LIMIT_TRANSACTION,)
        assert cards.terminal.redeem(code, 1_00).approved

    def test_expired_unknown_and_forged_codes(self, cards: Till, key: Ed25519PrivateKey) -> None:
        old = self.code(cards, key, offset=-200)
        assert cards.terminal.redeem(old, 1_00).decision.reasons == (Reason.EXPIRED_CODE,)
        future = self.code(cards, key, offset=+200)
        assert cards.terminal.redeem(future, 1_00).decision.reasons == (
            Reason.CODE_NOT_YET_VALID,)
        stranger = self.code(cards, key, key_id="other")
        assert cards.terminal.redeem(stranger, 1_00).decision.reasons == (Reason.UNKNOWN_KEY,)
        forged = self.code(cards, Ed25519PrivateKey.generate())
        assert cards.terminal.redeem(forged, 1_00).decision.reasons == (Reason.BAD_SIGNATURE,)
        assert cards.terminal.redeem(QrCode("CP1:garbage"), 1_00).decision.reasons == (
            Reason.MALFORMED_CODE,)
        assert balances(cards, FUEL) == {"fuel": 50_00, "general": 20_00}

    def test_replay_memory_is_forgotten_after_the_window(self, cards: Till,
                                                         key: Ed25519PrivateKey) -> None:
        assert cards.terminal.redeem(self.code(cards, key), 1_00).approved
        cards.clock.advance(minutes=10)
        assert cards.terminal.redeem(self.code(cards, key, counter=99), 1_00).approved
        left = cards.store.read(lambda c: c.execute("SELECT counter FROM seen_codes").fetchall())
        assert left == [(99,)]


class TestShifts:
    def test_money_needs_an_open_shift_of_the_same_cashier(self, cards: Till) -> None:
        with pytest.raises(StateError) as err:
            cards.terminal.redeem(UID, 1_00, cashier="sam")
        assert err.value.code == "not_shift_cashier"
        decision, report = cards.shifts.close(CASHIER_PIN)
        assert decision.approved and report is not None
        with pytest.raises(StateError) as err:
            cards.terminal.redeem(UID, 1_00)
        assert err.value.code == "no_open_shift"

    def test_second_shift_and_wrong_pin(self, cards: Till) -> None:
        with pytest.raises(StateError):
            cards.shifts.open("sam", SUPERVISOR_PIN)
        assert cards.shifts.close("0000")[0].reasons == (Reason.WRONG_PIN,)

    def test_z_report_sums_and_is_sealed_in_the_close_entry(self, cards: Till) -> None:
        t = cards.terminal
        first = entry_of(t.redeem(UID, 60_00))
        t.redeem(NfcUid("04A1B2C4"), 10_00, pin="2468")
        t.redeem(NfcUid("04A1B2C4"), 10_00, pin="0000")
        t.void(first.id, supervisor_pin=SUPERVISOR_PIN)
        t.topup(UID, 5_00)
        decision, report = cards.shifts.close(CASHIER_PIN)
        assert decision.approved and report is not None
        lines = {(ln.kind, ln.program, ln.purse): (ln.count, ln.amount) for ln in report.lines}
        assert lines == {
            ("redeem", "fuel", "fuel"): (1, -50_00), ("redeem", "fuel", "general"): (1, -10_00),
            ("redeem", "shopping", "general"): (1, -10_00),
            ("void", "fuel", "fuel"): (1, 50_00), ("void", "fuel", "general"): (1, 10_00),
            ("topup", "fuel", "fuel"): (1, 5_00)}
        assert (report.voids, report.money_entries, report.offline_entries,
                report.pin_failures) == (1, 4, 4, 1)
        assert report.offline_share_pct == 100.0
        close = cards.store.read(lambda c: c.execute(
            "SELECT body FROM journal WHERE kind = 'shift_close'").fetchone()[0])
        assert '"voids":1' in close
        assert cards.shifts.z_report().closed_at == report.closed_at
        assert admin.verify_journal(cards.store).ok


class TestStoreFailures:
    def test_read_only_store_is_a_clear_error(self, cards: Till) -> None:
        """A store on a read-only mount: opening it says so, and nothing changes."""
        cards.terminal.redeem(UID, 1_00)
        cards.store.close()
        with tmpfs(4096) as where:
            shutil.copytree(cards.store.path.parent, where / "data")
            before = (where / "data" / "cardpos.sqlite3").read_bytes()
            remount_read_only(where)
            with pytest.raises(StoreError) as err:
                Store.open(where / "data").close()
            assert err.value.code in ("store_read_only", "store_cannot_open")
            assert err.value.message("en").startswith(("The store", "Cannot open the store"))
            assert (where / "data" / "cardpos.sqlite3").read_bytes() == before

    def test_full_file_system_leaves_nothing_half_written(self, cards: Till) -> None:
        """Redeem on a real tmpfs until it is full: the failure is `disk_full`, every entry
        that committed has its balance change, and the chain still verifies."""
        cards.store.close()
        with tmpfs(2048) as where:
            shutil.copytree(cards.store.path.parent, where / "data")
            # Leave a little room only, so the WAL hits the wall after some redemptions.
            ballast = where / "ballast"
            free = shutil.disk_usage(where).free
            ballast.write_bytes(b"\0" * max(free - 300_000, 0))
            store = Store.open(where / "data")
            try:
                terminal = Terminal(store, cards.clock)
                approved = 0
                with pytest.raises(StoreError) as err:
                    for _ in range(5_000):
                        assert terminal.redeem(UID, 1).approved
                        approved += 1
                assert err.value.code == "disk_full"
                assert approved > 0
                ballast.unlink()  # room again: the store works on as before
                assert terminal.redeem(UID, 1).approved
                fuel = store.read(lambda c: queries.load_card(c, number=FUEL))
                assert fuel is not None
                assert fuel.purses[0].balance == 50_00 - approved - 1
                redeems = store.read(lambda c: c.execute(
                    "SELECT count(*) FROM journal WHERE kind = 'redeem'").fetchone()[0])
                assert redeems == approved + 1
                assert admin.verify_journal(store).ok
            finally:
                store.close()

    def test_newer_schema_is_refused(self, cards: Till) -> None:
        path = cards.store.path
        cards.store.close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        with pytest.raises(Exception) as err:
            Store(path)
        assert getattr(err.value, "code", None) == "store_too_new"

    def test_store_pragmas(self, store: Store) -> None:
        def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
            return (conn.execute("PRAGMA journal_mode").fetchone()[0],
                    conn.execute("PRAGMA synchronous").fetchone()[0],
                    conn.execute("PRAGMA user_version").fetchone()[0])

        assert store.write(pragmas) == ("wal", 2, 1)  # 2 = FULL

    def test_journal_rows_cannot_be_changed_through_sql(self, cards: Till) -> None:
        cards.terminal.redeem(UID, 1_00)
        with pytest.raises(Exception, match="append-only"):
            cards.store.write(lambda c: c.execute("UPDATE journal SET kind = 'x'"))
        with pytest.raises(Exception, match="append-only"):
            cards.store.write(lambda c: c.execute("DELETE FROM journal"))



class TestNfcCards:
    def signed(self, cards: Till, number: str) -> bytes:
        key = Ed25519PrivateKey.generate()
        admin.add_key(cards.store, "tag-1", tokens.public_key_bytes(key).hex(), cards.clock())
        now = int(cards.clock().timestamp())
        return tokens.sign_token(tokens.TokenPayload("tag-1", number, (), now, None), key)

    def test_a_chip_with_a_token_is_verified_and_matched_to_its_uid(self, cards: Till) -> None:
        raw = self.signed(cards, FUEL)
        assert cards.terminal.redeem(NfcCard("04A1B2C3", raw), 1_00).approved
        clone = cards.terminal.redeem(NfcCard("04A1B2C4", raw), 1_00)
        assert clone.decision.reasons == (Reason.CARD_MISMATCH,) and clone.entry is None
        broken = cards.terminal.redeem(NfcCard("04A1B2C3", raw[:-1]), 1_00)
        assert broken.decision.reasons == (Reason.MALFORMED_CODE,)

    def test_a_chip_without_a_token_is_looked_up_by_uid(self, cards: Till) -> None:
        assert cards.terminal.inquire(NfcCard("04a1b2c3")).approved
