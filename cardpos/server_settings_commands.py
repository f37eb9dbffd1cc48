"""Handlers of the server's commands about terminal policy and branches (docs/server.md,
"Limits, prices and branches"):

- `cardpos server limits show|set --db URL [--branch B | --terminal T] [NAME VALUE]`
- `cardpos server prices show|set --db URL [--branch B | --terminal T] [FILE.json]`
- `cardpos server report branch-crossings --db URL`

Settings live in sync/server/settings.py and reach terminals with their next pull. No --branch
or --terminal means the global scope. `add_settings_commands` registers the parsers;
`cardpos.server_commands.add_server_commands` calls it. As there, the server's libraries are
imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardpos.cli import EXIT_OK, Out
from cardpos.server_commands import _engine, _money, _table

if TYPE_CHECKING:
    from sync.server.settings import Scope


def _scope(args: argparse.Namespace) -> Scope:
    from sync.server.settings import Scope

    return Scope.of(branch=args.branch, terminal=args.terminal)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def server_limits_show(args: argparse.Namespace, out: Out) -> int:
    """What is set at the scope, and what a terminal there gets (with where each comes from)."""
    from sync.server.settings import effective_for, scope_settings

    scope = _scope(args)
    with _engine(args) as engine:
        here, _prices = scope_settings(engine, scope)
        merged = effective_for(engine, scope)
    lines = [f"Limits for {scope.label()} (members not set anywhere stay as each terminal has"
             " them)", ""]
    if merged.limits:
        lines += _table(("setting", "value", "set at"),
                        [(k, _value(v), merged.sources[k]) for k, v in sorted(
                            merged.limits.items())], frozenset())
    else:
        lines.append("No limits set.")
    out.emit({**scope.as_json(), "set_here": here, "effective": merged.limits,
              "sources": merged.sources}, lines)
    return EXIT_OK


def server_limits_set(args: argparse.Namespace, out: Out) -> int:
    from sync.server.settings import set_limit

    scope = _scope(args)
    with _engine(args) as engine:
        here = set_limit(engine, scope, args.name, args.value)
    out.emit({"ok": True, **scope.as_json(), "set_here": here},
             [f"{args.name} = {_value(here[args.name])} for {scope.label()}; terminals get it"
              " with their next sync."])
    return EXIT_OK


def server_prices_show(args: argparse.Namespace, out: Out) -> int:
    from sync.server.settings import effective_for, scope_settings

    scope = _scope(args)
    with _engine(args) as engine:
        _limits, here = scope_settings(engine, scope)
        merged = effective_for(engine, scope)
    if merged.prices is None:
        lines = [f"No buyback prices set for {scope.label()}: terminals keep their own table."]
    else:
        lines = [f"Buyback prices for {scope.label()} (the table set at"
                 f" {merged.prices_source}):",
                 json.dumps(merged.prices, indent=2, sort_keys=True)]
    out.emit({**scope.as_json(), "set_here": here, "effective": merged.prices,
              "source": merged.prices_source}, lines)
    return EXIT_OK


def server_prices_set(args: argparse.Namespace, out: Out) -> int:
    from sync.server.settings import set_prices
    from terminal.errors import BadInput

    scope = _scope(args)
    try:
        table = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput("cannot_read_file", path=str(args.file), detail=str(exc)) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadInput("bad_buyback_table", detail=str(exc)) from exc
    with _engine(args) as engine:
        set_prices(engine, scope, table)
    out.emit({"ok": True, **scope.as_json(), "prices": table},
             [f"Buyback prices set for {scope.label()}; terminals get them with their next"
              " sync."])
    return EXIT_OK


def server_report_branch_crossings(args: argparse.Namespace, out: Out) -> int:
    from sync.server.branches import crossings
    from terminal.luhn import mask

    with _engine(args) as engine:
        found = crossings(engine)
    lines = ["Entries for cards of another branch than their terminal's (applied)", ""]
    if found:
        lines += _table(
            ("at (UTC)", "terminal", "its branch", "card", "card's branch", "kind", "amount"),
            [(c.at.strftime("%Y-%m-%d %H:%M"), c.terminal, c.terminal_branch or "-",
              mask(c.card), c.card_branch, c.kind,
              ", ".join(_money(a, cur) for cur, a in sorted(c.amounts.items())) or "-")
             for c in found], frozenset({6}))
    else:
        lines.append("None.")
    out.emit({"crossings": [c.as_json() for c in found]}, lines)
    return EXIT_OK


def add_settings_commands(server: Any, report: Any,
                          db_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `server limits`, `server prices` and `server report branch-crossings`."""
    def scoped(name: str, handler: Callable[..., int], help_text: str, parent: Any
               ) -> argparse.ArgumentParser:
        p = db_command(name, handler, help_text, parent)
        where = p.add_mutually_exclusive_group()
        where.add_argument("--branch", metavar="B", help="the branch's setting")
        where.add_argument("--terminal", metavar="T", help="one terminal's setting")
        return p

    def subgroup(name: str, help_text: str) -> Any:
        p = server.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest=f"server_{name}", required=True, metavar="SUBCOMMAND")

    limits = subgroup("limits", "terminals' offline limits and policy, global / per branch /"
                                " per terminal")
    scoped("show", server_limits_show, "what is set, and what terminals there get", limits)
    p = scoped("set", server_limits_set,
               "set one limit (same NAME VALUE as the terminal's `cardpos limits set`)", limits)
    p.add_argument("name", metavar="NAME")
    p.add_argument("value", metavar="VALUE")

    prices = subgroup("prices", "terminals' buyback price table, global / per branch /"
                                " per terminal")
    scoped("show", server_prices_show, "the table terminals there get", prices)
    p = scoped("set", server_prices_set, "set the whole table from a JSON file", prices)
    p.add_argument("file", type=Path, metavar="FILE.json")

    db_command("branch-crossings", server_report_branch_crossings,
               "applied entries for cards of another branch than their terminal's", report)
