"""The demo site (cardpos/demo_site.py): a real uvicorn serving a real SQLite server database,
behind the cuttable link, and the demo terminal store enrolled with it through that link."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cardpos.demo import CASHIER, CASHIER_PIN, DEMO_KEY_ID, DemoCard
from cardpos.demo_site import DemoSite, fresh_qr, start_demo_site
from cardpos.online import authorizer_for, client_for
from sync.client import sync_once
from sync.server import issuer, keyring
from sync.server.ledger import check_balances
from terminal.credentials import NfcUid, QrCode
from terminal.errors import StateError
from terminal.reasons import Reason
from terminal.services import Shifts, Terminal, utc_now
from terminal.store import queries
from terminal.store.db import Store
from terminal.sync_state import SyncError

NOW = utc_now()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DemoSite]:
    running = start_demo_site(tmp_path / "demo", terminal_id="DEMO-7", now=NOW)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def store(site: DemoSite) -> Iterator[Store]:
    """The site's terminal store, a shift open for the demo cashier."""
    with Store.open(site.data) as opened:
        decision, _ = Shifts(opened).open(CASHIER, CASHIER_PIN)
        assert decision.approved
        yield opened


def card(site: DemoSite, label: str) -> DemoCard:
    return next(c for c in site.cards if c.label == label)


def server_balance(site: DemoSite, number: str, purse: str) -> int:
    return next(p.balance for p in issuer.card_show(site.engine, number).purses
                if p.name == purse)


def cached(store: Store, number: str, purse: str) -> tuple[str, int]:
    held = store.read(lambda conn: queries.load_card(conn, number=number))
    assert held is not None
    return held.status.value, next(p.balance for p in held.purses if p.name == purse)


def test_the_site_serves_and_the_terminal_is_enrolled_with_the_servers_cards(
        site: DemoSite, store: Store) -> None:
    for url in (site.direct_url, site.server_url):
        health = httpx.get(f"{url}/v1/health").json()
        assert (health["status"], health["database"]) == ("ok", "sqlite")
    assert site.server_url == site.link.url != site.direct_url
    meta = store.read(lambda conn: queries.meta_values(
        conn, "terminal_id", "server_url", "server_credential", "sync_cursor"))
    assert (meta["terminal_id"], meta["server_url"]) == ("DEMO-7", site.server_url)
    assert meta["server_credential"] and int(meta["sync_cursor"]) > 0  # pulled once
    # The server's signing key is the site's key, and the pull delivered it.
    assert [(k.kid, k.status) for k in keyring.list_keys(site.engine)] == [(DEMO_KEY_ID,
                                                                            "active")]
    held = store.read(lambda conn: conn.execute("SELECT key_id, public_key FROM keys").fetchall())
    assert [(kid, bytes(raw).hex()) for kid, raw in held] == [(DEMO_KEY_ID, site.key.public_hex)]
    # Every demo card, on both sides, with its status and balances.
    assert len(site.cards) == 7
    for demo in site.cards:
        shown = issuer.card_show(site.engine, demo.number)
        assert (shown.uid, shown.status) == (demo.uid, demo.status)
        for purse, balance in demo.purses:
            minor = int(balance.replace(".", ""))
            assert server_balance(site, demo.number, purse) == minor
            assert cached(store, demo.number, purse) == (demo.status, minor)
    expiring = card(site, "shopping, expiring soon")
    assert issuer.card_show(site.engine, expiring.number).expiry == (
        NOW.date() + timedelta(days=5)).isoformat()
    terminal = Terminal(store)
    frozen = terminal.inquire(NfcUid(card(site, "fuel, frozen").uid))
    assert frozen.decision.reasons == (Reason.FROZEN,)


def test_fresh_qr_codes_are_each_good_once(site: DemoSite, store: Store) -> None:
    terminal = Terminal(store)  # offline: the tokens are checked by the terminal alone
    fuel = card(site, "fuel + general")
    first = fresh_qr(site, fuel)
    assert terminal.redeem(QrCode(first), 3_00).approved
    assert terminal.redeem(QrCode(first), 3_00).decision.reasons == (Reason.REPLAYED_CODE,)
    second = fresh_qr(site, fuel)
    assert second != first and terminal.redeem(QrCode(second), 3_00).approved
    printed = fresh_qr(site, fuel, dynamic=False)  # a static code: reusable
    for _ in range(2):
        assert terminal.redeem(QrCode(printed), 1_00).approved


def test_online_then_cut_then_restored(site: DemoSite, store: Store) -> None:
    fuel, phone = card(site, "fuel + general"), card(site, "phone credit")
    authorizer = authorizer_for(store)
    assert authorizer is not None
    terminal = Terminal(store, authorizer=authorizer)
    client = client_for(store)
    try:
        online = terminal.redeem(NfcUid(fuel.uid), 12_50, purse="fuel")
        assert online.approved and online.entry is not None
        assert online.entry.body["online"] is True
        assert sync_once(store, client, utc_now).pending == 0  # the shift's entry and this
        assert server_balance(site, fuel.number, "fuel") == 67_50
        assert cached(store, fuel.number, "fuel") == ("active", 67_50)

        site.link.cut()
        assert not site.link.is_up
        offline = terminal.redeem(NfcUid(phone.uid), 5_00)
        assert offline.approved and offline.entry is not None
        assert offline.entry.body["online"] is False  # the offline rules decided
        with pytest.raises(SyncError) as failed:
            sync_once(store, client, utc_now)
        assert failed.value.code == "server_unreachable"
        assert server_balance(site, phone.number, "phone") == 30_00

        site.link.restore()
        assert site.link.is_up
        report = sync_once(store, client, utc_now)
        assert (report.pushed, report.pending, report.rejected) == (1, 0, [])
        assert server_balance(site, phone.number, "phone") == 25_00
        assert server_balance(site, fuel.number, "fuel") == 67_50
        with site.engine.connect() as conn:
            assert check_balances(conn) == []
        assert cached(store, phone.number, "phone") == ("active", 25_00)
    finally:
        authorizer.close()
        client.close()


def test_stop_frees_the_ports_and_ends_the_threads(tmp_path: Path) -> None:
    site = start_demo_site(tmp_path / "demo")
    ports = [site.link.port, int(site.direct_url.rsplit(":", 1)[1])]
    site.stop()
    site.stop()  # idempotent
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{site.direct_url}/v1/health")
    names = {t.name for t in threading.enumerate()}
    assert not {n for n in names if n.startswith(("demo-server", "demo-link"))}
    with pytest.raises(StateError) as taken:  # the directory holds a site already
        start_demo_site(site.data)
    assert taken.value.code == "store_exists"
