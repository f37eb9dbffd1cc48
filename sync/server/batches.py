"""Card programs and batches of new cards, with the export the card printer reads.

A program names the purses (and their currency) its cards get. A batch makes N cards of a
program at once, all or nothing: random numbers under a prefix with a Luhn check digit (random,
not sequential, so one card's number does not tell the next), optional random 7-byte NFC UIDs,
optional random PINs, status `not_activated`, every purse at zero, an optional expiry. Each card
gets a static token (docs/token-format.md) signed by the active issuer key (sync/server/keyring.py)
and goes to the change log, so terminals pull the new cards and can activate them.

The export (CSV: number, uid, [pin,] qr) is the only place the clear PINs ever appear: the server
keeps their scrypt hashes. It is written to a private temporary file next to the target before
the transaction commits and moved into place after, so a batch whose export could not be written
does not exist, and an export never names cards that were not made.
"""

from __future__ import annotations

import calendar
import csv
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server import keyring
from sync.server.db import utc_now
from sync.server.ledger import ChangeLog
from sync.server.schema import batches, cards, keys, program_purses, programs, purses
from terminal import tokens
from terminal.card_import import PROGRAM, PURSE
from terminal.errors import BadInput, NotFound, StateError, StoreError
from terminal.luhn import check_digit
from terminal.money import check_currency
from terminal.pin import hash_pin

MAX_BATCH = 100_000
DEFAULT_PREFIX = "600649"
DEFAULT_LENGTH = 16
PIN_DIGITS = 4
_CHUNK = 500
# A batch's numbers are drawn at random; the free digits must leave room for far more numbers
# than the batch needs, or drawing would mostly hit numbers already taken.
_ROOM = 10
_DRAWS = 50
_UID_MAKER = "04"  # NXP's manufacturer byte, first of most 7-byte UIDs


@dataclass(frozen=True)
class Program:
    id: str
    name: str | None
    purses: tuple[tuple[str, str], ...]  # (name, currency) in the cards' order

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name,
                "purses": [{"name": n, "currency": c} for n, c in self.purses]}


def add_program(engine: Engine, program_id: str, purse_names: Sequence[str], currency: str, *,
                name: str | None = None, now: datetime | None = None) -> Program:
    """A new program whose cards get `purse_names` (in this order) in `currency`. A program
    that already exists (made by hand or by a card import) is `program_exists`."""
    if not PROGRAM.match(program_id):
        raise BadInput("bad_program", program=program_id)
    check_currency(currency)
    names = tuple(purse_names)
    if not 1 <= len(names) <= tokens.MAX_PURSES:
        raise BadInput("bad_purse_count", most=tokens.MAX_PURSES)
    for purse in names:
        if not PURSE.match(purse):
            raise BadInput("bad_purse", purse=purse)
    if len(set(names)) != len(names):
        raise BadInput("duplicate_purse_name", program=program_id)
    if name is not None and len(name) > 100:
        raise BadInput("bad_program_name", most=100)
    now = now or utc_now()
    with engine.begin() as conn:
        if conn.execute(sa.select(programs.c.id).where(programs.c.id == program_id)).first():
            raise StateError("program_exists", program=program_id)
        conn.execute(sa.insert(programs).values(id=program_id, name=name, created_at=now))
        conn.execute(sa.insert(program_purses), [
            {"program": program_id, "name": p, "currency": currency, "position": i + 1}
            for i, p in enumerate(names)])
    return Program(program_id, name, tuple((p, currency) for p in names))


def get_program(conn: Connection, program_id: str) -> Program:
    row = conn.execute(sa.select(programs).where(programs.c.id == program_id)).first()
    if row is None:
        raise NotFound("unknown_program", program=program_id)
    wallets = conn.execute(sa.select(program_purses.c.name, program_purses.c.currency)
                           .where(program_purses.c.program == program_id)
                           .order_by(program_purses.c.position)).all()
    return Program(row.id, row.name, tuple((w.name, w.currency) for w in wallets))


