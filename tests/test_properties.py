"""Property tests: no sequence of operations makes a purse negative, loses money or breaks the
chain. Hypothesis drives random sequences against a real store."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from terminal import admin, journal
from terminal.credentials import NfcUid
from terminal.limits import Limits
from terminal.luhn import check_digit
from terminal.model import Role
from terminal.services import Result, Shifts, Terminal
from terminal.store import queries
from tests.conftest import HEADER, Clock

N_CARDS = 4
PURSES = ("fuel", "general")


def number(i: int) -> str:
    body = f"62800000000{i:04d}"
    return body + check_digit(body)


def uid(i: int) -> NfcUid:
    return NfcUid(f"04A1B2C3D4E5{i:02X}")


class Operations(RuleBasedStateMachine):
    """A till doing random redemptions, voids, top-ups, transfers and buybacks."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="cardpos-prop-"))
        self.clock = Clock()
        # Generous limits, so the money rules (not the offline ones) are what is exercised.
        limits = Limits(offline_per_transaction=10**9, offline_per_card_day=10**9,
                        offline_terminal_total=10**9, max_topup=10**9,
                        max_purse_balance=10**9, buyback_supervisor_above=10**9)
        self.store = admin.init_store(self.dir / "data", "P1", limits, self.clock())
        rows = [HEADER] + [f"{number(i)},{uid(i).uid},fuel,{p},{(i + 1) * 10}.00,EUR,"
                           f"2027-12-31,active," for i in range(N_CARDS) for p in PURSES]
        (self.dir / "cards.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        admin.import_card_file(self.store, self.dir / "cards.csv")
        self.initial = self.balances()
        admin.new_cashier(self.store, "sam", "Sam", Role.SUPERVISOR, "9999")
        Shifts(self.store, self.clock).open("sam", "9999")
        self.terminal = Terminal(self.store, self.clock)
        self.redemptions: list[str] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    def balances(self) -> dict[tuple[str, str], int]:
        def job(conn: object) -> dict[tuple[str, str], int]:
            return {(c, n): b for c, n, b in conn.execute(  # type: ignore[attr-defined]
                "SELECT card, name, balance FROM purses")}
        return self.store.read(job)

    def journal_length(self) -> int:
        return int(self.store.read(lambda c: c.execute("SELECT count(*) FROM journal"
                                                       ).fetchone()[0]))

    def checked(self, result: Result, before: dict[tuple[str, str], int], length: int) -> None:
        """An approval writes exactly one entry whose deltas explain the change; anything
        else changes nothing."""
        event(f"{result.entry.kind if result.entry else 'refused'}: "
              f"{'/'.join(result.decision.reasons) or result.decision.outcome}")
        after = self.balances()
        if result.entry is None:
            assert after == before and self.journal_length() == length
            return
        assert self.journal_length() == length + 1
        expected = dict(before)
        for d in result.entry.deltas:
            expected[(d.card, d.purse)] += d.amount
        assert after == expected

    @rule(card=st.integers(0, N_CARDS - 1), amount=st.integers(1, 60_00),
          purse=st.sampled_from((None, *PURSES)), partial=st.booleans())
    def redeem(self, card: int, amount: int, purse: str | None, partial: bool) -> None:
        before, length = self.balances(), self.journal_length()
        result = self.terminal.redeem(uid(card), amount, purse=purse, allow_partial=partial)
        self.checked(result, before, length)
        if result.entry is not None:
            taken = -sum(d.amount for d in result.entry.deltas)
            assert taken == (amount if not partial else min(amount, taken))
            assert 0 < taken <= amount
            self.redemptions.append(result.entry.id)

    @precondition(lambda self: bool(self.redemptions))
    @rule(pick=st.integers(0, 10**6))
    def void(self, pick: int) -> None:
        before, length = self.balances(), self.journal_length()
        entry_id = self.redemptions[pick % len(self.redemptions)]
        self.checked(self.terminal.void(entry_id, supervisor_pin="9999"), before, length)

    @rule(card=st.integers(0, N_CARDS - 1), amount=st.integers(1, 30_00),
          purse=st.sampled_from(PURSES))
    def topup(self, card: int, amount: int, purse: str) -> None:
        before, length = self.balances(), self.journal_length()
        self.checked(self.terminal.topup(uid(card), amount, purse=purse), before, length)

    @rule(source=st.integers(0, N_CARDS - 1), to=st.integers(0, N_CARDS - 1))
    def transfer(self, source: int, to: int) -> None:
        if source == to:
            return
        before, length = self.balances(), self.journal_length()
        result = self.terminal.transfer(uid(source), uid(to), supervisor_pin="9999")
        self.checked(result, before, length)

    @rule(card=st.integers(0, N_CARDS - 1))
    def buyback(self, card: int) -> None:
        before, length = self.balances(), self.journal_length()
        self.checked(self.terminal.buyback(uid(card)), before, length)

    @rule(minutes=st.integers(1, 45))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @invariant()
    def no_purse_is_negative(self) -> None:
        assert all(b >= 0 for b in self.balances().values())

    @invariant()
    def balances_equal_start_plus_journal(self) -> None:
        moved: dict[tuple[str, str], int] = defaultdict(int)
        for entry in self.store.read(lambda c: list(journal.entries(c))):
            for d in entry.deltas:
                moved[(d.card, d.purse)] += d.amount
        assert self.balances() == {k: v + moved[k] for k, v in self.initial.items()}

    @invariant()
    def chain_verifies(self) -> None:
        assert admin.verify_journal(self.store).ok

    @invariant()
    def offline_exposure_matches_journal(self) -> None:
        """What the terminal counts against its offline limit is what left cards offline,
        less what voids gave back."""
        exposure = 0
        for entry in self.store.read(lambda c: list(journal.entries(c))):
            on_card = [d.amount for d in entry.deltas if d.card == entry.body["card"]]
            if entry.kind in ("redeem", "buyback", "transfer"):
                exposure += -sum(a for a in on_card if a < 0)
            elif entry.kind == "void":
                exposure -= sum(on_card)
        assert self.store.read(queries.offline_total) == exposure


Operations.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_operations = Operations.TestCase
