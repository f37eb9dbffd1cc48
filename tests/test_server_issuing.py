"""Issuing on the server (docs/issuer.md): signing keys and their rotation, programs and card
batches with the printer export, activate / top up / close, bulk company orders, and their CLI —
every test on SQLite and on a real PostgreSQL. Tokens are checked with the terminal's own code
(terminal.tokens, and a real terminal store that pulls the keys and cards)."""

from __future__ import annotations

import csv
import functools
import json
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server import batches, issuer, keyring, ledger, orders, pull, schema
from sync.server.db import make_engine
from terminal import sync_state, tokens
from terminal.credentials import QrCode
from terminal.errors import BadInput, CardposError, NotFound, StateError
from terminal.limits import Limits
from terminal.luhn import is_valid
from terminal.pin import verify_pin
from terminal.reasons import Reason
from tests.conftest import START, Till
from tests.server_support import ROWS, SLEEPER, run_cli, write_csv

SECRET = b"correct horse battery staple"
PASSPHRASE = keyring.PASSPHRASE_ENV


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def issuing(engine: Engine) -> Engine:
    """An active key and program `gift` (purses general, fuel in EUR)."""
    keyring.generate(engine, kid="k1", secret=SECRET, now=START - timedelta(days=1))
    batches.add_program(engine, "gift", ["general", "fuel"], "EUR", name="Gift card")
    return engine


def make_batch(engine: Engine, tmp_path: Path, count: int, **spec: Any) -> tuple[
        batches.Batch, list[dict[str, str]]]:
    export = tmp_path / f"batch-{len(list(tmp_path.glob('batch-*.csv')))}.csv"
    made = batches.create_batch(engine, batches.BatchSpec("gift", count, **spec), export,
                                secret=SECRET, now=START)
    with export.open(newline="", encoding="utf-8") as handle:
        return made, list(csv.DictReader(handle))


def count(engine: Engine, table: sa.Table, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
                   .scalar_one())


def balances(engine: Engine, number: str) -> dict[str, int]:
    return {p.name: p.balance for p in issuer.card_show(engine, number).purses}


def status(engine: Engine, number: str) -> str:
    return issuer.card_show(engine, number).status


def pulled_keys(engine: Engine, cursor: int = 0) -> tuple[int, dict[str, bool]]:
    body = pull.pull(engine, cursor)
    return body["cursor"], {k["key_id"]: k["revoked"] for k in body["keys"]}


def refused(code: str, job: Callable[[], object]) -> CardposError:
    """The typed error `job` raises, which must have `code`."""
    with pytest.raises(CardposError) as err:
        job()
    assert err.value.code == code
    return err.value


def cursor_now(engine: Engine) -> int:
    return int(pull.pull(engine, 0, limit=1_000_000)["cursor"])


# -- keys ---------------------------------------------------------------------------------------

def test_no_passphrase_no_key(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE, raising=False)
    with pytest.raises(BadInput) as err:
        keyring.generate(engine)
    assert err.value.code == "issuer_passphrase_missing"
    assert PASSPHRASE in err.value.english()
    monkeypatch.setenv(PASSPHRASE, "")
    with pytest.raises(BadInput):
        keyring.generate(engine)
    assert count(engine, schema.keys) == 0


def test_private_key_is_stored_encrypted(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE, SECRET.decode())
    key = keyring.generate(engine)
    assert key.status == "active" and key.kid.startswith("k")
    with engine.connect() as conn:
        pem = conn.execute(sa.select(schema.issuer_keys.c.private_key)).scalar_one()
        assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(BadInput):  # useless without the passphrase
            tokens.load_private_key(pem.encode())
        signer = keyring.active_key(conn)  # the passphrase from the environment
        assert tokens.public_key_bytes(signer.private_key).hex() == key.public_key_hex
        with pytest.raises(BadInput) as err:
            keyring.active_key(conn, b"wrong")
        assert err.value.code == "issuer_passphrase_wrong"