@dataclass(frozen=True)
class BatchSpec:
    """What to make. `prefix` leads every number; numbers are `length` digits with the check
    digit. PINs are `PIN_DIGITS` digits."""

    program: str
    count: int
    prefix: str = DEFAULT_PREFIX
    length: int = DEFAULT_LENGTH
    uids: bool = False
    pins: bool = False
    expiry: date | None = None

    def checked(self, today: date) -> BatchSpec:
        if not 1 <= self.count <= MAX_BATCH:
            raise BadInput("bad_batch_count", most=MAX_BATCH)
        if not 8 <= self.length <= 19:
            raise BadInput("bad_number_length", length=self.length)
        if not (self.prefix.isascii() and self.prefix.isdigit()):
            raise BadInput("bad_prefix", prefix=self.prefix)
        free = self.length - len(self.prefix) - 1
        if free < 1 or 10 ** free < self.count * _ROOM:
            raise BadInput("number_space_too_small", prefix=self.prefix, length=self.length,
                           count=self.count)
        if self.expiry is not None and self.expiry <= today:
            raise BadInput("expiry_not_future", expiry=self.expiry.isoformat())
        return self


@dataclass(frozen=True)
class Batch:
    id: int
    program: str
    count: int
    kid: str
    export: Path
    numbers: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.id, "program": self.program, "count": self.count,
                "kid": self.kid, "export": str(self.export)}


def create_batch(engine: Engine, spec: BatchSpec, export: Path, *,
                 secret: bytes | None = None, now: datetime | None = None) -> Batch:
    """Make the batch and write its printer export to `export` (which must not exist yet).
    The active key signs the tokens (`secret`: its passphrase, default the environment's)."""
    now = now or utc_now()
    spec = spec.checked(now.date())
    if export.exists():
        raise BadInput("export_exists", path=str(export))
    with engine.connect() as conn:
        program = get_program(conn, spec.program)
        signer = keyring.active_key(conn, secret)
        conn.rollback()
    if not program.purses:  # made by a card import: it says nothing about new cards' purses
        raise StateError("program_has_no_purses", program=spec.program)
    pins = [_random_pin() for _ in range(spec.count)] if spec.pins else []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        hashes = list(pool.map(hash_pin, pins))  # scrypt releases the GIL
    temp = _private_temp(export)
    try:
        try:
            made = _make(engine, spec, program, signer, pins, hashes, now, temp)
        except sa.exc.IntegrityError:
            # A number or UID drawn here was taken by a concurrent batch or import between
            # the check and the insert (PostgreSQL); the rollback undid everything: draw again.
            made = _make(engine, spec, program, signer, pins, hashes, now, temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        os.link(temp, export)  # never replaces a file that appeared meanwhile
    except OSError as exc:
        raise StoreError("export_not_moved", batch=made[0], path=str(temp), export=str(export),
                         detail=exc.strerror or str(exc)) from exc
    temp.unlink()
    return Batch(made[0], spec.program, spec.count, signer.kid, export, made[1])


def _make(engine: Engine, spec: BatchSpec, program: Program, signer: keyring.SigningKey,
          pins: list[str], hashes: list[str], now: datetime, temp: Path
          ) -> tuple[int, tuple[str, ...]]:
    with engine.begin() as conn:
        # Holding the key row keeps a rotation from retiring the key while its tokens are made.
        status = conn.execute(sa.select(keys.c.status).where(keys.c.kid == signer.kid)
                              .with_for_update()).scalar()
        if status != keyring.ACTIVE:
            raise StateError("active_key_changed", kid=signer.kid)
        numbers = _draw(conn, spec)
        uids: list[str | None] = (_draw_uids(conn, spec.count) if spec.uids
                                  else [None] * spec.count)
        batch_id = int(conn.execute(sa.insert(batches).values(
            program=spec.program, count=spec.count, prefix=spec.prefix, kid=signer.kid,
            created_at=now).returning(batches.c.id)).scalar_one())
        card_rows = [{"number": n, "uid": u, "program": spec.program, "status": "not_activated",
                      "expiry": spec.expiry, "pin_hash": hashes[i] if hashes else None,
                      "created_at": now, "updated_at": now, "batch": batch_id}
                     for i, (n, u) in enumerate(zip(numbers, uids, strict=True))]
        purse_rows = [{"card": n, "name": name, "currency": currency, "position": j + 1,
                       "balance": 0}
                      for n in numbers for j, (name, currency) in enumerate(program.purses)]
        for i in range(0, len(card_rows), _CHUNK):
            conn.execute(sa.insert(cards), card_rows[i:i + _CHUNK])
        for i in range(0, len(purse_rows), _CHUNK):
            conn.execute(sa.insert(purses), purse_rows[i:i + _CHUNK])
        hints = tuple(name for name, _currency in program.purses)
        _write_export(temp, numbers, uids, pins, [
            _token(signer, n, hints, spec.expiry, now) for n in numbers])
        log = ChangeLog()
        for n in numbers:
            log.add("card", n)
        log.flush(conn)
    return batch_id, tuple(numbers)


def _draw(conn: Connection, spec: BatchSpec) -> list[str]:
    """`spec.count` new numbers: random bodies under the prefix plus a Luhn digit, none held by
    a card already."""
    free = spec.length - len(spec.prefix) - 1
    chosen: set[str] = set()
    for _ in range(_DRAWS):
        wanted = spec.count - len(chosen)
        if not wanted:
            break
        fresh: set[str] = set()
        while len(fresh) < wanted:
            body = spec.prefix + f"{secrets.randbelow(10 ** free):0{free}d}"
            number = body + check_digit(body)
            if number not in chosen:
                fresh.add(number)
        chosen |= fresh - _taken(conn, cards.c.number, fresh)
    if len(chosen) < spec.count:
        raise StateError("number_space_exhausted", prefix=spec.prefix)
    return sorted(chosen)


def _draw_uids(conn: Connection, count: int) -> list[str | None]:
    chosen: set[str] = set()
    while len(chosen) < count:
        fresh = {_UID_MAKER + secrets.token_hex(6).upper() for _ in range(count - len(chosen))}
        chosen |= fresh - _taken(conn, cards.c.uid, fresh)
    return list(chosen)


def _taken(conn: Connection, column: sa.Column[Any], values: set[str]) -> set[str]:
    listed = sorted(values)
    found: set[str] = set()
    for i in range(0, len(listed), _CHUNK):
        found.update(conn.execute(sa.select(column).where(column.in_(listed[i:i + _CHUNK])))
                     .scalars())
    return found


def _random_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))


