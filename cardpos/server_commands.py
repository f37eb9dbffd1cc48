"""Handlers of `cardpos server ...`: run the central server, migrate its database, make
enrolment codes, import cards, show / freeze / report lost / unfreeze a card, the reports
(`cardpos server report liability|exceptions|activity`, sync/server/reports.py), and issuing:
signing keys, programs, card batches, activate / top up / close, bulk orders (docs/issuer.md).

The server's libraries (SQLAlchemy, Alembic, FastAPI, uvicorn) are imported inside the handlers,
so the terminal's commands work without them installed. `add_server_commands` registers the
parsers; `cardpos.cli.build_parser` calls it with its `command` and `group` helpers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardpos.cli import EXIT_DECLINED, EXIT_OK, Out, default_data_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from sync.server.holds import SecondFactorPolicy

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
    """An engine for --db; a database that cannot be reached or fails is a machine failure
    (StoreError: exit 3), not a traceback."""
    import sqlalchemy as sa

    from sync.server.db import make_engine
    from terminal.errors import StoreError

    engine = make_engine(_db(args))
    try:
        yield engine
    except sa.exc.OperationalError as exc:
        raise StoreError("database_failed", detail=str(exc.orig).strip()) from exc
    finally:
        engine.dispose()


def server_run(args: argparse.Namespace, out: Out) -> int:
    """Migrate (idempotent; serialized on PostgreSQL), then serve until interrupted."""
    import uvicorn

    from sync.server.app import create_app
    from sync.server.db import migrate

    url = _db(args)
    migrate(url)
    if args.upstream is not None:  # a branch relay (docs/relay.md)
        from cardpos.server_relay_commands import relay_app
        app = relay_app(url, args.upstream)
    else:
        app = create_app(url, second_factor=_second_factor(args))
    out.emit({"ok": True, "host": args.host, "port": args.port, "upstream": args.upstream},
             [f"Serving on http://{args.host}:{args.port} (Ctrl-C stops)"
              + (f", relay of {args.upstream}" if args.upstream else "")])
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return EXIT_OK


def _second_factor(args: argparse.Namespace) -> SecondFactorPolicy | None:
    """One-time codes by `--sms-gateway` (docs/second-factor.md); none without it."""
    from sync.server.gateway import make_gateway
    from sync.server.holds import SecondFactorPolicy

    if args.sms_gateway is None:
        return None
    return SecondFactorPolicy(make_gateway(args.sms_gateway), args.lang)


def server_migrate(args: argparse.Namespace, out: Out) -> int:
    from sync.server.db import current_revision, migrate

    with _engine(args) as engine:
        migrate(engine)
        revision = current_revision(engine)
    out.emit({"ok": True, "revision": revision}, [f"Database at revision {revision}."])
    return EXIT_OK


def server_enrol_code(args: argparse.Namespace, out: Out) -> int:
    from sync.server.auth import CODE_TTL, RELAY, TERMINAL, make_enrol_code

    with _engine(args) as engine:
        code = make_enrol_code(engine, args.terminal_id, args.branch,
                               role=RELAY if args.relay else TERMINAL)
    hours = int(CODE_TTL.total_seconds() // 3600)
    what = "relay" if args.relay else "terminal"
    out.emit({"code": code, "terminal_id": args.terminal_id, "branch": args.branch,
              "valid_hours": hours, "relay": args.relay},
             [code, f"One-time code for {what} {args.terminal_id}, valid {hours} h."])
    return EXIT_OK


def server_terminals_list(args: argparse.Namespace, out: Out) -> int:
    from sync.server.terminals import list_terminals

    with _engine(args) as engine:
        rows = list_terminals(engine)

    def when(value: object) -> str:
        return value.isoformat() if isinstance(value, datetime) else "-"

    out.emit({"terminals": [{**r, "enrolled_at": when(r["enrolled_at"]),
                             "last_push_at": when(r["last_push_at"])} for r in rows]},
             [f"{'terminal':<16} {'branch':<12} {'revoked':<8} {'last seq':>9}  last push"]
             + [f"{r['id']!s:<16} {r['branch'] or '-'!s:<12} {'yes' if r['revoked'] else 'no':<8}"
                f" {r['last_seq']!s:>9}  {when(r['last_push_at'])}" for r in rows])
    return EXIT_OK


def server_terminals_revoke(args: argparse.Namespace, out: Out) -> int:
    from sync.server.terminals import revoke_terminal

    with _engine(args) as engine:
        revoke_terminal(engine, args.terminal_id)
    out.emit({"terminal_id": args.terminal_id, "revoked": True},
             [f"Terminal {args.terminal_id} revoked: its requests are refused from now on."])
    return EXIT_OK


def server_cards_import(args: argparse.Namespace, out: Out) -> int:
    from sync.server.branches import check_branch
    from sync.server.issuer import import_cards

    branch = check_branch(args.branch) if args.branch is not None else None
    with _engine(args) as engine:
        summary = import_cards(engine, args.file, branch=branch)
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


# -- issuing (sync/server/keyring.py, batches.py, issuer.py, orders.py; docs/issuer.md) ---------

def _declined(job: Callable[[], int], out: Out) -> int:
    """Run `job`; a refusal by the card's or the keys' state (StateError) is "declined" (exit 1),
    every other error keeps its usual exit status."""
    from terminal.errors import StateError

    try:
        return job()
    except StateError as err:
        out.error(err)
        return EXIT_DECLINED


def _key_line(key: Any) -> str:
    when = key.created_at.strftime("%Y-%m-%d %H:%M")
    return f"{key.kid:<16} {key.status:<8} created {when}  public {key.public_key_hex}"


def server_keys_generate(args: argparse.Namespace, out: Out) -> int:
    from sync.server import keyring

    def job() -> int:
        with _engine(args) as engine:
            key = keyring.generate(engine, kid=args.key_id)
        out.emit({"ok": True, "key": key.as_json()},
                 [f"Key {key.kid} is the active signing key.", _key_line(key)])
        return EXIT_OK

    return _declined(job, out)


def server_keys_rotate(args: argparse.Namespace, out: Out) -> int:
    from sync.server import keyring

    def job() -> int:
        with _engine(args) as engine:
            key, old = keyring.rotate(engine, kid=args.key_id)
        out.emit({"ok": True, "key": key.as_json(), "retiring": old},
                 [f"Key {key.kid} signs from now on; {old} is retiring (still verifies)."])
        return EXIT_OK

    return _declined(job, out)


def server_keys_revoke(args: argparse.Namespace, out: Out) -> int:
    from sync.server import keyring

    def job() -> int:
        with _engine(args) as engine:
            key = keyring.revoke(engine, args.kid)
        out.emit({"ok": True, "key": key.as_json()},
                 [f"Key {key.kid} is revoked: terminals drop it on their next pull."])
        return EXIT_OK

    return _declined(job, out)


def server_keys_list(args: argparse.Namespace, out: Out) -> int:
    from sync.server import keyring

    with _engine(args) as engine:
        found = keyring.list_keys(engine)
    out.emit({"keys": [k.as_json() for k in found]},
             [_key_line(k) for k in found] or ["No keys."])
    return EXIT_OK


def server_program_add(args: argparse.Namespace, out: Out) -> int:
    from sync.server.batches import add_program

    def job() -> int:
        with _engine(args) as engine:
            program = add_program(engine, args.program,
                                  [p.strip() for p in args.purses.split(",")],
                                  args.currency.upper(), name=args.name)
        out.emit({"ok": True, **program.as_json()},
                 [f"Program {program.id}: purses"
                  f" {', '.join(f'{n} ({c})' for n, c in program.purses)}."])
        return EXIT_OK

    return _declined(job, out)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def server_batch_create(args: argparse.Namespace, out: Out) -> int:
    from sync.server.batches import BatchSpec, create_batch

    given = {k: v for k, v in (("prefix", args.prefix), ("length", args.length)) if v is not None}
    spec = BatchSpec(args.program, args.count, uids=args.uids, pins=args.pins,
                     expiry=args.expiry, **given)

    def job() -> int:
        with _engine(args) as engine:
            batch = create_batch(engine, spec, args.export)
        out.emit({"ok": True, **batch.as_json()},
                 [f"Batch {batch.id}: {batch.count} cards of {batch.program}"
                  f" ({batch.numbers[0]} .. {batch.numbers[-1]}), tokens signed by {batch.kid}.",
                  f"Printer export: {batch.export}"
                  + (" (holds the clear PINs: the only copy)" if spec.pins else "")])
        return EXIT_OK

    return _declined(job, out)


def server_activate(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import activate

    def job() -> int:
        with _engine(args) as engine:
            moved = activate(engine, args.number, args.amount, purse=args.purse)
        out.emit({"ok": True, **moved.as_json()},
                 [f"Card {_masked(moved.number)} is active; {moved.purse}"
                  f" {_money(moved.balance, moved.currency)}."])
        return EXIT_OK

    return _declined(job, out)


def server_topup(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import topup

    def job() -> int:
        with _engine(args) as engine:
            moved = topup(engine, args.number, args.amount, purse=args.purse)
        out.emit({"ok": True, **moved.as_json()},
                 [f"Card {_masked(moved.number)}: {moved.purse} +"
                  f"{_money(moved.amount, moved.currency)},"
                  f" balance {_money(moved.balance, moved.currency)}."])
        return EXIT_OK

    return _declined(job, out)


def server_close(args: argparse.Namespace, out: Out) -> int:
    from sync.server.issuer import close

    def job() -> int:
        with _engine(args) as engine:
            closing = close(engine, args.number)
        paid = ", ".join(f"{p.name} {_money(p.balance, p.currency)}" for p in closing.paid_out)
        out.emit({"ok": True, **closing.as_json()},
                 [f"Card {_masked(closing.number)} is closed; posted out: {paid or 'nothing'}."])
        return EXIT_OK

    return _declined(job, out)


def _masked(number: str) -> str:
    from terminal.luhn import mask

    return mask(number)


def server_order_apply(args: argparse.Namespace, out: Out) -> int:
    """Exit 0 when every line is activated (now or by an earlier run), 1 when a line failed."""
    from sync.server.orders import ERROR, apply_order
    from terminal.messages import text

    with _engine(args) as engine:
        report = apply_order(engine, args.order_id, args.file)
    rows = [(str(r.line), r.number, r.result,
             r.purse or "", _money(r.amount, r.currency) if r.currency and r.amount is not None
             else "",
             text(r.code, out.lang, **r.params) if r.code else "")
            for r in report.lines]
    counts = report.counts()
    lines = [f"Order {report.order_id}: {counts['activated']} activated now,"
             f" {counts['already_activated']} by an earlier run, {counts['error']} errors.", ""]
    lines += _table(("line", "card", "result", "purse", "amount", "problem"), rows,
                    frozenset({0, 4}))
    out.emit(report.as_json(), lines)
    return EXIT_OK if counts[ERROR] == 0 else EXIT_DECLINED


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
    p.add_argument("--upstream", metavar="URL",
                   help="serve as the branch relay of this server (docs/relay.md)")
    p.add_argument("--sms-gateway", metavar="SPEC",
                   help="send one-time codes through this gateway (file:PATH or log:) and ask "
                        "for them above second_factor_above (docs/second-factor.md)")
    db_command("migrate", server_migrate, "bring the database schema up to date", server)
    p = db_command("enrol-code", server_enrol_code,
                   "print a one-time code that enrols a terminal (valid 24 h)", server)
    p.add_argument("--terminal-id", required=True, metavar="ID")
    p.add_argument("--branch", metavar="B")
    p.add_argument("--relay", action="store_true",
                   help="the code enrols a branch relay (docs/relay.md)")

    terminals_help = "terminals enrolled with this server"
    terminals_parser = server.add_parser("terminals", help=terminals_help,
                                         description=terminals_help)
    terminals = terminals_parser.add_subparsers(dest="server_terminals", required=True,
                                                metavar="SUBCOMMAND")
    db_command("list", server_terminals_list, "id, branch, revoked, last entry, last push",
               terminals)
    p = db_command("revoke", server_terminals_revoke,
                   "refuse this terminal's credential from now on (a lost or stolen till)",
                   terminals)
    p.add_argument("terminal_id", metavar="ID")

    cards_parser = server.add_parser("cards", help="cards on the server",
                                     description="cards on the server")
    cards = cards_parser.add_subparsers(dest="server_cards", required=True, metavar="SUBCOMMAND")
    p = db_command("import", server_cards_import,
                   "import cards from CSV (the terminal's columns; all or nothing)", cards)
    p.add_argument("file", type=Path, metavar="FILE.csv")
    p.add_argument("--branch", metavar="B",
                   help="the cards are valid in this branch only (default: in every branch)")

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

    _add_issuing_commands(server, db_command)

    from cardpos.server_notify_commands import add_notify_commands
    add_notify_commands(server, card, report, db_command)
    from cardpos.server_settings_commands import add_settings_commands
    add_settings_commands(server, report, db_command)
    from cardpos.server_relay_commands import add_relay_commands
    add_relay_commands(server, db_command)


def _add_issuing_commands(server: Any, db_command: Callable[..., argparse.ArgumentParser]
                          ) -> None:
    """`cardpos server keys|program|batch|activate|topup|close|order` (docs/issuer.md)."""
    def subgroup(name: str, help_text: str) -> Any:
        p = server.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest=f"server_{name}", required=True, metavar="SUBCOMMAND")

    keys = subgroup("keys", "the issuer's token signing keys (passphrase in"
                            " CARDPOS_ISSUER_PASSPHRASE)")
    for name, handler, help_text in (
            ("generate", server_keys_generate, "make the first active signing key"),
            ("rotate", server_keys_rotate, "a new active key; the old one retires")):
        p = db_command(name, handler, help_text, keys)
        p.add_argument("--key-id", metavar="KID", help="default: k<date>-<random>")
    p = db_command("revoke", server_keys_revoke, "revoke a retiring key (terminals drop it)",
                   keys)
    p.add_argument("kid", metavar="KID")
    db_command("list", server_keys_list, "every key and its state", keys)

    program = subgroup("program", "card programs")
    p = db_command("add", server_program_add, "a program and the purses of its cards", program)
    p.add_argument("program", metavar="ID")
    p.add_argument("--purses", required=True, metavar="A,B", help="purse names, in order")
    p.add_argument("--currency", required=True, help="ISO 4217, e.g. EUR")
    p.add_argument("--name", help="a display name")

    batch = subgroup("batch", "batches of new cards")
    p = db_command("create", server_batch_create,
                   "make N not-activated cards and their printer export (all or nothing)", batch)
    p.add_argument("--program", required=True, metavar="P")
    p.add_argument("--count", required=True, type=int, metavar="N")
    p.add_argument("--prefix", help="leading digits (default: 600649)")
    p.add_argument("--length", type=int,
                   help="digits per number, check digit included (default: 16)")
    p.add_argument("--uids", action="store_true", help="random 7-byte NFC UIDs")
    p.add_argument("--pins", action="store_true", help="random PINs (clear only in the export)")
    p.add_argument("--expiry", type=_date, metavar="YYYY-MM-DD")
    p.add_argument("--export", required=True, type=Path, metavar="FILE.csv",
                   help="the card printer's CSV (must not exist)")

    p = db_command("activate", server_activate, "activate a card with an opening load", server)
    p.add_argument("number", metavar="NUMBER")
    p.add_argument("--amount", default="0", help="major units, e.g. 25.00 (default: none)")
    p.add_argument("--purse", help="default: the card's first purse")
    p = db_command("topup", server_topup, "add money to an active card's purse", server)
    p.add_argument("number", metavar="NUMBER")
    p.add_argument("--amount", required=True, help="major units, e.g. 25.00")
    p.add_argument("--purse", help="default: the card's first purse")
    p = db_command("close", server_close, "close a card, posting its balance out", server)
    p.add_argument("number", metavar="NUMBER")

    order = subgroup("order", "bulk company orders")
    p = db_command("apply", server_order_apply,
                   "activate the cards of an order CSV (number,amount[,purse]); re-runnable",
                   order)
    p.add_argument("--order-id", required=True, metavar="ID")
    p.add_argument("file", type=Path, metavar="FILE.csv")
