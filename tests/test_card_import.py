"""Bulk card import from CSV (terminal/card_import.py through `admin.import_card_file`).

The contract: columns number,uid,program,purse,balance,currency,expiry,status,pin, one row per
purse, balances in major units of the row's currency; every bad row is reported with its line
number (the header is line 1) and nothing at all is imported from a file with errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from terminal import admin
from terminal.errors import BadInput, CardposError, ImportRejected
from terminal.limits import Limits
from terminal.luhn import check_digit
from terminal.model import Card, CardStatus
from terminal.pin import hash_pin, verify_pin
from terminal.store import queries
from terminal.store.db import DB_FILE, Store

HEADER = "number,uid,program,purse,balance,currency,expiry,status,pin"


def num(serial: int) -> str:
    """A valid 16-digit card number (Luhn)."""
    body = f"628099{serial:09d}"
    return body + check_digit(body)


def bad_luhn(serial: int) -> str:
    good = num(serial)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def row(number: str, uid: str = "", program: str = "fuel", purse: str = "fuel",
        balance: str = "10.00", currency: str = "EUR", expiry: str = "2030-12-31",
        status: str = "active", pin: str = "") -> str:
    return ",".join((number, uid, program, purse, balance, currency, expiry, status, pin))


EXISTING = num(1)
EXISTING_UID = "04A1B2C3D4E501"


@pytest.fixture
def empty_store(tmp_path: Path) -> Iterator[Store]:
    store = admin.init_store(tmp_path / "store", "T1", Limits(), datetime.now(UTC))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(empty_store: Store, tmp_path: Path) -> Store:
    """A store that already holds one card (EXISTING, with EXISTING_UID)."""
    path = write(tmp_path, [row(EXISTING, EXISTING_UID, balance="5.00")], "existing.csv")
    summary = admin.import_card_file(empty_store, path)
    assert (summary.cards, summary.purses) == (1, 1)
    return empty_store


def write(tmp_path: Path, rows: list[str], name: str = "cards.csv",
          header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def counts(store: Store) -> tuple[int, int]:
    return store.read(lambda conn: (
        conn.execute("SELECT count(*) FROM cards").fetchone()[0],
        conn.execute("SELECT count(*) FROM purses").fetchone()[0]))


def load(store: Store, number: str) -> Card:
    card = store.read(lambda conn: queries.load_card(conn, number=number))
    assert card is not None, number
    return card


def pin_hash_of(store: Store, number: str) -> str | None:
    value: str | None = store.read(lambda conn: conn.execute(
        "SELECT pin_hash FROM cards WHERE number = ?", (number,)).fetchone()[0])
    return value


def rejected(store: Store, path: Path) -> list[tuple[int, str, str]]:
    """Import `path`, expect ImportRejected, return its (line, column, code) rows."""
    with pytest.raises(ImportRejected) as exc:
        admin.import_card_file(store, path)
    return [(e.line, e.column, e.code) for e in exc.value.errors]


# --- a good file ---------------------------------------------------------------------------------


def test_good_multi_purse_file(empty_store: Store, tmp_path: Path) -> None:
    a, b, c, d = num(10), num(11), num(12), num(13)
    path = write(tmp_path, [
        row(a, "04a1b2c3d4e510", purse="phone", balance="0.50"),   # file order, not a-z
        row(b, "", program="shop", purse="yen", balance="1500", currency="JPY",
            expiry="", status="not_activated"),
        row(a, "04a1b2c3d4e510", purse="fuel", balance="80"),
        row(c, "A1B2C3D4", program="gulf", purse="general", balance="1.234", currency="kwd",
            status="frozen"),
        row(a, "04a1b2c3d4e510", purse="general", balance="20.05"),
        row(d, "04A1B2C3D4E5F60718AB", program="x-1_y", purse="p_2", balance="0",
            currency="EUR", expiry="2027-02-28", status="lost"),
    ])
    summary = admin.import_card_file(empty_store, path)
    assert (summary.cards, summary.purses, summary.pins_hashed) == (4, 6, 0)
    assert summary.as_json() == {"cards": 4, "purses": 6, "pins_hashed": 0}
    assert counts(empty_store) == (4, 6)

    card_a = load(empty_store, a)
    assert [(p.name, p.balance, p.currency) for p in card_a.purses] == [
        ("phone", 50, "EUR"), ("fuel", 80_00, "EUR"), ("general", 20_05, "EUR")]
    assert card_a.uid == "04A1B2C3D4E510"
    assert card_a.program == "fuel"
    assert card_a.status is CardStatus.ACTIVE
    assert card_a.expiry == date(2030, 12, 31)
    assert not card_a.has_pin
    by_uid = empty_store.read(lambda conn: queries.load_card(conn, uid="04A1B2C3D4E510"))
    assert by_uid is not None and by_uid.number == a

    card_b = load(empty_store, b)
    assert [(p.name, p.balance, p.currency) for p in card_b.purses] == [("yen", 1500, "JPY")]
    assert card_b.uid is None
    assert card_b.expiry is None
    assert card_b.status is CardStatus.NOT_ACTIVATED

    card_c = load(empty_store, c)
    assert [(p.name, p.balance, p.currency) for p in card_c.purses] == [
        ("general", 1234, "KWD")]
    assert card_c.status is CardStatus.FROZEN

    card_d = load(empty_store, d)
    assert card_d.uid == "04A1B2C3D4E5F60718AB"
    assert card_d.program == "x-1_y"
    assert [(p.name, p.balance) for p in card_d.purses] == [("p_2", 0)]
    assert card_d.status is CardStatus.LOST


def test_pins_are_hashed_never_stored_in_clear(empty_store: Store, tmp_path: Path) -> None:
    clear_pin = "918273645012"
    prehashed = hash_pin("4321")
    a, b, c = num(20), num(21), num(22)
    path = write(tmp_path, [
        row(a, purse="fuel", pin=clear_pin),
        row(a, purse="general", pin=clear_pin),   # the same PIN on each row of the card
        row(b, pin=prehashed),
        row(c),
    ])
    summary = admin.import_card_file(empty_store, path)
    assert (summary.cards, summary.purses, summary.pins_hashed) == (3, 4, 1)

    stored_a = pin_hash_of(empty_store, a)
    assert stored_a is not None
    assert stored_a.startswith("scrypt$")
    assert clear_pin not in stored_a
    assert verify_pin(clear_pin, stored_a)
    assert not verify_pin("918273645013", stored_a)
    assert load(empty_store, a).has_pin

    assert pin_hash_of(empty_store, b) == prehashed  # an issuer's hash is kept as it is
    assert verify_pin("4321", prehashed)
    assert pin_hash_of(empty_store, c) is None
    assert not load(empty_store, c).has_pin

    empty_store.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").iterdir() if p.is_file())
    assert (tmp_path / "store" / DB_FILE).exists()
    assert clear_pin.encode() not in raw


# --- every validation error ----------------------------------------------------------------------

NEW_A, NEW_B = num(30), num(31)

CASES: dict[str, tuple[list[str], tuple[str, str]]] = {
    "bad Luhn": ([row(bad_luhn(30))], ("number", "bad_check_digit")),
    "non-digit number": ([row("62809900000003A1")], ("number", "bad_card_number")),
    "number too short": ([row("1234567")], ("number", "bad_card_number")),
    "number too long": ([row("1" * 20)], ("number", "bad_card_number")),
    "non-ASCII digits": ([row("６２８０９９０００００００３０４")], ("number", "bad_card_number")),
    "uid of 3 bytes": ([row(NEW_A, "04A1B2")], ("uid", "bad_uid")),
    "uid not hex": ([row(NEW_A, "04A1B2C3D4E5ZZ")], ("uid", "bad_uid")),
    "bad program": ([row(NEW_A, program="Fuel Card")], ("program", "bad_program")),
    "empty program": ([row(NEW_A, program="")], ("program", "bad_program")),
    "bad purse": ([row(NEW_A, purse="fuel-purse")], ("purse", "bad_purse")),
    "empty purse": ([row(NEW_A, purse="")], ("purse", "bad_purse")),
    "bad balance": ([row(NEW_A, balance="abc")], ("balance", "bad_amount")),
    "negative balance": ([row(NEW_A, balance="-1.00")], ("balance", "bad_amount")),
    "comma balance": ([row(NEW_A, balance='"1,50"')], ("balance", "bad_amount")),
    "too many decimals EUR": ([row(NEW_A, balance="1.005")], ("balance", "too_many_decimals")),
    "decimals for JPY": ([row(NEW_A, balance="15.5", currency="JPY")],
                         ("balance", "too_many_decimals")),
    "four decimals for KWD": ([row(NEW_A, balance="1.2345", currency="KWD")],
                              ("balance", "too_many_decimals")),
    "unknown currency": ([row(NEW_A, currency="XXX")], ("currency", "unknown_currency")),
    "empty currency": ([row(NEW_A, currency="")], ("currency", "unknown_currency")),
    "bad month": ([row(NEW_A, expiry="2026-13-01")], ("expiry", "bad_date")),
    "bad date format": ([row(NEW_A, expiry="31/12/2026")], ("expiry", "bad_date")),
    "basic ISO date": ([row(NEW_A, expiry="20261231")], ("expiry", "bad_date")),
    "bad status": ([row(NEW_A, status="sleeping")], ("status", "bad_status")),
    "short pin": ([row(NEW_A, pin="12")], ("pin", "bad_pin_format")),
    "letters pin": ([row(NEW_A, pin="12ab")], ("pin", "bad_pin_format")),
    "broken hash pin": ([row(NEW_A, pin="scrypt$14$8$1$!!$??")], ("pin", "bad_pin_format")),
    "too few columns": ([",".join(row(NEW_A).split(",")[:8])], ("", "wrong_column_count")),
    "too many columns": ([row(NEW_A) + ",extra"], ("", "wrong_column_count")),
    "duplicate purse": ([row(NEW_B), row(NEW_B, balance="2.00")], ("purse", "duplicate_purse")),
    "rows disagree on program": ([row(NEW_B, purse="fuel"),
                                  row(NEW_B, purse="general", program="shop")],
                                 ("", "card_rows_disagree")),
    "rows disagree on status": ([row(NEW_B, purse="fuel"),
                                 row(NEW_B, purse="general", status="frozen")],
                                ("", "card_rows_disagree")),
    "rows disagree on expiry": ([row(NEW_B, purse="fuel"),
                                 row(NEW_B, purse="general", expiry="2031-01-01")],
                                ("", "card_rows_disagree")),
    "rows disagree on uid": ([row(NEW_B, "04AABBCCDDEE01", purse="fuel"),
                              row(NEW_B, "04AABBCCDDEE02", purse="general")],
                             ("", "card_rows_disagree")),
    "uid used twice in the file": ([row(NEW_B, "04aabbccddee01"),
                                    row(num(32), "04AABBCCDDEE01")], ("uid", "uid_taken")),
    "card already in the store": ([row(EXISTING, purse="general")], ("number", "card_exists")),
    "uid already in the store": ([row(NEW_A, EXISTING_UID.lower())], ("uid", "uid_taken")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_validation_error(store: Store, tmp_path: Path, case: str) -> None:
    bad_rows, (column, code) = CASES[case]
    before = counts(store)
    # A good card before and after the bad rows: they must not be imported either.
    path = write(tmp_path, [row(num(40), "04C0FFEE000040"), *bad_rows, row(num(41))])
    bad_line = 2 + len(bad_rows)  # the header is line 1, the good row line 2
    errors = rejected(store, path)
    assert errors == [(bad_line, column, code)]
    assert counts(store) == before
    assert store.read(lambda conn: queries.load_card(conn, number=num(40))) is None


def test_bad_header(store: Store, tmp_path: Path) -> None:
    before = counts(store)
    for header in ("number,uid,program,purse,balance,currency,expiry,status",
                   "number,uid,program,purse,amount,currency,expiry,status,pin",
                   "number,uid,program,purse,balance,currency,expiry,status,pin,extra",
                   "6280990000000404,,fuel,fuel,1.00,EUR,,active,"):
        path = write(tmp_path, [row(num(40))], header=header)
        assert rejected(store, path) == [(1, "", "bad_header")], header
    assert counts(store) == before


def test_header_columns_in_another_order_and_padded(empty_store: Store, tmp_path: Path) -> None:
    a = num(50)
    path = write(tmp_path, [f"EUR, 12.50 ,fuel,fuel,{a},,2030-01-01,active,"],
                 header="currency,balance,purse,program,number,uid,expiry,status, pin")
    admin.import_card_file(empty_store, path)
    assert [(p.name, p.balance) for p in load(empty_store, a).purses] == [("fuel", 12_50)]


def test_every_error_is_reported_with_its_line(store: Store, tmp_path: Path) -> None:
    before = counts(store)
    path = write(tmp_path, [
        row(num(60)),                                   # 2 ok
        row(bad_luhn(61)),                              # 3
        row(num(62), balance="x"),                      # 4
        row(num(63)),                                   # 5 ok
        row(num(64), program="BAD", status="gone"),     # 6: two problems in one row
        row(EXISTING),                                  # 7
        row(num(60), balance="1.00"),                   # 8 duplicate purse of line 2
    ])
    with pytest.raises(ImportRejected) as exc:
        admin.import_card_file(store, path)
    assert [(e.line, e.column, e.code) for e in exc.value.errors] == [
        (3, "number", "bad_check_digit"),
        (4, "balance", "bad_amount"),
        (6, "program", "bad_program"),
        (6, "status", "bad_status"),
        (7, "number", "card_exists"),
        (8, "purse", "duplicate_purse"),
    ]
    assert exc.value.params["count"] == 6
    messages = [e.message("en") for e in exc.value.errors]
    assert messages[0].startswith("line 3, number:")
    assert "nothing was imported" in exc.value.message("en")
    assert counts(store) == before


def test_many_errors_are_counted_beyond_those_kept(empty_store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, [row(num(i), status="nope") for i in range(300)])
    with pytest.raises(ImportRejected) as exc:
        admin.import_card_file(empty_store, path)
    assert exc.value.params["count"] == 300
    assert 0 < len(exc.value.errors) <= 300
    assert [e.line for e in exc.value.errors] == list(range(2, 2 + len(exc.value.errors)))
    assert counts(empty_store) == (0, 0)


def test_one_bad_row_among_20000_imports_nothing(store: Store, tmp_path: Path) -> None:
    before = counts(store)
    rows = [row(num(1000 + i), f"04{1000 + i:012X}") for i in range(20_000)]
    bad_index = 17_500  # well after the first batches were inserted
    rows.insert(bad_index, row(num(99_999), balance="12.345"))
    path = write(tmp_path, rows, "big.csv")
    assert rejected(store, path) == [(bad_index + 2, "balance", "too_many_decimals")]
    assert counts(store) == before
    assert store.read(lambda conn: queries.load_card(conn, number=num(1000))) is None

    # The same file without the bad row imports every card.
    del rows[bad_index]
    summary = admin.import_card_file(store, write(tmp_path, rows, "big-ok.csv"))
    assert (summary.cards, summary.purses) == (20_000, 20_000)
    assert counts(store) == (before[0] + 20_000, before[1] + 20_000)


def test_header_only_file_is_an_error(empty_store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, [])
    with pytest.raises(BadInput) as exc:
        admin.import_card_file(empty_store, path)
    assert exc.value.code == "empty_file"
    assert counts(empty_store) == (0, 0)


def test_zero_byte_file_is_an_error(empty_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CardposError):
        admin.import_card_file(empty_store, path)
    assert counts(empty_store) == (0, 0)


def test_missing_file_is_bad_input(empty_store: Store, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        admin.import_card_file(empty_store, tmp_path / "nope.csv")
    assert exc.value.code == "cannot_read_file"


def test_not_utf8_is_reported(empty_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n" + row(num(70), program="caf\xe9") + "\n").encode("latin-1"))
    with pytest.raises(ImportRejected) as exc:
        admin.import_card_file(empty_store, path)
    assert exc.value.errors[0].code == "unreadable_csv"
    assert counts(empty_store) == (0, 0)


def test_bom_and_crlf(empty_store: Store, tmp_path: Path) -> None:
    a, b = num(80), num(81)
    text = "\r\n".join([HEADER, row(a, purse="fuel"), row(a, purse="general", balance="2.50"),
                        row(b)]) + "\r\n"
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    summary = admin.import_card_file(empty_store, path)
    assert (summary.cards, summary.purses) == (2, 3)
    assert [(p.name, p.balance) for p in load(empty_store, a).purses] == [
        ("fuel", 10_00), ("general", 2_50)]
    assert load(empty_store, b).expiry == date(2030, 12, 31)  # no stray \r in the last column


def test_bom_and_crlf_keep_line_numbers(empty_store: Store, tmp_path: Path) -> None:
    text = "\r\n".join([HEADER, row(num(82)), row(num(83), status="x")]) + "\r\n"
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert rejected(empty_store, path) == [(3, "status", "bad_status")]


def test_quoted_newline_keeps_line_numbers(empty_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    path.write_text("\n".join([
        HEADER,                                                            # 1
        f'{num(90)},,"fuel\n",fuel,1.00,EUR,2030-12-31,active,',            # 2-3 (valid)
        row(bad_luhn(91)),                                                 # 4
        row(num(92)),                                                      # 5
        f'{num(93)},,"two\nlines",fuel,1.00,EUR,2030-12-31,active,',        # 6-7 bad program
        row(num(94), currency="XYZ"),                                      # 8
    ]) + "\n", encoding="utf-8")
    assert rejected(empty_store, path) == [
        (4, "number", "bad_check_digit"),
        (6, "program", "bad_program"),
        (8, "currency", "unknown_currency"),
    ]
    assert counts(empty_store) == (0, 0)


def test_quoted_newline_in_a_good_file(empty_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    path.write_text("\n".join([
        HEADER,
        f'{num(95)},,"fuel\n",fuel,1.00,EUR,2030-12-31,active,',
        row(num(96)),
    ]) + "\n", encoding="utf-8")
    summary = admin.import_card_file(empty_store, path)
    assert summary.cards == 2
    assert load(empty_store, num(95)).program == "fuel"


def test_blank_line_keeps_line_numbers(empty_store: Store, tmp_path: Path) -> None:
    """A blank line is skipped, but the rows after it keep their own line numbers."""
    path = tmp_path / "blank.csv"
    path.write_text("\n".join([
        HEADER,                      # 1
        row(num(100)),               # 2
        "",                          # 3
        row(bad_luhn(101)),          # 4
    ]) + "\n", encoding="utf-8")
    assert rejected(empty_store, path) == [(4, "number", "bad_check_digit")]


def test_balance_too_large_for_the_store_is_a_clean_error(store: Store, tmp_path: Path) -> None:
    """15 integer digits in a 4-decimal currency pass the amount syntax but overflow SQLite's
    64-bit integers; that must be a reported error, not a crash, and nothing imported."""
    before = counts(store)
    path = write(tmp_path, [row(num(110)),
                            row(num(111), balance="999999999999999.9999", currency="CLF")])
    assert rejected(store, path) == [(3, "balance", "amount_too_large")]
    assert counts(store) == before


@pytest.mark.parametrize(("text", "status"), [("ACTIVE", CardStatus.ACTIVE),
                                              (" expired ", CardStatus.EXPIRED),
                                              ("closed", CardStatus.CLOSED)])
def test_status_is_case_and_space_tolerant(empty_store: Store, tmp_path: Path, text: str,
                                           status: CardStatus) -> None:
    path = write(tmp_path, [row(num(120), status=text)])
    admin.import_card_file(empty_store, path)
    assert load(empty_store, num(120)).status is status
