"""The branch relay (docs/relay.md): a central server (SQLite and PostgreSQL) and a relay
(SQLite), both real uvicorn servers on 127.0.0.1, the relay's link to central going through a
TCP link (sync/netlink.py) the test cuts and restores (the WAN); tills are real terminal stores
that enrol with, ask, push to and pull from the relay."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from sync.client import OnlineAuthorizer, SyncClient, push_all, sync_once
from sync.netlink import CuttableLink
from sync.server import auth, issuer, relay_store, schema
from sync.server.app import create_app
from sync.server.db import make_engine, migrate
from sync.server.ledger import check_balances
from sync.server.relay import LinkStatus, RelayLink, enrol
from terminal.reasons import Reason
from terminal.services import Terminal
from terminal.store import queries
from tests.conftest import Till
from tests.server_fixtures import Api
from tests.server_support import (
    FUEL,
    FUEL_UID,
    PLAIN,
    PLAIN_UID,
    pending,
    run_cli,
)
from tests.serving import serve

WAIT_S = 20.0


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll `check` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- a branch: relay, proxy, tills ---------------------------------------------------------------

@dataclass
class Branch:
    central: Api
    proxy: CuttableLink
    url: str  # the relay's database
    engine: Engine
    base: str = ""
    link: RelayLink | None = None
    _running: ExitStack = field(default_factory=ExitStack)

    def start(self) -> None:
        """Serve the relay (its link running), as `cardpos server run --upstream` does."""
        link = RelayLink(self.engine, interval=0.2, max_backoff=1.0, timeout=5.0,
                         authorize_timeout=1.0, cooldown=0.5)
        self.base = self._running.enter_context(
            serve(create_app(self.url, engine=self.engine, relay=link), lifespan=True))
        self.link = link

    def stop(self) -> None:
        """Stop the relay's server and link (the database stays)."""
        self._running.close()
        self.link = None

    @property
    def status(self) -> LinkStatus:
        assert self.link is not None
        return self.link.status

    def enrol_till(self, till: Till, terminal_id: str) -> tuple[Terminal, OnlineAuthorizer,
                                                                  SyncClient]:
        """Enrol a till at the relay (code made by the relay's own enrol-code): its terminal
        asking the relay online, the authorizer, and its sync client."""
        code = auth.make_enrol_code(self.engine, terminal_id)
        enrolling = SyncClient(self.base)
        try:
            credential = enrolling.enrol(code, terminal_id).credential
        finally:
            enrolling.close()
        authorizer = OnlineAuthorizer(lambda: SyncClient(self.base, credential, timeout=5.0))
        return (Terminal(till.store, till.clock, authorizer), authorizer,
                SyncClient(self.base, credential))

    def relay_balance(self, card: str, purse: str) -> int:
        return _balance(self.engine, card, purse)

    def central_balance(self, card: str, purse: str) -> int:
        return _balance(self.central.engine, card, purse)

    def sync_now(self) -> None:
        assert self.link is not None
        self.link.sync_now()


def _balance(engine: Engine, card: str, purse: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(schema.purses.c.balance).where(
            schema.purses.c.card == card, schema.purses.c.name == purse)).scalar_one())


@pytest.fixture
def branch(api: Api, tmp_path: Path) -> Iterator[Branch]:
    """Central (`api`, either database) with RELAY-1 of branch north enrolled through the
    proxy; the relay's SQLite database migrated and enrolled, its server running and caught
    up with central's cards."""
    proxy = CuttableLink(int(urlsplit(api.base).port or 0), name="wan")
    url = f"sqlite:///{tmp_path / 'branch.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        code = auth.make_enrol_code(api.engine, "RELAY-1", "north", role=auth.RELAY)
        enrol(engine, proxy.url, code, "RELAY-1")
        served = Branch(api, proxy, url, engine)
        served.start()
        try:
            eventually(lambda: _has_card(engine, FUEL), "the relay's first pull")
            yield served
        finally:
            served.stop()
    finally:
        proxy.close()
        engine.dispose()


def _has_card(engine: Engine, number: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.cards.c.number)
                            .where(schema.cards.c.number == number)).first() is not None


def cached(till: Till, number: str, purse: str) -> tuple[str, int]:
    card = till.store.read(lambda c: queries.load_card(c, number=number))
    assert card is not None
    return card.status.value, next(p.balance for p in card.purses if p.name == purse)


def central_entries(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(schema.entries.c.id)).scalars())


def open_holds(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(schema.holds.c.id)
                                 .where(schema.holds.c.settled_at.is_(None))).scalars())


