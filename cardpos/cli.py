"""The `cardpos` command line: the contract scripts and support staff depend on.

Exit status: 0 approved / ok, 1 declined (reason codes in the output), 2 bad input or usage
(a message on stderr, nothing written), 3 the machine failed (store unreadable, disk full).
Every command takes `--data DIR`, `--json` and `--lang`. A PIN given as `-` is read from stdin,
so it stays out of the shell history and the process list.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from cardpos import __version__
from terminal.errors import CardposError, ImportRejected, StoreError
from terminal.messages import default_language

EXIT_OK, EXIT_DECLINED, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 2, 3


@dataclass
class Out:
    """Where a command writes: JSON or text on stdout, messages on stderr."""

    json: bool
    lang: str

    def emit(self, data: dict[str, Any], lines: Sequence[str]) -> None:
        if self.json:
            print(json.dumps(data, ensure_ascii=False, sort_keys=True))
        else:
            for line in lines:
                print(line)

    def error(self, err: CardposError) -> None:
        lines = [err.message(self.lang)]
        if isinstance(err, ImportRejected):
            lines += [e.message(self.lang) for e in err.errors]
            if len(err.errors) < int(err.params["count"]):
                lines.append(f"... ({int(err.params['count']) - len(err.errors)} more)")
        for line in lines:
            print(line, file=sys.stderr)
        if self.json:
            data: dict[str, Any] = {"error": err.code, "message": lines[0],
                                    "params": {k: str(v) for k, v in err.params.items()}}
            if isinstance(err, ImportRejected):
                data["rows"] = [{"line": e.line, "column": e.column, "code": e.code,
                                 "message": e.message(self.lang)} for e in err.errors]
            print(json.dumps(data, ensure_ascii=False, sort_keys=True))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cardpos", appauthor=False))


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--data/--json/--lang, accepted before or after the command name."""
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help=f"terminal data directory (default: {default_data_dir()})",
                        **({"default": default_data_dir()} if top else kw))
    parser.add_argument("--json", action="store_true", help="machine-readable output",
                        **({"default": False} if top else kw))
    parser.add_argument("--lang", choices=("en", "zh_CN"),
                        **({"default": default_language()} if top else kw))


def _credential_args(parser: argparse.ArgumentParser, prefix: str = "", required: bool = True
                     ) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(f"--{prefix}card", metavar="NUMBER", help="printed card number")
    group.add_argument(f"--{prefix}qr", metavar="TEXT", help="text of the card's QR code")
    group.add_argument(f"--{prefix}uid", metavar="HEX", help="NFC UID")


