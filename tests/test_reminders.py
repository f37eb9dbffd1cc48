"""Expiry reminders (sync/server/reminders.py) on SQLite and on a real PostgreSQL: the report of
cards whose money expires soon, and reminders through the real file gateway — each sent once per
card and expiry date, failures retried, concurrent runs not doubling up — also through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server import issuer, phones, reminders, schema
from sync.server.db import make_engine, utc_now
from sync.server.gateway import FileGateway, GatewayError
from terminal.errors import BadInput
from terminal.luhn import check_digit
from tests.server_support import run_cli, sent_messages, write_csv


def number(n: int) -> str:
    body = f"628000000000{n:03d}"
    return body + check_digit(body)


def masked(n: int) -> str:
    return "*" * 12 + number(n)[-4:]


def phone(n: int) -> str:
    return f"+86138000000{n:02d}"


# The CLI runs on the real clock, so the cards expire relative to the real (UTC) today.
TODAY = utc_now().date()
NOW = datetime.combine(TODAY, time(12), UTC)
A, B, C, D, E, F, G, H, I = range(1, 10)  # noqa: E741


def expires(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


ROWS = (
    f"{number(A)},,gift,general,30.00,EUR,{expires(10)},active,",
    f"{number(A)},,gift,fuel,0.00,EUR,{expires(10)},active,",       # nothing in it: not listed
    f"{number(B)},,gift,general,15.00,EUR,{expires(40)},active,",   # beyond 30 days
    f"{number(C)},,gift,general,12.50,EUR,{expires(5)},active,",    # no phone
    f"{number(D)},,gift,general,10.00,EUR,{expires(3)},frozen,",    # not active
    f"{number(E)},,gift,general,10.00,EUR,{expires(-1)},active,",   # expired yesterday
    f"{number(F)},,gift,general,0.00,EUR,{expires(20)},active,",    # no money
    f"{number(G)},,fuel,fuel,5.00,EUR,{expires(0)},active,",        # expires today
    f"{number(G)},,fuel,general,7.00,EUR,{expires(0)},active,",
    f"{number(H)},,gift,general,9.00,EUR,{expires(7)},active,",     # denylisted
    f"{number(I)},,gift,general,1.00,EUR,{expires(30)},active,",    # the last day counted
)
BOUND = (A, B, D, E, F, G, H, I)
REMINDED = (G, A, I)  # bound, active, money in it, within 30 days; soonest first


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(db_url)
    issuer.import_cards(engine, write_csv(tmp_path / "cards.csv", *ROWS),
                        now=NOW - timedelta(days=100))
    for n in BOUND:
        phones.bind_phone(engine, number(n), phone(n))
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.denylist).values(card=number(H), reason="overspend",
                                                       added_at=NOW))
    yield engine
    engine.dispose()


def rows(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """expiry_reminders: card -> (expiry, status, attempts, has a message id, error)."""
    t = schema.expiry_reminders
    with engine.connect() as conn:
        return {r.card: (r.expiry, r.status, r.attempts, r.message_id is not None, r.error)
                for r in conn.execute(sa.select(t))}


class FailingFor:
    """The file gateway, except that it fails for some phones (as a provider may)."""

    def __init__(self, inner: FileGateway, *phones_: str) -> None:
        self.inner, self.phones = inner, set(phones_)

    def send(self, phone_: str, text: str) -> str:
        if phone_ in self.phones:
            raise GatewayError(gateway="test", detail="number unreachable")
        return self.inner.send(phone_, text)


class Crashing:
    """A gateway with a bug: not a GatewayError, so the run stops."""

    def send(self, phone_: str, text: str) -> str:
        raise RuntimeError("bug in the gateway")


# -- the report ---------------------------------------------------------------------------------

def test_expiring_report(server: Engine) -> None:
    report = reminders.expiring(server, 30, NOW)
    assert report.as_json() == {
        "today": TODAY.isoformat(), "days": 30,
        "cards": [
            {"card": masked(G), "program": "fuel", "expiry": expires(0), "days_left": 0,
             "purses": [{"name": "fuel", "currency": "EUR", "balance": 5_00},
                        {"name": "general", "currency": "EUR", "balance": 7_00}],
             "phone": "+86*******0007"},
            {"card": masked(C), "program": "gift", "expiry": expires(5), "days_left": 5,
             "purses": [{"name": "general", "currency": "EUR", "balance": 12_50}],
             "phone": None},
            {"card": masked(A), "program": "gift", "expiry": expires(10), "days_left": 10,
             "purses": [{"name": "general", "currency": "EUR", "balance": 30_00}],
             "phone": "+86*******0001"},
            {"card": masked(I), "program": "gift", "expiry": expires(30), "days_left": 30,
             "purses": [{"name": "general", "currency": "EUR", "balance": 1_00}],
             "phone": "+86*******0009"},
        ],
        "totals": {"EUR": {"cards": 4, "balance": 55_50}},
    }
    assert [c.number for c in reminders.expiring(server, 45, NOW).cards] == [
        number(n) for n in (G, C, A, I, B)]
    assert [c.number for c in reminders.expiring(server, 0, NOW).cards] == [number(G)]
    # A day later G has expired and is gone.
    assert [c.number for c in reminders.expiring(server, 30, NOW + timedelta(days=1)).cards
            ] == [number(n) for n in (C, A, I)]
    with pytest.raises(BadInput) as bad:
        reminders.expiring(server, -1, NOW)
    assert bad.value.code == "bad_days"


def test_the_report_sums_the_ledger(server: Engine) -> None:
    """A purse's balance is its ledger: a spend posted there counts, the cache does not."""
    with server.begin() as conn:
        purse = conn.execute(sa.select(schema.purses.c.id)
                             .where(schema.purses.c.card == number(I))).scalar_one()
        conn.execute(sa.insert(schema.ledger).values(
            purse_id=purse, amount=-1_00, currency="EUR", kind="issue", entry_id=None,
            terminal=None, seq=None, at=NOW, posted_at=NOW))
    assert number(I) not in [c.number for c in reminders.expiring(server, 30, NOW).cards]