def no_mismatch(engine: Engine) -> bool:
    with engine.connect() as conn:
        return check_balances(conn) == []


# -- link up -------------------------------------------------------------------------------------

def test_link_up_a_redemption_via_the_relay_reaches_central(branch: Branch, t1: Till) -> None:
    terminal, authorizer, client = branch.enrol_till(t1, "T1")
    try:
        sync_once(t1.store, client, t1.clock)  # the till's cache now comes from the relay
        result = terminal.redeem(FUEL_UID, 12_50, purse="fuel")
        assert result.approved and result.entry is not None
        hold = result.entry.body["data"]["hold"]
        assert result.entry.body["online"] is True
        # Held at the relay (the branch) and, with the same id, at central.
        assert open_holds(branch.engine) == [hold] and open_holds(branch.central.engine) == [hold]
        push_all(t1.store, client, t1.clock)
        branch.sync_now()
        eventually(lambda: central_entries(branch.central.engine)
                   == [e["id"] for e in pending(t1)], "the entry at central")
        eventually(lambda: branch.central_balance(FUEL, "fuel") == 37_50, "central's balance")
        assert open_holds(branch.central.engine) == [] and open_holds(branch.engine) == []
        with branch.central.engine.connect() as conn:
            relayed = conn.execute(sa.select(schema.terminals.c.branch, schema.terminals.c.relay,
                                             schema.terminals.c.credential_hash)
                                   .where(schema.terminals.c.id == "T1")).one()
        assert tuple(relayed) == ("north", "RELAY-1", None)
        branch.sync_now()
        eventually(lambda: relay_store.lags(branch.engine)[0].acked_seq == t1.store.read(
            lambda c: int(queries.get_meta(c, "journal_head_seq") or 0)), "the acknowledgement")
        assert branch.relay_balance(FUEL, "fuel") == 37_50
        assert no_mismatch(branch.engine) and no_mismatch(branch.central.engine)
        sync_once(t1.store, client, t1.clock)
        assert cached(t1, FUEL, "fuel") == ("active", 37_50)
    finally:
        authorizer.close()
        client.close()


def test_central_says_no_for_the_whole_card_and_the_branch_hold_is_released(
        branch: Branch, t1: Till) -> None:
    """Money held at central for another branch (here: directly) is not the branch's."""
    other = branch.central.enrol("ELSEWHERE", branch="south")
    r = branch.central.client.post("/v1/authorize", headers=other, json={
        "hold_id": "h-south", "card": PLAIN, "kind": "redeem",
        "purses": [{"purse": "general", "amount": 25_00, "currency": "EUR"}]})
    assert r.status_code == 200 and r.json()["approved"], r.text
    terminal, authorizer, client = branch.enrol_till(t1, "T1")
    try:
        refused = terminal.redeem(PLAIN_UID, 10_00)
        assert refused.decision.reasons == (Reason.INSUFFICIENT_BALANCE,)
        assert refused.entry is None
        assert open_holds(branch.engine) == []  # the branch's hold was released
        assert terminal.redeem(PLAIN_UID, 5_00).approved
    finally:
        authorizer.close()
        client.close()


# -- link down, link back ------------------------------------------------------------------------

