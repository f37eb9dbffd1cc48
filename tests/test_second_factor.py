"""The second factor (sync/server/second_factor.py, phones.py, gateway.py) on SQLite and on a real
PostgreSQL: codes go out through the real file gateway, the tests read them back from its file
as the card holder would from the phone, and `verify` is driven through every refusal —
wrong code, expiry, replay, another card / amount / terminal, concurrent use."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server import issuer, phones, schema, second_factor
from sync.server.db import make_engine
from sync.server.gateway import FileGateway, GatewayError, LogGateway, make_gateway, mask_phone
from sync.server.second_factor import Challenge, Verification
from sync.server.terminals import add_terminal
from terminal.errors import BadInput, NotFound, StateError
from tests.conftest import START
from tests.server_support import FUEL, PLAIN, ROWS, run_cli, sent_messages, write_csv

PHONE = "+8613812341234"
MASKED = "+86*******1234"
AMOUNT = 60_00
THRESHOLD = 50_00
T = TypeVar("T")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """The cards of ROWS, terminals T1 and T2, FUEL bound to PHONE (PLAIN to no phone)."""
    engine = make_engine(db_url)
    issuer.import_cards(engine, write_csv(tmp_path / "cards.csv", *ROWS),
                        now=START - timedelta(days=1))
    add_terminal(engine, "T1")
    add_terminal(engine, "T2")
    phones.bind_phone(engine, FUEL, PHONE, now=START)
    yield engine
    engine.dispose()


def code_in(message: dict[str, Any]) -> str:
    found = re.findall(r"(?<!\d)\d{6}(?!\d)", message["text"])
    assert len(found) == 1, message
    return str(found[0])


def ask(engine: Engine, outbox: Path, *, card: str = FUEL, terminal: str = "T1",
        amount: int = AMOUNT, at: timedelta = timedelta(0), lang: str = "en"
        ) -> tuple[Challenge, str]:
    """A challenge made at START + `at`, and the code that reached the phone."""
    with engine.begin() as conn:
        made = second_factor.challenge(conn, FileGateway(outbox), card, terminal, amount,
                                       START + at, currency="EUR", lang=lang)
    return made, code_in(sent_messages(outbox)[-1])


def check(engine: Engine, challenge_id: str, code: str, *, card: str = FUEL,
          amount: int = AMOUNT, terminal: str = "T1", at: timedelta = timedelta(0)
          ) -> Verification:
    with engine.begin() as conn:
        return second_factor.verify(conn, challenge_id, code, card, amount, START + at,
                                    terminal=terminal)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def all_at_once(jobs: int, job: Callable[[], T]) -> list[T]:
    """Run `job` in `jobs` threads released together; their results (exceptions re-raised)."""
    start = threading.Barrier(jobs)

    def run() -> T:
        start.wait()
        return job()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run) for _ in range(jobs)]
        return [f.result() for f in futures]


# -- phones -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["8613812341234", "+0613812341234", "+1234567",
                                 "+1234567890123456", "+86 138 abcd 1234", "", "++8613812341234"])
def test_a_phone_must_be_e164(bad: str) -> None:
    with pytest.raises(BadInput) as caught:
        phones.normalize_phone(bad)
    assert caught.value.code == "bad_phone"


def test_phone_binding(server: Engine) -> None:
    assert phones.normalize_phone("+86 138-1234-1234") == PHONE
    assert phones.normalize_phone("+1 (202) 555.0123") == "+12025550123"
    with pytest.raises(NotFound) as unknown:
        phones.bind_phone(server, "4111111111111111", PHONE)
    assert unknown.value.code == "unknown_card"
    with pytest.raises(BadInput) as bad:
        phones.bind_phone(server, PLAIN, "12345")
    assert bad.value.code == "bad_phone"
    # Binding again replaces the number.
    assert phones.bind_phone(server, FUEL, "+49 151 2345 6789") == (FUEL, "+4915123456789")
    with server.connect() as conn:
        assert conn.execute(sa.select(schema.card_phones.c.card, schema.card_phones.c.phone)
                            ).all() == [(FUEL, "+4915123456789")]
        assert second_factor.bound_phone(conn, FUEL) == "+4915123456789"
    assert phones.unbind_phone(server, FUEL) is True
    assert phones.unbind_phone(server, FUEL) is False
    with server.connect() as conn:
        assert second_factor.bound_phone(conn, FUEL) is None


def test_required_for_bound_cards_above_the_threshold(server: Engine) -> None:
    with server.connect() as conn:
        assert second_factor.required(conn, FUEL, THRESHOLD + 1, THRESHOLD)
        assert not second_factor.required(conn, FUEL, THRESHOLD, THRESHOLD)
        assert not second_factor.required(conn, PLAIN, 10**9, THRESHOLD)  # no phone


# -- challenge and verify -------------------------------------------------------------------------

def test_code_reaches_the_phone_and_approves_once(server: Engine, outbox: Path) -> None:
    made, code = ask(server, outbox)
    assert made.phone == MASKED
    assert made.expires_at == START + second_factor.CODE_TTL
    assert made.as_json() == {"challenge": made.id,
                              "expires_at": (START + timedelta(minutes=5)).isoformat(),
                              "phone": MASKED}
    [message] = sent_messages(outbox)
    assert message["phone"] == PHONE
    assert message["text"] == (f"{code} is your card code for paying 60.00 EUR at terminal T1."
                               " Valid 5 minutes. Never share it with anyone but the cashier.")
    # Only a salted hash is stored: neither the code nor its plain SHA-256 is in the row.
    with server.connect() as conn:
        row = conn.execute(sa.select(schema.otp_challenges)).one()
    assert code not in json.dumps([str(v) for v in row])
    assert row.code_hash != hashlib.sha256(code.encode()).hexdigest()
    assert (row.card, row.terminal, row.amount, row.attempts, row.message_id) == (
        FUEL, "T1", AMOUNT, 0, message["id"])

    assert check(server, made.id, code, at=timedelta(minutes=1)) == Verification(True)
    # Replayed: the same challenge and code do not approve a second payment.
    assert check(server, made.id, code, at=timedelta(minutes=2)) == Verification(
        False, "challenge_used")
    assert check(server, "no-such-challenge", code).reason == "unknown_challenge"


def test_message_in_chinese(server: Engine, outbox: Path) -> None:
    made, code = ask(server, outbox, lang="zh_CN")
    assert sent_messages(outbox)[-1]["text"] == (
        f"您的卡验证码为 {code}，用于在终端 T1 支付 60.00 EUR，"
        "5 分钟内有效。除收银员外请勿告诉任何人。")
    with server.begin() as conn, pytest.raises(BadInput) as bad:
        second_factor.challenge(conn, FileGateway(outbox), FUEL, "T1", AMOUNT, START,
                                currency="EUR", lang="fr")
    assert bad.value.code == "bad_language"
    assert check(server, made.id, code).message("zh_CN") == "已批准。"


def test_wrong_codes_count_and_the_third_kills_the_challenge(server: Engine,
                                                              outbox: Path) -> None:
    made, code = ask(server, outbox)
    first = check(server, made.id, wrong(code))
    assert first == Verification(False, "wrong_code", 2)
    assert first.message("en") == "Wrong code. 2 tries left."
    assert check(server, made.id, "") == Verification(False, "wrong_code", 1)
    assert check(server, made.id, wrong(code)) == Verification(False, "too_many_attempts")
    # Dead: the right code no longer works either.
    assert check(server, made.id, code) == Verification(False, "too_many_attempts")
    with server.connect() as conn:
        assert conn.execute(sa.select(schema.otp_challenges.c.attempts,
                                      schema.otp_challenges.c.used_at)).one() == (3, None)


def test_a_wrong_attempt_rolled_back_is_not_counted(server: Engine, outbox: Path) -> None:
    """Why `verify` returns refusals: the count lives in the caller's transaction."""
    made, code = ask(server, outbox)
    with server.connect() as conn:
        with conn.begin() as txn:
            refused = second_factor.verify(conn, made.id, wrong(code), FUEL, AMOUNT, START,
                                           terminal="T1")
            txn.rollback()
        assert refused.reason == "wrong_code"
        assert conn.execute(sa.select(schema.otp_challenges.c.attempts)).scalar_one() == 0