def test_rotation_reaches_terminals_through_the_pull(engine: Engine) -> None:
    first = keyring.generate(engine, kid="k1", secret=SECRET)
    cursor, seen = pulled_keys(engine)
    assert seen == {"k1": False}
    with pytest.raises(StateError) as err:
        keyring.generate(engine, secret=SECRET)
    assert err.value.code == "active_key_exists"

    second, old = keyring.rotate(engine, kid="k2", secret=SECRET)
    assert (old, second.status) == ("k1", "active")
    cursor, seen = pulled_keys(engine, cursor)
    assert seen == {"k1": False, "k2": False}  # the retiring key still verifies
    assert {k.kid: k.status for k in keyring.list_keys(engine)} == {"k1": "retiring",
                                                                     "k2": "active"}
    with engine.connect() as conn:
        assert keyring.active_key(conn, SECRET).kid == "k2"

    with pytest.raises(StateError) as err:
        keyring.revoke(engine, "k2")
    assert err.value.code == "key_is_active"
    with pytest.raises(NotFound):
        keyring.revoke(engine, "nope")
    assert keyring.revoke(engine, "k1").status == "revoked"
    cursor, seen = pulled_keys(engine, cursor)
    assert seen == {"k1": True}  # terminals drop it
    keyring.revoke(engine, "k1")  # again: nothing changes, nothing to pull
    assert pulled_keys(engine, cursor)[1] == {}
    listed = {k.kid: k for k in keyring.list_keys(engine)}
    assert listed["k1"].revoked_at is not None and listed["k1"].retired_at is not None
    assert listed["k1"].public_key_hex == first.public_key_hex


def test_there_is_never_a_second_active_key(engine: Engine) -> None:
    keyring.generate(engine, kid="k0", secret=SECRET)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(schema.keys).values(kid="rogue", public_key=b"\0" * 32,
                                                   status="active", created_at=START))
    with pytest.raises(BadInput):
        keyring.rotate(engine, kid="bad id!", secret=SECRET)
    with pytest.raises(StateError) as err:
        keyring.rotate(engine, kid="k0", secret=SECRET)
    assert err.value.code == "key_id_taken"

    failures: list[Exception] = []

    def rotate() -> None:
        try:
            keyring.rotate(engine, secret=SECRET)
        except Exception as exc:  # noqa: BLE001 - any failure is reported below
            failures.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    states = sorted(k.status for k in keyring.list_keys(engine))
    assert states == ["active", "retiring", "retiring", "retiring", "retiring"]


# -- programs and batches -----------------------------------------------------------------------