# -- sending ------------------------------------------------------------------------------------

def test_reminders_are_sent_once(server: Engine, outbox: Path) -> None:
    first = reminders.send_reminders(server, FileGateway(outbox), 30, NOW, "en")
    messages = sent_messages(outbox)
    assert [m["phone"] for m in messages] == [phone(n) for n in REMINDED]
    assert [m["text"] for m in messages] == [
        f"Your card {masked(G)} (fuel) expires on {expires(0)} with 5.00 EUR, 7.00 EUR on it."
        " Please use it before then.",
        f"Your card {masked(A)} (gift) expires on {expires(10)} with 30.00 EUR on it."
        " Please use it before then.",
        f"Your card {masked(I)} (gift) expires on {expires(30)} with 1.00 EUR on it."
        " Please use it before then."]
    assert first.as_json() == {
        "sent": [{"card": masked(n), "expiry": expires(d), "message_id": m["id"],
                  "error": None} for n, d, m in zip(REMINDED, (0, 10, 30), messages,
                                                    strict=True)],
        "failed": [], "already_sent": 0, "in_progress": 0, "no_phone": 1}
    assert rows(server) == {number(n): (TODAY + timedelta(days=d), "sent", 1, True, None)
                            for n, d in zip(REMINDED, (0, 10, 30), strict=True)}

    again = reminders.send_reminders(server, FileGateway(outbox), 30, NOW + timedelta(days=1))
    assert (again.sent, again.failed, again.already_sent) == ((), (), 2)  # G has expired
    assert len(sent_messages(outbox)) == 3
    # A card given a new expiry date is reminded of that one.
    with server.begin() as conn:
        conn.execute(sa.update(schema.cards).where(schema.cards.c.number == number(A))
                     .values(expiry=TODAY + timedelta(days=20)))
    moved = reminders.send_reminders(server, FileGateway(outbox), 30, NOW, "zh_CN")
    assert [r.card for r in moved.sent] == [number(A)]
    assert sent_messages(outbox)[-1]["text"] == (
        f"您的卡 {masked(A)}（gift）将于 {expires(20)} 到期，卡内余额 30.00 EUR。请在到期前使用。")
    with pytest.raises(BadInput):
        reminders.send_reminders(server, FileGateway(outbox), 30, NOW, "de")


