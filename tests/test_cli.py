"""End-to-end tests of the `cardpos` CLI contract (issue 2, "The CLI contract").

Most cases call `cardpos.cli.main` in-process and read stdout/stderr with capsys; a few run the
installed console script in a subprocess to prove the entry point and the real exit codes.
Exit status: 0 approved/ok, 1 declined (reason codes in the output), 2 bad input or usage
(a message on stderr, nothing written).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cardpos import __version__
from cardpos.cli import main
from cardpos.demo import CARD_PIN, CASHIER, CASHIER_PIN, SUPERVISOR_PIN, DemoCard, Seeded, seed

HEADER = "number,uid,program,purse,balance,currency,expiry,status,pin"
ZERO_HASH = "0" * 64


# --- helpers -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        lines = [ln for ln in self.out.splitlines() if ln.strip()]
        assert lines, f"no output (stderr: {self.err!r})"
        return json.loads(lines[-1])


class Cli:
    """Runs `cardpos --data DIR ...` in-process and captures what it printed."""

    def __init__(self, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data = data
        self.capsys = capsys

    def __call__(self, *args: str, json_out: bool = True) -> Ran:
        self.capsys.readouterr()  # drop anything printed before
        argv = ["--data", str(self.data), *(["--json"] if json_out else []), *args]
        code = main(argv)
        captured = self.capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    def text(self, *args: str) -> Ran:
        return self(*args, json_out=False)

    def jsonl_entries(self) -> list[dict[str, Any]]:
        ran = self.text("journal", "export", "--format", "jsonl")
        assert ran.code == 0, ran.err
        return [json.loads(line) for line in ran.out.splitlines() if line.strip()]

    def balances(self, uid: str) -> dict[str, int]:
        ran = self("inquire", "--uid", uid)
        card = ran.json["card"]
        assert card is not None, ran.out
        return {p["name"]: p["balance"] for p in card["purses"]}


def console_script() -> str:
    """The installed `cardpos` entry point of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "cardpos"
    if beside.exists():
        return str(beside)
    found = shutil.which("cardpos")
    assert found is not None, "the cardpos console script is not installed"
    return found