def test_a_batch_makes_cards_and_the_printer_export(issuing: Engine, tmp_path: Path,
                                                    till: Till) -> None:
    expiry = date(2030, 12, 31)
    made, rows = make_batch(issuing, tmp_path, 6, prefix="600649", uids=True, pins=True,
                            expiry=expiry)
    assert (made.count, made.kid, len(rows)) == (6, "k1", 6)
    assert list(rows[0]) == ["number", "uid", "pin", "qr"]
    assert stat.S_IMODE(made.export.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    numbers = [r["number"] for r in rows]
    assert sorted(numbers) == list(made.numbers)
    assert all(is_valid(n) and n.startswith("600649") and len(n) == 16 for n in numbers)
    uids = [r["uid"] for r in rows]
    assert len(set(uids)) == 6 and all(len(u) == 14 and u.startswith("04") for u in uids)

    public = {"k1": bytes.fromhex(keyring.list_keys(issuing)[0].public_key_hex)}
    now = int(START.timestamp())
    with issuing.connect() as conn:
        for r in rows:
            card = conn.execute(sa.select(schema.cards)
                                .where(schema.cards.c.number == r["number"])).one()
            assert (card.status, card.uid, card.expiry, card.batch) == (
                "not_activated", r["uid"], expiry, made.id)
            assert verify_pin(r["pin"], card.pin_hash) and r["pin"] not in card.pin_hash
            payload = tokens.verify_token(tokens.from_qr_text(r["qr"]), public, now)
            assert (payload.card_number, payload.purses, payload.dynamic) == (
                r["number"], ("general", "fuel"), None)
            assert payload.expires_at == int(
                START.replace(year=2030, month=12, day=31, hour=23, minute=59,
                              second=59).timestamp())
        assert ledger.check_balances(conn) == []
    assert all(balances(issuing, n) == {"general": 0, "fuel": 0} for n in numbers)
    assert count(issuing, schema.batches) == 1

    # The terminal pulls the new cards and the key; the printed QR code then identifies a card.
    page = pull.pull(issuing, 0)
    assert {c["number"] for c in page["cards"]} == set(numbers)
    till.store.write(lambda c: sync_state.apply_pull(c, page))
    result = till.terminal.inquire(QrCode(rows[0]["qr"]))
    assert Reason.NOT_ACTIVATED in result.decision.reasons


def test_batch_numbers_never_collide(issuing: Engine, tmp_path: Path) -> None:
    # 10-digit numbers under 1234567: 100 numbers in all. Half of them are taken by an import.
    taken = [f"1234567{i:02d}" for i in range(0, 100, 2)]
    taken = [n + str(_check(n)) for n in taken]
    issuer.import_cards(issuing, write_csv(tmp_path / "taken.csv", *(
        f"{n},,gift,general,0.00,EUR,,not_activated," for n in taken)))
    made = set()
    for _ in range(4):
        batch, _rows = make_batch(issuing, tmp_path, 10, prefix="1234567", length=10)
        made |= set(batch.numbers)
    assert len(made) == 40 and not made & set(taken)
    with pytest.raises(BadInput) as err:  # 10 left: too little room to draw 10 at random
        make_batch(issuing, tmp_path, 11, prefix="1234567", length=10)
    assert err.value.code == "number_space_too_small"


def _check(body: str) -> int:
    from terminal.luhn import check_digit

    return int(check_digit(body))


def test_a_batch_is_all_or_nothing(issuing: Engine, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batches, "_write_export", disk_full)
    with pytest.raises(OSError):
        make_batch(issuing, tmp_path, 5, pins=True)
    assert (count(issuing, schema.cards), count(issuing, schema.batches)) == (0, 0)
    assert list(tmp_path.glob("*batch*")) == []
    monkeypatch.undo()

    existing = tmp_path / "batch-0.csv"
    existing.write_text("keep me\n", encoding="utf-8")
    with pytest.raises(BadInput) as err:
        batches.create_batch(issuing, batches.BatchSpec("gift", 2), existing, secret=SECRET)
    assert err.value.code == "export_exists"
    assert existing.read_text(encoding="utf-8") == "keep me\n"
    for spec, code in ((batches.BatchSpec("gift", 0), "bad_batch_count"),
                       (batches.BatchSpec("gift", 2, prefix="60a"), "bad_prefix"),
                       (batches.BatchSpec("gift", 2, length=20), "bad_number_length"),
                       (batches.BatchSpec("gift", 2, expiry=START.date()), "expiry_not_future")):
        with pytest.raises(BadInput) as err:
            batches.create_batch(issuing, spec, tmp_path / "x.csv", secret=SECRET, now=START)
        assert err.value.code == code
    with pytest.raises(NotFound):
        batches.create_batch(issuing, batches.BatchSpec("nope", 2), tmp_path / "x.csv",
                             secret=SECRET)
    issuer.import_cards(issuing, write_csv(tmp_path / "cards.csv", *ROWS))  # makes "fuel"
    refused("program_has_no_purses", lambda: batches.create_batch(
        issuing, batches.BatchSpec("fuel", 2), tmp_path / "x.csv", secret=SECRET))
    assert count(issuing, schema.batches) == 0 and not (tmp_path / "x.csv").exists()


def test_programs(engine: Engine) -> None:
    made = batches.add_program(engine, "fuel-co", ["fuel"], "EUR")
    assert made.as_json() == {"id": "fuel-co", "name": None,
                              "purses": [{"name": "fuel", "currency": "EUR"}]}
    assert isinstance(refused("program_exists", lambda: batches.add_program(
        engine, "fuel-co", ["fuel"], "EUR")), StateError)
    for program, purses, currency, code in (
            ("Bad Name", ["a"], "EUR", "bad_program"), ("p", [], "EUR", "bad_purse_count"),
            ("p", ["a", "a"], "EUR", "duplicate_purse_name"), ("p", ["A"], "EUR", "bad_purse"),
            ("p", ["a"], "XXX", "unknown_currency")):
        assert isinstance(refused(code, functools.partial(
            batches.add_program, engine, program, purses, currency)), BadInput)
    assert count(engine, schema.programs) == 1


def test_no_active_key_no_batch(engine: Engine, tmp_path: Path) -> None:
    batches.add_program(engine, "gift", ["general"], "EUR")
    with pytest.raises(StateError) as err:
        batches.create_batch(engine, batches.BatchSpec("gift", 1), tmp_path / "b.csv",
                             secret=SECRET)
    assert err.value.code == "no_active_key"


# -- activate, top up, close --------------------------------------------------------------------

def test_activate_topup_close_post_to_the_ledger_and_the_pull(issuing: Engine,
                                                              tmp_path: Path) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 2)
    card, other = batch.numbers
    cursor = cursor_now(issuing)
    moved = issuer.activate(issuing, card, "25.00")
    assert moved.as_json() == {"number": card, "status": "active", "purse": "general",
                               "currency": "EUR", "amount": 25_00, "balance": 25_00}
    assert issuer.topup(issuing, card, 10_00, purse="fuel").balance == 10_00
    assert issuer.topup(issuing, card, "5").balance == 30_00
    page = pull.pull(issuing, cursor)
    assert [(c["number"], c["status"], c["purses"]) for c in page["cards"]] == [
        (card, "active", [{"name": "general", "currency": "EUR", "balance": 30_00},
                          {"name": "fuel", "currency": "EUR", "balance": 10_00}])]

    closing = issuer.close(issuing, card)
    assert closing.as_json()["paid_out"] == [
        {"purse": "general", "currency": "EUR", "amount": 30_00},
        {"purse": "fuel", "currency": "EUR", "amount": 10_00}]
    assert status(issuing, card) == "closed"
    assert balances(issuing, card) == {"general": 0, "fuel": 0}
    with issuing.connect() as conn:
        kinds = conn.execute(sa.select(schema.ledger.c.kind, schema.ledger.c.amount,
                                       schema.ledger.c.terminal)
                             .order_by(schema.ledger.c.id)).all()
        assert [tuple(k) for k in kinds] == [("activate", 25_00, None), ("topup", 10_00, None),
                                             ("topup", 5_00, None), ("close", -30_00, None),
                                             ("close", -10_00, None)]
        assert ledger.check_balances(conn) == []
        log = conn.execute(sa.select(schema.card_status_log.c.old, schema.card_status_log.c.new,
                                     schema.card_status_log.c.source)
                           .where(schema.card_status_log.c.card == card)
                           .order_by(schema.card_status_log.c.id)).all()
        assert [tuple(x) for x in log] == [("not_activated", "active", "issuer"),
                                           ("active", "closed", "issuer")]
    assert status(issuing, other) == "not_activated"
    assert issuer.close(issuing, other).paid_out == ()  # never activated: nothing to post out