def test_failed_reminders_are_retried(server: Engine, outbox: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    down = FileGateway(blocker / "messages.jsonl")
    failed = reminders.send_reminders(server, down, 30, NOW)
    error = f"The message gateway file:{blocker / 'messages.jsonl'} failed: Not a directory"
    assert [(r.card, r.error) for r in failed.failed] == [(number(n), error) for n in REMINDED]
    assert failed.sent == ()
    assert rows(server)[number(A)] == (TODAY + timedelta(days=10), "failed", 1, False, error)

    flaky = FailingFor(FileGateway(outbox), phone(A))
    partly = reminders.send_reminders(server, flaky, 30, NOW + timedelta(hours=1))
    assert [r.card for r in partly.sent] == [number(G), number(I)]
    assert [r.card for r in partly.failed] == [number(A)]
    assert rows(server)[number(A)][1:] == ("failed", 2, False,
                                           "The message gateway test failed: number unreachable")

    last = reminders.send_reminders(server, FileGateway(outbox), 30, NOW + timedelta(hours=2))
    assert ([r.card for r in last.sent], last.already_sent) == ([number(A)], 2)
    assert rows(server)[number(A)][1:] == ("sent", 3, True, None)
    assert [m["phone"] for m in sent_messages(outbox)] == [phone(G), phone(I), phone(A)]


def test_a_run_that_died_mid_send_is_taken_over_after_the_lease(server: Engine,
                                                                outbox: Path) -> None:
    with pytest.raises(RuntimeError):
        reminders.send_reminders(server, Crashing(), 30, NOW)
    assert rows(server) == {number(G): (TODAY, "sending", 1, False, None)}
    soon = reminders.send_reminders(server, FileGateway(outbox), 30, NOW + timedelta(minutes=1))
    assert ([r.card for r in soon.sent], soon.in_progress) == ([number(A), number(I)], 1)
    later = reminders.send_reminders(server, FileGateway(outbox), 30,
                                     NOW + reminders.SENDING_LEASE + timedelta(seconds=1))
    assert ([r.card for r in later.sent], later.already_sent) == ([number(G)], 2)
    assert rows(server)[number(G)][1:] == ("sent", 2, True, None)


def test_concurrent_runs_send_each_reminder_once(server: Engine, outbox: Path) -> None:
    gateway = FileGateway(outbox)
    for round_ in range(4):  # several rounds: threads do not always overlap
        with server.begin() as conn:
            conn.execute(sa.delete(schema.expiry_reminders))
        with ThreadPoolExecutor(max_workers=3) as pool:
            runs = list(pool.map(
                lambda _: reminders.send_reminders(server, gateway, 30, NOW), range(3)))
        assert sum(len(r.sent) for r in runs) == 3
        assert sum(len(r.sent) + r.already_sent + r.in_progress for r in runs) == 9
        assert len(sent_messages(outbox)) == 3 * (round_ + 1)
    assert sorted(m["phone"] for m in sent_messages(outbox)) == sorted(
        [phone(n) for n in REMINDED] * 4)


# -- CLI ----------------------------------------------------------------------------------------

def test_report_expiring_through_the_cli(server: Engine, db_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run_cli("--json", "server", "report", "expiring", "--db", db_url) == 0
    assert json.loads(capsys.readouterr().out) == reminders.expiring(server, 30).as_json()
    assert run_cli("server", "report", "expiring", "--db", db_url, "--days", "5") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Cards with a balance expiring by {TODAY.isoformat()} + 5 days",
        "",
        "card              program  expiry      days             balance  phone",
        "----------------  -------  ----------  ----  ------------------  --------------",
        f"{masked(G)}  fuel     {expires(0)}     0  5.00 EUR, 7.00 EUR  +86*******0007",
        f"{masked(C)}  gift     {expires(5)}     5           12.50 EUR  -",
        "Total EUR: 2 cards, 24.50 EUR"]
    assert run_cli("server", "report", "expiring", "--db", db_url, "--days", "-3") == 2
    assert "'-3' is not a number of days" in capsys.readouterr().err


def test_remind_expiring_through_the_cli(server: Engine, db_url: str, outbox: Path,
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert run_cli("server", "remind-expiring", "--db", db_url,
                   "--gateway", f"file:{blocker}/x.jsonl") == 3
    out = capsys.readouterr().out
    assert out.startswith("Sent 0 reminders; 3 failed (retried next run); 0 sent before;")
    assert f"  failed: {masked(A)} (expires {expires(10)}): The message gateway" in out

    assert run_cli("--json", "--lang", "zh_CN", "server", "remind-expiring", "--db", db_url,
                   "--gateway", f"file:{outbox}") == 0
    result = json.loads(capsys.readouterr().out)
    assert ([r["card"] for r in result["sent"]], result["failed"], result["no_phone"]) == (
        [masked(n) for n in REMINDED], [], 1)
    assert [m["text"][:6] for m in sent_messages(outbox)] == ["您的卡 **"] * 3

    assert run_cli("server", "remind-expiring", "--db", db_url, "--gateway",
                   f"file:{outbox}", "--days", "45") == 0
    assert capsys.readouterr().out.startswith("Sent 1 reminders; 0 failed (retried next run);"
                                              " 3 sent before;")
    assert [m["phone"] for m in sent_messages(outbox)] == [phone(n) for n in (*REMINDED, B)]

    assert run_cli("server", "remind-expiring", "--db", db_url, "--gateway", "sms:x") == 2
    assert "'sms:x' is not a message gateway" in capsys.readouterr().err
    assert rows(server)[number(B)][0] == date.fromisoformat(expires(40))