def test_link_down_the_branch_serializes_spends_and_link_back_converges(
        branch: Branch, t1: Till, t2: Till) -> None:
    first, a1, c1 = branch.enrol_till(t1, "T1")
    second, a2, c2 = branch.enrol_till(t2, "T2")
    try:
        branch.proxy.cut()
        # Both tills hold FUEL at 50.00 in their caches; the relay is the referee now.
        taken = first.redeem(FUEL_UID, 40_00, purse="fuel")
        assert taken.approved and taken.entry is not None
        # The branch's word alone: held at the relay (so T2 cannot spend it), but journaled as
        # offline and counted against T1's offline limits (another branch could spend it).
        assert taken.entry.body["online"] is False and "hold" in taken.entry.body["data"]
        assert t1.store.read(lambda c: queries.get_meta(c, "offline_total")) == "4000"
        refused = second.redeem(FUEL_UID, 40_00, purse="fuel")
        assert refused.decision.reasons == (Reason.INSUFFICIENT_BALANCE,)
        assert refused.entry is None
        assert second.redeem(FUEL_UID, 10_00, purse="fuel").approved
        assert second.redeem(PLAIN_UID, 7_00).approved  # spends continue
        assert first.redeem(PLAIN_UID, 3_00).approved
        for till, client in ((t1, c1), (t2, c2)):
            assert push_all(till.store, client, till.clock).pending == 0
        assert branch.relay_balance(FUEL, "fuel") == 0
        assert branch.relay_balance(PLAIN, "general") == 20_00
        assert central_entries(branch.central.engine) == []  # nothing got through
        assert branch.central_balance(FUEL, "fuel") == 50_00
        eventually(lambda: not branch.status.online, "the link noticing the cut")

        branch.proxy.restore()
        branch.sync_now()
        journals = sorted(e["id"] for till in (t1, t2) for e in pending(till))
        eventually(lambda: sorted(central_entries(branch.central.engine)) == journals,
                   "every entry at central")
        eventually(lambda: branch.central_balance(FUEL, "fuel") == 0, "central's balance")
        assert branch.central_balance(PLAIN, "general") == 20_00
        eventually(lambda: branch.status.online, "the link up again")
        assert sorted(central_entries(branch.central.engine)) == journals  # no duplicates
        for engine in (branch.engine, branch.central.engine):
            assert _balance(engine, FUEL, "fuel") == 0
            assert _balance(engine, PLAIN, "general") == 20_00
            assert no_mismatch(engine)
        with branch.central.engine.connect() as conn:
            relayed = conn.execute(sa.select(sa.func.count()).select_from(schema.terminals)
                                   .where(schema.terminals.c.relay == "RELAY-1")).scalar_one()
        assert relayed == 2
        for till, client in ((t1, c1), (t2, c2)):
            sync_once(till.store, client, till.clock)
            assert cached(till, FUEL, "fuel") == ("active", 0)
            assert cached(till, PLAIN, "general") == ("active", 20_00)
    finally:
        for closing in (a1, a2, c1, c2):
            closing.close()


def _status(engine: Engine, number: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(schema.cards.c.status)
                                .where(schema.cards.c.number == number)).scalar_one())


def test_a_card_frozen_at_central_reaches_the_tills_through_the_relay(
        branch: Branch, t1: Till) -> None:
    terminal, authorizer, client = branch.enrol_till(t1, "T1")
    try:
        issuer.freeze(branch.central.engine, FUEL)
        branch.sync_now()
        eventually(lambda: _status(branch.engine, FUEL) == "frozen", "the freeze at the relay")
        sync_once(t1.store, client, t1.clock)
        assert cached(t1, FUEL, "fuel") == ("frozen", 50_00)
        branch.proxy.cut()  # the relay knows on its own now
        refused = terminal.redeem(FUEL_UID, 1_00)
        assert refused.decision.reasons == (Reason.FROZEN,) and refused.entry is None
    finally:
        authorizer.close()
        client.close()


def test_a_restarted_relay_continues_where_it_was(branch: Branch, t1: Till) -> None:
    """The relay stops after upstream applied an entry but before it recorded the answer (the
    acknowledgement is lost), while its branch has spent more and central changed the card;
    it starts again over the same database: it forwards everything from where it was (the
    applied entry as a duplicate), and pulls a delta from its cursor, without counting
    anything twice."""
    terminal, authorizer, client = branch.enrol_till(t1, "T1")
    try:
        assert terminal.redeem(FUEL_UID, 5_00, purse="fuel").approved
        push_all(t1.store, client, t1.clock)
        branch.sync_now()
        sent = [e["id"] for e in pending(t1)]
        eventually(lambda: central_entries(branch.central.engine) == sent, "the entries")
        acked = relay_store.lags(branch.engine)[0]
        # The round that forwarded it also pulls the change back: wait for the next one.
        eventually(lambda: relay_store.lags(branch.engine)[0].acked_seq == acked.last_seq,
                   "the acknowledgement")
        moment = branch.status.last_round_at
        eventually(lambda: (branch.status.last_round_at or moment) != moment, "another round")
        branch.proxy.cut()
        assert terminal.redeem(PLAIN_UID, 3_00).approved
        push_all(t1.store, client, t1.clock)
    finally:
        authorizer.close()
        client.close()
    branch.stop()
    with branch.engine.begin() as conn:  # the lost acknowledgement
        conn.execute(sa.delete(schema.relay_acks))
    issuer.freeze(branch.central.engine, FUEL)
    with branch.engine.connect() as conn:
        logged = int(conn.execute(sa.select(sa.func.max(schema.changes.c.seq))).scalar_one())
    before = relay_store.load(branch.engine).cursor
    assert before > 0
    branch.proxy.restore()
    branch.start()
    eventually(lambda: sorted(central_entries(branch.central.engine))
               == sorted(e["id"] for e in pending(t1)), "the entries at central")
    eventually(lambda: relay_store.load(branch.engine).cursor > before, "the next pull")
    with branch.engine.connect() as conn:
        since = conn.execute(sa.select(schema.changes.c.kind, schema.changes.c.key)
                             .where(schema.changes.c.seq > logged)).all()
    # A delta (FUEL and PLAIN changed at central), not a fresh snapshot of every card.
    assert sorted(tuple(r) for r in since) == [("card", PLAIN), ("card", FUEL)]
    assert _status(branch.engine, FUEL) == "frozen"
    for engine in (branch.engine, branch.central.engine):
        assert _balance(engine, FUEL, "fuel") == 45_00
        assert _balance(engine, PLAIN, "general") == 27_00
        assert no_mismatch(engine)