def test_issuer_operations_refuse_with_typed_errors(issuing: Engine, tmp_path: Path) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 1)
    card = batch.numbers[0]
    cases: list[tuple[Callable[[], object], type[CardposError], str]] = [
        (lambda: issuer.activate(issuing, "79927398710", 1), BadInput, "bad_check_digit"),
        (lambda: issuer.activate(issuing, "4539578763621486", 1), NotFound, "unknown_card"),
        (lambda: issuer.topup(issuing, card, 1_00), StateError, "card_not_active"),
        (lambda: issuer.activate(issuing, card, 500_01), StateError, "topup_limit"),
        (lambda: issuer.activate(issuing, card, "1.234"), BadInput, "too_many_decimals"),
        (lambda: issuer.activate(issuing, card, 1, purse="phone"), NotFound, "unknown_purse"),
    ]
    for job, kind, code in cases:
        assert isinstance(refused(code, job), kind)
    assert status(issuing, card) == "not_activated" and balances(issuing, card)["general"] == 0
    issuer.activate(issuing, card, 500_00)
    assert isinstance(refused("already_active", lambda: issuer.activate(issuing, card, 1)),
                      StateError)
    assert isinstance(refused("amount_not_positive", lambda: issuer.topup(issuing, card, 0)),
                      BadInput)
    assert isinstance(refused("topup_limit", lambda: issuer.topup(issuing, card, 500_01)),
                      StateError)
    issuer.topup(issuing, card, 500_00)
    full = refused("balance_limit", lambda: issuer.topup(issuing, card, 1))
    assert isinstance(full, StateError) and "1000.00 EUR" in full.english()
    tight = Limits(max_topup=10_00, max_purse_balance=20_00)
    with pytest.raises(StateError):
        issuer.topup(issuing, card, 1, purse="fuel", limits=Limits(max_purse_balance=0))
    assert issuer.topup(issuing, card, 10_00, purse="fuel", limits=tight).balance == 10_00
    assert balances(issuing, card) == {"general": 1_000_00, "fuel": 10_00}

    issuer.freeze(issuing, card)
    with pytest.raises(StateError):
        issuer.topup(issuing, card, 1)
    with issuing.begin() as conn:  # an offline overspend took the fuel purse below zero
        conn.execute(sa.update(schema.purses).where(schema.purses.c.card == card,
                                                    schema.purses.c.name == "fuel")
                     .values(balance=-5_00))
    with pytest.raises(StateError) as err:
        issuer.close(issuing, card)
    assert err.value.code == "card_overspent"
    assert status(issuing, card) == "frozen"


