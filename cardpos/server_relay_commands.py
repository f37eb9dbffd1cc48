"""Handlers of the branch relay's commands (docs/relay.md):

- `cardpos server relay enrol --db BRANCH_DB --terminal-id RELAY-N UPSTREAM_URL CODE`:
  migrate the branch's database, exchange a relay code made upstream
  (`cardpos server enrol-code --relay`) for the relay's credential, keep both there;
- `cardpos server relay status --db BRANCH_DB`: the upstream, the link's last round, whether
  upstream answers now, and per local terminal what upstream has not acknowledged;
- `relay_app` builds the app `cardpos server run --upstream URL` serves.

As in cardpos/server_commands.py, the server's libraries are imported inside the handlers.
`add_relay_commands` registers the parsers; `add_server_commands` calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cardpos.cli import EXIT_OK, Out
from cardpos.server_commands import _db, _engine, _table

if TYPE_CHECKING:
    from fastapi import FastAPI

STATUS_TIMEOUT_S = 3.0


def relay_app(url: str, upstream: str) -> FastAPI:
    """The app of `cardpos server run --db URL --upstream UPSTREAM` (database migrated): this
    database's enrolment now points at `upstream`, and the relay link runs with the app."""
    from sync.server import relay_store
    from sync.server.app import create_app
    from sync.server.db import make_engine
    from sync.server.relay import RelayLink

    upstream = relay_store.check_url(upstream)
    engine = make_engine(url, pool_pre_ping=True)
    try:
        relay_store.set_url(engine, upstream)
        link = RelayLink(engine)
    except Exception:
        engine.dispose()
        raise
    return create_app(url, engine=engine, relay=link)


def relay_enrol(args: argparse.Namespace, out: Out) -> int:
    from sync.server.db import migrate
    from sync.server.relay import enrol

    with _engine(args) as engine:
        migrate(engine)
        upstream = enrol(engine, args.upstream, args.code, args.terminal_id)
    out.emit({"ok": True, "terminal_id": upstream.terminal, "branch": upstream.branch,
              "upstream": upstream.url},
             [f"Relay {upstream.terminal} of branch {upstream.branch or '-'} enrolled at"
              f" {upstream.url}.",
              f"Serve the branch: cardpos server run --db {_db(args)} --upstream {upstream.url}"])
    return EXIT_OK


def relay_status(args: argparse.Namespace, out: Out) -> int:
    from sync.client import SyncClient
    from sync.server import relay_store

    with _engine(args) as engine:
        upstream = relay_store.load(engine)
        lags = relay_store.lags(engine)
    client = SyncClient(upstream.url, upstream.credential, timeout=STATUS_TIMEOUT_S)
    try:
        reachable = client.healthy()
    finally:
        client.close()
    last = upstream.last_round_at.isoformat() if upstream.last_round_at else None
    pending = sum(lag.last_seq - lag.acked_seq for lag in lags)
    lines = [f"Relay {upstream.terminal} of branch {upstream.branch or '-'},"
             f" upstream {upstream.url} ({'reachable' if reachable else 'not reachable'})",
             f"Last good round: {last or 'never'}; cursor {upstream.cursor}"
             + (f"; last error: {upstream.last_error}" if upstream.last_error else ""),
             f"Entries not yet acknowledged upstream: {pending}", ""]
    if lags:
        lines += _table(("terminal", "applied here", "acknowledged", "pending", "rejected"),
                        [(lag.terminal, str(lag.last_seq), str(lag.acked_seq),
                          str(lag.last_seq - lag.acked_seq), lag.rejected or "")
                         for lag in lags], frozenset({1, 2, 3}))
    else:
        lines.append("No terminals enrolled here yet.")
    out.emit({"terminal_id": upstream.terminal, "branch": upstream.branch,
              "upstream": upstream.url, "reachable": reachable, "cursor": upstream.cursor,
              "last_round_at": last, "last_error": upstream.last_error, "pending": pending,
              "terminals": [lag.as_json() for lag in lags]}, lines)
    return EXIT_OK


def add_relay_commands(server: Any, db_command: Callable[..., argparse.ArgumentParser]
                       ) -> None:
    """Register `cardpos server relay enrol|status`."""
    help_text = "this server as a branch relay of an upstream server (docs/relay.md)"
    parser = server.add_parser("relay", help=help_text, description=help_text)
    relay = parser.add_subparsers(dest="server_relay", required=True, metavar="SUBCOMMAND")
    p = db_command("enrol", relay_enrol,
                   "enrol this branch database as a relay upstream (migrates it first)", relay)
    p.add_argument("--terminal-id", required=True, metavar="ID",
                   help="the relay's id upstream, as its code was made for")
    p.add_argument("upstream", metavar="UPSTREAM_URL", help="e.g. https://central:8750")
    p.add_argument("code", metavar="CODE", help="from `cardpos server enrol-code --relay`")
    db_command("status", relay_status,
               "the link to upstream and what it has not acknowledged yet", relay)
