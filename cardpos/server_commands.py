"""Handlers of `cardpos server ...`: run the central server, migrate its database, make
enrolment codes, import cards, show / freeze / report lost / unfreeze a card.

The server's libraries (SQLAlchemy, Alembic, FastAPI, uvicorn) are imported inside the handlers,
so the terminal's commands work without them installed. `add_server_commands` registers the
parsers; `cardpos.cli.build_parser` calls it with its `command` and `group` helpers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardpos.cli import EXIT_OK, Out, default_data_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8750
SQLITE_FILE = "server.sqlite3"


def default_db_url() -> str:
    return f"sqlite:///{default_data_dir() / SQLITE_FILE}"


def _db(args: argparse.Namespace) -> str:
    """The --db URL; for a SQLite file, its directory is created."""
    from sqlalchemy.engine import make_url

    url = make_url(args.db)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return str(args.db)


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    from sync.server.db import make_engine

    engine = make_engine(_db(args))
    try:
        yield engine
    finally:
        engine.dispose()


def server_run(args: argparse.Namespace, out: Out) -> int:
    """Migrate (idempotent; serialized on PostgreSQL), then serve until interrupted."""
    import uvicorn

    from sync.server.app import create_app
    from sync.server.db import migrate

    url = _db(args)
    migrate(url)
    out.emit({"ok": True, "host": args.host, "port": args.port},
             [f"Serving on http://{args.host}:{args.port} (Ctrl-C stops)"])
    uvicorn.run(create_app(url), host=args.host, port=args.port, log_level="info")
    return EXIT_OK


def server_migrate(args: argparse.Namespace, out: Out) -> int:
    from sync.server.db import current_revision, migrate

    with _engine(args) as engine:
        migrate(engine)
        revision = current_revision(engine)
    out.emit({"ok": True, "revision": revision}, [f"Database at revision {revision}."])
    return EXIT_OK


def server_enrol_code(args: argparse.Namespace, out: Out) -> int:
    from sync.server.auth import CODE_TTL, make_enrol_code

    with _engine(args) as engine:
        code = make_enrol_code(engine, args.terminal_id, args.branch)
    hours = int(CODE_TTL.total_seconds() // 3600)
    out.emit({"code": code, "terminal_id": args.terminal_id, "branch": args.branch,
              "valid_hours": hours},
             [code, f"One-time code for terminal {args.terminal_id}, valid {hours} h."])
    return EXIT_OK


def server_cards_import(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import import_cards

    with _engine(args) as engine:
        summary = import_cards(engine, args.file)
    out.emit({"ok": True, **summary.as_json()},
             [f"Imported {summary.cards} cards with {summary.purses} purses"
              f" ({summary.pins_hashed} PINs hashed)."])
    return EXIT_OK


def server_card_show(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import card_show
    from terminal.luhn import mask
    from terminal.money import format_minor

    with _engine(args) as engine:
        card = card_show(engine, args.number)
    lines = [f"Card {mask(card.number)}  {card.status}  program {card.program}"
             f"  expires {card.expiry or '-'}  PIN {'yes' if card.has_pin else 'no'}"]
    lines += [f"  {p.name:<12} {format_minor(p.balance, p.currency)} {p.currency}"
              for p in card.purses]
    if card.denylisted:
        lines.append(f"  denylisted: {card.denylisted}")
    lines += [f"  overspend {format_minor(e['amount'], e['currency'])} {e['currency']}"
              f" by {', '.join(e['terminals'])}" for e in card.exceptions]
    out.emit(card.as_json(), lines)
    return EXIT_OK


def _status_change(change: Callable[..., str]) -> Callable[[argparse.Namespace, Out], int]:
    def handler(args: argparse.Namespace, out: Out) -> int:
        from terminal.luhn import mask, normalize_card_number

        with _engine(args) as engine:
            status = change(engine, args.number)
        number = normalize_card_number(args.number)
        out.emit({"ok": True, "number": number, "status": status},
                 [f"Card {mask(number)} is {status}."])
        return EXIT_OK

    return handler


def server_freeze(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import freeze

    return _status_change(freeze)(args, out)


def server_report_lost(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import report_lost

    return _status_change(report_lost)(args, out)


def server_unfreeze(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import unfreeze

    return _status_change(unfreeze)(args, out)


def add_server_commands(sub: Any, command: Callable[..., argparse.ArgumentParser],
                        group: Callable[[str, str], Any]) -> None:
    """Register `cardpos server ...` (called by `cardpos.cli.build_parser`; `sub` is its
    top-level subparsers, `command` and `group` its helpers)."""
    del sub  # `group` adds the `server` group to it
    server = group("server", "the central server (sync/server/)")

    def db_command(name: str, handler: Callable[..., int], help_text: str, parent: Any
                   ) -> argparse.ArgumentParser:
        p = command(name, handler, help_text, parent)
        p.add_argument("--db", default=default_db_url(), metavar="URL",
                       help="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
                            " (default: %(default)s)")
        return p

    p = db_command("run", server_run, "serve the API (migrates the database first)", server)
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    db_command("migrate", server_migrate, "bring the database schema up to date", server)
    p = db_command("enrol-code", server_enrol_code,
                   "print a one-time code that enrols a terminal (valid 24 h)", server)
    p.add_argument("--terminal-id", required=True, metavar="ID")
    p.add_argument("--branch", metavar="B")

    cards_parser = server.add_parser("cards", help="cards on the server",
                                     description="cards on the server")
    cards = cards_parser.add_subparsers(dest="server_cards", required=True, metavar="SUBCOMMAND")
    p = db_command("import", server_cards_import,
                   "import cards from CSV (the terminal's columns; all or nothing)", cards)
    p.add_argument("file", type=Path, metavar="FILE.csv")

    card_parser = server.add_parser("card", help="one card", description="one card")
    card = card_parser.add_subparsers(dest="server_card", required=True, metavar="SUBCOMMAND")
    p = db_command("show", server_card_show, "status and balances (from the ledger)", card)
    p.add_argument("number", metavar="NUMBER")

    for name, handler, help_text in (
            ("freeze", server_freeze, "freeze a card"),
            ("report-lost", server_report_lost, "report a card lost (final)"),
            ("unfreeze", server_unfreeze, "unfreeze a card")):
        p = db_command(name, handler, help_text, server)
        p.add_argument("number", metavar="NUMBER")

