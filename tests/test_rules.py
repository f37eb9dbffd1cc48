"""Unit tests of the pure rules: one or more per reason code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from terminal import rules
from terminal.limits import Limits
from terminal.model import Card, CardStatus, Delta, Purse
from terminal.reasons import Outcome, Reason

TODAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LIMITS = Limits()


def card(**changes: object) -> Card:
    base = Card(number="79927398713", uid=None, program="fuel", status=CardStatus.ACTIVE,
                expiry=TODAY + timedelta(days=365), pin_hash=None, pin_failures=0,
                purses=(Purse("fuel", "EUR", 50_00), Purse("general", "EUR", 20_00)))
    return replace(base, **changes)  # type: ignore[arg-type]


def reasons(decision: rules.Decision) -> list[Reason]:
    return list(decision.reasons)


class TestCardState:
    def test_active_card_is_approved_without_reasons(self) -> None:
        assert rules.card_state(card(), TODAY, LIMITS) == rules.APPROVE

    def test_unknown_card(self) -> None:
        d = rules.card_state(None, TODAY, LIMITS)
        assert (d.outcome, reasons(d)) == (Outcome.DECLINE, [Reason.UNKNOWN_CARD])

    @pytest.mark.parametrize(("status", "reason"), [
        (CardStatus.NOT_ACTIVATED, Reason.NOT_ACTIVATED), (CardStatus.FROZEN, Reason.FROZEN),
        (CardStatus.LOST, Reason.LOST), (CardStatus.EXPIRED, Reason.EXPIRED),
        (CardStatus.CLOSED, Reason.CLOSED)])
    def test_blocking_statuses(self, status: CardStatus, reason: Reason) -> None:
        d = rules.card_state(card(status=status), TODAY, LIMITS)
        assert (d.outcome, reasons(d)) == (Outcome.DECLINE, [reason])

    def test_denylisted_wins_over_active(self) -> None:
        d = rules.card_state(card(), TODAY, LIMITS, denylisted=True)
        assert reasons(d) == [Reason.DENYLISTED]

    def test_expiry_date_passed_is_expired_even_if_status_is_active(self) -> None:
        d = rules.card_state(card(expiry=TODAY - timedelta(days=1)), TODAY, LIMITS)
        assert reasons(d) == [Reason.EXPIRED]

    def test_card_is_valid_through_its_expiry_day_with_a_warning(self) -> None:
        d = rules.card_state(card(expiry=TODAY), TODAY, LIMITS)
        assert d.approved and reasons(d) == [Reason.EXPIRING_SOON]
        assert d.params["days_left"] == 0

    def test_expiring_soon_boundary(self) -> None:
        inside = rules.card_state(card(expiry=TODAY + timedelta(days=30)), TODAY, LIMITS)
        outside = rules.card_state(card(expiry=TODAY + timedelta(days=31)), TODAY, LIMITS)
        assert inside.warnings == (Reason.EXPIRING_SOON,) and inside.params["days_left"] == 30
        assert outside == rules.APPROVE

    def test_activation_needs_a_not_activated_card(self) -> None:
        ok = rules.card_state(card(status=CardStatus.NOT_ACTIVATED), TODAY, LIMITS,
                              activating=True)
        again = rules.card_state(card(), TODAY, LIMITS, activating=True)
        assert ok.approved
        assert reasons(again) == [Reason.ALREADY_ACTIVE]

    def test_activation_of_a_lost_card_is_refused_as_lost(self) -> None:
        d = rules.card_state(card(status=CardStatus.LOST), TODAY, LIMITS, activating=True)
        assert reasons(d) == [Reason.LOST]


class TestPin:
    def test_no_pin_given_needs_pin(self) -> None:
        d = rules.pin_gate(card(pin_hash="x"), False, LIMITS)
        assert (d.outcome, reasons(d)) == (Outcome.NEEDS_PIN, [Reason.PIN_REQUIRED])

    def test_locked_card_is_refused_before_any_check(self) -> None:
        d = rules.pin_gate(card(pin_hash="x", pin_failures=3), True, LIMITS)
        assert reasons(d) == [Reason.PIN_LOCKED]

    def test_wrong_pin_counts_down_then_locks(self) -> None:
        assert rules.pin_checked(False, 1, LIMITS).params == {"tries_left": 2}
        assert reasons(rules.pin_checked(False, 2, LIMITS)) == [Reason.WRONG_PIN]
        assert reasons(rules.pin_checked(False, 3, LIMITS)) == [Reason.PIN_LOCKED]
        assert rules.pin_checked(True, 0, LIMITS).approved


class TestDebit:
    def test_named_purse(self) -> None:
        d, deltas = rules.plan_debit(card(), 10_00, "general", LIMITS)
        assert d.approved
        assert deltas == (Delta("79927398713", "fuel", "general", -10_00, "EUR"),)

    def test_purse_order_spills_into_the_next_purse(self) -> None:
        d, deltas = rules.plan_debit(card(), 60_00, None, LIMITS)
        assert d.approved
        assert [(x.purse, x.amount) for x in deltas] == [("fuel", -50_00), ("general", -10_00)]

    def test_configured_purse_order_wins_and_limits_the_purses(self) -> None:
        limits = replace(LIMITS, purse_order=("general",))
        d, deltas = rules.plan_debit(card(), 15_00, None, limits)
        assert d.approved and [(x.purse, x.amount) for x in deltas] == [("general", -15_00)]
        short, _ = rules.plan_debit(card(), 30_00, None, limits)
        assert reasons(short) == [Reason.INSUFFICIENT_BALANCE]
        assert short.params == {"available": 20_00}

    def test_insufficient_balance(self) -> None:
        d, deltas = rules.plan_debit(card(), 70_01, None, LIMITS)
        assert (d.outcome, reasons(d), deltas) == (
            Outcome.DECLINE, [Reason.INSUFFICIENT_BALANCE], ())

    def test_partial_approval_takes_what_is_there(self) -> None:
        d, deltas = rules.plan_debit(card(), 100_00, None, LIMITS, allow_partial=True)
        assert d.approved and reasons(d) == [Reason.PARTIAL_APPROVAL]
        assert d.params == {"approved_amount": 70_00, "requested_amount": 100_00}
        assert rules.total(deltas) == 70_00

    def test_partial_approval_of_an_empty_card_is_a_decline(self) -> None:
        empty = card(purses=(Purse("fuel", "EUR", 0),))
        d, _ = rules.plan_debit(empty, 5_00, None, LIMITS, allow_partial=True)
        assert reasons(d) == [Reason.INSUFFICIENT_BALANCE]

    def test_unknown_purse(self) -> None:
        d, _ = rules.plan_debit(card(), 1_00, "phone", LIMITS)
        assert reasons(d) == [Reason.UNKNOWN_PURSE] and d.params == {"purse": "phone"}

    def test_currency_mismatch(self) -> None:
        usd = card(purses=(Purse("general", "USD", 10_00),))
        d, _ = rules.plan_debit(usd, 1_00, None, LIMITS)
        assert reasons(d) == [Reason.CURRENCY_MISMATCH]

    def test_purse_order_naming_no_purse_of_the_card(self) -> None:
        d, _ = rules.plan_debit(card(), 1_00, None, replace(LIMITS, purse_order=("phone",)))
        assert reasons(d) == [Reason.NOTHING_TO_REDEEM]

    def test_debit_all_skips_empty_purses(self) -> None:
        c = card(purses=(Purse("fuel", "EUR", 0), Purse("general", "EUR", 5_00)))
        assert [(d.purse, d.amount) for d in rules.debit_all(c)] == [("general", -5_00)]


class TestOffline:
    def exposure(self, **changes: object) -> rules.OfflineExposure:
        base = rules.OfflineExposure(NOW - timedelta(hours=1), 0, 0)
        return replace(base, **changes)  # type: ignore[arg-type]

    def test_within_every_limit(self) -> None:
        assert rules.offline_gate(100_00, NOW, self.exposure(), LIMITS).approved

    def test_per_transaction(self) -> None:
        d = rules.offline_gate(100_01, NOW, self.exposure(), LIMITS)
        assert (d.outcome, reasons(d)) == (Outcome.NEEDS_ONLINE,
                                           [Reason.OFFLINE_LIMIT_TRANSACTION])
        assert d.params == {"limit": 100_00}

    def test_per_card_per_day(self) -> None:
        d = rules.offline_gate(50_00, NOW, self.exposure(card_day_total=160_00), LIMITS)
        assert reasons(d) == [Reason.OFFLINE_LIMIT_CARD_DAY] and d.params == {"remaining": 40_00}
        assert rules.offline_gate(40_00, NOW, self.exposure(card_day_total=160_00),
                                  LIMITS).approved

    def test_per_terminal_since_last_sync(self) -> None:
        d = rules.offline_gate(10_00, NOW, self.exposure(terminal_total=1_995_00), LIMITS)
        assert reasons(d) == [Reason.OFFLINE_LIMIT_TERMINAL] and d.params == {"remaining": 5_00}

    def test_maximum_hours_offline(self) -> None:
        late = self.exposure(last_sync_at=NOW - timedelta(hours=72, seconds=1))
        just = self.exposure(last_sync_at=NOW - timedelta(hours=72))
        assert reasons(rules.offline_gate(1, NOW, late, LIMITS)) == [Reason.OFFLINE_TOO_LONG]
        assert rules.offline_gate(1, NOW, just, LIMITS).approved


class TestCredit:
    def test_topup_into_the_first_purse_by_default(self) -> None:
        d, delta = rules.credit_gate(card(), None, 10_00, LIMITS)
        assert d.approved and delta == Delta("79927398713", "fuel", "fuel", 10_00, "EUR")

    def test_topup_limit(self) -> None:
        d, delta = rules.credit_gate(card(), "fuel", 500_01, LIMITS)
        assert reasons(d) == [Reason.TOPUP_LIMIT] and delta is None

    def test_balance_limit(self) -> None:
        d, _ = rules.credit_gate(card(), "fuel", 950_01, replace(LIMITS, max_topup=10**9))
        assert reasons(d) == [Reason.BALANCE_LIMIT]

    def test_unknown_purse_and_currency(self) -> None:
        assert reasons(rules.credit_gate(card(), "phone", 1, LIMITS)[0]) == [Reason.UNKNOWN_PURSE]
        usd = card(purses=(Purse("general", "USD", 0),))
        assert reasons(rules.credit_gate(usd, None, 1, LIMITS)[0]) == [Reason.CURRENCY_MISMATCH]


def test_combine_keeps_the_first_refusal_and_pools_warnings() -> None:
    warn = rules.Decision(Outcome.APPROVE, (Reason.EXPIRING_SOON,), {"days_left": 3})
    refuse = rules.decline(Reason.FROZEN)
    assert rules.combine(warn, refuse) == refuse
    pooled = rules.combine(warn, rules.APPROVE, rules.Decision(
        Outcome.APPROVE, (Reason.PARTIAL_APPROVAL,), {"approved_amount": 1}))
    assert pooled.reasons == (Reason.EXPIRING_SOON, Reason.PARTIAL_APPROVAL)
    assert pooled.params == {"days_left": 3, "approved_amount": 1}