def test_expired_cards_are_neither_activated_nor_topped_up(issuing: Engine,
                                                           tmp_path: Path) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 1, expiry=date(2027, 1, 31))
    later = START.replace(year=2027, month=2, day=1)
    with pytest.raises(StateError) as err:
        issuer.activate(issuing, batch.numbers[0], 1_00, now=later)
    assert err.value.code == "card_expired"
    issuer.activate(issuing, batch.numbers[0], 1_00, now=START)
    with pytest.raises(StateError):
        issuer.topup(issuing, batch.numbers[0], 1_00, now=later)


def test_concurrent_topups_never_pass_the_balance_cap(issuing: Engine, tmp_path: Path) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 1)
    card = batch.numbers[0]
    issuer.activate(issuing, card)
    outcomes: list[str] = []
    lock = threading.Lock()

    def topup() -> None:
        try:
            issuer.topup(issuing, card, 50_00)
            result = "ok"
        except StateError as err:
            result = err.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=topup) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["balance_limit"] * 4 + ["ok"] * 20
    assert balances(issuing, card)["general"] == 1_000_00
    with issuing.connect() as conn:
        assert ledger.check_balances(conn) == []


# -- bulk orders --------------------------------------------------------------------------------

def order_file(path: Path, *lines: str, header: str = "number,amount,purse") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_an_order_applies_each_line_alone_and_reruns_idempotently(issuing: Engine,
                                                                 tmp_path: Path) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 4)
    a, b, c, d = batch.numbers
    first = order_file(tmp_path / "order.csv",
                       f"{a},20.00,",
                       "4539578763621486,5.00,",      # not on the server
                       f"{b},12.5x,",                 # bad amount
                       f"{c},7.00,fuel",
                       f"{a},1.00,",                  # the same card again
                       "79927398710,1.00,",           # mistyped number
                       f"{d},600.00,")                # above the top-up limit
    report = orders.apply_order(issuing, "ACME-2026-11", first)
    got = [(r.line, r.result, r.code) for r in report.lines]
    assert got == [(2, "activated", None), (3, "error", "unknown_card"),
                   (4, "error", "bad_amount"), (5, "activated", None),
                   (6, "error", "duplicate_order_card"), (7, "error", "bad_check_digit"),
                   (8, "error", "topup_limit")]
    assert report.counts() == {"activated": 2, "already_activated": 0, "error": 5}
    assert not report.ok
    assert balances(issuing, a)["general"] == 20_00 and balances(issuing, c)["fuel"] == 7_00
    assert status(issuing, b) == "not_activated"
    stored = count(issuing, schema.order_lines, schema.order_lines.c.order_id == "ACME-2026-11")
    assert stored == 6  # every line but the repeated card

    # The company fixes its lines and the same order runs again: only the rest is applied.
    postings = count(issuing, schema.ledger)
    fixed = order_file(tmp_path / "order-fixed.csv",
                       f"{a},20.00,", f"{b},12.50,", f"{c},7.00,fuel", f"{d},60.00,")
    again = orders.apply_order(issuing, "ACME-2026-11", fixed)
    assert [(r.number, r.result) for r in again.lines] == [
        (a, "already_activated"), (b, "activated"), (c, "already_activated"), (d, "activated")]
    assert again.ok and again.lines[2].amount == 7_00 and again.lines[2].purse == "fuel"
    assert count(issuing, schema.ledger) == postings + 2
    assert balances(issuing, a)["general"] == 20_00 and balances(issuing, d)["general"] == 60_00
    with issuing.connect() as conn:
        results = conn.execute(sa.select(schema.order_lines.c.card, schema.order_lines.c.result)
                               .where(schema.order_lines.c.order_id == "ACME-2026-11")).all()
        assert sorted(tuple(r) for r in results) == sorted(
            (n, "activated") for n in (a, b, c, d))  # the fixed errors are gone
    # Another order naming an activated card: an error for that line only.
    other = orders.apply_order(issuing, "OTHER", order_file(tmp_path / "o.csv", f"{a},1.00,"))
    assert [(r.result, r.code) for r in other.lines] == [("error", "already_active")]


