"""The server's data layer (sync/server/): migrations, card import, and pushes of real journal
entries made by the terminal core — on SQLite and on a real PostgreSQL, every test on both."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from sync.server import issuer, ledger, schema
from sync.server.db import current_revision, head_revision, make_engine, migrate
from sync.server.terminals import add_terminal, revoke_terminal
from terminal import journal
from terminal.credentials import NfcUid
from terminal.errors import ImportRejected, NotFound, StateError
from terminal.journal import entry_hash
from tests import postgres
from tests.conftest import SUPERVISOR_PIN, Clock, Till
from tests.needs import require
from tests.server_support import (
    DATABASES,
    FUEL,
    FUEL_UID,
    PLAIN,
    PLAIN_UID,
    ROWS,
    SLEEPER,
    SLEEPER_UID,
    empty,
    make_till,
    pending,
    write_csv,
)

PINNED = "4539578763621486"  # general 150.00, PIN 2468 (not among ROWS)


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; tests empty it before use."""
    require(postgres.reachable(), postgres.WHAT)
    with postgres.temporary_database() as url:
        migrate(url)
        yield url


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        eng = make_engine(request.getfixturevalue("pg_url"))
        empty(eng)
    else:
        eng = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
        migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def server(engine: Engine, tmp_path: Path) -> Engine:
    """The server with the cards of ROWS and terminals T1 and T2."""
    issuer.import_cards(engine, write_csv(tmp_path / "server-cards.csv", *ROWS))
    add_terminal(engine, "T1", branch="north")
    add_terminal(engine, "T2", branch="north")
    return engine


@pytest.fixture
def t1(till: Till) -> Till:
    """The conftest till (terminal T1) with the cards of ROWS."""
    till.import_rows(*ROWS)
    return till


@pytest.fixture
def t2(tmp_path: Path, clock: Clock) -> Iterator[Till]:
    till = make_till(tmp_path / "t2", "T2", clock)
    try:
        yield till
    finally:
        till.store.close()


def some_work(till: Till) -> list[dict[str, Any]]:
    """A redemption, a top-up, an activation with a first load; returns the whole journal."""
    assert till.terminal.redeem(FUEL_UID, 12_50).approved
    assert till.terminal.topup(NfcUid("04A1B2C7"), 5_00).approved
    assert till.terminal.activate(NfcUid("04A1B2C6"), amount=10_00).approved
    return pending(till)


def balances(engine: Engine, number: str) -> dict[str, int]:
    return {p.name: p.balance for p in issuer.card_show(engine, number).purses}


