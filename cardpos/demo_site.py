"""The demo site: a central server and one terminal enrolled with it, in one directory, headless.

`start_demo_site` builds what the Qt demo (`cardpos demo`) runs on: a migrated SQLite server
database with the demo cards (cardpos/demo.py) and a signing key, that server under uvicorn on
127.0.0.1, a `CuttableLink` in front of it (the demo's "cut the network"), and the demo terminal
store — seeded as `cardpos.demo.seed` does, enrolled through the link and synced once, so it
holds the server's cards, keys and limits. The terminal's store is closed again when this
returns: the app opens it itself (cardpos/station.py).

Threads: uvicorn serves on its own daemon thread ("demo-server", with its own event loop and
request threads), the link on its own (sync/netlink.py). `start_demo_site` and `DemoSite.stop`
block the calling thread — up to a few seconds — so the UI calls them off its GUI thread;
`fresh_qr` only reads the store and signs, and may be called from any thread.
"""

from __future__ import annotations

import itertools
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cardpos import issuer
from cardpos.demo import DEMO_KEY_ID, DemoCard, card_qr, seed
from cardpos.online import client_for
from sync.client import SyncClient, sync_once
from sync.netlink import CuttableLink
from sync.protocol import EnrolResponse
from sync.server import auth, keyring
from sync.server import issuer as server_issuer
from sync.server.app import create_app
from sync.server.db import migrate
from terminal.errors import StateError
from terminal.services import utc_now
from terminal.store import queries
from terminal.store.db import DB_FILE, Store
from terminal.sync_state import SyncError

SERVER_DB = "server.db"
#: The passphrase of the demo server's signing key (keyring.PASSPHRASE_ENV): set
#: CARDPOS_ISSUER_PASSPHRASE to it to run `cardpos server keys|batch ...` on the demo database.
DEMO_PASSPHRASE = "cardpos-demo"
STARTUP_S = 10.0
STOP_S = 5.0


@dataclass
class DemoSite:
    """A running demo site (see the module docstring). `server_url` goes through `link` — it is
    the URL the terminal was enrolled with — and `direct_url` does not. `key` is the server's
    signing key, for the simulator's QR codes (`fresh_qr`). `engine` is the server's own, for
    a panel showing the server's view (`sync.server.issuer.card_show`); `stop` disposes it."""

    data: Path
    terminal_id: str
    server_url: str
    direct_url: str
    db_url: str
    engine: Engine
    link: CuttableLink
    cards: list[DemoCard]
    key: issuer.KeyFile
    _server: uvicorn.Server
    _thread: threading.Thread
    _socket: socket.socket
    _counters: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _stopping: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def stop(self) -> None:
        """Stop the link, then uvicorn (in-flight requests get STOP_S seconds, then they are
        cut), and free both ports. Blocks at most about 3 * STOP_S. Idempotent, any thread."""
        with self._stopping:
            if not self._stopped:
                self._stopped = True
                _halt(self._server, self._thread, self._socket, self.link, self.engine)

    def next_counter(self) -> int:
        """A dynamic QR counter not handed out before by this site (the terminal refuses a
        counter it has seen: a replay). Thread-safe (itertools.count is atomic)."""
        return next(self._counters) % 2**32


def start_demo_site(data: Path, *, terminal_id: str = "DEMO-1",
                    now: datetime | None = None) -> DemoSite:
    """Build and start the demo site in `data` (a new or empty directory). `now`: the seeding
    moment (card expiries count from its date; default the clock's); sync uses the real clock.
    StateError("store_exists") if `data` holds a terminal store or a server database already;
    SyncError if the server does not come up or the first sync fails (nothing keeps running
    then)."""
    if (data / DB_FILE).exists() or (data / SERVER_DB).exists():
        raise StateError("store_exists", path=str(data))
    now = now or utc_now()
    data.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{data / SERVER_DB}"
    migrate(db_url)
    app = create_app(db_url)
    engine = app.state.engine
    server, thread, sock = _serve(app)  # starts up while the stores are being seeded
    link = CuttableLink(int(sock.getsockname()[1]), name="demo-link")
    direct_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        secret = DEMO_PASSPHRASE.encode()
        keyring.generate(engine, kid=DEMO_KEY_ID, secret=secret)
        with engine.connect() as conn:
            signing = keyring.active_key(conn, secret)
        seeded = seed(data, terminal_id, now, key=issuer.KeyFile(signing.kid,
                                                                 signing.private_key))
        server_issuer.import_cards(engine, data / "demo-cards.csv", now=now)
        site = DemoSite(data, terminal_id, link.url, direct_url, db_url, engine, link,
                        seeded.cards, seeded.key, server, thread, sock)
        _wait_started(server, thread)
        with Store.open(data) as store:
            enrol_terminal(store, link.url, auth.make_enrol_code(engine, terminal_id))
            client = client_for(store)
            try:
                sync_once(store, client, utc_now)
            finally:
                client.close()
    except BaseException:
        _halt(server, thread, sock, link, engine)
        raise
    return site


def enrol_terminal(store: Store, url: str, code: str) -> EnrolResponse:
    """Enrol the store's terminal with the server at `url` using a one-time `code`, and keep
    the URL and credential in the store, as `cardpos enrol` does (cardpos/sync_commands.py)."""
    terminal_id = store.read(queries.terminal_id)
    client = SyncClient(url)
    try:
        answer = client.enrol(code, terminal_id)
    finally:
        client.close()

    def job(conn: sqlite3.Connection) -> None:
        queries.set_meta(conn, "server_url", url)
        queries.set_meta(conn, "server_credential", answer.credential)

    store.write(job)
    return answer


def fresh_qr(site: DemoSite, card: DemoCard, *, dynamic: bool = True) -> str:
    """The QR text a customer's app would show for `card` now, signed with the site's key,
    with the purse hints and expiry the terminal's store holds. A dynamic code gets a counter
    of its own, so every call makes a code the terminal has not seen; showing the same text
    twice is the replay. Reads the store through its own read-only connection (any thread)."""
    uri = f"{(site.data / DB_FILE).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return card_qr(conn, site.key, card.number, dynamic=dynamic,
                       counter=site.next_counter() if dynamic else None)
    finally:
        conn.close()


# -- uvicorn on a thread --------------------------------------------------------------------------

def _serve(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, socket.socket]:
    """uvicorn serving `app` on a socket bound here to a free 127.0.0.1 port (no race for the
    port), on the "demo-server" daemon thread. Signal handlers are left alone: uvicorn installs
    none off the main thread."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=int(STOP_S)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="demo-server", daemon=True)
    thread.start()
    return server, thread, sock


def _halt(server: uvicorn.Server, thread: threading.Thread, sock: socket.socket,
          link: CuttableLink, engine: Engine) -> None:
    """Close the link, then stop uvicorn: gracefully for STOP_S seconds, then forced."""
    link.close(STOP_S)
    server.should_exit = True
    thread.join(STOP_S + 1)
    if thread.is_alive():
        server.force_exit = True
        thread.join(STOP_S)
    sock.close()
    engine.dispose()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SyncError("server_unreachable",
                            detail=f"the demo server did not start within {STARTUP_S:.0f} s")
        time.sleep(0.005)
