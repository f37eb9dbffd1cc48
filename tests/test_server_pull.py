"""The pull as a terminal sees it (sync/server/pull.py): limits and prices set on the server per
scope and distributed by the pull (sync/server/settings.py), branch scoping of cards and the
denylist, paging across changes a terminal may not see, the checksum and the reset snapshot.
Over a real uvicorn on 127.0.0.1, on SQLite and PostgreSQL, with terminals made by the core."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync import protocol
from sync.client import SyncClient, sync_once
from sync.server import branches, issuer, ledger, schema, settings
from sync.server.db import utc_now
from terminal import sync_state
from terminal.buyback import DEFAULT_TABLE
from terminal.credentials import NfcUid
from terminal.errors import BadInput
from terminal.journal import canonical
from terminal.reasons import Reason
from terminal.store import queries
from terminal.sync_state import SyncError
from tests.conftest import Clock, Till
from tests.server_fixtures import Api
from tests.server_support import FUEL, FUEL_UID, PLAIN, ROWS, SLEEPER, make_till, run_cli, write_csv

NORTH_CARD = "4539578763621486"   # branch north, UID 04A1B2D1
SOUTH_CARD = "4916338506082832"   # branch south, UID 04A1B2D2
SOUTH_UID = "04A1B2D2"
NORTH_ROW = f"{NORTH_CARD},04A1B2D1,shopping,general,40.00,EUR,2027-12-31,active,"
SOUTH_ROW = f"{SOUTH_CARD},{SOUTH_UID},shopping,general,60.00,EUR,2027-12-31,active,"
TABLE = {"seasons": [], "default_rate_bp": 7000, "expiry_brackets": [],
         "balance_brackets": []}


@pytest.fixture
def server(api: Api) -> Api:
    """The live server of tests/test_server_api.py (uvicorn; SQLite and PostgreSQL)."""
    return api


def _branch_cards(server: Api, tmp_path: Path) -> None:
    issuer.import_cards(server.engine, write_csv(tmp_path / "north.csv", NORTH_ROW),
                        branch="north")
    issuer.import_cards(server.engine, write_csv(tmp_path / "south.csv", SOUTH_ROW),
                        branch="south")


def _numbers(*pages: dict[str, Any]) -> list[str]:
    return [c["number"] for p in pages for c in p["cards"]]


def _all_pages(server: Api, headers: dict[str, str], cursor: int, limit: int | None = None
               ) -> list[dict[str, Any]]:
    pages = []
    while True:
        page = server.pull(headers, cursor, limit)
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            return pages
        assert len(pages) < 50


def _newest_change(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(schema.changes.c.seq))).scalar_one())


def _denylist(engine: Engine, card: str) -> None:
    """List `card` as the ledger does for an overspend (row + change-log entry)."""
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.denylist).values(card=card, reason="overspend",
                                                       added_at=utc_now()))
        log = ledger.ChangeLog()
        log.add("denylist", card)
        log.flush(conn)


def _held(till: Till, number: str) -> dict[str, int] | None:
    """The purse balances the terminal caches for `number` (None: it does not hold the card)."""
    def job(conn: Any) -> dict[str, int] | None:
        if conn.execute("SELECT 1 FROM cards WHERE number = ?", (number,)).fetchone() is None:
            return None
        return dict(conn.execute("SELECT name, balance FROM purses WHERE card = ?", (number,)))

    return till.store.read(job)


def _syncing(server: Api, till: Till, terminal_id: str, branch: str | None) -> SyncClient:
    """`till` enrolled through the API (its credential in a SyncClient)."""
    headers = server.enrol(terminal_id, branch)
    return SyncClient(server.base, headers["Authorization"].removeprefix("Bearer "), timeout=30)


# -- settings: merge, validation, CLI ----------------------------------------------------------

def test_effective_settings_merge_member_by_member(server: Api) -> None:
    url = server.engine.url.render_as_string(hide_password=False)
    assert run_cli("server", "limits", "set", "--db", url, "offline_per_transaction",
                   "8000") == 0
    assert run_cli("server", "limits", "set", "--db", url, "offline_per_card_day", "9000") == 0
    assert run_cli("server", "limits", "set", "--db", url, "--branch", "north",
                   "offline_per_card_day", "7000") == 0
    assert run_cli("server", "limits", "set", "--db", url, "--branch", "north",
                   "typed_number_needs_supervisor", "no") == 0
    assert run_cli("server", "limits", "set", "--db", url, "--terminal", "T1",
                   "purse_order", "fuel, general") == 0
    server.enrol("T1", "north")
    with server.engine.connect() as conn:
        t1 = settings.effective(conn, "north", "T1")
        t2 = settings.effective(conn, "south", "T2")
        nobody = settings.effective(conn, None, None)
    assert t1.limits == {"offline_per_transaction": 8000, "offline_per_card_day": 7000,
                         "typed_number_needs_supervisor": False,
                         "purse_order": ["fuel", "general"]}
    assert t1.sources == {"offline_per_transaction": "global",
                          "offline_per_card_day": "branch north",
                          "typed_number_needs_supervisor": "branch north",
                          "purse_order": "terminal T1"}
    assert t2.limits == nobody.limits == {"offline_per_transaction": 8000,
                                          "offline_per_card_day": 9000}
    # Prices: the most specific table wins, whole.
    assert t1.prices is None
    settings.set_prices(server.engine, settings.Scope.of(), DEFAULT_TABLE.as_json())
    settings.set_prices(server.engine, settings.Scope.of(branch="north"), TABLE)
    with server.engine.connect() as conn:
        assert settings.effective(conn, "north", "T1").prices == TABLE
        assert settings.effective(conn, "south", "T2").prices == json.loads(
            json.dumps(DEFAULT_TABLE.as_json()))
    # `show` for a terminal includes its enrolled branch.
    assert settings.effective_for(server.engine, settings.Scope.of(terminal="T1")).limits \
        == t1.limits


def test_settings_are_validated_with_the_terminals_parsers(server: Api, tmp_path: Path) -> None:
    global_ = settings.Scope.of()
    for name, value, code in (("nope", "1", "unknown_setting"),
                              ("pin_max_failures", "0", "bad_setting"),
                              ("offline_per_card_day", "-5", "bad_setting"),
                              ("timezone", "Mars/Base", "bad_setting")):
        with pytest.raises(BadInput) as err:
            settings.set_limit(server.engine, global_, name, value)
        assert err.value.code == code
    with pytest.raises(BadInput) as err:
        settings.set_prices(server.engine, global_, {"seasons": []})
    assert err.value.code == "bad_buyback_table"
    with pytest.raises(BadInput) as err:
        settings.Scope.of(branch="north", terminal="T1")
    assert err.value.code == "scope_ambiguous"
    with pytest.raises(BadInput) as err:
        settings.Scope.of(branch="x" * 65)
    assert err.value.code == "bad_branch"
    with pytest.raises(BadInput) as err:
        settings.Scope.of(terminal="no spaces")
    assert err.value.code == "bad_terminal_id"
    with server.engine.connect() as conn:  # nothing of the refused changes was stored
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.settings)
                            ).scalar_one() == 0
    url = server.engine.url.render_as_string(hide_password=False)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert run_cli("server", "prices", "set", "--db", url, str(bad)) != 0
    assert run_cli("server", "prices", "set", "--db", url, str(tmp_path / "missing.json")) != 0


def test_settings_cli_show(server: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = server.engine.url.render_as_string(hide_password=False)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TABLE), encoding="utf-8")
    assert run_cli("server", "prices", "set", "--db", url, "--branch", "north",
                   str(prices)) == 0
    assert run_cli("server", "limits", "set", "--db", url, "max_topup", "30000") == 0
    assert run_cli("server", "limits", "set", "--db", url, "--branch", "north",
                   "currency", "USD") == 0
    capsys.readouterr()
    assert run_cli("server", "limits", "show", "--db", url, "--branch", "north", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"scope": "branch", "name": "north", "set_here": {"currency": "USD"},
                     "effective": {"currency": "USD", "max_topup": 30000},
                     "sources": {"currency": "branch north", "max_topup": "global"}}
    assert run_cli("server", "prices", "show", "--db", url, "--branch", "north", "--json") == 0
    assert json.loads(capsys.readouterr().out)["effective"] == TABLE
    assert run_cli("server", "prices", "show", "--db", url, "--json") == 0
    assert json.loads(capsys.readouterr().out)["effective"] is None
    assert run_cli("server", "limits", "show", "--db", url, "--branch", "north") == 0
    text = capsys.readouterr().out
    assert "currency" in text and "branch north" in text and "30000" in text


# -- settings through the pull -------------------------------------------------------------------

def test_a_settings_change_reaches_the_terminals_it_covers(server: Api) -> None:
    north, south = server.enrol("T1", "north"), server.enrol("T2", "south")
    snap_n, snap_s = server.pull(north, 0), server.pull(south, 0)
    assert (snap_n["limits"], snap_n["prices"]) == (None, None)  # nothing set anywhere

    settings.set_limit(server.engine, settings.Scope.of(branch="north"), "offline_per_card_day",
                       "5000")
    delta_n, delta_s = server.pull(north, snap_n["cursor"]), server.pull(south, snap_s["cursor"])
    assert delta_n["limits"] == {"offline_per_card_day": 5000} and delta_n["prices"] is None
    assert delta_s["limits"] is None  # not its branch: no change for it ...
    assert delta_s["cursor"] == delta_n["cursor"] > snap_s["cursor"]  # ... but the cursor moves
    assert delta_n["cards"] == delta_s["cards"] == []

    settings.set_prices(server.engine, settings.Scope.of(), TABLE)
    settings.set_limit(server.engine, settings.Scope.of(terminal="T2"), "max_topup", "100")
    n2, s2 = server.pull(north, delta_n["cursor"]), server.pull(south, delta_s["cursor"])
    assert (n2["limits"], n2["prices"]) == ({"offline_per_card_day": 5000}, TABLE)
    assert (s2["limits"], s2["prices"]) == ({"max_topup": 100}, TABLE)
    idle = server.pull(north, n2["cursor"])
    assert (idle["limits"], idle["prices"]) == (None, None)

    # A reset snapshot always carries them once any are set.
    again = server.pull(north, 0)
    assert again["reset"] and again["limits"] == {"offline_per_card_day": 5000}
    assert again["prices"] == TABLE


def test_the_terminal_applies_pulled_limits_and_they_decide_offline(server: Api, till: Till
                                                                   ) -> None:
    till.import_rows(*ROWS)
    client = _syncing(server, till, "T1", "north")
    try:
        assert till.terminal.redeem(FUEL_UID, 20_00).approved  # the default limit is 100.00
        settings.set_limit(server.engine, settings.Scope.of(branch="north"),
                           "offline_per_transaction", "1500")
        settings.set_prices(server.engine, settings.Scope.of(terminal="T1"), TABLE)
        report = sync_once(till.store, client, till.clock)
        assert report.rejected == [] and report.pending == 0
        limits = till.store.read(queries.load_limits)
        assert limits.offline_per_transaction == 15_00
        # Members the server does not manage stay as this terminal has them.
        assert (limits.currency, limits.offline_per_card_day) == ("EUR", 200_00)
        held = till.store.read(lambda conn: queries.get_meta(conn, "buyback"))
        assert held is not None and json.loads(held) == TABLE

        refused = till.terminal.redeem(FUEL_UID, 20_00)
        assert not refused.approved
        assert Reason.OFFLINE_LIMIT_TRANSACTION in refused.decision.reasons
        assert till.terminal.redeem(FUEL_UID, 15_00).approved

        # Another branch's change reaches this terminal as an advanced cursor only.
        settings.set_limit(server.engine, settings.Scope.of(branch="south"),
                           "offline_per_transaction", "100")
        later = sync_once(till.store, client, till.clock)
        assert later.cursor == _newest_change(server.engine)
        assert till.store.read(queries.load_limits).offline_per_transaction == 15_00
    finally:
        client.close()


# -- branches ------------------------------------------------------------------------------------

def test_a_terminal_sees_only_its_branch_and_unbranched_cards(server: Api, tmp_path: Path) -> None:
    _branch_cards(server, tmp_path)
    north, south = server.enrol("T1", "north"), server.enrol("T2", "south")
    nowhere = server.enrol("T3", None)
    everywhere = {FUEL, PLAIN, SLEEPER}
    snap_n, snap_s = server.pull(north, 0), server.pull(south, 0)
    assert set(_numbers(snap_n)) == everywhere | {NORTH_CARD}
    assert set(_numbers(snap_s)) == everywhere | {SOUTH_CARD}
    assert set(_numbers(server.pull(nowhere, 0))) == everywhere  # no branch: unbranched only

    # Changes of the other branch's cards move the cursor but are not sent; denylist rows
    # only for cards the terminal may see.
    issuer.freeze(server.engine, SOUTH_CARD)
    _denylist(server.engine, SOUTH_CARD)
    issuer.freeze(server.engine, NORTH_CARD)
    _denylist(server.engine, PLAIN)
    newest = _newest_change(server.engine)
    dn, ds = server.pull(north, snap_n["cursor"]), server.pull(south, snap_s["cursor"])
    assert dn["cursor"] == ds["cursor"] == newest
    assert [(c["number"], c["status"]) for c in dn["cards"]] == [(NORTH_CARD, "frozen")]
    assert [(c["number"], c["status"]) for c in ds["cards"]] == [(SOUTH_CARD, "frozen")]
    assert dn["denylist"] == [{"card": PLAIN, "reason": "overspend", "listed": True}]
    assert ds["denylist"] == [{"card": SOUTH_CARD, "reason": "overspend", "listed": True},
                              {"card": PLAIN, "reason": "overspend", "listed": True}]
    assert server.pull(north, 0)["denylist"] == dn["denylist"]  # the snapshot filters the same way


def test_paging_across_changes_the_terminal_may_not_see(server: Api, tmp_path: Path) -> None:
    _branch_cards(server, tmp_path)
    south_rows = [f"{n},,shopping,general,1.00,EUR,,active," for n in (
        "4010000000000018", "4010000000000026", "4010000000000034", "4010000000000042",
        "4010000000000059")]
    issuer.import_cards(server.engine, write_csv(tmp_path / "south2.csv", *south_rows),
                        branch="south")
    north = server.enrol("T1", "north")
    pages = _all_pages(server, north, 0, limit=2)
    assert [p["reset"] for p in pages] == [True] + [False] * (len(pages) - 1)
    assert sorted(_numbers(*pages)) == sorted({FUEL, PLAIN, SLEEPER, NORTH_CARD})
    assert len(pages) == 5  # 10 changes, 2 per page, whatever they carry
    assert any(p["more"] and not p["cards"] for p in pages)  # a page of south cards only
    assert all(len(p["cards"]) <= 2 for p in pages)
    assert pages[-1]["cursor"] == _newest_change(server.engine)
    cursors = [p["cursor"] for p in pages]
    assert cursors == sorted(set(cursors))


def test_an_entry_for_another_branchs_card_is_applied_and_reported(server: Api, tmp_path: Path,
                                                                    clock: Clock) -> None:
    """Offline entries are facts: a north terminal that redeems a south card (it held the card
    from an earlier import) gets its entry applied, the money moves, the report shows it."""
    _branch_cards(server, tmp_path)
    till = make_till(tmp_path / "north-till", "T1", clock)
    try:
        till.import_rows(SOUTH_ROW)
        client = _syncing(server, till, "T1", "north")
        try:
            assert till.terminal.redeem(NfcUid(SOUTH_UID), 7_00).approved
            report = sync_once(till.store, client, till.clock)
        finally:
            client.close()
        assert report.rejected == [] and report.pending == 0
        shown = issuer.card_show(server.engine, SOUTH_CARD)
        assert [p.balance for p in shown.purses] == [53_00]
        crossed = branches.crossings(server.engine)
        assert [(c.terminal, c.terminal_branch, c.card, c.card_branch, c.kind, c.amounts)
                for c in crossed] == [("T1", "north", SOUTH_CARD, "south", "redeem",
                                       {"EUR": -7_00})]
        # The snapshot replaced the terminal's cache: the south card is gone from it.
        assert _held(till, SOUTH_CARD) is None
    finally:
        till.store.close()
    url = server.engine.url.render_as_string(hide_password=False)
    assert run_cli("server", "report", "branch-crossings", "--db", url) == 0


def test_import_branch_option(server: Api, tmp_path: Path) -> None:
    url = server.engine.url.render_as_string(hide_password=False)
    csv = write_csv(tmp_path / "n.csv", NORTH_ROW)
    assert run_cli("server", "cards", "import", "--db", url, str(csv), "--branch", "north") == 0
    assert run_cli("server", "cards", "import", "--db", url, str(write_csv(
        tmp_path / "s.csv", SOUTH_ROW)), "--branch", " ") != 0  # a blank branch is refused
    with server.engine.connect() as conn:
        assert conn.execute(sa.select(schema.cards.c.branch)
                            .where(schema.cards.c.number == NORTH_CARD)).scalar_one() == "north"
        assert conn.execute(sa.select(schema.cards.c.branch)
                            .where(schema.cards.c.number == FUEL)).scalar_one() is None
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.cards)
                            .where(schema.cards.c.number == SOUTH_CARD)).scalar_one() == 0


# -- checksum and reset --------------------------------------------------------------------------

def test_the_answer_is_canonical_json_with_its_checksum(server: Api, tmp_path: Path) -> None:
    _branch_cards(server, tmp_path)
    settings.set_limit(server.engine, settings.Scope.of(), "timezone", "Asia/Shanghai")
    headers = server.enrol("T1", "north")
    r = server.client.get("/v1/pull", params={"cursor": 0}, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    protocol.PullResponse.model_validate(body)  # the documented schema, not re-validated there
    assert protocol.verify_checksum(body)
    # The bytes are the canonical JSON the checksum hashes, with the checksum appended.
    head, tail = r.content.rsplit(b',"checksum":', 1)
    assert hashlib.sha256(head + b"}").hexdigest() == body["checksum"]
    assert tail == json.dumps(body["checksum"]).encode() + b"}"
    assert not protocol.verify_checksum({**body, "limits": {"timezone": "UTC"}})


def test_the_database_writes_json_as_canonical_json_does(server: Api, tmp_path: Path) -> None:
    """The card objects are built by the database (sync/server/pull.py): strings that need
    escaping come out as Python's canonical JSON has them, and purses keep the card's order."""
    issuer.import_cards(server.engine, write_csv(
        tmp_path / "order.csv", f"{NORTH_CARD},,shopping,general,1.00,EUR,,active,",
        f"{NORTH_CARD},,shopping,fuel,2.00,EUR,,active,"))
    odd = 'q"b\\s/\n\t\x01\x1f\x7f é€ 😀 \u2028'
    with server.engine.begin() as conn:
        conn.execute(sa.update(schema.cards).where(schema.cards.c.number == PLAIN)
                     .values(pin_hash=odd, uid="ü\"\\"))
        log = ledger.ChangeLog()
        log.add("card", PLAIN)
        log.flush(conn)
    headers = server.enrol("T1", "north")
    snap = server.pull(headers, 0)  # the checksum is verified over the parsed body
    plain = next(c for c in snap["cards"] if c["number"] == PLAIN)
    assert (plain["pin_hash"], plain["uid"]) == (odd, 'ü"\\')
    ordered = next(c for c in snap["cards"] if c["number"] == NORTH_CARD)
    assert [p["name"] for p in ordered["purses"]] == ["general", "fuel"]
    assert next(c for c in snap["cards"] if c["number"] == FUEL) == {
        "number": FUEL, "uid": "04A1B2C3", "program": "fuel", "status": "active",
        "expiry": "2027-12-31", "pin_hash": None,
        "purses": [{"name": "fuel", "currency": "EUR", "balance": 50_00},
                   {"name": "general", "currency": "EUR", "balance": 20_00}]}


def test_the_terminal_checks_the_bytes_or_else_the_parsed_page() -> None:
    body = {"cursor": 3, "reset": False, "more": False, "cards": [], "denylist": [], "keys": [],
            "limits": None, "prices": None}
    digest = protocol.checksum(body)
    sent = canonical(body)[:-1] + b',"checksum":"' + digest.encode() + b'"}'
    assert sync_state.parse_pull(sent)["cursor"] == 3
    other_form = json.dumps({**body, "checksum": digest}, indent=2).encode()
    assert sync_state.parse_pull(other_form)["cursor"] == 3  # checked over the object
    for damaged in (sent.replace(b'"cursor":3', b'"cursor":4'),
                    json.dumps({**body, "cursor": 4, "checksum": digest}).encode()):
        with pytest.raises(SyncError) as err:
            sync_state.parse_pull(damaged)
        assert err.value.code == "bad_checksum"
    with pytest.raises(ValueError):
        sync_state.parse_pull(b"[1]")


def test_reset_rules_and_limits_bounds(server: Api, tmp_path: Path) -> None:
    _branch_cards(server, tmp_path)
    headers = server.enrol("T1", "north")
    first = server.pull(headers, 0)
    ahead = server.pull(headers, first["cursor"] + 10)  # a cursor this server never issued
    assert ahead["reset"] and sorted(_numbers(ahead)) == sorted(_numbers(first))
    with server.engine.begin() as conn:
        conn.execute(sa.insert(schema.counters).values(name="pull_floor",
                                                       value=first["cursor"]))
    assert server.pull(headers, first["cursor"] - 1)["reset"]  # below the floor
    assert not server.pull(headers, first["cursor"])["reset"]
    big = server.client.get("/v1/pull", params={"cursor": 0, "limit": protocol.MAX_PULL_LIMIT},
                         headers=headers)
    assert big.status_code == 200
    over = server.client.get("/v1/pull", params={"limit": protocol.MAX_PULL_LIMIT + 1},
                          headers=headers)
    assert over.status_code == 422


def test_pending_deltas_follow_entries_made_between_pages(server: Api, till: Till) -> None:
    """A redemption journalled while a round pages still counts in the balance of a card that
    comes in a later page of the same round (PendingDeltas tops up per page)."""
    till.import_rows(*ROWS)
    headers = server.enrol("T1", "north")
    pending = sync_state.PendingDeltas()

    def apply(page: dict[str, Any]) -> None:
        till.store.write(lambda conn: sync_state.apply_pull(conn, page, pending))

    for page in _all_pages(server, headers, 0):
        apply(page)
    with server.engine.begin() as conn:  # both cards changed on the server (as a push would)
        log = ledger.ChangeLog()
        log.add("card", SLEEPER)
        log.add("card", FUEL)
        log.flush(conn)
    cursor = till.store.read(lambda conn: int(queries.get_meta(conn, "sync_cursor") or 0))
    first = server.pull(headers, cursor, limit=1)
    assert _numbers(first) == [SLEEPER] and first["more"]
    apply(first)
    assert till.terminal.redeem(FUEL_UID, 3_00).approved  # between two pages of one round
    second = server.pull(headers, first["cursor"], limit=1)
    assert _numbers(second) == [FUEL]
    apply(second)
    assert _held(till, FUEL) == {"fuel": 47_00, "general": 20_00}
