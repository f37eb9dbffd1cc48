"""Cashiers, supervisors and shifts: who is at the till, and what proves it.

PIN checks count failures and lock a cashier or a card out after `Limits.pin_max_failures`
wrong PINs in a row; the count is written in the same transaction as the check, so it survives
a crash between two guesses. These helpers run inside `Store.write` jobs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from terminal import journal
from terminal.errors import BadInput, NotFound, StateError
from terminal.limits import Limits
from terminal.model import Card, Cashier, Role
from terminal.pin import check_pin_format, hash_pin, verify_pin
from terminal.reasons import Outcome, Reason
from terminal.rules import APPROVE, Decision, decline, pin_checked, pin_gate
from terminal.store import queries


def add_cashier(conn: sqlite3.Connection, cashier_id: str, name: str, role: Role, pin: str
                ) -> None:
    if not cashier_id or not cashier_id.replace("-", "").replace("_", "").isalnum():
        raise BadInput("bad_cashier_id", cashier_id=cashier_id)
    check_pin_format(pin)
    if queries.load_cashier(conn, cashier_id) is not None:
        raise StateError("cashier_exists", cashier_id=cashier_id)
    conn.execute("INSERT INTO cashiers (id, name, role, pin_hash) VALUES (?, ?, ?, ?)",
                 (cashier_id, name or cashier_id, role.value, hash_pin(pin)))


def list_cashiers(conn: sqlite3.Connection) -> list[Cashier]:
    ids = [r[0] for r in conn.execute("SELECT id FROM cashiers ORDER BY id")]
    return [c for i in ids if (c := queries.load_cashier(conn, i)) is not None]


def check_cashier_pin(conn: sqlite3.Connection, cashier: Cashier, pin: str, limits: Limits
                      ) -> Decision:
    """Verify a cashier's PIN, counting failures; a locked cashier is refused without a check."""
    if cashier.pin_failures >= limits.pin_max_failures:
        return decline(Reason.PIN_LOCKED)
    ok = verify_pin(pin, cashier.pin_hash)
    failures = 0 if ok else cashier.pin_failures + 1
    if failures != cashier.pin_failures:
        conn.execute("UPDATE cashiers SET pin_failures = ? WHERE id = ?", (failures, cashier.id))
    return pin_checked(ok, failures, limits)


def check_card_pin(conn: sqlite3.Connection, card: Card, pin: str | None, limits: Limits
                   ) -> tuple[Decision, bool]:
    """Verify a card's PIN if it has one. Returns (decision, failed): on `failed` the caller
    journals the failure (and commits the count) instead of doing the operation."""
    if not card.has_pin:
        return APPROVE, False
    gate = pin_gate(card, pin is not None, limits)
    if not gate.approved:
        return gate, False
    assert pin is not None and card.pin_hash is not None
    ok = verify_pin(pin, card.pin_hash)
    failures = 0 if ok else card.pin_failures + 1
    if failures != card.pin_failures:
        queries.set_pin_failures(conn, card.number, failures)
    return pin_checked(ok, failures, limits), not ok


@dataclass(frozen=True)
class Supervisor:
    """The outcome of asking for a supervisor: who approved, or why not."""

    decision: Decision
    cashier_id: str | None = None


def check_supervisor(conn: sqlite3.Connection, pin: str | None, supervisor_id: str | None,
                     limits: Limits) -> Supervisor:
    """Find the supervisor whose PIN this is (the named one, or any active supervisor).

    Without a named supervisor every active one is tried; a wrong PIN then counts against none
    of them (it could not be said whose it was meant to be), and the request is declined.
    """
    if pin is None:
        return Supervisor(Decision(Outcome.NEEDS_SUPERVISOR, (Reason.SUPERVISOR_REQUIRED,)))
    if supervisor_id is not None:
        cashier = queries.load_cashier(conn, supervisor_id)
        if cashier is None or cashier.role is not Role.SUPERVISOR or not cashier.active:
            raise NotFound("no_such_supervisor", cashier_id=supervisor_id)
        decision = check_cashier_pin(conn, cashier, pin, limits)
        return Supervisor(decision, cashier.id if decision.approved else None)
    for cashier in queries.supervisors(conn):
        if cashier.pin_failures < limits.pin_max_failures and verify_pin(pin, cashier.pin_hash):
            if cashier.pin_failures:
                conn.execute("UPDATE cashiers SET pin_failures = 0 WHERE id = ?", (cashier.id,))
            return Supervisor(APPROVE, cashier.id)
    return Supervisor(decline(Reason.WRONG_PIN))


def current_shift(conn: sqlite3.Connection, cashier_id: str | None) -> tuple[str, str]:
    """(shift id, cashier id) for a money-moving operation; the shift must be open and the
    cashier, when named, must be the one who opened it."""
    shift = queries.open_shift(conn)
    if shift is None:
        raise StateError("no_open_shift")
    if cashier_id is not None and cashier_id != shift[1]:
        raise StateError("not_shift_cashier", cashier_id=cashier_id, shift_cashier=shift[1])
    return shift[0], shift[1]


def open_shift(conn: sqlite3.Connection, cashier_id: str, pin: str, limits: Limits,
               terminal_id: str, at: datetime) -> tuple[Decision, journal.Entry | None]:
    cashier = queries.load_cashier(conn, cashier_id)
    if cashier is None or not cashier.active:
        raise NotFound("no_such_cashier", cashier_id=cashier_id)
    decision = check_cashier_pin(conn, cashier, pin, limits)
    if not decision.approved:
        return decision, None
    if queries.open_shift(conn) is not None:
        raise StateError("shift_already_open")
    shift_id = journal.new_id()
    conn.execute("INSERT INTO shifts (id, cashier, opened_at) VALUES (?, ?, ?)",
                 (shift_id, cashier_id, journal.timestamp(at)))
    # Daily offline spend older than yesterday (UTC) can no longer count against any limit.
    conn.execute("DELETE FROM card_day_spend WHERE day < ?",
                 ((at.date() - timedelta(days=1)).isoformat(),))
    entry = journal.append(conn, terminal_id,
                           journal.NewEntry("shift_open", cashier=cashier_id, shift=shift_id), at)
    conn.execute("UPDATE shifts SET first_seq = ? WHERE id = ?", (entry.seq, shift_id))
    return decision, entry
