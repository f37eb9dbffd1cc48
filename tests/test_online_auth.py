"""Online authorization: the server holds the money of a debit while the terminal commits it
(sync/server/holds.py, POST /v1/authorize), settles the hold when the entry is pushed, and the
terminal falls back to its offline rules when the server is unreachable or slow.

Server-side tests run on SQLite and a real PostgreSQL; terminal-side tests against uvicorn."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.client import OnlineAuthorizer, SyncClient, push_all
from sync.server import auth, holds, issuer, phones, schema, settings
from sync.server.app import create_app
from sync.server.db import make_engine, utc_now
from sync.server.gateway import FileGateway
from sync.server.ledger import ChangeLog, set_status
from terminal import admin, journal, rules
from terminal.online import HoldAnswer, HoldRequest
from terminal.reasons import Outcome, Reason
from terminal.services import Terminal
from terminal.store import queries
from tests.conftest import Till
from tests.server_fixtures import Api
from tests.server_support import FUEL, FUEL_UID, PLAIN, PLAIN_UID, ROWS, sent_messages, write_csv
from tests.serving import serve

FUEL_PURSE = [("fuel", 10_00, "EUR")]


# -- the server's holds --------------------------------------------------------------------------

@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """The server database of `db_url` with the cards of ROWS and terminals T1, T2."""
    eng = make_engine(db_url)
    issuer.import_cards(eng, write_csv(tmp_path / "cards.csv", *ROWS))
    with eng.begin() as conn:
        for tid in ("T1", "T2"):
            conn.execute(sa.insert(schema.terminals).values(
                id=tid, branch=None, credential_hash=None, revoked=False, last_seq=0,
                last_hash=journal.GENESIS_HASH, enrolled_at=utc_now()))
    try:
        yield eng
    finally:
        eng.dispose()


def ask(engine: Engine, terminal: str, hold_id: str, card: str,
        amounts: list[tuple[str, int, str]], **kwargs: Any) -> holds.Verdict:
    code = kwargs.pop("code", None)
    return holds.authorize(engine, holds.Request(terminal, None, hold_id, card, "redeem",
                                                 amounts, code), **kwargs)


def open_holds(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.id, int(r.amount)) for r in conn.execute(
            sa.select(schema.holds.c.id, schema.holds.c.amount)
            .where(schema.holds.c.settled_at.is_(None)).order_by(schema.holds.c.id))]


def test_a_hold_takes_money_out_of_what_is_available(engine: Engine) -> None:
    first = ask(engine, "T1", "h1", FUEL, [("fuel", 40_00, "EUR")])
    assert first.approved and first.expires_at is not None
    second = ask(engine, "T2", "h2", FUEL, [("fuel", 20_00, "EUR")])
    assert (second.approved, second.reason, second.params["balance"]) == \
        (False, "insufficient_balance", 10_00)
    assert ask(engine, "T2", "h3", FUEL, [("fuel", 10_00, "EUR")]).approved
    assert open_holds(engine) == [("h1", 40_00), ("h3", 10_00)]


def test_a_resent_request_gets_the_same_hold_not_a_second_one(engine: Engine) -> None:
    for _ in range(3):
        assert ask(engine, "T1", "h1", FUEL, FUEL_PURSE).approved
    assert open_holds(engine) == [("h1", 10_00)]
    with pytest.raises(Exception) as refused:  # the id is T1's: T2 cannot reuse it
        ask(engine, "T2", "h1", FUEL, FUEL_PURSE)
    assert getattr(refused.value, "code", None) == "hold_id_taken"


def test_an_unsettled_hold_expires(engine: Engine) -> None:
    now = utc_now()
    assert ask(engine, "T1", "h1", FUEL, [("fuel", 50_00, "EUR")],
                           now=now, ttl=timedelta(minutes=10)).approved
    early = ask(engine, "T2", "h2", FUEL, FUEL_PURSE,
                            now=now + timedelta(minutes=9))
    assert early.reason == "insufficient_balance"
    late = ask(engine, "T2", "h2", FUEL, FUEL_PURSE,
                           now=now + timedelta(minutes=11))
    assert late.approved


@pytest.mark.parametrize(("change", "purses", "reason"), [
    ("frozen", FUEL_PURSE, "frozen"),
    ("lost", FUEL_PURSE, "lost"),
    ("closed", FUEL_PURSE, "closed"),
    ("denylist", FUEL_PURSE, "denylisted"),
    (None, [("nope", 1_00, "EUR")], "unknown_purse"),
    (None, [("fuel", 1_00, "USD")], "currency_mismatch"),
])
def test_the_server_checks_the_card_as_the_terminal_would(
        engine: Engine, change: str | None, purses: list[tuple[str, int, str]],
        reason: str) -> None:
    with engine.begin() as conn:
        if change == "denylist":
            conn.execute(sa.insert(schema.denylist).values(card=FUEL, reason="overspend",
                                                           added_at=utc_now()))
        elif change is not None:
            set_status(conn, FUEL, change, "issuer", utc_now(), log=ChangeLog())
    verdict = ask(engine, "T1", "h1", FUEL, purses)
    assert (verdict.approved, verdict.reason) == (False, reason)
    assert Reason(str(verdict.reason))  # a code the terminal knows and translates
    assert open_holds(engine) == []
    unknown = ask(engine, "T1", "h2", "4111111111111111", FUEL_PURSE)
    assert unknown.reason == "unknown_card"


def test_concurrent_authorizations_never_hold_more_than_the_balance(engine: Engine) -> None:
    """20 terminals ask for 7.00 each of a 50.00 purse at the same time: exactly 7 get it."""
    def one(i: int) -> bool:
        return ask(engine, "T1" if i % 2 else "T2", f"h{i:02}", FUEL,
                   [("fuel", 7_00, "EUR")]).approved

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(20)))
    assert sum(answers) == 7
    assert sum(amount for _id, amount in open_holds(engine)) == 49_00


# -- the terminal asks the server -----------------------------------------------------------------

def online_till(api: Api, till: Till, terminal_id: str,
                timeout: float = 5.0) -> tuple[Terminal, OnlineAuthorizer, SyncClient]:
    headers = api.enrol(terminal_id, branch=None)
    credential = headers["Authorization"].removeprefix("Bearer ")
    authorizer = OnlineAuthorizer(lambda: SyncClient(api.base, credential, timeout=timeout))
    return (Terminal(till.store, till.clock, authorizer), authorizer,
            SyncClient(api.base, credential))


def test_an_online_redemption_is_held_committed_online_and_settled_on_push(
        api: Api, till: Till) -> None:
    till.import_rows(*ROWS)
    terminal, authorizer, client = online_till(api, till, "T1")
    try:
        result = terminal.redeem(FUEL_UID, 12_50)
        assert result.approved and result.entry is not None
        body = result.entry.body
        assert body["online"] is True and isinstance(body["data"]["hold"], str)
        # An online entry is no offline exposure: the offline counters did not move.
        assert till.store.read(lambda c: queries.get_meta(c, "offline_total")) in (None, "0")
        assert open_holds(api.engine) == [(body["data"]["hold"], 12_50)]
        push_all(till.store, client, till.clock)
        assert open_holds(api.engine) == []
        with api.engine.connect() as conn:
            settled = conn.execute(sa.select(schema.holds.c.entry_id)).scalar_one()
            balance = conn.execute(sa.select(schema.purses.c.balance).where(
                schema.purses.c.card == FUEL, schema.purses.c.name == "fuel")).scalar_one()
        assert (settled, balance) == (result.entry.id, 37_50)
    finally:
        authorizer.close()
        client.close()


def test_two_tills_online_cannot_spend_the_same_money(api: Api, till: Till,
                                                     t2: Till) -> None:
    """Both tills hold the card at 50.00 in their caches; the server is the referee."""
    till.import_rows(*ROWS)
    first, a1, c1 = online_till(api, till, "T1")
    second, a2, c2 = online_till(api, t2, "T2")
    try:
        assert first.redeem(FUEL_UID, 40_00, purse="fuel").approved
        before = t2.store.read(lambda c: queries.get_meta(c, "journal_head_seq"))
        refused = second.redeem(FUEL_UID, 40_00, purse="fuel")
        assert refused.decision.outcome is Outcome.DECLINE
        assert refused.decision.reasons == (Reason.INSUFFICIENT_BALANCE,)
        assert refused.entry is None
        # nothing appended by the refusal
        assert t2.store.read(lambda c: queries.get_meta(c, "journal_head_seq")) == before
        assert second.redeem(FUEL_UID, 10_00, purse="fuel").approved
    finally:
        for closing in (a1, a2, c1, c2):
            closing.close()


def test_online_approval_goes_beyond_the_offline_limits(api: Api, till: Till) -> None:
    till.import_rows(*ROWS)
    admin.set_limit(till.store, "offline_per_transaction", "500", till.clock())
    terminal, authorizer, client = online_till(api, till, "T1")
    try:
        assert Terminal(till.store, till.clock).redeem(PLAIN_UID, 20_00).decision.outcome \
            is Outcome.NEEDS_ONLINE
        assert terminal.redeem(PLAIN_UID, 20_00).approved
    finally:
        authorizer.close()
        client.close()


def test_a_server_no_is_final_and_writes_nothing(api: Api, till: Till) -> None:
    till.import_rows(*ROWS)
    issuer.freeze(api.engine, FUEL)
    terminal, authorizer, client = online_till(api, till, "T1")
    before = till.store.read(lambda c: queries.get_meta(c, "journal_head_seq"))
    try:
        refused = terminal.redeem(FUEL_UID, 1_00)
        assert refused.decision.reasons == (Reason.FROZEN,) and refused.entry is None
        assert till.store.read(lambda c: queries.get_meta(c, "journal_head_seq")) == before
    finally:
        authorizer.close()
        client.close()


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP listener that accepts connections and never answers: a server that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, int(sock.getsockname()[1])


@pytest.mark.parametrize("failure", ["unreachable", "slow"])
def test_no_answer_in_time_means_the_offline_rules(till: Till, failure: str) -> None:
    till.import_rows(*ROWS)
    sock, port = _silent_server()
    if failure == "unreachable":
        sock.close()  # nothing listens there any more: connection refused
    made: list[SyncClient] = []

    def client() -> SyncClient:
        made.append(SyncClient(f"http://127.0.0.1:{port}", "x", timeout=0.3))
        return made[-1]

    authorizer = OnlineAuthorizer(client, cooldown=60)
    terminal = Terminal(till.store, till.clock, authorizer)
    try:
        result = terminal.redeem(FUEL_UID, 5_00)
        assert result.approved and result.entry is not None
        assert result.entry.body["online"] is False and "hold" not in result.entry.body["data"]
        assert till.store.read(lambda c: queries.get_meta(c, "offline_total")) == "500"
        assert not authorizer.ready()  # the next card is decided offline at once
        again = terminal.redeem(FUEL_UID, 1_00)
        assert again.approved and again.entry is not None and not again.entry.body["online"]
        authorizer.mark_online()
        assert authorizer.ready()
    finally:
        authorizer.close()
        sock.close()


def test_the_offline_limits_still_bind_when_the_server_does_not_answer(till: Till) -> None:
    till.import_rows(*ROWS)
    admin.set_limit(till.store, "offline_per_transaction", "500", till.clock())
    sock, port = _silent_server()
    sock.close()
    authorizer = OnlineAuthorizer(lambda: SyncClient(f"http://127.0.0.1:{port}", "x",
                                                     timeout=0.3))
    try:
        result = Terminal(till.store, till.clock, authorizer).redeem(PLAIN_UID, 20_00)
        assert result.decision.outcome is Outcome.NEEDS_ONLINE and result.entry is None
    finally:
        authorizer.close()


def test_authorizations_from_many_threads_of_one_terminal(api: Api, till: Till) -> None:
    """The authorizer is used from several operation threads at once (one client each)."""
    till.import_rows(*ROWS)
    terminal, authorizer, client = online_till(api, till, "T1")
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: terminal.redeem(PLAIN_UID, 1_00), range(6)))
        assert all(r.approved and r.entry is not None and r.entry.body["online"]
                   for r in results)
        card = till.store.read(lambda c: queries.load_card(c, number=PLAIN))
        assert card is not None and card.purses[0].balance == 24_00
        assert len(open_holds(api.engine)) == 6
    finally:
        authorizer.close()
        client.close()


def test_buyback_and_transfer_are_authorized_online_too(api: Api, till: Till) -> None:
    """Both empty the source card: the server holds its whole balance first."""
    till.import_rows(*ROWS)
    terminal, authorizer, client = online_till(api, till, "T1")
    try:
        bought = terminal.buyback(PLAIN_UID)
        assert bought.approved and bought.entry is not None and bought.entry.body["online"]
        moved = terminal.transfer(FUEL_UID, PLAIN_UID, supervisor_pin="9999")
        # PLAIN is closed now (bought back): the transfer is refused locally, nothing held.
        assert not moved.approved and moved.entry is None
        assert sorted(amount for _id, amount in open_holds(api.engine)) == [30_00]
        push_all(till.store, client, till.clock)
        with api.engine.connect() as conn:
            status = conn.execute(sa.select(schema.cards.c.status)
                                  .where(schema.cards.c.number == PLAIN)).scalar_one()
        assert status == "closed" and open_holds(api.engine) == []
    finally:
        authorizer.close()
        client.close()


# -- the second factor ---------------------------------------------------------------------------

def sent_codes(path: Path) -> list[str]:
    """The one-time codes the file gateway has "sent", oldest first."""
    return [re.search(r"\b(\d{6})\b", m["text"]).group(1)  # type: ignore[union-attr]
            for m in sent_messages(path)]


def test_above_the_threshold_a_phone_bound_card_needs_the_code(engine: Engine,
                                                               tmp_path: Path) -> None:
    outbox = tmp_path / "sms.jsonl"
    policy = holds.SecondFactorPolicy(FileGateway(outbox))
    phones.bind_phone(engine, FUEL, "+8613800001234")
    settings.set_limit(engine, settings.Scope.of(), "second_factor_above", "1000")  # 10.00
    small = ask(engine, "T1", "h0", FUEL, [("fuel", 10_00, "EUR")], second_factor=policy)
    assert small.approved and sent_codes(outbox) == []  # not above the threshold
    asked = ask(engine, "T1", "h1", FUEL, [("fuel", 20_00, "EUR")], second_factor=policy)
    assert (asked.approved, asked.reason) == (False, "second_factor_required")
    assert asked.params["phone"].startswith("+86") and "0001234" not in asked.params["phone"]
    challenge, [code] = asked.params["challenge"], sent_codes(outbox)
    assert open_holds(engine) == [("h0", 10_00)]  # nothing held while the code is out
    wrong = "000000" if code != "000000" else "111111"
    refused = ask(engine, "T1", "h1", FUEL, [("fuel", 20_00, "EUR")], second_factor=policy,
                  code=(challenge, wrong))
    assert (refused.reason, refused.params) == ("wrong_one_time_code", {"attempts_left": 2})
    bigger = ask(engine, "T1", "h1", FUEL, [("fuel", 30_00, "EUR")], second_factor=policy,
                 code=(challenge, code))  # the code is for 20.00, not more
    assert bigger.reason == "one_time_code_expired"
    ok = ask(engine, "T1", "h1", FUEL, [("fuel", 20_00, "EUR")], second_factor=policy,
             code=(challenge, code))
    assert ok.approved and open_holds(engine) == [("h0", 10_00), ("h1", 20_00)]
    again = ask(engine, "T1", "h2", FUEL, [("fuel", 20_00, "EUR")], second_factor=policy,
                code=(challenge, code))
    assert again.reason == "one_time_code_expired"  # used up
    # A card without a phone is never asked.
    assert ask(engine, "T1", "h3", PLAIN, [("general", 25_00, "EUR")],
               second_factor=policy).approved


def test_a_failed_send_keeps_no_challenge(engine: Engine, tmp_path: Path) -> None:
    phones.bind_phone(engine, FUEL, "+8613800001234")
    (tmp_path / "ro").mkdir()
    policy = holds.SecondFactorPolicy(FileGateway(tmp_path / "ro" / "missing" / "sms.jsonl"))
    settings.set_limit(engine, settings.Scope.of(), "second_factor_above", "0")
    verdict = ask(engine, "T1", "h1", FUEL, [("fuel", 1_00, "EUR")], second_factor=policy)
    assert (verdict.approved, verdict.reason) == (False, "gateway_failed")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(
            schema.otp_challenges)).scalar_one() == 0


def test_the_terminal_asks_for_the_code_and_then_redeems(db_url: str, till: Till,
                                                         tmp_path: Path) -> None:
    """Through the HTTP API: the cashier's first try answers `needs_second_factor` naming the
    challenge; the retry with the customer's code goes through, online."""
    till.import_rows(*ROWS)
    eng = make_engine(db_url)
    issuer.import_cards(eng, write_csv(tmp_path / "cards.csv", *ROWS))
    phones.bind_phone(eng, FUEL, "+4915112345678")
    settings.set_limit(eng, settings.Scope.of(), "second_factor_above", "1000")  # 10.00
    outbox = tmp_path / "sms.jsonl"
    app = create_app(db_url, second_factor=holds.SecondFactorPolicy(FileGateway(outbox)))
    try:
        with serve(app) as base:
            code_for_t1 = auth.make_enrol_code(eng, "T1", None)
            credential = SyncClient(base).enrol(code_for_t1, "T1").credential
            authorizer = OnlineAuthorizer(lambda: SyncClient(base, credential))
            terminal = Terminal(till.store, till.clock, authorizer)
            try:
                first = terminal.redeem(FUEL_UID, 40_00, purse="fuel")
                assert first.decision.outcome is Outcome.NEEDS_SECOND_FACTOR
                assert first.entry is None
                challenge = first.decision.params["challenge"]
                [code] = sent_codes(outbox)
                paid = terminal.redeem(FUEL_UID, 40_00, purse="fuel",
                                       second_factor=(challenge, code))
                assert paid.approved and paid.entry is not None and paid.entry.body["online"]
                assert rules.total(paid.entry.deltas) == 40_00
                assert terminal.redeem(FUEL_UID, 5_00, purse="fuel").approved  # below: no code
            finally:
                authorizer.close()
    finally:
        app.state.engine.dispose()
        eng.dispose()