# -- the upstream side: who may push for whom ----------------------------------------------------

def test_relayed_push_is_only_for_relays_and_their_own_terminals(api: Api) -> None:
    def relay_credential(relay_id: str) -> dict[str, str]:
        code = auth.make_enrol_code(api.engine, relay_id, "north", role=auth.RELAY)
        r = api.client.post("/v1/enrol", json={"code": code, "terminal_id": relay_id})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['credential']}"}

    def relayed(headers: dict[str, str], terminal: str) -> httpx.Response:
        return api.client.post("/v1/relay/push", headers=headers,
                               json={"terminal": terminal, "entries": []})

    def refused(r: httpx.Response, status: int, code: str) -> None:
        assert (r.status_code, r.json()["error"]) == (status, code), r.text

    direct = api.enrol("T5")
    first, second = relay_credential("RELAY-1"), relay_credential("RELAY-2")
    refused(relayed(direct, "T6"), 403, "not_a_relay")
    refused(relayed(first, "T5"), 409, "terminal_not_relayed")  # enrolled directly
    refused(relayed(first, "RELAY-2"), 409, "terminal_not_relayed")  # a relay
    assert relayed(first, "T6").status_code == 200  # registered under RELAY-1
    refused(relayed(second, "T6"), 409, "terminal_of_another_relay")
    refused(relayed(first, "bad id!"), 400, "bad_terminal_id")
    code = auth.make_enrol_code(api.engine, "T5", "north", role=auth.RELAY)
    refused(api.client.post("/v1/enrol", json={"code": code, "terminal_id": "T5"}), 409,
            "enrol_role_conflict")
    with api.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.terminals.c.id, schema.terminals.c.role,
                                      schema.terminals.c.relay, schema.terminals.c.branch)
                            .order_by(schema.terminals.c.id)).all()
    assert [tuple(r) for r in rows] == [("RELAY-1", "relay", None, "north"),
                                        ("RELAY-2", "relay", None, "north"),
                                        ("T5", "terminal", None, "north"),
                                        ("T6", "terminal", "RELAY-1", "north")]


# -- cardpos server ... --------------------------------------------------------------------------

def test_relay_commands(api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    central = ("--db", str(api.engine.url.render_as_string(hide_password=False)))
    local = ("--db", f"sqlite:///{tmp_path / 'branch' / 'relay.db'}")
    assert run_cli("server", "migrate", *local) == 0
    assert run_cli("server", "relay", "status", *local) == 2  # not enrolled
    assert "relay enrol" in capsys.readouterr().err
    assert run_cli("server", "enrol-code", *central, "--terminal-id", "RELAY-7",
                   "--branch", "north", "--relay", "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert made["relay"] is True
    assert run_cli("server", "relay", "enrol", *local, "--terminal-id", "RELAY-7",
                   api.base + "/", made["code"], "--json") == 0
    enrolled = json.loads(capsys.readouterr().out)
    assert enrolled == {"ok": True, "terminal_id": "RELAY-7", "branch": "north",
                        "upstream": api.base}
    assert run_cli("server", "relay", "status", *local, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["reachable"], status["cursor"], status["terminals"]) == (True, 0, [])
    assert run_cli("server", "run", *local, "--upstream", "ftp://nowhere") == 2
    assert "ftp://nowhere" in capsys.readouterr().err
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert run_cli("server", "run", *local, "--upstream", api.base, "--port", "8798") == 0
    assert f"relay of {api.base}" in capsys.readouterr().out
    app = served["app"]
    with serve(app, lifespan=True) as base:  # the relay serves and its link pulls central's cards
        assert httpx.get(f"{base}/v1/health").status_code == 200
        engine = app.state.engine
        eventually(lambda: _has_card(engine, FUEL), "the relay's first pull")
    engine.dispose()
    assert run_cli("server", "relay", "status", *local, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["cursor"] > 0 and status["last_round_at"] and status["last_error"] is None