def test_the_code_expires(server: Engine, outbox: Path) -> None:
    late, late_code = ask(server, outbox)
    assert check(server, late.id, late_code, at=second_factor.CODE_TTL) == Verification(
        False, "code_expired")
    just, just_code = ask(server, outbox, at=timedelta(minutes=1))
    assert check(server, just.id, just_code,
                 at=timedelta(minutes=1) + second_factor.CODE_TTL - timedelta(seconds=1)
                 ) == Verification(True)


def test_a_challenge_is_bound_to_card_amount_and_terminal(server: Engine, outbox: Path) -> None:
    phones.bind_phone(server, PLAIN, "+12025550123")
    made, code = ask(server, outbox)
    for other in ({"amount": AMOUNT + 1}, {"amount": AMOUNT - 1}, {"card": PLAIN},
                  {"terminal": "T2"}):
        assert check(server, made.id, code, **other) == Verification(
            False, "challenge_mismatch"), other
    # The mismatches neither spent the challenge nor counted as wrong codes.
    assert check(server, made.id, code) == Verification(True)


def test_concurrent_verifies_approve_at_most_once(server: Engine, outbox: Path) -> None:
    for round_ in range(6):  # several rounds: threads do not always overlap
        at = timedelta(minutes=11 * round_)
        made, code = ask(server, outbox, at=at)
        results = all_at_once(8, lambda: check(server, made.id, code, at=at))  # noqa: B023
        assert sorted((r.ok, r.reason) for r in results) == [
            (False, "challenge_used")] * 7 + [(True, None)]


