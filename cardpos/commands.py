"""Handlers of the `cardpos` commands: parse arguments into core calls, print, pick the exit code.

Each handler takes the parsed arguments and an `Out`, returns the exit status, and lets the
core's typed errors propagate to `cli.main`, which prints them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cardpos import issuer, online, render
from cardpos.cli import EXIT_DECLINED, EXIT_OK, Out, read_secret
from terminal import admin
from terminal.credentials import CardNumber, Credential, NfcUid, QrCode
from terminal.errors import BadInput
from terminal.limits import Limits
from terminal.luhn import normalize_card_number
from terminal.model import Role
from terminal.money import parse_major
from terminal.services import Result, Shifts, Terminal, utc_now
from terminal.store import queries
from terminal.store.db import Store


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Store]:
    store = Store.open(args.data)
    try:
        yield store
    finally:
        store.close()


def _credential(args: argparse.Namespace, prefix: str = "") -> Credential:
    values = vars(args)
    if values.get(f"{prefix}card") is not None:
        return CardNumber(values[f"{prefix}card"])
    if values.get(f"{prefix}uid") is not None:
        return NfcUid(values[f"{prefix}uid"])
    return QrCode(values[f"{prefix}qr"])


def _amount(store: Store, text: str) -> int:
    return parse_major(text, admin.get_limits(store).currency)


def _result(out: Out, store: Store, result: Result) -> int:
    currency = admin.get_limits(store).currency
    out.emit(result.as_json(), render.result_lines(result, out.lang, currency))
    return EXIT_OK if result.approved else EXIT_DECLINED


def init(args: argparse.Namespace, out: Out) -> int:
    limits = Limits(currency=args.currency.upper(), timezone=args.timezone)
    admin.init_store(args.data, args.terminal_id, limits, utc_now()).close()
    out.emit({"ok": True, "terminal_id": args.terminal_id, "data": str(args.data)},
             [f"Created terminal {args.terminal_id} in {args.data}"])
    return EXIT_OK


def cards_import(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        summary = admin.import_card_file(store, args.file)
    out.emit({"ok": True, **summary.as_json()},
             [f"Imported {summary.cards} cards with {summary.purses} purses"
              f" ({summary.pins_hashed} PINs hashed)."])
    return EXIT_OK


def keys_add(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        admin.add_key(store, args.key_id, args.public_key_hex, utc_now())
    out.emit({"ok": True, "key_id": args.key_id}, [f"Key {args.key_id} trusted."])
    return EXIT_OK


def keys_list(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        keys = admin.list_keys(store)
    out.emit({"keys": keys}, [f"{k}  {v}" for k, v in sorted(keys.items())] or ["No keys."])
    return EXIT_OK


def keys_generate(args: argparse.Namespace, out: Out) -> int:
    key = issuer.generate_key_file(args.out, args.key_id)
    out.emit({"key_id": key.key_id, "public_key_hex": key.public_hex, "file": str(args.out)},
             [f"Wrote {args.out}. Trust it on a terminal with:",
              f"  cardpos keys add {key.key_id} {key.public_hex}"])
    return EXIT_OK


def token_make(args: argparse.Namespace, out: Out) -> int:
    key = issuer.read_key_file(args.private_key_file, args.key_id)
    number = normalize_card_number(args.card)
    card = None
    if (args.data / "cardpos.sqlite3").exists():
        with _store(args) as store:
            card = store.read(lambda conn: queries.load_card(conn, number=number))
    if args.window < 1 or args.window > 0xFFFF:
        raise BadInput("bad_setting", name="--window", value=str(args.window))
    qr = issuer.make_token(key, number, card, dynamic=args.dynamic, window_s=args.window,
                           counter=args.counter)
    out.emit({"qr": qr}, [qr])
    return EXIT_OK


def inquire(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        return _result(out, store, Terminal(store).inquire(_credential(args),
                                                           read_secret(args.pin)))


def quote(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        return _result(out, store, Terminal(store).quote(_credential(args),
                                                         read_secret(args.pin)))


@contextmanager
def _debiting(args: argparse.Namespace) -> Iterator[tuple[Store, Terminal]]:
    """The store and a Terminal that asks the server first when the store is enrolled (and
    not `--offline`). An approved online entry is pushed at once, so its hold is settled
    instead of waiting for the next sync."""
    with _store(args) as store:
        authorizer = None if args.offline else online.authorizer_for(store)
        try:
            yield store, Terminal(store, authorizer=authorizer)
        finally:
            if authorizer is not None:
                online.push_soon(store, authorizer)
                authorizer.close()


def _otp(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.otp is None:
        return None
    challenge, sep, code = args.otp.partition(":")
    if not (sep and challenge and code):
        raise BadInput("bad_otp_argument")
    return challenge, code


def redeem(args: argparse.Namespace, out: Out) -> int:
    with _debiting(args) as (store, terminal):
        result = terminal.redeem(
            _credential(args), _amount(store, args.amount), purse=args.purse,
            pin=read_secret(args.pin), cashier=args.cashier, allow_partial=args.allow_partial,
            supervisor_pin=read_secret(args.supervisor_pin), supervisor=args.supervisor,
            second_factor=_otp(args))
        return _result(out, store, result)


def void(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        result = Terminal(store).void(args.entry_id,
                                      supervisor_pin=read_secret(args.supervisor_pin),
                                      supervisor=args.supervisor, cashier=args.cashier)
        return _result(out, store, result)


def topup(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        result = Terminal(store).topup(_credential(args), _amount(store, args.amount),
                                       purse=args.purse, cashier=args.cashier)
        return _result(out, store, result)


def activate(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        amount = _amount(store, args.amount) if args.amount else 0
        result = Terminal(store).activate(_credential(args), amount=amount, purse=args.purse,
                                          cashier=args.cashier)
        return _result(out, store, result)


def buyback(args: argparse.Namespace, out: Out) -> int:
    with _debiting(args) as (store, terminal):
        result = terminal.buyback(
            _credential(args), pin=read_secret(args.pin), cashier=args.cashier,
            supervisor_pin=read_secret(args.supervisor_pin), supervisor=args.supervisor,
            second_factor=_otp(args))
        return _result(out, store, result)


def transfer(args: argparse.Namespace, out: Out) -> int:
    with _debiting(args) as (store, terminal):
        result = terminal.transfer(
            _credential(args, "from_"), _credential(args, "to_"), pin=read_secret(args.pin),
            cashier=args.cashier, supervisor_pin=read_secret(args.supervisor_pin),
            supervisor=args.supervisor, second_factor=_otp(args))
        return _result(out, store, result)


def shift_open(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        decision, shift_id = Shifts(store).open(args.cashier, read_secret(args.pin) or "")
        currency = admin.get_limits(store).currency
    lines = render.decision_lines(decision, out.lang, currency)
    if shift_id:
        lines.append(f"Shift {shift_id} opened for {args.cashier}.")
    out.emit({**decision.as_json(), "shift": shift_id}, lines)
    return EXIT_OK if decision.approved else EXIT_DECLINED


def shift_close(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        decision, report = Shifts(store).close(read_secret(args.pin) or "")
        currency = admin.get_limits(store).currency
    lines = render.decision_lines(decision, out.lang, currency)
    if report is not None:
        lines += render.z_lines(report)
    out.emit({**decision.as_json(), "z": report.as_json() if report else None}, lines)
    return EXIT_OK if decision.approved else EXIT_DECLINED


def report_z(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        report = Shifts(store).z_report(args.shift)
    out.emit(report.as_json(), render.z_lines(report))
    return EXIT_OK


def journal_verify(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        result = admin.verify_journal(store)
    out.emit(result.as_json(), render.verify_lines(result))
    return EXIT_OK if result.ok else EXIT_DECLINED


def journal_export(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        if args.out is None:
            count = admin.export_journal(store, args.format, sys.stdout.write)
        else:
            with args.out.open("w", encoding="utf-8", newline="") as handle:
                count = admin.export_journal(store, args.format, handle.write)
    if args.out is not None:
        out.emit({"ok": True, "entries": count, "file": str(args.out)},
                 [f"Exported {count} entries to {args.out}."])
    return EXIT_OK


def cashiers_add(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        admin.new_cashier(store, args.cashier_id, args.name, Role(args.role),
                          read_secret(args.pin) or "")
    out.emit({"ok": True, "cashier_id": args.cashier_id},
             [f"Added {args.role} {args.cashier_id}."])
    return EXIT_OK


def cashiers_list(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        people = admin.cashiers(store)
    out.emit({"cashiers": [{"id": c.id, "name": c.name, "role": c.role.value,
                            "active": c.active, "pin_failures": c.pin_failures} for c in people]},
             [f"{c.id:<12} {c.role.value:<10} {c.name}" for c in people] or ["No cashiers."])
    return EXIT_OK


def limits_show(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        limits = admin.get_limits(store)
    data = limits.as_json()
    out.emit(data, [f"{k:<32} {v}" for k, v in data.items()])
    return EXIT_OK


def limits_set(args: argparse.Namespace, out: Out) -> int:
    with _store(args) as store:
        limits = admin.set_limit(store, args.name, args.value, utc_now())
    out.emit(limits.as_json(), [f"{args.name} = {limits.as_json()[args.name]}"])
    return EXIT_OK


def demo(args: argparse.Namespace, out: Out) -> int:
    from cardpos.demo import run_demo

    data = Path(tempfile.mkdtemp(prefix="cardpos-demo-"))
    try:
        lines = list(run_demo(data, out.lang))
        out.emit({"ok": True, "steps": lines}, lines)
    finally:
        if args.keep:
            print(f"Demo data kept in {data}")
        else:
            shutil.rmtree(data)
    return EXIT_OK