def _token(signer: keyring.SigningKey, number: str, hints: tuple[str, ...],
           expiry: date | None, now: datetime) -> str:
    """The card's static token as QR text; it expires with the card (end of the expiry day,
    UTC), as `cardpos token make` does."""
    expires_at = (calendar.timegm((expiry.year, expiry.month, expiry.day, 23, 59, 59))
                  if expiry is not None else None)
    payload = tokens.TokenPayload(signer.kid, number, hints, int(now.timestamp()), expires_at)
    return tokens.to_qr_text(tokens.sign_token(payload, signer.private_key))


def _private_temp(export: Path) -> Path:
    """An empty file only the owner can read, next to `export` (same file system)."""
    temp = export.with_name(f".{export.name}.{secrets.token_hex(4)}.partial")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise BadInput("cannot_write_file", path=str(export),
                       detail=exc.strerror or str(exc)) from exc
    return temp


def _write_export(temp: Path, numbers: list[str], uids: list[str | None], pins: list[str],
                  qr: list[str]) -> None:
    """The printer's CSV, flushed to disk (the PINs exist nowhere else)."""
    with temp.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["number", "uid", *(["pin"] if pins else []), "qr"])
        for i, number in enumerate(numbers):
            out.writerow([number, uids[i] or "", *([pins[i]] if pins else []), qr[i]])
        handle.flush()
        os.fsync(handle.fileno())
