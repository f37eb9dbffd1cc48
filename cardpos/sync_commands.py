"""Handlers of `cardpos enrol`, `cardpos sync` and `cardpos status`: the terminal's link to its
server, for support staff and scripts (the app runs the same rounds on its sync thread)."""

from __future__ import annotations

import argparse
import sqlite3

from cardpos.cli import EXIT_DECLINED, EXIT_OK, Out
from cardpos.commands import _store
from cardpos.online import client_for
from sync.client import SyncClient, stored_status, sync_once
from terminal.services import utc_now
from terminal.store import queries


def enrol(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        terminal_id = store.read(queries.terminal_id)
        client = SyncClient(args.url)
        try:
            answer = client.enrol(args.code, terminal_id)
        finally:
            client.close()

        def job(conn: sqlite3.Connection) -> None:
            queries.set_meta(conn, "server_url", args.url)
            queries.set_meta(conn, "server_credential", answer.credential)

        store.write(job)
    out.emit({"ok": True, "terminal_id": answer.terminal_id, "branch": answer.branch,
              "server": args.url},
             [f"Terminal {answer.terminal_id} enrolled with {args.url}"
              + (f" (branch {answer.branch})." if answer.branch else ".")])
    return EXIT_OK


def sync(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        client = client_for(store)
        try:
            report = sync_once(store, client, utc_now)
        finally:
            client.close()
    lines = [f"Pushed {report.pushed} entries ({report.duplicates} already there), "
             f"{report.pending} pending; pulled {report.pulled_cards} cards; cursor "
             f"{report.cursor}."]
    lines += [f"  refused: entry {r['seq']} ({r['reason']})" for r in report.rejected]
    out.emit(report.as_json(), lines)
    return EXIT_DECLINED if report.rejected else EXIT_OK


def status(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        now = stored_status(store)
        server = store.read(lambda conn: queries.get_meta(conn, "server_url"))
        online = False
        if server is not None:
            client = client_for(store)
            try:
                online = client.healthy()
            finally:
                client.close()
    data = {**now.as_json(), "online": online, "server": server}
    out.emit(data, [f"server   {server or '(not enrolled)'}",
                    f"online   {'yes' if online else 'no'}",
                    f"pending  {now.pending} entries",
                    f"synced   {now.last_sync.isoformat() if now.last_sync else 'never'}",
                    f"cursor   {now.cursor}"])
    return EXIT_OK