def count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def resign(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` with its hash recomputed (a forger who knows the format)."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return {**body, "hash": entry_hash(body)}


# -- migrations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_up_from_empty_match_the_schema(kind: str, tmp_path: Path) -> None:
    def check(url: str) -> None:
        migrate(url)
        migrate(url)  # at head already: nothing to do
        eng = make_engine(url)
        try:
            assert current_revision(eng) == head_revision() == "0007"
            with eng.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
                assert diff == []
                assert conn.execute(sa.select(schema.counters.c.value)).scalar_one() == 0
        finally:
            eng.dispose()

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        require(postgres.reachable(), postgres.WHAT)
        with postgres.temporary_database("cardpos_migrate") as url:
            check(url)


# -- issuer -------------------------------------------------------------------------------------

def test_import_posts_opening_balances_and_show_sums_the_ledger(server: Engine,
                                                               tmp_path: Path) -> None:
    card = issuer.card_show(server, FUEL)
    assert (card.status, card.program, card.uid, card.expiry) == (
        "active", "fuel", "04A1B2C3", "2027-12-31")
    assert balances(server, FUEL) == {"fuel": 50_00, "general": 20_00}
    assert balances(server, SLEEPER) == {"general": 0}
    with server.connect() as conn:
        kinds = conn.execute(sa.select(schema.ledger.c.kind).distinct()).scalars().all()
        assert kinds == ["issue"]
        assert ledger.balance(conn, FUEL, "general") == 20_00
        assert ledger.check_balances(conn) == []
    summary = issuer.import_cards(server, write_csv(
        tmp_path / "pinned.csv", f"{PINNED},,shopping,general,150.00,EUR,,active,2468"))
    assert summary.as_json() == {"cards": 1, "purses": 1, "pins_hashed": 1}
    assert issuer.card_show(server, PINNED).has_pin


def test_import_is_all_or_nothing(server: Engine, tmp_path: Path) -> None:
    before = count(server, schema.ledger)
    with pytest.raises(ImportRejected) as err:
        issuer.import_cards(server, write_csv(
            tmp_path / "bad.csv",
            f"{PINNED},,shopping,general,150.00,EUR,,active,",
            f"{FUEL},04A1B2C9,fuel,fuel,1.00,EUR,,active,",        # already on the server
            "79927398710,,fuel,fuel,1.00,EUR,,active,"))           # bad check digit
    assert sorted(e.code for e in err.value.errors) == ["bad_check_digit", "card_exists"]
    with pytest.raises(NotFound):
        issuer.card_show(server, PINNED)
    assert count(server, schema.ledger) == before


# -- pushing ------------------------------------------------------------------------------------

def test_push_applies_entries_and_posts_their_deltas(server: Engine, t1: Till) -> None:
    batch = some_work(t1)
    kinds = [e["kind"] for e in batch]
    assert kinds == ["shift_open", "redeem", "topup", "activate"]
    result = ledger.apply_push(server, "T1", batch)
    assert result.ok and result.applied == tuple(e["id"] for e in batch)
    assert (result.last_seq, result.last_hash) == (4, batch[-1]["hash"])
    assert result.duplicates == () and result.overspends == () and result.missing is None
    assert balances(server, FUEL) == {"fuel": 37_50, "general": 20_00}
    assert balances(server, PLAIN) == {"general": 35_00}
    sleeper = issuer.card_show(server, SLEEPER)
    assert (sleeper.status, sleeper.purses[0].balance) == ("active", 10_00)
    assert count(server, schema.entries) == 4  # shift_open has no deltas but is kept
    with server.connect() as conn:
        assert ledger.check_balances(conn) == []
        stored = conn.execute(sa.select(schema.entries.c.body, schema.entries.c.hash)
                              .order_by(schema.entries.c.seq)).all()
        # The server holds each entry exactly as the terminal hashed it: the same verify walk
        # accepts it.
        rows = [(e["seq"], e["id"], e["kind"], e["at"], e["card"], e["cashier"], e["shift"],
                 e["ref"], body, digest) for e, (body, digest) in zip(batch, stored, strict=True)]
        assert journal.verify_rows(rows, "T1", 4).ok
        posted = conn.execute(sa.select(schema.ledger.c.entry_id, schema.ledger.c.terminal,
                                        schema.ledger.c.seq, schema.ledger.c.amount)
                              .where(schema.ledger.c.kind != "issue")
                              .order_by(schema.ledger.c.id)).all()
    assert [tuple(p) for p in posted] == [(batch[1]["id"], "T1", 2, -12_50),
                                          (batch[2]["id"], "T1", 3, 5_00),
                                          (batch[3]["id"], "T1", 4, 10_00)]


def test_a_resend_is_acknowledged_not_applied_twice(server: Engine, t1: Till) -> None:
    batch = some_work(t1)
    first = ledger.apply_push(server, "T1", batch[:2])
    assert len(first.applied) == 2
    postings = count(server, schema.ledger)
    again = ledger.apply_push(server, "T1", batch)  # the first two again, then two new ones
    assert again.duplicates == tuple(e["id"] for e in batch[:2])
    assert again.applied == tuple(e["id"] for e in batch[2:])
    assert ledger.apply_push(server, "T1", batch).duplicates == tuple(e["id"] for e in batch)
    assert count(server, schema.ledger) == postings + 2
    assert balances(server, FUEL) == {"fuel": 37_50, "general": 20_00}


def test_concurrent_identical_pushes_apply_once(server: Engine, t1: Till) -> None:
    for _ in range(5):
        assert t1.terminal.redeem(FUEL_UID, 1_00).approved
    batch = pending(t1)
    pushers = 6
    barrier = threading.Barrier(pushers)
    results: list[ledger.PushResult] = []
    failures: list[BaseException] = []

    def push() -> None:
        try:
            barrier.wait()
            results.append(ledger.apply_push(server, "T1", copy.deepcopy(batch)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=push) for _ in range(pushers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    applied = [i for r in results for i in r.applied]
    assert sorted(applied) == sorted(e["id"] for e in batch)  # each exactly once in all
    assert all(r.ok and len(r.applied) + len(r.duplicates) == len(batch) for r in results)
    assert balances(server, FUEL) == {"fuel": 45_00, "general": 20_00}
    assert count(server, schema.ledger) == 5 + 3  # and the 3 non-zero opening balances
    with server.connect() as conn:
        assert ledger.check_balances(conn) == []


def test_concurrent_pushes_of_two_terminals_on_one_purse_lose_nothing(
        server: Engine, t1: Till, t2: Till) -> None:
    for till in (t1, t2):
        for _ in range(6):
            assert till.terminal.redeem(FUEL_UID, 1_00, purse="fuel").approved
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def push(terminal_id: str, batch: list[dict[str, Any]]) -> None:
        try:
            barrier.wait()
            for i in range(len(batch)):  # one entry per push: the most interleaving
                assert ledger.apply_push(server, terminal_id, batch[i:i + 1]).ok
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=push, args=("T1", pending(t1))),
               threading.Thread(target=push, args=("T2", pending(t2)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert balances(server, FUEL) == {"fuel": 38_00, "general": 20_00}
    with server.connect() as conn:
        assert ledger.check_balances(conn) == []


def test_crossing_batches_of_two_terminals_do_not_deadlock(
        server: Engine, t1: Till, t2: Till, caplog: pytest.LogCaptureFixture) -> None:
    """T1 posts to FUEL then PLAIN, T2 to PLAIN then FUEL, in big batches at the same moment:
    purses are locked in one order, so neither waits for the other in a cycle (on PostgreSQL
    a deadlock used to cost a second each and, after retries, a failed push)."""
    for _ in range(15):
        assert t1.terminal.redeem(FUEL_UID, 1_00, purse="fuel").approved
        assert t1.terminal.redeem(PLAIN_UID, 1_00).approved
        assert t2.terminal.redeem(PLAIN_UID, 1_00).approved
        assert t2.terminal.redeem(FUEL_UID, 1_00, purse="fuel").approved
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def push(terminal_id: str, batch: list[dict[str, Any]]) -> None:
        try:
            barrier.wait()
            for i in range(0, len(batch), 10):
                assert ledger.apply_push(server, terminal_id, batch[i:i + 10]).ok
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=push, args=("T1", pending(t1))),
               threading.Thread(target=push, args=("T2", pending(t2)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert [r.message for r in caplog.records if "retried" in r.message] == []
    assert balances(server, FUEL)["fuel"] == 50_00 - 30_00
    assert balances(server, PLAIN) == {"general": 30_00 - 30_00}
    with server.connect() as conn:
        assert ledger.check_balances(conn) == []


def test_a_tampered_entry_is_rejected_with_everything_after_it(server: Engine,
                                                               t1: Till) -> None:
    batch = some_work(t1)
    tampered = copy.deepcopy(batch)
    tampered[1]["deltas"][0]["amount"] = -1  # 12.50 off the card, "journaled" as 0.01
    result = ledger.apply_push(server, "T1", tampered)
    assert result.applied == (batch[0]["id"],)
    assert [(r.seq, r.reason) for r in result.rejected] == [
        (2, "hash_mismatch"), (3, "after_rejected"), (4, "after_rejected")]
    assert result.rejected[1].detail == {"first": batch[1]["id"], "first_seq": 2}
    assert (result.last_seq, result.last_hash) == (1, batch[0]["hash"])
    assert balances(server, FUEL) == {"fuel": 50_00, "general": 20_00}
    # A forger who also recomputes the hash breaks the link from the next entry instead.
    forged = [*batch[:1], resign(tampered[1]), *batch[2:]]
    result = ledger.apply_push(server, "T1", forged)
    assert result.applied == (forged[1]["id"],)
    assert [(r.seq, r.reason) for r in result.rejected] == [
        (3, "chain_broken"), (4, "after_rejected")]
    assert result.rejected[0].detail == {"expected_prev": forged[1]["hash"]}


def test_broken_prev_wrong_terminal_and_malformed_entries(server: Engine, t1: Till) -> None:
    batch = some_work(t1)
    relinked = copy.deepcopy(batch)
    relinked[0]["prev"] = "f" * 64
    result = ledger.apply_push(server, "T1", [resign(relinked[0]), *batch[1:]])
    assert [r.reason for r in result.rejected] == ["chain_broken"] + ["after_rejected"] * 3
    assert ledger.apply_push(server, "T2", batch).rejected[0].reason == "wrong_terminal"
    assert ledger.apply_push(server, "T1", [{"id": "x", "seq": 1}]).rejected[0].as_json() == {
        "id": "x", "seq": 1, "reason": "malformed_entry", "detail": {}}
    assert count(server, schema.entries) == 0
    with pytest.raises(NotFound):
        ledger.apply_push(server, "T9", batch)
    revoke_terminal(server, "T1")
    with pytest.raises(StateError):
        ledger.apply_push(server, "T1", batch)


def test_a_gap_is_reported_and_filled_by_the_resend(server: Engine, t1: Till) -> None:
    batch = some_work(t1)
    assert len(ledger.apply_push(server, "T1", batch[:1]).applied) == 1
    result = ledger.apply_push(server, "T1", batch[3:])
    assert result.missing == (2, 3)
    assert [(r.seq, r.reason) for r in result.rejected] == [(4, "sequence_gap")]
    assert result.rejected[0].detail == {"missing_from": 2, "missing_to": 3}
    assert result.last_seq == 1
    fill = ledger.apply_push(server, "T1", batch[1:])
    assert fill.ok and len(fill.applied) == 3 and fill.last_seq == 4


def test_a_forked_journal_is_refused(server: Engine, t1: Till, tmp_path: Path,
                                     clock: Clock) -> None:
    assert ledger.apply_push(server, "T1", some_work(t1)).ok
    (tmp_path / "restored").mkdir()
    restored = make_till(tmp_path / "restored", "T1", clock)  # e.g. a terminal rebuilt from scratch
    try:
        result = ledger.apply_push(server, "T1", pending(restored))
    finally:
        restored.store.close()
    assert result.rejected[0].reason == "sequence_taken" and result.applied == ()


def test_a_double_spend_is_applied_posted_as_exception_and_denylisted(
        server: Engine, t1: Till, t2: Till) -> None:
    # Both terminals are offline; each sees 50.00 on the fuel purse and approves.
    assert t1.terminal.redeem(FUEL_UID, 40_00, purse="fuel").approved
    assert t2.terminal.redeem(FUEL_UID, 30_00, purse="fuel").approved
    with server.connect() as conn:
        cursor = max((seq for seq, _, _ in ledger.changes_after(conn, 0)), default=0)
    first = ledger.apply_push(server, "T1", pending(t1))
    assert first.ok and first.overspends == ()
    second = ledger.apply_push(server, "T2", pending(t2))
    assert second.ok and len(second.applied) == 2  # applied: offline entries are facts
    spend = pending(t2)[-1]
    assert [o.as_json() for o in second.overspends] == [{
        "entry": spend["id"], "card": FUEL, "purse": "fuel", "amount": 20_00,
        "currency": "EUR", "terminals": ["T1", "T2"]}]
    card = issuer.card_show(server, FUEL)
    assert {p.name: p.balance for p in card.purses} == {"fuel": -20_00, "general": 20_00}
    assert card.denylisted == "overspend"
    assert card.exceptions == ({"entry": spend["id"], "amount": 20_00, "currency": "EUR",
                                "terminals": ["T1", "T2"], "resolved": False},)
    with server.connect() as conn:
        changed = {(kind, key) for _, kind, key in ledger.changes_after(conn, cursor)}
        assert {("card", FUEL), ("denylist", FUEL)} <= changed
        assert ledger.check_balances(conn) == []
        assert ledger.balance(conn, FUEL, "fuel") == -20_00
    # A further offline spend of the same card is wholly overspent; denylisted only once.
    assert t1.terminal.redeem(FUEL_UID, 5_00, purse="fuel").approved
    third = ledger.apply_push(server, "T1", pending(t1))
    assert [o.amount for o in third.overspends] == [5_00]
    assert count(server, schema.denylist) == 1


def test_freeze_report_lost_unfreeze_are_recorded_for_the_pull(server: Engine) -> None:
    with server.connect() as conn:
        cursor = max(seq for seq, _, _ in ledger.changes_after(conn, 0))

    def changed_since(after: int) -> list[tuple[int, str, str]]:
        with server.connect() as conn:
            return ledger.changes_after(conn, after)

    assert issuer.freeze(server, FUEL) == "frozen"
    assert issuer.card_show(server, FUEL).status == "frozen"
    [(seq, kind, key)] = changed_since(cursor)
    assert (kind, key) == ("card", FUEL) and seq == cursor + 1
    assert issuer.freeze(server, FUEL) == "frozen"  # again: nothing changes
    assert changed_since(seq) == []
    assert issuer.unfreeze(server, FUEL) == "active"
    assert [k for _, _, k in changed_since(seq)] == [FUEL]
    assert issuer.freeze(server, SLEEPER) == "frozen"
    assert issuer.unfreeze(server, SLEEPER) == "not_activated"  # back to what it was
    assert issuer.report_lost(server, PLAIN) == "lost"
    with pytest.raises(StateError):
        issuer.unfreeze(server, PLAIN)
    with pytest.raises(StateError):
        issuer.freeze(server, PLAIN)
    with server.connect() as conn:
        log = conn.execute(sa.select(schema.card_status_log.c.card, schema.card_status_log.c.old,
                                     schema.card_status_log.c.new,
                                     schema.card_status_log.c.source)
                           .order_by(schema.card_status_log.c.id)).all()
    assert [tuple(r) for r in log] == [
        (FUEL, "active", "frozen", "issuer"), (FUEL, "frozen", "active", "issuer"),
        (SLEEPER, "not_activated", "frozen", "issuer"),
        (SLEEPER, "frozen", "not_activated", "issuer"), (PLAIN, "active", "lost", "issuer")]
    assert json.dumps(issuer.card_show(server, PLAIN).as_json())


# -- batches worked out as a whole (set-based apply_push) ----------------------------------------

def _aware(at: datetime) -> datetime:
    """SQLite gives timestamps back naive (stored in UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def test_an_applied_entry_settles_its_hold_and_a_resend_changes_nothing(
        server: Engine, t1: Till) -> None:
    shift_open, redeem = some_work(t1)[:2]  # 12.50 off FUEL's fuel purse
    hold_id = "0192f0c4-7d0a-7000-8000-00000000h01d"
    placed = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with server.begin() as conn:
        purse_id = conn.execute(sa.select(schema.purses.c.id).where(
            schema.purses.c.card == FUEL, schema.purses.c.name == "fuel")).scalar_one()
        conn.execute(sa.insert(schema.holds).values(
            id=hold_id, terminal="T1", card=FUEL, purse_id=purse_id, amount=12_50,
            currency="EUR", kind="redeem", created_at=placed,
            expires_at=placed + timedelta(minutes=10)))
    online = resign({**redeem, "online": True, "data": {**redeem["data"], "hold": hold_id}})

    def hold() -> tuple[datetime | None, str | None]:
        with server.connect() as conn:
            row = conn.execute(sa.select(schema.holds.c.settled_at, schema.holds.c.entry_id)
                               .where(schema.holds.c.id == hold_id)).one()
        return (_aware(row.settled_at) if row.settled_at else None), row.entry_id

    # A batch rejected at that entry settles nothing.
    broken = {**online, "hash": "0" * 64}
    assert ledger.apply_push(server, "T1", [shift_open, broken]).rejected[0].reason == \
        "hash_mismatch"
    assert hold() == (None, None)
    now = placed + timedelta(minutes=1)
    first = ledger.apply_push(server, "T1", [shift_open, online], now=now)
    assert first.ok and first.applied == (online["id"],)
    assert first.duplicates == (shift_open["id"],)
    assert hold() == (now, online["id"])
    again = ledger.apply_push(server, "T1", [shift_open, online], now=now + timedelta(hours=1))
    assert again.applied == () and again.duplicates == (shift_open["id"], online["id"])
    assert hold() == (now, online["id"])
    assert balances(server, FUEL) == {"fuel": 37_50, "general": 20_00}


def test_odd_but_valid_content_is_stored_exactly(server: Engine) -> None:
    """Ids, texts and data holding newlines, quotes, backslashes, NUL and characters beyond
    the BMP travel through the batch statements unchanged (PostgreSQL gets the bodies
    newline-joined: JSON escapes every newline inside them)."""
    body = {"v": 1, "id": "odd\nid", "terminal": "T1", "seq": 1, "kind": "shift_open",
            "at": "2026-06-01T12:00:00.000Z", "cashier": "al\u2028ice\r", "shift": "s,1",
            "card": None, "deltas": [], "ref": None, "online": False,
            "data": {"note": "a\x00b\n\"c\\", "smile": "\U0001F600", "n": [1.5, None]},
            "prev": journal.GENESIS_HASH}
    entry = {**body, "hash": entry_hash(body)}
    result = ledger.apply_push(server, "T1", [entry])
    assert result.ok and result.applied == ("odd\nid",)
    with server.connect() as conn:
        stored = conn.execute(sa.select(schema.entries.c.id, schema.entries.c.body,
                                        schema.entries.c.hash)).one()
    assert tuple(stored) == ("odd\nid", journal.canonical(body).decode("utf-8"), entry["hash"])
    assert ledger.apply_push(server, "T1", [entry]).duplicates == ("odd\nid",)


def test_one_batch_overspending_twice_and_changing_a_status_twice(
        server: Engine, t1: Till, t2: Till) -> None:
    """Running balances within a batch: T2 spent FUEL's fuel offline first; then T1's batch
    overspends it twice (each entry its own exception, the card denylisted once), activates
    SLEEPER and transfers it away (two status changes of one card, in entry order)."""
    assert t2.terminal.redeem(FUEL_UID, 45_00, purse="fuel").approved
    assert ledger.apply_push(server, "T2", pending(t2)).ok
    assert t1.terminal.redeem(FUEL_UID, 30_00, purse="fuel").approved
    assert t1.terminal.redeem(FUEL_UID, 10_00, purse="fuel").approved
    assert t1.terminal.activate(SLEEPER_UID, amount=10_00).approved
    assert t1.terminal.transfer(SLEEPER_UID, PLAIN_UID, supervisor_pin=SUPERVISOR_PIN).approved
    batch = pending(t1)
    result = ledger.apply_push(server, "T1", batch)
    assert result.ok and len(result.applied) == len(batch)
    assert [(o.entry_id, o.amount, o.terminals) for o in result.overspends] == [
        (batch[1]["id"], 25_00, ("T1", "T2")), (batch[2]["id"], 10_00, ("T1", "T2"))]
    assert count(server, schema.exceptions) == 2 and count(server, schema.denylist) == 1
    assert balances(server, FUEL)["fuel"] == 50_00 - 45_00 - 30_00 - 10_00
    assert balances(server, SLEEPER) == {"general": 0}
    assert balances(server, PLAIN) == {"general": 40_00}
    with server.connect() as conn:
        log = conn.execute(sa.select(schema.card_status_log.c.old,
                                     schema.card_status_log.c.new,
                                     schema.card_status_log.c.source)
                           .where(schema.card_status_log.c.card == SLEEPER)
                           .order_by(schema.card_status_log.c.id)).all()
        assert ledger.check_balances(conn) == []
    assert [tuple(r) for r in log] == [("not_activated", "active", batch[3]["id"]),
                                       ("active", "closed", batch[4]["id"])]
    assert issuer.card_show(server, SLEEPER).status == "closed"


def test_an_entry_inserted_meanwhile_restarts_the_batch(
        server: Engine, t1: Till, caplog: pytest.LogCaptureFixture) -> None:
    """The multi-row insert skips an id that appeared after the lookup of known ids (ON
    CONFLICT DO NOTHING) and returns fewer rows: the batch is rolled back and worked out
    again, so nothing is posted on the strength of a stale lookup. Simulated by inserting a
    row with the entry's id just before the batch's insert, in the same transaction."""
    batch = some_work(t1)
    fired: list[str] = []

    def sneak_in(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if fired or not statement.lstrip().startswith("INSERT INTO entries"):
            return
        fired.append(batch[2]["id"])
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        cursor.execute(
            "INSERT INTO entries (id, terminal, seq, kind, at, card, online, prev, hash, body,"
            f" received_at) VALUES ({', '.join([mark] * 11)})",
            (batch[2]["id"], "T1", 10**9, "topup", "2026-06-01 12:00:00", None, False, "x",
             "x", "{}", "2026-06-01 12:00:00"))

    sa.event.listen(server, "before_cursor_execute", sneak_in)
    try:
        result = ledger.apply_push(server, "T1", batch)
    finally:
        sa.event.remove(server, "before_cursor_execute", sneak_in)
    assert fired and any("retried" in r.message for r in caplog.records)
    assert result.ok and result.applied == tuple(e["id"] for e in batch)
    assert count(server, schema.entries) == 4
    assert count(server, schema.ledger) == 3 + 3  # the opening balances and three postings
    assert balances(server, FUEL) == {"fuel": 37_50, "general": 20_00}