def test_concurrent_wrong_codes_count_each(server: Engine, outbox: Path) -> None:
    made, code = ask(server, outbox)
    results = all_at_once(5, lambda: check(server, made.id, wrong(code)))
    assert sorted((r.reason or "", r.attempts_left or 0) for r in results) == [
        ("too_many_attempts", 0), ("too_many_attempts", 0), ("too_many_attempts", 0),
        ("wrong_code", 1), ("wrong_code", 2)]


def test_rate_limit_per_card(server: Engine, outbox: Path) -> None:
    for minute in range(second_factor.MAX_CHALLENGES):
        ask(server, outbox, at=timedelta(minutes=minute))
    with pytest.raises(StateError) as limited:
        ask(server, outbox, at=timedelta(minutes=9))
    assert limited.value.code == "too_many_challenges"
    assert limited.value.params == {"limit": 3, "minutes": 10}
    assert len(sent_messages(outbox)) == 3  # no message for the refused challenge
    # Ten minutes after the first, one more may go.
    made, code = ask(server, outbox, at=timedelta(minutes=10, seconds=1))
    assert check(server, made.id, code, at=timedelta(minutes=11)) == Verification(True)


def test_rate_limit_holds_under_concurrency(server: Engine, outbox: Path) -> None:
    def one() -> str:
        try:
            return ask(server, outbox)[0].id
        except StateError as err:
            return err.code

    results = all_at_once(6, one)
    assert sorted(results).count("too_many_challenges") == 3
    assert len(sent_messages(outbox)) == 3


def test_no_phone_no_challenge(server: Engine, outbox: Path) -> None:
    with pytest.raises(StateError) as caught:
        ask(server, outbox, card=PLAIN)
    assert caught.value.code == "no_phone_bound"
    assert caught.value.params == {"card": "************9424"}
    with pytest.raises(BadInput):
        ask(server, outbox, amount=0)


def test_a_failed_send_keeps_no_challenge(server: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(GatewayError) as failed:
        ask(server, blocker / "messages.jsonl")
    assert failed.value.code == "gateway_failed"
    assert failed.value.params["detail"] == "Not a directory"
    with server.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.otp_challenges)
                            ).scalar_one() == 0


def test_logs_hold_neither_code_nor_phone(server: Engine, outbox: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    made, code = ask(server, outbox)
    check(server, made.id, wrong(code))
    check(server, made.id, code)
    with server.begin() as conn:
        second_factor.challenge(conn, LogGateway(), FUEL, "T1", AMOUNT, START,
                                currency="EUR")
    assert f"challenge {made.id} for card *******8713 at T1 sent to {MASKED}" in caplog.text
    assert f"challenge {made.id} for card *******8713 at T1: wrong_code" in caplog.text
    assert f"challenge {made.id} for card *******8713 at T1: ok" in caplog.text
    # The log gateway blanks the code it would deliver.
    assert f"to {MASKED}: ****** is your card code for paying 60.00 EUR" in caplog.text
    assert PHONE not in caplog.text and code not in caplog.text and FUEL not in caplog.text


# -- gateways -----------------------------------------------------------------------------------

def test_gateway_specs(tmp_path: Path) -> None:
    file_gateway = make_gateway(f"file:{tmp_path / 'out.jsonl'}")
    assert isinstance(file_gateway, FileGateway)
    assert isinstance(make_gateway("log:"), LogGateway)
    for bad in ("", "file:", "log:x", "sms:+123", "/tmp/x"):
        with pytest.raises(BadInput) as caught:
            make_gateway(bad)
        assert caught.value.code == "bad_gateway_spec"
    first = file_gateway.send(PHONE, "one")
    second = file_gateway.send("+12025550123", "两")
    lines = sent_messages(tmp_path / "out.jsonl")
    assert [(m["id"], m["phone"], m["text"]) for m in lines] == [
        (first, PHONE, "one"), (second, "+12025550123", "两")]
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o600
    assert mask_phone("+12345678") == "+12**5678"


# -- CLI ----------------------------------------------------------------------------------------

def test_bind_and_unbind_through_the_cli(server: Engine, db_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run_cli("--json", "server", "card", "bind-phone", "--db", db_url, PLAIN,
                   "+1 202 555 0123") == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "number": PLAIN,
                                                   "phone": "+12*****0123"}
    assert run_cli("server", "card", "bind-phone", "--db", db_url, PLAIN, "0123") == 2
    assert "'0123' is not a phone number" in capsys.readouterr().err
    with server.connect() as conn:
        assert second_factor.bound_phone(conn, PLAIN) == "+12025550123"
    assert run_cli("server", "card", "unbind-phone", "--db", db_url, PLAIN) == 0
    assert capsys.readouterr().out == "Card ************9424 is no longer bound to a phone.\n"
    assert run_cli("--json", "server", "card", "unbind-phone", "--db", db_url, PLAIN) == 0
    assert json.loads(capsys.readouterr().out)["unbound"] is False
    assert run_cli("server", "card", "bind-phone", "--db", db_url, "4111111111111111",
                   PHONE) == 2