def run_script(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """One seeded demo terminal (no shift open), copied for each test: seeding hashes PINs."""
    return seed(tmp_path_factory.mktemp("template") / "t")


@pytest.fixture
def seeded(template: Seeded, tmp_path: Path) -> Seeded:
    data = tmp_path / "t"
    shutil.copytree(template.data, data)
    return dataclasses.replace(template, data=data)


@pytest.fixture
def cli(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The seeded terminal with a shift open for alice."""
    c = Cli(seeded.data, capsys)
    ran = c("shift", "open", "--cashier", CASHIER, "--pin", CASHIER_PIN)
    assert ran.code == 0, ran.err
    assert ran.json["outcome"] == "approve"
    return c


@pytest.fixture
def cards(seeded: Seeded) -> dict[str, DemoCard]:
    fuel, phone, pin_card, expiring, frozen, lost, gift = seeded.cards
    return {"fuel": fuel, "phone": phone, "pin_card": pin_card, "expiring": expiring,
            "frozen": frozen, "lost": lost, "gift": gift}


# --- version, init ---------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cardpos {__version__}"


def test_console_script_version_and_exit_codes(tmp_path: Path) -> None:
    """The installed console script: --version, ok (0), declined (1), bad input (2)."""
    version = run_script("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"cardpos {__version__}"

    data = str(tmp_path / "sub")
    first = run_script("--data", data, "init", "--terminal-id", "SUB-1")
    assert first.returncode == 0, first.stderr
    second = run_script("--data", data, "init", "--terminal-id", "SUB-1")
    assert second.returncode == 2
    assert "already exists" in second.stderr
    assert second.stdout == ""

    unknown = run_script("--data", data, "--json", "inquire", "--uid", "04AABBCCDDEEFF")
    assert unknown.returncode == 1, unknown.stderr
    assert json.loads(unknown.stdout)["reasons"] == ["unknown_card"]

    bad = run_script("--data", data, "redeem", "--uid", "04AABBCCDDEEFF", "--amount", "1.00")
    assert bad.returncode == 2
    assert "No shift is open" in bad.stderr

    usage = run_script("--data", data, "redeem", "--amount", "1.00")
    assert usage.returncode == 2  # argparse: one credential is required
    assert "usage:" in usage.stderr


def test_console_script_reads_pin_from_stdin(seeded: Seeded) -> None:
    opened = run_script("--data", str(seeded.data), "--json", "shift", "open", "--cashier",
                        CASHIER, "--pin", "-", stdin=CASHIER_PIN + "\n")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["outcome"] == "approve"
    assert CASHIER_PIN not in opened.stdout
    fuel = seeded.cards[0]
    redeemed = run_script("--data", str(seeded.data), "redeem", "--uid", fuel.uid,
                          "--amount", "1.00")
    assert redeemed.returncode == 0, redeemed.stderr
    assert redeemed.stdout.startswith("APPROVE")
    declined = run_script("--data", str(seeded.data), "redeem", "--uid", fuel.uid,
                          "--amount", "99.99")
    assert declined.returncode == 1
    assert "Not enough balance" in declined.stdout


def test_init_creates_store_and_refuses_second(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(tmp_path / "new", capsys)
    ran = c("init", "--terminal-id", "SHOP-7")
    assert ran.code == 0, ran.err
    assert ran.json == {"ok": True, "terminal_id": "SHOP-7", "data": str(tmp_path / "new")}
    assert (tmp_path / "new" / "cardpos.sqlite3").exists()

    again = c.text("init", "--terminal-id", "OTHER")
    assert again.code == 2
    assert "already exists" in again.err
    assert again.out == ""
    # The first store is untouched: its terminal id is still SHOP-7.
    assert c("limits", "show").code == 0
    verify = c("journal", "verify")
    assert verify.code == 0 and verify.json["ok"] is True


def test_init_bad_terminal_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(tmp_path / "bad", capsys)
    ran = c.text("init", "--terminal-id", "no spaces!")
    assert ran.code == 2
    assert "not a valid terminal id" in ran.err
    assert not (tmp_path / "bad" / "cardpos.sqlite3").exists()


def test_command_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = Cli(tmp_path / "nothing", capsys).text("inquire", "--uid", "04A1B2C3D4E501")
    assert ran.code == 2
    assert "cardpos init" in ran.err


# --- cards import ----------------------------------------------------------------------------


def test_cards_import_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(tmp_path / "t", capsys)
    assert c("init", "--terminal-id", "T1").code == 0
    f = tmp_path / "cards.csv"
    f.write_text("\n".join([
        HEADER,
        "6280000000000016,04A1B2C3D4E501,fuel,fuel,80.00,EUR,2099-12-31,active,",
        "6280000000000016,04A1B2C3D4E501,fuel,general,20.00,EUR,2099-12-31,active,",
        "6280000000000024,,phone,phone,30,EUR,,active,",
    ]) + "\n", encoding="utf-8")
    ran = c("cards", "import", str(f))
    assert ran.code == 0, ran.err
    assert ran.json == {"ok": True, "cards": 2, "purses": 3, "pins_hashed": 0}

    inq = c("inquire", "--uid", "04a1b2c3d4e501")
    assert inq.code == 0
    assert [(p["name"], p["balance"]) for p in inq.json["card"]["purses"]] == [
        ("fuel", 8000), ("general", 2000)]
    phone = c("inquire", "--card", "6280000000000024")
    assert phone.code == 0
    assert phone.json["card"]["purses"] == [{"name": "phone", "currency": "EUR",
                                             "balance": 3000}]
    assert phone.json["card"]["expiry"] is None


def test_cards_import_bad_file_imports_nothing(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(tmp_path / "t", capsys)
    assert c("init", "--terminal-id", "T1").code == 0
    f = tmp_path / "cards.csv"
    f.write_text("\n".join([
        HEADER,
        "6280000000000016,04A1B2C3D4E501,fuel,fuel,80.00,EUR,2099-12-31,active,",
        "6280000000000017,,fuel,fuel,1.00,EUR,2099-12-31,active,",     # bad check digit
        "6280000000000024,,phone,phone,30.00,EUR,,active,",
        "6280000000000032,,phone,phone,1.005,EUR,,active,",             # too many decimals
    ]) + "\n", encoding="utf-8")

    text = c.text("cards", "import", str(f))
    assert text.code == 2
    assert text.out == ""
    assert "nothing was imported" in text.err
    assert "line 3" in text.err and "line 5" in text.err
    assert "line 2" not in text.err and "line 4" not in text.err

    ran = c("cards", "import", str(f))
    assert ran.code == 2
    assert ran.json["error"] == "import_rejected"
    assert ran.json["params"]["count"] == "2"
    rows = [(r["line"], r["column"], r["code"]) for r in ran.json["rows"]]
    assert rows == [(3, "number", "bad_check_digit"), (5, "balance", "too_many_decimals")]
    assert all(r["message"] for r in ran.json["rows"])

    # Nothing of the file was imported, not even its good rows.
    for number in ("6280000000000016", "6280000000000024"):
        inq = c("inquire", "--card", number)
        assert inq.code == 1
        assert inq.json["reasons"] == ["unknown_card"]
    assert c("inquire", "--uid", "04A1B2C3D4E501").json["reasons"] == ["unknown_card"]


def test_cards_import_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(tmp_path / "t", capsys)
    assert c("init", "--terminal-id", "T1").code == 0
    ran = c.text("cards", "import", str(tmp_path / "nope.csv"))
    assert ran.code == 2
    assert "Cannot read" in ran.err


# --- keys and tokens -------------------------------------------------------------------------


def _new_key(c: Cli, tmp_path: Path, key_id: str) -> tuple[Path, str]:
    out = tmp_path / f"{key_id}.json"
    ran = c("keys", "generate", "--key-id", key_id, "--out", str(out))
    assert ran.code == 0, ran.err
    assert ran.json["key_id"] == key_id
    assert len(ran.json["public_key_hex"]) == 64
    return out, ran.json["public_key_hex"]


def _token(c: Cli, key_file: Path, number: str, *extra: str) -> str:
    ran = c("token", "make", "--private-key-file", str(key_file), "--card", number, *extra)
    assert ran.code == 0, ran.err
    qr: str = ran.json["qr"]
    return qr


def test_keys_generate_add_and_tokens(cli: Cli, cards: dict[str, DemoCard],
                                      tmp_path: Path) -> None:
    key_file, public_hex = _new_key(cli, tmp_path, "shop-k1")
    added = cli("keys", "add", "shop-k1", public_hex)
    assert added.code == 0, added.err
    listed = cli("keys", "list")
    assert listed.json["keys"]["shop-k1"] == public_hex

    fuel = cards["fuel"]
    static = _token(cli, key_file, fuel.number)
    assert set(static) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    inq = cli("inquire", "--qr", static)
    assert inq.code == 0, inq.out
    assert inq.json["outcome"] == "approve"
    assert inq.json["card"]["number"].endswith(fuel.number[-4:])

    red = cli("redeem", "--qr", static, "--amount", "2.00")
    assert red.code == 0, red.out
    assert red.json["card"]["purses"][0]["balance"] == 80_00 - 2_00

    dynamic = _token(cli, key_file, fuel.number, "--dynamic")
    assert dynamic != static
    assert cli("inquire", "--qr", dynamic).code == 0  # looking does not use the code up
    first = cli("redeem", "--qr", dynamic, "--amount", "3.00")
    assert first.code == 0, first.out
    assert first.json["outcome"] == "approve"
    assert first.json["card"]["purses"][0]["balance"] == 80_00 - 5_00
    entries_before = len(cli.jsonl_entries())

    again = cli("redeem", "--qr", dynamic, "--amount", "3.00")
    assert again.code == 1
    assert again.json["outcome"] == "decline"
    assert again.json["reasons"] == ["replayed_code"]
    assert again.json["entry"] is None
    assert len(cli.jsonl_entries()) == entries_before
    assert cli.balances(fuel.uid)["fuel"] == 80_00 - 5_00


def test_token_of_untrusted_key_is_unknown_key(cli: Cli, cards: dict[str, DemoCard],
                                               tmp_path: Path) -> None:
    key_file, _ = _new_key(cli, tmp_path, "stranger")
    qr = _token(cli, key_file, cards["fuel"].number)
    for command in (("inquire", "--qr", qr), ("redeem", "--qr", qr, "--amount", "1.00")):
        ran = cli(*command)
        assert ran.code == 1
        assert ran.json["reasons"] == ["unknown_key"]
        assert ran.json["card"] is None
    assert cli.balances(cards["fuel"].uid)["fuel"] == 80_00


def test_forged_token_under_trusted_key_id_is_bad_signature(
        cli: Cli, seeded: Seeded, cards: dict[str, DemoCard], tmp_path: Path) -> None:
    key_file, _ = _new_key(cli, tmp_path, "forger")
    # Signed with the forger's key but naming the trusted demo key id.
    qr = _token(cli, key_file, cards["fuel"].number, "--key-id", seeded.key.key_id)
    ran = cli("redeem", "--qr", qr, "--amount", "1.00")
    assert ran.code == 1
    assert ran.json["reasons"] == ["bad_signature"]


def test_tampered_qr_is_declined(cli: Cli, seeded: Seeded, cards: dict[str, DemoCard]) -> None:
    key_file = seeded.data / "issuer-key.json"
    qr = _token(cli, key_file, cards["fuel"].number)
    assert cli("inquire", "--qr", qr).code == 0
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for pos in (len(qr) // 2, len(qr) - 5):
        swapped = alphabet[(alphabet.index(qr[pos]) + 1) % len(alphabet)] \
            if qr[pos] in alphabet else "0"
        tampered = qr[:pos] + swapped + qr[pos + 1:]
        ran = cli("redeem", "--qr", tampered, "--amount", "1.00")
        assert ran.code == 1, (pos, ran.out, ran.err)
        assert ran.json["reasons"][0] in ("bad_signature", "malformed_code")
    for junk in ("", "HELLO", qr[:-10], qr + "A"):
        ran = cli("inquire", "--qr", junk)
        assert ran.code == 1, (junk, ran.err)
        assert ran.json["reasons"][0] in ("bad_signature", "malformed_code")
    assert cli.balances(cards["fuel"].uid)["fuel"] == 80_00


def test_keys_add_bad_public_key(cli: Cli) -> None:
    ran = cli.text("keys", "add", "k1", "abcd")
    assert ran.code == 2
    assert "64 hex digits" in ran.err


def test_keys_generate_refuses_to_overwrite_with_a_clear_message(cli: Cli, tmp_path: Path
                                                                 ) -> None:
    out = tmp_path / "k.json"
    out.write_text("precious\n", encoding="utf-8")
    ran = cli.text("keys", "generate", "--key-id", "k1", "--out", str(out))
    assert ran.code == 2
    assert out.read_text(encoding="utf-8") == "precious\n"
    # A translated sentence, not the bare error code with its parameter dict.
    assert not ran.err.startswith("cannot_write_file")
    assert "{'path'" not in ran.err
    assert str(out) in ran.err


def test_token_make_bad_key_file_has_a_clear_message(cli: Cli, cards: dict[str, DemoCard],
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}\n", encoding="utf-8")
    ran = cli.text("token", "make", "--private-key-file", str(bad), "--card",
                   cards["fuel"].number)
    assert ran.code == 2
    assert not ran.err.startswith("bad_key_file")
    assert "{'path'" not in ran.err
    assert str(bad) in ran.err


# --- inquire -----------------------------------------------------------------------------------


def test_inquire_by_card_and_uid(cli: Cli, cards: dict[str, DemoCard]) -> None:
    fuel = cards["fuel"]
    by_card = cli("inquire", "--card", fuel.number)
    by_uid = cli("inquire", "--uid", fuel.uid)
    for ran in (by_card, by_uid):
        assert ran.code == 0, ran.err
        assert ran.json["outcome"] == "approve"
        card = ran.json["card"]
        assert card["number"] == "*" * 12 + fuel.number[-4:]
        assert card["program"] == "fuel"
        assert card["status"] == "active"
        assert [(p["name"], p["balance"], p["currency"]) for p in card["purses"]] == [
            ("fuel", 80_00, "EUR"), ("general", 20_00, "EUR")]
        assert fuel.number not in ran.out
    # Spaces in a typed number and a lower-case UID are accepted.
    spaced = " ".join(fuel.number[i:i + 4] for i in range(0, 16, 4))
    assert cli("inquire", "--card", spaced).code == 0
    assert cli("inquire", "--uid", fuel.uid.lower()).code == 0

    text = cli.text("inquire", "--uid", fuel.uid)
    assert text.code == 0
    assert text.out.startswith("APPROVE")
    assert "80.00" in text.out and "20.00" in text.out
    assert fuel.number not in text.out


def test_inquire_declines(cli: Cli, cards: dict[str, DemoCard]) -> None:
    for label, reason in (("frozen", "frozen"), ("lost", "lost"), ("gift", "not_activated")):
        ran = cli("inquire", "--uid", cards[label].uid)
        assert ran.code == 1, label
        assert ran.json["outcome"] == "decline"
        assert reason in ran.json["reasons"]
    unknown = cli("inquire", "--uid", "04FFFFFFFFFFFF")
    assert unknown.code == 1
    assert unknown.json["reasons"] == ["unknown_card"]
    expiring = cli("inquire", "--uid", cards["expiring"].uid)
    assert expiring.code == 0
    assert expiring.json["reasons"] == ["expiring_soon"]


def test_inquire_bad_input(cli: Cli) -> None:
    bad_uid = cli.text("inquire", "--uid", "XYZ")
    assert bad_uid.code == 2
    assert "NFC UID" in bad_uid.err
    bad_number = cli.text("inquire", "--card", "6280000000000017")
    assert bad_number.code == 2
    assert "check digit" in bad_number.err
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(cli.data), "inquire", "--uid", "04A1B2C3", "--card", "1234"])
    assert exc.value.code == 2


def test_inquire_typed_number_of_pin_card_reads_pin_from_stdin(
        cli: Cli, cards: dict[str, DemoCard], monkeypatch: pytest.MonkeyPatch) -> None:
    pin_card = cards["pin_card"]
    no_pin = cli("inquire", "--card", pin_card.number)
    assert no_pin.code == 1
    assert no_pin.json["outcome"] == "needs_pin"
    monkeypatch.setattr(sys, "stdin", io.StringIO(CARD_PIN + "\n"))
    ran = cli("inquire", "--card", pin_card.number, "--pin", "-")
    assert ran.code == 0, ran.out
    assert ran.json["card"]["purses"][0]["balance"] == 150_00
    assert CARD_PIN not in ran.out


# --- redeem ------------------------------------------------------------------------------------


def test_redeem_approved(cli: Cli, cards: dict[str, DemoCard]) -> None:
    fuel = cards["fuel"]
    before = len(cli.jsonl_entries())
    ran = cli("redeem", "--uid", fuel.uid, "--amount", "12.50")
    assert ran.code == 0, ran.err
    data = ran.json
    assert data["outcome"] == "approve"
    assert data["reasons"] == []
    entry = data["entry"]
    assert entry["kind"] == "redeem"
    assert len(entry["id"]) == 36 and entry["id"][14] == "7"  # a UUIDv7
    assert entry["seq"] == before + 1
    assert len(entry["hash"]) == 64 and int(entry["hash"], 16) >= 0
    assert data["card"]["number"] == "*" * 12 + fuel.number[-4:]
    assert [(p["name"], p["balance"]) for p in data["card"]["purses"]] == [
        ("fuel", 80_00 - 12_50), ("general", 20_00)]
    assert cli.balances(fuel.uid) == {"fuel": 67_50, "general": 20_00}
    exported = cli.jsonl_entries()
    assert len(exported) == before + 1
    assert exported[-1]["id"] == entry["id"] and exported[-1]["hash"] == entry["hash"]


def test_redeem_json_never_shows_full_card_number(cli: Cli, cards: dict[str, DemoCard]) -> None:
    """The person at the till sees the masked number only, in text and in --json output."""
    fuel = cards["fuel"]
    text = cli.text("redeem", "--uid", fuel.uid, "--amount", "1.00")
    assert text.code == 0
    assert fuel.number not in text.out
    ran = cli("redeem", "--uid", fuel.uid, "--amount", "1.00")
    assert ran.code == 0
    assert ran.json["card"]["number"] == "*" * 12 + fuel.number[-4:]
    assert fuel.number not in ran.out, "redeem --json prints the full card number"


def test_redeem_from_named_purse_and_over_two_purses(cli: Cli, cards: dict[str, DemoCard]
                                                     ) -> None:
    fuel = cards["fuel"]
    named = cli("redeem", "--uid", fuel.uid, "--amount", "5.00", "--purse", "general")
    assert named.code == 0, named.out
    assert cli.balances(fuel.uid) == {"fuel": 80_00, "general": 15_00}
    both = cli("redeem", "--uid", fuel.uid, "--amount", "90.00")
    assert both.code == 0, both.out
    assert cli.balances(fuel.uid) == {"fuel": 0, "general": 5_00}
    assert sorted(d["amount"] for d in both.json["entry"]["deltas"]) == [-80_00, -10_00]
    missing = cli("redeem", "--uid", fuel.uid, "--amount", "1.00", "--purse", "phone")
    assert missing.code == 1
    assert "unknown_purse" in missing.json["reasons"]


def test_redeem_declined_insufficient_balance(cli: Cli, cards: dict[str, DemoCard]) -> None:
    phone = cards["phone"]
    before = len(cli.jsonl_entries())
    ran = cli("redeem", "--uid", phone.uid, "--amount", "40.00")
    assert ran.code == 1
    assert ran.json["outcome"] == "decline"
    assert ran.json["reasons"] == ["insufficient_balance"]
    assert ran.json["entry"] is None
    assert cli.balances(phone.uid) == {"phone": 30_00}
    assert len(cli.jsonl_entries()) == before
    text = cli.text("redeem", "--uid", phone.uid, "--amount", "40.00")
    assert text.code == 1
    assert "Not enough balance: 30.00 available." in text.out


def test_redeem_too_many_decimals_writes_nothing(cli: Cli, cards: dict[str, DemoCard]) -> None:
    fuel = cards["fuel"]
    before = cli.jsonl_entries()
    ran = cli.text("redeem", "--uid", fuel.uid, "--amount", "12.505")
    assert ran.code == 2
    assert ran.out == ""
    assert "12.505" in ran.err and "decimals" in ran.err
    as_json = cli("redeem", "--uid", fuel.uid, "--amount", "12.505")
    assert as_json.code == 2
    assert as_json.json["error"] == "too_many_decimals"
    for bad in ("-1", "1,50", "1e3", "abc", "0"):
        assert cli.text("redeem", "--uid", fuel.uid, "--amount", bad).code == 2, bad
    assert cli.jsonl_entries() == before
    assert cli.balances(fuel.uid) == {"fuel": 80_00, "general": 20_00}


def test_redeem_without_open_shift(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(seeded.data, capsys)
    fuel = seeded.cards[0]
    ran = c("redeem", "--uid", fuel.uid, "--amount", "1.00")
    assert ran.code == 2
    assert ran.json["error"] == "no_open_shift"
    assert "No shift is open" in ran.err
    assert c.jsonl_entries() == []
    assert c.balances(fuel.uid)["fuel"] == 80_00


def test_redeem_pin_card_pin_from_stdin(cli: Cli, cards: dict[str, DemoCard],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pin_card = cards["pin_card"]
    no_pin = cli("redeem", "--uid", pin_card.uid, "--amount", "20.00")
    assert no_pin.code == 1
    assert no_pin.json["outcome"] == "needs_pin"
    monkeypatch.setattr(sys, "stdin", io.StringIO(CARD_PIN + "\n"))
    ran = cli("redeem", "--uid", pin_card.uid, "--amount", "20.00", "--pin", "-")
    assert ran.code == 0, ran.out
    assert ran.json["card"]["purses"][0]["balance"] == 130_00
    assert CARD_PIN not in ran.out
    monkeypatch.setattr(sys, "stdin", io.StringIO("0000\n"))
    wrong = cli("redeem", "--uid", pin_card.uid, "--amount", "20.00", "--pin", "-")
    assert wrong.code == 1
    assert wrong.json["reasons"] == ["wrong_pin"]
    assert cli.balances(pin_card.uid)["general"] == 130_00


def test_redeem_typed_number_needs_supervisor(cli: Cli, cards: dict[str, DemoCard]) -> None:
    fuel = cards["fuel"]
    ran = cli("redeem", "--card", fuel.number, "--amount", "1.00")
    assert ran.code == 1
    assert ran.json["outcome"] == "needs_supervisor"
    ok = cli("redeem", "--card", fuel.number, "--amount", "1.00",
             "--supervisor-pin", SUPERVISOR_PIN)
    assert ok.code == 0, ok.out
    assert ok.json["entry"]["data"]["supervisor"] == "sam"


# --- void --------------------------------------------------------------------------------------


def test_void(cli: Cli, cards: dict[str, DemoCard]) -> None:
    phone = cards["phone"]
    red = cli("redeem", "--uid", phone.uid, "--amount", "5.00")
    assert red.code == 0
    entry_id = red.json["entry"]["id"]
    assert cli.balances(phone.uid) == {"phone": 25_00}
    count = len(cli.jsonl_entries())

    wrong = cli("void", entry_id, "--supervisor-pin", "1234")
    assert wrong.code == 1
    assert wrong.json["outcome"] == "decline"
    assert wrong.json["reasons"] == ["wrong_pin"]
    assert cli.balances(phone.uid) == {"phone": 25_00}
    assert len(cli.jsonl_entries()) == count

    cashier_pin = cli("void", entry_id, "--supervisor-pin", CASHIER_PIN)
    assert cashier_pin.code == 1  # a cashier's PIN is not a supervisor's

    ok = cli("void", entry_id, "--supervisor-pin", SUPERVISOR_PIN)
    assert ok.code == 0, ok.out
    assert ok.json["entry"]["kind"] == "void"
    assert ok.json["entry"]["ref"] == entry_id
    assert cli.balances(phone.uid) == {"phone": 30_00}

    twice = cli("void", entry_id, "--supervisor-pin", SUPERVISOR_PIN)
    assert twice.code == 1
    assert twice.json["reasons"] == ["already_voided"]
    nothing = cli("void", "01900000-0000-7000-8000-000000000000",
                  "--supervisor-pin", SUPERVISOR_PIN)
    assert nothing.code == 1
    assert nothing.json["reasons"] == ["void_not_found"]


# --- topup, activate, quote, buyback, transfer -----------------------------------------------


def test_topup(cli: Cli, cards: dict[str, DemoCard]) -> None:
    phone = cards["phone"]
    ran = cli("topup", "--uid", phone.uid, "--amount", "10.00")
    assert ran.code == 0, ran.out
    assert ran.json["entry"]["kind"] == "topup"
    assert cli.balances(phone.uid) == {"phone": 40_00}
    frozen = cli("topup", "--uid", cards["frozen"].uid, "--amount", "10.00")
    assert frozen.code == 1
    assert "frozen" in frozen.json["reasons"]
    assert cli.text("topup", "--uid", phone.uid, "--amount", "0").code == 2


def test_activate(cli: Cli, cards: dict[str, DemoCard]) -> None:
    gift = cards["gift"]
    assert cli("inquire", "--uid", gift.uid).json["reasons"] == ["not_activated"]
    redeem_first = cli("redeem", "--uid", gift.uid, "--amount", "1.00")
    assert redeem_first.code == 1
    ran = cli("activate", "--uid", gift.uid, "--amount", "25.00")
    assert ran.code == 0, ran.out
    assert ran.json["entry"]["kind"] == "activate"
    assert ran.json["card"]["status"] == "active"
    inq = cli("inquire", "--uid", gift.uid)
    assert inq.code == 0
    assert inq.json["card"]["status"] == "active"
    assert cli.balances(gift.uid) == {"general": 25_00}
    again = cli("activate", "--uid", gift.uid)
    assert again.code == 1
    assert "already_active" in again.json["reasons"]


def test_quote(cli: Cli, cards: dict[str, DemoCard]) -> None:
    expiring = cards["expiring"]
    count = len(cli.jsonl_entries())
    ran = cli("quote", "--uid", expiring.uid)
    assert ran.code == 0, ran.out
    q = ran.json["quote"]
    assert q["balance"] == 45_50
    assert q["currency"] == "EUR"
    assert 0 < q["price"] < 45_50
    assert 0 < q["rate_bp"] < 10_000
    assert q["price"] == 45_50 * q["rate_bp"] // 10_000
    assert len(cli.jsonl_entries()) == count  # a quote writes nothing
    text = cli.text("quote", "--uid", expiring.uid)
    assert "Buyback price" in text.out
    empty = cli("quote", "--uid", cards["gift"].uid)
    assert empty.code == 1


def test_buyback_closes_card(cli: Cli, cards: dict[str, DemoCard]) -> None:
    expiring = cards["expiring"]
    price = cli("quote", "--uid", expiring.uid).json["quote"]["price"]
    ran = cli("buyback", "--uid", expiring.uid)
    assert ran.code == 0, ran.out
    assert ran.json["entry"]["kind"] == "buyback"
    assert ran.json["quote"]["price"] == price
    assert ran.json["entry"]["data"]["price"] == price
    assert ran.json["card"]["status"] == "closed"
    inq = cli("inquire", "--uid", expiring.uid)
    assert inq.code == 1
    assert inq.json["reasons"] == ["closed"]
    assert inq.json["card"]["status"] == "closed"
    assert cli.balances(expiring.uid) == {"general": 0}
    assert cli("redeem", "--uid", expiring.uid, "--amount", "1.00").code == 1


def test_transfer(cli: Cli, cards: dict[str, DemoCard]) -> None:
    src, dst = cards["expiring"], cards["pin_card"]
    no_sup = cli("transfer", "--from-uid", src.uid, "--to-uid", dst.uid,
                 "--supervisor-pin", "0000")
    assert no_sup.code == 1
    assert cli.balances(src.uid) == {"general": 45_50}
    ran = cli("transfer", "--from-uid", src.uid, "--to-card", dst.number,
              "--supervisor-pin", SUPERVISOR_PIN)
    assert ran.code == 0, ran.out
    assert ran.json["entry"]["kind"] == "transfer"
    assert ran.json["card"]["purses"][0]["balance"] == 150_00 + 45_50
    assert cli.balances(dst.uid) == {"general": 195_50}
    closed = cli("inquire", "--uid", src.uid)
    assert closed.code == 1
    assert closed.json["reasons"] == ["closed"]
    same = cli.text("transfer", "--from-uid", dst.uid, "--to-uid", dst.uid, "--pin", CARD_PIN,
                    "--supervisor-pin", SUPERVISOR_PIN)
    assert same.code == 2
    assert "same card" in same.err


# --- shifts and reports ------------------------------------------------------------------------


def test_shift_close_prints_z_report(cli: Cli, cards: dict[str, DemoCard]) -> None:
    assert cli("redeem", "--uid", cards["fuel"].uid, "--amount", "12.50").code == 0
    assert cli("redeem", "--uid", cards["phone"].uid, "--amount", "5.00").code == 0
    again = cli("shift", "open", "--cashier", CASHIER, "--pin", CASHIER_PIN)
    assert again.code == 2
    assert again.json["error"] == "shift_already_open"

    z_open = cli("report", "z")
    assert z_open.code == 0
    assert z_open.json["closed_at"] is None

    wrong = cli("shift", "close", "--pin", "0000")
    assert wrong.code == 1
    assert wrong.json["z"] is None

    ran = cli("shift", "close", "--pin", CASHIER_PIN)
    assert ran.code == 0, ran.out
    z = ran.json["z"]
    assert z["cashier"] == CASHIER
    assert z["closed_at"]
    lines = {(ln["kind"], ln["program"], ln["purse"]): ln for ln in z["lines"]}
    assert lines[("redeem", "fuel", "fuel")]["amount"] == -12_50
    assert lines[("redeem", "fuel", "fuel")]["count"] == 1
    assert lines[("redeem", "phone", "phone")]["amount"] == -5_00
    assert z["money_entries"] == 2

    after = cli("report", "z")
    assert after.code == 0
    assert after.json["shift_id"] == z["shift_id"]
    assert after.json["closed_at"] == z["closed_at"]
    text = cli.text("report", "z")
    assert text.out.startswith("Z report")
    assert "-12.50" in text.out

    no_shift = cli("redeem", "--uid", cards["fuel"].uid, "--amount", "1.00")
    assert no_shift.code == 2
    assert no_shift.json["error"] == "no_open_shift"


def test_shift_close_text(cli: Cli) -> None:
    ran = cli.text("shift", "close", "--pin", CASHIER_PIN)
    assert ran.code == 0
    assert "Z report" in ran.out


def test_shift_open_wrong_pin(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cli(seeded.data, capsys)
    ran = c("shift", "open", "--cashier", CASHIER, "--pin", "0000")
    assert ran.code == 1
    assert ran.json["reasons"] == ["wrong_pin"]
    assert ran.json["shift"] is None
    unknown = c("shift", "open", "--cashier", "mallory", "--pin", "1234")
    assert unknown.code == 2
    assert unknown.json["error"] == "no_such_cashier"


# --- journal -----------------------------------------------------------------------------------


def _some_entries(cli: Cli, cards: dict[str, DemoCard]) -> None:
    assert cli("redeem", "--uid", cards["fuel"].uid, "--amount", "12.50").code == 0
    assert cli("redeem", "--uid", cards["phone"].uid, "--amount", "5.00").code == 0
    assert cli("topup", "--uid", cards["phone"].uid, "--amount", "1.00").code == 0


def test_journal_verify_ok_then_tampered(cli: Cli, cards: dict[str, DemoCard]) -> None:
    _some_entries(cli, cards)
    ok = cli("journal", "verify")
    assert ok.code == 0
    assert ok.json["ok"] is True
    assert ok.json["checked"] == 4  # shift_open + 3 operations
    assert cli.text("journal", "verify").out.startswith("Journal OK")

    with sqlite3.connect(cli.data / "cardpos.sqlite3") as conn:
        conn.execute("DROP TRIGGER journal_no_update")
        seq, body = conn.execute(
            "SELECT seq, body FROM journal WHERE kind = 'redeem' ORDER BY seq LIMIT 1").fetchone()
        assert '"amount":-1250' in body
        conn.execute("UPDATE journal SET body = ? WHERE seq = ?",
                     (body.replace('"amount":-1250', '"amount":-1'), seq))
    conn.close()

    bad = cli("journal", "verify")
    assert bad.code == 1
    assert bad.json["ok"] is False
    assert bad.json["bad_seq"] == seq
    assert bad.json["checked"] == seq - 1
    text = cli.text("journal", "verify")
    assert text.code == 1
    assert f"seq {seq}" in text.out


def test_journal_export_csv_and_jsonl(cli: Cli, cards: dict[str, DemoCard]) -> None:
    _some_entries(cli, cards)
    count = cli("journal", "verify").json["checked"]

    entries = cli.jsonl_entries()
    assert len(entries) == count
    prev = ZERO_HASH
    for n, e in enumerate(entries, start=1):
        assert e["seq"] == n
        assert e["prev"] == prev
        body = {k: v for k, v in e.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
        assert hashlib.sha256(canonical).hexdigest() == e["hash"]
        prev = e["hash"]

    ran = cli.text("journal", "export", "--format", "csv")
    assert ran.code == 0
    rows = list(csv.DictReader(io.StringIO(ran.out)))
    assert len(rows) == count
    assert {"seq", "id", "kind", "prev", "hash", "deltas"} <= set(rows[0])
    assert rows[0]["prev"] == ZERO_HASH
    for row, e in zip(rows, entries, strict=True):
        assert int(row["seq"]) == e["seq"]
        assert row["id"] == e["id"] and row["hash"] == e["hash"] and row["prev"] == e["prev"]
        assert json.loads(row["deltas"]) == e["deltas"]
    for a, b in itertools.pairwise(rows):
        assert b["prev"] == a["hash"]

    out = cli.data.parent / "export.jsonl"
    to_file = cli("journal", "export", "--format", "jsonl", "--out", str(out))
    assert to_file.code == 0
    assert to_file.json["entries"] == count
    assert len(out.read_text(encoding="utf-8").splitlines()) == count


# --- limits ------------------------------------------------------------------------------------


def test_limits_show_set_enforced(cli: Cli, cards: dict[str, DemoCard]) -> None:
    shown = cli("limits", "show")
    assert shown.code == 0
    assert shown.json["offline_per_transaction"] == 100_00
    assert shown.json["currency"] == "EUR"

    count = len(cli.jsonl_entries())
    ran = cli("limits", "set", "offline_per_transaction", "500")
    assert ran.code == 0, ran.err
    assert ran.json["offline_per_transaction"] == 500
    assert cli("limits", "show").json["offline_per_transaction"] == 500
    journaled = cli.jsonl_entries()
    assert len(journaled) == count + 1
    assert journaled[-1]["kind"] == "limits"

    fuel = cards["fuel"]
    over = cli("redeem", "--uid", fuel.uid, "--amount", "6.00")
    assert over.code == 1
    assert over.json["outcome"] == "needs_online"
    assert over.json["reasons"] == ["offline_limit_transaction"]
    assert cli.balances(fuel.uid)["fuel"] == 80_00
    under = cli("redeem", "--uid", fuel.uid, "--amount", "5.00")
    assert under.code == 0

    for name, value in (("offline_per_transaction", "-1"), ("offline_per_transaction", "5.00"),
                        ("no_such_limit", "1"), ("currency", "XXX")):
        bad = cli.text("limits", "set", name, value)
        assert bad.code == 2, (name, value)
        assert bad.err.strip()
    assert cli("limits", "show").json["offline_per_transaction"] == 500


# --- languages and the demo --------------------------------------------------------------------


def test_lang_zh_cn(cli: Cli, cards: dict[str, DemoCard]) -> None:
    ran = cli.text("--lang", "zh_CN", "inquire", "--uid", cards["frozen"].uid)
    assert ran.code == 1
    assert "已拒绝" in ran.out and "冻结" in ran.out
    after = cli.text("inquire", "--uid", cards["frozen"].uid, "--lang", "zh_CN")
    assert "冻结" in after.out
    err = cli.text("--lang", "zh_CN", "redeem", "--uid", cards["fuel"].uid,
                   "--amount", "12.505")
    assert err.code == 2
    assert "小数位" in err.err
    english = cli.text("--lang", "en", "inquire", "--uid", cards["frozen"].uid)
    assert "frozen" in english.out and "冻结" not in english.out


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ran = Cli(tmp_path / "unused", capsys).text("demo", "--script")
    assert ran.code == 0, ran.err
    lines = [ln for ln in ran.out.splitlines() if ln.strip()]
    assert lines[-1].startswith("Journal OK:")
    assert "chain intact" in lines[-1]
    assert "replayed_code" not in ran.out  # text mode shows sentences, not codes
    assert "already been used" in ran.out  # the replayed screenshot was refused
    assert list(scratch.iterdir()) == []  # the demo cleaned its data directory up
