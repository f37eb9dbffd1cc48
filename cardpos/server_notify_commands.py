"""Handlers of the server's commands about card holders' phones (docs/second-factor.md):

- `cardpos server card bind-phone|unbind-phone --db URL NUMBER [PHONE]`
- `cardpos server report expiring --db URL [--days 30]`
- `cardpos server remind-expiring --db URL --gateway SPEC [--days 30] [--lang en|zh_CN]`

`add_notify_commands` registers them; `cardpos.server_commands.add_server_commands` calls it with
its parsers. As there, the server's libraries are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cardpos.cli import EXIT_FAILED, EXIT_OK, Out
from cardpos.server_commands import _engine, _money, _table

# sync.server.reminders.DEFAULT_DAYS, not imported: building the parser must not load SQLAlchemy.
DEFAULT_DAYS = 30


def server_card_bind_phone(args: argparse.Namespace, out: Out) -> int:
    from sync.server.gateway import mask_phone
    from sync.server.phones import bind_phone
    from terminal.luhn import mask

    with _engine(args) as engine:
        number, phone = bind_phone(engine, args.number, args.phone)
    out.emit({"ok": True, "number": number, "phone": mask_phone(phone)},
             [f"Card {mask(number)} is bound to {mask_phone(phone)}."])
    return EXIT_OK


def server_card_unbind_phone(args: argparse.Namespace, out: Out) -> int:
    from sync.server.phones import unbind_phone
    from terminal.luhn import mask, normalize_card_number

    with _engine(args) as engine:
        unbound = unbind_phone(engine, args.number)
    number = normalize_card_number(args.number)
    out.emit({"ok": True, "number": number, "unbound": unbound},
             [f"Card {mask(number)} " + ("is no longer bound to a phone." if unbound
                                         else "had no phone bound.")])
    return EXIT_OK


def server_report_expiring(args: argparse.Namespace, out: Out) -> int:
    from sync.server.gateway import mask_phone
    from sync.server.reminders import expiring
    from terminal.luhn import mask

    with _engine(args) as engine:
        report = expiring(engine, args.days)
    lines = [f"Cards with a balance expiring by {report.today.isoformat()} + {report.days}"
             " days", ""]
    if report.cards:
        lines += _table(
            ("card", "program", "expiry", "days", "balance", "phone"),
            [(mask(c.number), c.program, c.expiry.isoformat(), str(c.days_left),
              ", ".join(_money(p.balance, p.currency) for p in c.purses),
              mask_phone(c.phone) if c.phone else "-") for c in report.cards],
            frozenset({3, 4}))
        lines += [f"Total {currency}: {t['cards']} cards, {_money(t['balance'], currency)}"
                  for currency, t in report.totals().items()]
    else:
        lines.append("No cards.")
    out.emit(report.as_json(), lines)
    return EXIT_OK


def server_remind_expiring(args: argparse.Namespace, out: Out) -> int:
    """Exit 3 if a message could not be sent (it is retried by the next run)."""
    from sync.server.gateway import make_gateway
    from sync.server.reminders import send_reminders
    from terminal.luhn import mask

    gateway = make_gateway(args.gateway)
    with _engine(args) as engine:
        result = send_reminders(engine, gateway, args.days, lang=args.lang)
    lines = [f"Sent {len(result.sent)} reminders; {len(result.failed)} failed (retried next"
             f" run); {result.already_sent} sent before; {result.in_progress} being sent by"
             f" another run; {result.no_phone} cards have no phone."]
    lines += [f"  failed: {mask(r.card)} (expires {r.expiry.isoformat()}): {r.error}"
              for r in result.failed]
    out.emit(result.as_json(), lines)
    return EXIT_FAILED if result.failed else EXIT_OK


def add_notify_commands(server: Any, card: Any, report: Any,
                        db_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the commands above under `server`, `server card` and `server report` (the
    subparsers of cardpos.server_commands; `db_command` adds a command with --db)."""
    p = db_command("bind-phone", server_card_bind_phone,
                   "bind a card to its holder's phone (one-time codes, reminders)", card)
    p.add_argument("number", metavar="NUMBER")
    p.add_argument("phone", metavar="PHONE", help="international form, e.g. +8613812345678")
    p = db_command("unbind-phone", server_card_unbind_phone, "forget a card's phone", card)
    p.add_argument("number", metavar="NUMBER")

    days_help = "expiring from today to this many days on (default: %(default)s)"
    p = db_command("expiring", server_report_expiring,
                   "active cards with a balance that expires soon", report)
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, metavar="N", help=days_help)
    p = db_command("remind-expiring", server_remind_expiring,
                   "text holders of bound cards whose balance expires soon (once per expiry;"
                   " --lang is the messages' language)", server)
    p.add_argument("--gateway", required=True, metavar="SPEC",
                   help="where messages go: file:/PATH (one JSON line each) or log:")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, metavar="N", help=days_help)