class BranchOnly:
    """A relay cut off from its central server, as the terminal's port sees it: it approves
    every request for the branch alone (the relay's own behaviour is in tests/test_relay.py)."""

    def __init__(self) -> None:
        self.asked: list[HoldRequest] = []

    def ready(self) -> bool:
        return True

    def authorize(self, request: HoldRequest) -> HoldAnswer:
        self.asked.append(request)
        return HoldAnswer(True, request.hold_id, branch_only=True)


def test_a_branch_only_approval_still_counts_against_the_offline_limits(till: Till) -> None:
    till.import_rows(*ROWS)
    admin.set_limit(till.store, "offline_per_transaction", "1000", till.clock())
    relay = BranchOnly()
    terminal = Terminal(till.store, till.clock, relay)
    done = terminal.redeem(FUEL_UID, 8_00, purse="fuel")
    assert done.approved and done.entry is not None
    assert done.entry.body["online"] is False  # central has not seen it
    assert done.entry.body["data"]["hold"] == relay.asked[0].hold_id  # the relay settles it
    assert till.store.read(lambda c: queries.get_meta(c, "offline_total")) == "800"
    over = terminal.redeem(FUEL_UID, 12_00, purse="fuel")
    assert over.decision.outcome is Outcome.NEEDS_ONLINE and over.entry is None
    assert len(relay.asked) == 2  # asked, approved by the branch, then held back by the limit
