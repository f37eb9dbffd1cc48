"""The hash chain: every kind of tampering is found and named at the first bad entry."""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid

import pytest

from terminal import admin, journal
from terminal.credentials import NfcUid
from terminal.store.db import Store
from tests.conftest import Till

UID = NfcUid("04A1B2C3")


@pytest.fixture
def busy(till: Till) -> Till:
    till.import_rows("79927398713,04A1B2C3,fuel,fuel,500.00,EUR,2027-12-31,active,")
    for amount in (1_00, 2_00, 3_00, 4_00, 5_00):
        assert till.terminal.redeem(UID, amount).approved
    return till


def tamper(till: Till, *statements: str) -> journal.VerifyResult:
    """Change the file behind the store's back, as an attacker with the file would."""
    till.store.close()
    conn = sqlite3.connect(till.store.path)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    store = Store.open(till.store.path.parent)
    try:
        return admin.verify_journal(store)
    finally:
        store.close()


def test_intact_chain_verifies(busy: Till) -> None:
    result = admin.verify_journal(busy.store)
    assert result.ok and result.checked == 6  # shift_open + 5 redemptions


def test_entries_link_by_hash_and_sequence(busy: Till) -> None:
    entries = busy.store.read(lambda c: list(journal.entries(c)))
    assert [e.seq for e in entries] == list(range(1, 7))
    assert entries[0].body["prev"] == journal.GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.body["prev"] == before.hash
        assert uuid.UUID(after.id).version == 7 and after.id > before.id
    assert all(journal.entry_hash(e.body) == e.hash for e in entries)


@pytest.mark.parametrize(("statements", "seq", "problem"), [
    (["UPDATE journal SET body = replace(body, '-300', '-30') WHERE seq = 4"], 4,
     "hash_mismatch"),
    (["UPDATE journal SET card = '4539578763621486' WHERE seq = 3"], 3,
     "columns_differ_from_body"),
    (["DELETE FROM journal WHERE seq = 3"], 4, "sequence_gap"),
    (["DELETE FROM journal WHERE seq = 6"], 6, "entries_missing_at_end"),
    (["UPDATE journal SET body = body || ' ' WHERE seq = 2"], 2, "body_not_canonical"),
    (["UPDATE journal SET body = '{' WHERE seq = 5"], 5, "body_unreadable"),
])
def test_tampering_is_named(busy: Till, statements: list[str], seq: int, problem: str) -> None:
    result = tamper(busy, *statements)
    assert not result.ok
    assert (result.bad_seq, result.problem) == (seq, problem)
    # Entries before the bad one are vouched for (with a gap, one fewer: it is missing).
    assert result.checked == seq - 1 - (problem == "sequence_gap")


def test_a_rehashed_edit_still_breaks_the_next_link(busy: Till) -> None:
    """Editing an amount and recomputing that entry's hash moves the break one entry on."""
    body_text = busy.store.read(lambda c: c.execute(
        "SELECT body FROM journal WHERE seq = 3").fetchone()[0])
    body = json.loads(body_text)
    body["deltas"][0]["amount"] = -1
    forged = journal.canonical(body).decode()
    result = tamper(busy, f"UPDATE journal SET body = '{forged}',"
                          f" hash = '{journal.entry_hash(body)}' WHERE seq = 3")
    assert (result.bad_seq, result.problem) == (4, "chain_broken")


def test_swapping_two_entries_is_found(busy: Till) -> None:
    rows = busy.store.read(lambda c: c.execute(
        "SELECT seq, body, hash FROM journal WHERE seq IN (3, 4) ORDER BY seq").fetchall())
    (_, body3, hash3), (_, body4, hash4) = rows

    def swap(seq: int, body: str, digest: str) -> str:
        b = json.loads(body)
        return (f"UPDATE journal SET id = '{b['id']}x', body = '{body}', hash = '{digest}',"
                f" at = '{b['at']}' WHERE seq = {seq}")

    result = tamper(busy, swap(3, body4, hash4), swap(4, body3, hash3))
    assert not result.ok and result.bad_seq == 3


def test_another_terminals_entry_is_refused(busy: Till) -> None:
    def job(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = 'T2' WHERE key = 'terminal_id'")

    busy.store.write(job)
    result = admin.verify_journal(busy.store)
    assert (result.bad_seq, result.problem) == (1, "wrong_terminal")


def test_canonical_form_is_stable() -> None:
    body = {"b": 1, "a": [{"y": "中", "x": None}], "c": True}
    assert journal.canonical(body) == '{"a":[{"x":null,"y":"中"}],"b":1,"c":true}'.encode()
    with pytest.raises(ValueError):
        journal.canonical({"x": float("nan")})


def test_timestamps_round_trip_with_milliseconds(busy: Till) -> None:
    at = busy.clock()
    text = journal.timestamp(at)
    assert text == "2026-06-01T12:00:00.000Z"
    assert journal.parse_timestamp(text) == at


