"""The terminal's sync client and loop, against a real server under uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.client import SyncClient, SyncLoop, SyncStatus, sync_once
from terminal import sync_state
from terminal.credentials import NfcUid
from terminal.sync_state import SyncError
from tests.conftest import Till
from tests.serving import free_port

FUEL = "79927398713"
UID = NfcUid("04A1B2C3")


@pytest.fixture
def card(till: Till) -> Till:
    till.import_rows(f"{FUEL},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,")
    return till


def test_loop_reports_offline_and_backs_off_when_the_server_is_gone(card: Till) -> None:
    card.terminal.redeem(UID, 1_00)
    port = free_port()  # nothing listens there
    statuses: list[SyncStatus] = []
    seen = threading.Event()

    def on_status(status: SyncStatus) -> None:
        statuses.append(status)
        seen.set()

    loop = SyncLoop(card.store, lambda: SyncClient(f"http://127.0.0.1:{port}", "x",
                                                   timeout=0.5),
                    card.clock, interval=0.05, on_status=on_status)
    loop.start()
    try:
        assert seen.wait(10)
        time.sleep(0.3)  # a few backed-off rounds at most
    finally:
        started = time.monotonic()
        loop.stop()
        assert time.monotonic() - started < 2
    first = statuses[0]
    assert (first.online, first.error, first.pending) == (False, "server_unreachable", 2)
    assert loop.status.online is False
    assert len(statuses) < 8  # backoff: 0.1, 0.2, 0.4 ... not one round every 0.05 s


def test_client_errors_are_typed(tmp_path: Path) -> None:
    client = SyncClient(f"http://127.0.0.1:{free_port()}", "x", timeout=0.5)
    try:
        with pytest.raises(SyncError) as err:
            client.pull(0)
        assert err.value.code == "server_unreachable"
        assert client.healthy() is False
    finally:
        client.close()


def test_sync_once_without_a_server_changes_nothing(card: Till) -> None:
    card.terminal.redeem(UID, 1_00)
    client = SyncClient(f"http://127.0.0.1:{free_port()}", "x", timeout=0.5)
    try:
        with pytest.raises(SyncError):
            sync_once(card.store, client, lambda: datetime.now(UTC))
    finally:
        client.close()
    assert card.store.read(sync_state.pending_count) == 2




CARDPOS = str(Path(sys.executable).parent / "cardpos")
SERVER_CARDS = ("number,uid,program,purse,balance,currency,expiry,status,pin\n"
                f"{FUEL},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,\n"
                "4539578763621486,04A1B2C4,shopping,general,20.00,EUR,2027-12-31,active,\n")


def cli(*argv: str) -> dict[str, Any]:
    run = subprocess.run([CARDPOS, *argv, "--json"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, (argv, run.stdout, run.stderr)
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`cardpos server run` on a free loopback port over a SQLite file holding two cards."""
    db = f"sqlite:///{tmp_path / 'server.sqlite3'}"
    (tmp_path / "server-cards.csv").write_text(SERVER_CARDS, encoding="utf-8")
    cli("server", "migrate", "--db", db)
    cli("server", "cards", "import", "--db", db, str(tmp_path / "server-cards.csv"))
    port = free_port()
    proc = subprocess.Popen([CARDPOS, "server", "run", "--db", db, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url, db
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_terminal_enrols_pulls_redeems_and_pushes(server: tuple[str, str],
                                                    tmp_path: Path) -> None:
    """The whole loop through the CLI contract: nothing imported on the terminal, its cards
    come from the server's snapshot; its redemption reaches the server's ledger once."""
    url, db = server
    data = str(tmp_path / "till")
    cli("init", "--data", data, "--terminal-id", "TILL-7")
    code = cli("server", "enrol-code", "--db", db, "--terminal-id", "TILL-7")["code"]
    cli("enrol", "--data", data, url, code)
    first = cli("sync", "--data", data)
    assert first["pulled_cards"] == 2 and first["pending"] == 0
    cli("cashiers", "add", "--data", data, "ann", "--pin", "1111")
    cli("shift", "open", "--data", data, "--cashier", "ann", "--pin", "1111")
    # Enrolled and online: the server authorizes, and the entry is pushed at once (with the
    # shift_open before it), settling the hold.
    online = cli("redeem", "--data", data, "--uid", "04A1B2C3", "--amount", "12.50")
    assert online["outcome"] == "approve" and online["entry"]["online"] is True
    assert cli("status", "--data", data)["pending"] == 0
    shown = cli("server", "card", "show", "--db", db, FUEL)
    assert [p["balance"] for p in shown["purses"]] == [37_50]
    # --offline decides by the offline rules and leaves the entry for the next sync.
    offline = cli("redeem", "--data", data, "--uid", "04A1B2C3", "--amount", "2.50",
                  "--offline")
    assert offline["outcome"] == "approve" and offline["entry"]["online"] is False
    assert cli("status", "--data", data)["pending"] == 1
    second = cli("sync", "--data", data)
    assert (second["pushed"], second["pending"], second["rejected"]) == (1, 0, [])
    shown = cli("server", "card", "show", "--db", db, FUEL)
    assert [p["balance"] for p in shown["purses"]] == [35_00]
    again = cli("sync", "--data", data)  # nothing new: nothing pushed twice
    assert (again["pushed"], again["duplicates"]) == (0, 0)
    status = cli("status", "--data", data)
    assert (status["online"], status["pending"], status["server"]) == (True, 0, url)
    assert cli("inquire", "--data", data, "--uid", "04A1B2C3")["card"]["purses"][0][
        "balance"] == 35_00


def test_the_loop_syncs_in_the_background(server: tuple[str, str], card: Till) -> None:
    url, db = server
    code = cli("server", "enrol-code", "--db", db, "--terminal-id", "T1")["code"]
    credential = SyncClient(url).enrol(code, "T1").credential
    card.terminal.redeem(UID, 2_00)
    statuses: list[SyncStatus] = []
    done = threading.Event()

    def on_status(status: SyncStatus) -> None:
        statuses.append(status)
        if status.online and status.pending == 0:
            done.set()

    loop = SyncLoop(card.store, lambda: SyncClient(url, credential), card.clock,
                    interval=0.2, on_status=on_status)
    loop.start()
    try:
        assert done.wait(30), statuses
    finally:
        loop.stop()
    shown = cli("server", "card", "show", "--db", db, FUEL)
    assert [p["balance"] for p in shown["purses"]] == [48_00]


def test_a_long_pull_reports_progress_and_can_be_stopped(server: tuple[str, str],
                                                         card: Till) -> None:
    """A round pulling many pages tells how far it got after each page; stopped there, it
    has kept every applied page, and the next round goes on from its cursor."""
    url, db = server
    code = cli("server", "enrol-code", "--db", db, "--terminal-id", "T1")["code"]
    client = SyncClient(url, SyncClient(url).enrol(code, "T1").credential)
    seen: list[int] = []

    def stop_at_once(cards: int) -> bool:
        seen.append(cards)
        return False

    try:
        stopped = sync_once(card.store, client, card.clock, progress=stop_at_once, limit=1)
        assert seen == [1] and stopped.pulled_cards == 1
        rest = sync_once(card.store, client, card.clock, limit=1)
        assert rest.pulled_cards >= 1 and rest.cursor > stopped.cursor
    finally:
        client.close()
    numbers = card.store.read(lambda conn: [r[0] for r in conn.execute(
        "SELECT number FROM cards")])
    assert FUEL in numbers
