"""Handlers of `cardpos server ...`: run the central server, migrate its database, make
enrolment codes, import cards, show / freeze / report lost / unfreeze a card, and the reports
(`cardpos server report liability|exceptions|activity`, sync/server/reports.py).

The server's libraries (SQLAlchemy, Alembic, FastAPI, uvicorn) are imported inside the handlers,
so the terminal's commands work without them installed. `add_server_commands` registers the
parsers; `cardpos.cli.build_parser` calls it with its `command` and `group` helpers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
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


# -- reports (sync/server/reports.py) -------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]
           ) -> list[str]:
    """Rows as aligned text columns; the columns in `right` are right-aligned (amounts)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _money(amount: int, currency: str) -> str:
    from terminal.money import format_minor

    return f"{format_minor(amount, currency)} {currency}"


def _when(value: str | None) -> datetime | None:
    """A --since/--until/--as-of value: an ISO date (midnight UTC) or date-time (UTC if naive)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def server_report_liability(args: argparse.Namespace, out: Out) -> int:
    from sync.server.reports import liability
    from terminal.luhn import mask

    with _engine(args) as engine:
        report = liability(engine, args.as_of)
    title = "Liability" + (f" as of {report.as_of.isoformat()}" if report.as_of else "")
    lines = [title, ""]
    lines += _table(
        ("program", "purse", "cards", "outstanding", "overspent cards", "overspent", "net"),
        [(x.program, x.purse, str(x.cards), _money(x.outstanding, x.currency),
          str(x.overspent_cards), _money(x.overspent, x.currency), _money(x.net, x.currency))
         for x in report.lines], frozenset({2, 3, 4, 5, 6}))
    for currency, t in report.totals().items():
        lines.append(f"Total {currency}: outstanding {_money(t['outstanding'], currency)},"
                     f" overspent {_money(t['overspent'], currency)},"
                     f" net {_money(t['net'], currency)}")
    if not report.lines:
        lines.append("No balances.")
    if report.negative:
        lines += ["", "Overspent cards (negative balances)"]
        lines += _table(("card", "program", "purse", "balance", "denylisted"),
                        [(mask(n.card), n.program, n.purse, _money(n.balance, n.currency),
                          "yes" if n.denylisted else "no") for n in report.negative],
                        frozenset({3}))
    out.emit(report.as_json(), lines)
    return EXIT_OK


def server_report_exceptions(args: argparse.Namespace, out: Out) -> int:
    from sync.server.reports import exceptions
    from terminal.luhn import mask

    with _engine(args) as engine:
        report = exceptions(engine)
    lines = ["Exceptions (overspends of offline entries)", ""]
    if report.cases:
        lines += _table(
            ("#", "card", "purse", "amount", "at (UTC)", "terminal", "involved", "denylisted",
             "status"),
            [(str(c.id), mask(c.card), c.purse, _money(c.amount, c.currency),
              c.at.strftime("%Y-%m-%d %H:%M"), c.terminal, ", ".join(c.terminals),
              c.denylist_reason or "no", "resolved" if c.resolved_at else "open")
             for c in report.cases], frozenset({0, 3}))
        for currency, t in report.totals().items():
            lines.append(f"Total {currency}: {t['cases']} cases,"
                         f" {_money(t['amount'], currency)};"
                         f" open {t['open']}, {_money(t['open_amount'], currency)}")
    else:
        lines.append("No exceptions.")
    out.emit(report.as_json(), lines)
    return EXIT_OK


def server_report_activity(args: argparse.Namespace, out: Out) -> int:
    from sync.server.reports import activity

    with _engine(args) as engine:
        report = activity(engine, args.by, args.since, args.until)

    def amounts(values: dict[str, int]) -> str:
        return ", ".join(_money(a, c) for c, a in sorted(values.items())) or "-"

    window = "".join([f" from {report.since.isoformat()}" if report.since else "",
                      f" until {report.until.isoformat()}" if report.until else ""])
    lines = [f"Activity by {report.by}{window}", ""]
    rows = []
    for total in report.groups():  # each group's kinds, then the group's total ("all")
        rows += [(x.group, x.kind, str(x.count), amounts(x.amounts), str(x.offline),
                  f"{x.offline_share:.0%}")
                 for x in [*(y for y in report.lines if y.group == total.group), total]]
    if rows:
        lines += _table((report.by, "kind", "count", "amount", "offline", "offline share"),
                        rows, frozenset({2, 3, 4, 5}))
    else:
        lines.append("No activity.")
    out.emit(report.as_json(), lines)
    return EXIT_OK


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

    report_help = "reports from the ledger (docs/server-reports.md)"
    report_parser = server.add_parser("report", help=report_help, description=report_help)
    report = report_parser.add_subparsers(dest="server_report", required=True,
                                          metavar="SUBCOMMAND")
    p = db_command("liability", server_report_liability,
                   "outstanding balances per program, purse and currency", report)
    p.add_argument("--as-of", type=_when, metavar="WHEN",
                   help="count postings made up to this ISO date-time (UTC if naive)")
    db_command("exceptions", server_report_exceptions,
               "overspends posted to the exceptions account, with the terminals involved", report)
    p = db_command("activity", server_report_activity,
                   "counts and sums of applied entries per group and kind", report)
    p.add_argument("--by", choices=("branch", "terminal", "program", "day"), default="branch")
    p.add_argument("--since", type=_when, metavar="WHEN", help="entries at or after (UTC)")
    p.add_argument("--until", type=_when, metavar="WHEN", help="entries before (UTC)")