class _LazyHandlers:
    """Command handlers named when the parser is built but imported when the command runs, so
    `cardpos --version` or one command does not pay for every other command's libraries."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[[argparse.Namespace, Out], int]:
        def handler(args: argparse.Namespace, out: Out) -> int:
            function = getattr(importlib.import_module(self._module), name)
            return int(function(args, out))

        handler.target = (self._module, name)  # type: ignore[attr-defined]  # for a test
        return handler


def build_parser() -> argparse.ArgumentParser:
    c = _LazyHandlers("cardpos.commands")
    d = _LazyHandlers("cardpos.device_commands")
    y = _LazyHandlers("cardpos.sync_commands")

    parser = argparse.ArgumentParser(prog="cardpos", description="Stored-value card terminal.")
    parser.add_argument("--version", action="version", version=f"cardpos {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., int], help_text: str,
                parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text,
                                                       description=help_text)
        _common(p, top=False)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help_text: str) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    p = command("init", c.init, "create the terminal's store")
    p.add_argument("--terminal-id", required=True, metavar="ID")
    p.add_argument("--currency", default="EUR", help="the terminal's currency (ISO 4217)")
    p.add_argument("--timezone", default="UTC", help="IANA zone where days start")

    cards = group("cards", "the local card cache")
    p = command("import", c.cards_import, "import cards from CSV (all or nothing)", cards)
    p.add_argument("file", type=Path)

    keys = group("keys", "issuer public keys trusted by this terminal")
    p = command("add", c.keys_add, "trust an issuer public key", keys)
    p.add_argument("key_id")
    p.add_argument("public_key_hex")
    command("list", c.keys_list, "list trusted keys", keys)
    p = command("generate", c.keys_generate, "make an issuer key file (tests, demos)", keys)
    p.add_argument("--key-id", required=True)
    p.add_argument("--out", type=Path, required=True)

    token = group("token", "signed card tokens (issuer side, for tests and demos)")
    p = command("make", c.token_make, "sign a token and print its QR text", token)
    p.add_argument("--private-key-file", type=Path, required=True)
    p.add_argument("--card", required=True, metavar="NUMBER")
    p.add_argument("--dynamic", action="store_true", help="a rotating code (customer's app)")
    p.add_argument("--key-id", help="key id (default: the one in the key file)")
    p.add_argument("--window", type=int, default=30, help="seconds a dynamic code is valid")
    p.add_argument("--counter", type=int, help="counter of a dynamic code")

    p = command("inquire", c.inquire, "balance and state of a card")
    _credential_args(p)
    p.add_argument("--pin")

    def money_command(name: str, handler: Callable[..., int], help_text: str,
                      amount: str = "required") -> argparse.ArgumentParser:
        p = command(name, handler, help_text)
        _credential_args(p)
        if amount != "none":
            p.add_argument("--amount", required=amount == "required",
                           help="amount in major units, e.g. 12.50")
        p.add_argument("--cashier", metavar="ID", help="default: the open shift's cashier")
        return p

    def online_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--offline", action="store_true",
                       help="decide by the offline rules without asking the server")
        p.add_argument("--otp", metavar="CHALLENGE:CODE",
                       help="the one-time code the server sent to the card holder's phone")

    p = money_command("redeem", c.redeem, "take an amount off a card")
    online_options(p)
    p.add_argument("--purse", help="take from this purse only (default: the purse order)")
    p.add_argument("--pin")
    p.add_argument("--allow-partial", action="store_true",
                   help="approve what the card holds if it is less than the amount")
    p.add_argument("--supervisor-pin")
    p.add_argument("--supervisor", metavar="ID")

    p = command("void", c.void, "reverse a recent redemption (supervisor)")
    p.add_argument("entry_id")
    p.add_argument("--supervisor-pin", required=True)
    p.add_argument("--supervisor", metavar="ID")
    p.add_argument("--cashier", metavar="ID")

    p = money_command("topup", c.topup, "add money to a purse")
    p.add_argument("--purse")
    p = money_command("activate", c.activate, "activate a card from an issued batch",
                      amount="optional")
    p.add_argument("--purse")

    p = command("quote", c.quote, "what the terminal would pay for the card (buyback quote)")
    _credential_args(p)
    p.add_argument("--pin")

    p = money_command("buyback", c.buyback, "buy the card's balance back and close it",
                      amount="none")
    online_options(p)
    p.add_argument("--pin")
    p.add_argument("--supervisor-pin")
    p.add_argument("--supervisor", metavar="ID")

    p = command("transfer", c.transfer, "move a card's balance to another card (supervisor)")
    online_options(p)
    _credential_args(p, "from-")
    _credential_args(p, "to-")
    p.add_argument("--pin", help="PIN of the source card")
    p.add_argument("--supervisor-pin", required=True)
    p.add_argument("--supervisor", metavar="ID")
    p.add_argument("--cashier", metavar="ID")

    shift = group("shift", "cashier shifts")
    p = command("open", c.shift_open, "log in and open a shift", shift)
    p.add_argument("--cashier", required=True, metavar="ID")
    p.add_argument("--pin", required=True)
    p = command("close", c.shift_close, "close the open shift and print its Z report", shift)
    p.add_argument("--pin", required=True, help="PIN of the shift's cashier")

    report = group("report", "reports")
    p = command("z", c.report_z, "Z report of a shift (default: the open or last one)", report)
    p.add_argument("--shift", metavar="ID")

    jour = group("journal", "the hash-chained journal")
    command("verify", c.journal_verify, "check the whole chain", jour)
    p = command("export", c.journal_export, "export every entry", jour)
    p.add_argument("--format", choices=("csv", "jsonl"), required=True)
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")

    people = group("cashiers", "cashiers and supervisors")
    p = command("add", c.cashiers_add, "add a cashier", people)
    p.add_argument("cashier_id")
    p.add_argument("--name", default="")
    p.add_argument("--role", choices=("cashier", "supervisor"), default="cashier")
    p.add_argument("--pin", required=True)
    command("list", c.cashiers_list, "list cashiers", people)

    limits = group("limits", "offline limits and terminal policy")
    command("show", c.limits_show, "show every setting", limits)
    p = command("set", c.limits_set, "change one setting (journaled)", limits)
    p.add_argument("name")
    p.add_argument("value")

    devices = group("devices", "card readers, cameras, printers")
    command("list", d.devices_list, "adapters available here and devices seen", devices)
    p = command("watch", d.devices_watch, "print each card event of a reader", devices)
    p.add_argument("--reader", required=True, metavar="SPEC",
                   help="e.g. pcsc, 'pcsc:Virtual PCD 00 00', nfcpy:usb, sim")
    p.add_argument("--once", action="store_true", help="stop after the first card")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p = command("emulate-card", d.devices_emulate_card,
                "present the emulated stored-value card to pcscd's vpcd", devices)
    p.add_argument("--uid", required=True, metavar="HEX")
    p.add_argument("--token", metavar="TEXT", help="the card's token as QR text (CP1:...)")
    p.add_argument("--port", type=int, default=35963, help="vpcd port on 127.0.0.1")

    p = command("scan-image", d.scan_image, "decode QR codes in image files")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")

    p = command("enrol", y.enrol, "enrol this terminal with a server (one-time code)")
    p.add_argument("url", help="the server, e.g. http://127.0.0.1:8750")
    p.add_argument("code", help="the one-time code from `cardpos server enrol-code`")
    command("sync", y.sync, "one push and pull with the server now")
    command("status", y.status, "online?, pending entries, last sync, cursor")

    from cardpos.server_commands import add_server_commands
    add_server_commands(sub, command, group)

    u = _LazyHandlers("cardpos.ui_commands")
    from cardpos.ui_commands import add_ui_arguments

    p = command("cashier", u.cashier, "the cashier window (keyboard first)")
    add_ui_arguments(p, devices=True)
    p = command("kiosk", u.kiosk, "the self-service kiosk window (full screen, touch)")
    add_ui_arguments(p, devices=True)
    p = command("demo", u.demo, "the cashier window on demo cards, simulated devices and an "
                "embedded server, in a fresh data dir")
    p.add_argument("--kiosk", action="store_true", help="open the kiosk instead")
    p.add_argument("--script", action="store_true",
                   help="no window: a scripted walk through a cashier's day, printed")
    p.add_argument("--no-voice", action="store_true", help="no spoken results")
    p.add_argument("--keep", action="store_true", help="keep the demo data directory")
    add_ui_arguments(p, devices=False)
    return parser


@contextmanager
def _errors(out: Out) -> Iterator[list[int]]:
    """Turn the core's typed errors into messages and exit codes."""
    code = [EXIT_OK]
    try:
        yield code
    except StoreError as err:
        out.error(err)
        code[0] = EXIT_FAILED
    except CardposError as err:
        out.error(err)
        code[0] = EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Out(args.json, args.lang)
    try:
        with _errors(out) as code:
            code[0] = args.handler(args, out)
    except BrokenPipeError:
        # The reader went away (`cardpos journal export ... | head`): stop quietly. Point
        # stdout at /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return code[0]


def read_secret(value: str | None) -> str | None:
    """A PIN option's value; `-` reads one line from stdin."""
    if value == "-":
        return sys.stdin.readline().strip()
    return value