def test_an_order_survives_a_crash_half_way(issuing: Engine, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    batch, _rows = make_batch(issuing, tmp_path, 3)
    path = order_file(tmp_path / "order.csv", *(f"{n},10.00" for n in batch.numbers),
                      header="number,amount")
    real = issuer.activate_in
    calls = []

    def crash_on_second(*args: Any) -> issuer.Movement:
        calls.append(args[1])
        if len(calls) == 2:
            raise ConnectionError("the server process died")
        return real(*args)

    monkeypatch.setattr(issuer, "activate_in", crash_on_second)
    with pytest.raises(ConnectionError):
        orders.apply_order(issuing, "CRASH", path)
    monkeypatch.undo()
    assert [status(issuing, n) for n in batch.numbers] == ["active", "not_activated",
                                                          "not_activated"]
    report = orders.apply_order(issuing, "CRASH", path)
    assert [r.result for r in report.lines] == ["already_activated", "activated", "activated"]
    assert all(balances(issuing, n)["general"] == 10_00 for n in batch.numbers)


def test_order_file_and_id_are_checked_first(issuing: Engine, tmp_path: Path) -> None:
    good = order_file(tmp_path / "o.csv", f"{SLEEPER},1.00,")
    for order_id, path, code in (
            ("bad id", good, "bad_order_id"),
            ("X", order_file(tmp_path / "h.csv", "1,2", header="card,amount"),
             "bad_order_header"),
            ("X", tmp_path / "missing.csv", "cannot_read_file")):
        with pytest.raises(BadInput) as err:
            orders.apply_order(issuing, order_id, path)
        assert err.value.code == code
    assert count(issuing, schema.orders) == 0


# -- the CLI ------------------------------------------------------------------------------------

def test_cli_issuing_end_to_end(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = ("--db", db_url)

    def run(*argv: str) -> tuple[int, Any]:
        code = run_cli(*argv, *db, "--json")
        out = capsys.readouterr().out.strip().splitlines()
        return code, json.loads(out[-1]) if out else None

    monkeypatch.delenv(PASSPHRASE, raising=False)
    assert run("server", "keys", "generate")[0] == 2
    monkeypatch.setenv(PASSPHRASE, "cli secret")
    code, data = run("server", "keys", "generate", "--key-id", "cli1")
    assert code == 0 and data["key"]["kid"] == "cli1" and data["key"]["signs"]
    assert run("server", "keys", "generate")[0] == 1                      # already one active
    assert run("server", "program", "add", "corp", "--purses", "general",
               "--currency", "eur")[0] == 0
    export = tmp_path / "print.csv"
    code, data = run("server", "batch", "create", "--program", "corp", "--count", "3",
                     "--prefix", "7001", "--uids", "--pins", "--expiry", "2031-01-31",
                     "--export", str(export))
    assert code == 0 and data["count"] == 3
    with export.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    a, b, c = (r["number"] for r in rows)
    assert run("server", "batch", "create", "--program", "corp", "--count", "1",
               "--export", str(export))[0] == 2                           # never overwrites

    code, data = run("server", "activate", a, "--amount", "30.00")
    assert code == 0 and data["balance"] == 30_00
    assert run("server", "topup", a, "--amount", "600")[0] == 1           # above the limit
    assert run("server", "topup", b, "--amount", "5")[0] == 1             # not activated
    assert run("server", "topup", "4539578763621486", "--amount", "5")[0] == 2  # unknown card
    code, data = run("server", "close", a)
    assert code == 0 and data["paid_out"] == [{"purse": "general", "currency": "EUR",
                                               "amount": 30_00}]

    order = order_file(tmp_path / "order.csv", f"{b},15.00,", "4539578763621486,1.00,")
    code, data = run("server", "order", "apply", "--order-id", "co-1", str(order))
    assert code == 1 and (data["activated"], data["error"]) == (1, 1)
    assert [line["code"] for line in data["lines"]] == [None, "unknown_card"]
    order_file(order, f"{b},15.00,", f"{c},2.00,")
    assert run_cli("server", "order", "apply", *db, "--order-id", "co-1", str(order)) == 0
    text = capsys.readouterr().out
    assert "1 activated now, 1 by an earlier run, 0 errors" in text
    assert "already_activated" in text and "2.00 EUR" in text

    code, data = run("server", "keys", "rotate", "--key-id", "cli2")
    assert code == 0 and data["retiring"] == "cli1"
    assert run("server", "keys", "revoke", "cli2")[0] == 1                # the active key
    assert run("server", "keys", "revoke", "cli1")[0] == 0
    code, data = run("server", "keys", "list")
    assert [(k["kid"], k["status"]) for k in data["keys"]] == [("cli1", "revoked"),
                                                               ("cli2", "active")]


def test_cli_database_failure_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    url = f"sqlite:///{tmp_path / 'not-migrated.db'}"
    assert run_cli("server", "keys", "list", "--db", url) == 3
    assert "The server database failed" in capsys.readouterr().err


def test_terminal_verifies_printed_cards_until_their_key_is_revoked(
        issuing: Engine, tmp_path: Path, till: Till) -> None:
    batch, rows = make_batch(issuing, tmp_path, 1)
    issuer.activate(issuing, batch.numbers[0], "40.00")
    page = pull.pull(issuing, 0)
    till.store.write(lambda c: sync_state.apply_pull(c, page))
    qr = QrCode(rows[0]["qr"])
    result = till.terminal.inquire(qr)
    assert result.decision.approved
    keyring.rotate(issuing, kid="k2", secret=SECRET)
    page = pull.pull(issuing, page["cursor"])
    till.store.write(lambda c: sync_state.apply_pull(c, page))
    assert till.terminal.inquire(qr).decision.approved  # retiring: still verifies
    keyring.revoke(issuing, "k1")
    page = pull.pull(issuing, page["cursor"])
    till.store.write(lambda c: sync_state.apply_pull(c, page))
    assert Reason.UNKNOWN_KEY in till.terminal.inquire(qr).decision.reasons
