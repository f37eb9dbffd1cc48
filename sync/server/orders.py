"""Bulk company orders: activate hundreds of cards at once from a CSV, one line at a time.

File: a header with `number` and `amount` (and optionally `purse`), then one line per card;
the amount is in major units of the purse's currency ("25.00"), the purse defaults to the card's
first one. Each line is applied in its own transaction (`issuer.activate_in` plus the line's
result row), so one bad line never undoes the good ones, and a crash loses at most the line in
flight — which, not having committed, is not recorded as done either.

An order has an id chosen by the operator. Running it again (after a crash, or with its bad
lines fixed) skips every card this order already activated — the key is (order id, card) — and
retries the rest. The results of the last run of each line are kept in `order_lines`: an
"activated" row is final; "error" rows are replaced by the next run.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server import issuer
from sync.server.db import insert, utc_now
from sync.server.ledger import ChangeLog
from sync.server.schema import order_lines, orders, purses
from terminal.errors import BadInput, CardposError, NotFound
from terminal.limits import Limits
from terminal.luhn import normalize_card_number
from terminal.money import parse_major

ORDER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COLUMNS = ("number", "amount", "purse")
ACTIVATED, ALREADY, ERROR = "activated", "already_activated", "error"
_DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class LineResult:
    """One line's outcome: `activated` now, `already_activated` by an earlier run of this
    order, or `error` with a message code and its parameters."""

    line: int
    number: str
    result: str
    purse: str | None = None
    currency: str | None = None
    amount: int | None = None
    balance: int | None = None
    code: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "number": self.number, "result": self.result,
                "purse": self.purse, "currency": self.currency, "amount": self.amount,
                "balance": self.balance, "code": self.code,
                "params": {k: str(v) for k, v in self.params.items()}}


@dataclass(frozen=True)
class OrderReport:
    order_id: str
    lines: tuple[LineResult, ...]

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for r in self.lines if r.result == kind)
                for kind in (ACTIVATED, ALREADY, ERROR)}

    @property
    def ok(self) -> bool:
        return not any(r.result == ERROR for r in self.lines)

    def as_json(self) -> dict[str, Any]:
        return {"order": self.order_id, "ok": self.ok, **self.counts(),
                "lines": [r.as_json() for r in self.lines]}


def apply_order(engine: Engine, order_id: str, path: Path, *, limits: Limits = _DEFAULT_LIMITS,
                now: datetime | None = None) -> OrderReport:
    """Apply (or re-apply) the order's file. BadInput for a bad order id or an unreadable file
    or header; everything wrong with a line is that line's result."""
    if not ORDER_ID.match(order_id):
        raise BadInput("bad_order_id", order=order_id)
    rows = list(_read(path))  # a bad header is refused before anything is written
    now = now or utc_now()
    with engine.begin() as conn:
        conn.execute(insert(conn, orders).values(id=order_id, created_at=now, updated_at=now)
                     .on_conflict_do_update(index_elements=["id"], set_={"updated_at": now}))
        # Last run's errors are retried; if a line still fails it is recorded again.
        conn.execute(sa.delete(order_lines).where(order_lines.c.order_id == order_id,
                                                  order_lines.c.result == ERROR))
    seen: set[str] = set()
    results = []
    for line, row in rows:
        results.append(_apply_line(engine, order_id, line, row, seen, limits, now))
    return OrderReport(order_id, tuple(results))


def _read(path: Path) -> Iterator[tuple[int, dict[str, str] | None]]:
    """(line number, fields) of each non-blank line; fields None when the line has the wrong
    number of columns."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput("cannot_read_file", path=str(path),
                       detail=exc.strerror or str(exc)) from exc
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [h.strip() for h in next(reader, [])]
            if (len(set(header)) != len(header) or not {"number", "amount"} <= set(header)
                    or not set(header) <= set(COLUMNS)):
                raise BadInput("bad_order_header", expected=",".join(COLUMNS),
                               found=",".join(header))
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    yield reader.line_num, None
                else:
                    yield reader.line_num, dict(zip(header, (c.strip() for c in cells),
                                                    strict=True))
        except csv.Error as exc:
            raise BadInput("unreadable_order", path=str(path), detail=str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise BadInput("unreadable_order", path=str(path), detail=str(exc)) from exc


def _apply_line(engine: Engine, order_id: str, line: int, row: dict[str, str] | None,
                seen: set[str], limits: Limits, now: datetime) -> LineResult:
    raw = row["number"] if row is not None else ""
    if row is None:
        return _failed(engine, order_id, line, f"#{line}", raw, None,
                       BadInput("wrong_column_count", expected=len(COLUMNS)), now)
    try:
        number = normalize_card_number(raw)
    except BadInput as err:
        return _failed(engine, order_id, line, f"#{line}", raw, None, err, now)
    if number in seen:  # its first line holds the result row; this one is only reported
        return LineResult(line, number, ERROR, code="duplicate_order_card",
                          params={"number": number})
    seen.add(number)
    purse = row.get("purse") or None
    try:
        with engine.begin() as conn:
            done = _applied(conn, order_id, number)
            if done is not None:
                return _already(line, done)
            log = ChangeLog()
            moved = issuer.activate_in(conn, number, _amount(conn, number, purse, row["amount"]),
                                       purse, limits, now, log)
            values = {"line": line, "purse": moved.purse, "amount": moved.amount,
                      "currency": moved.currency, "result": ACTIVATED, "code": None,
                      "detail": None, "applied_at": now}
            stmt = insert(conn, order_lines).values(order_id=order_id, card=number, **values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["order_id", "card"], set_=values,
                where=order_lines.c.result == ERROR))
            log.flush(conn)
    except CardposError as err:
        return _failed(engine, order_id, line, number, number, purse, err, now)
    return LineResult(line, number, ACTIVATED, moved.purse, moved.currency, moved.amount,
                      moved.balance)


def _amount(conn: Connection, number: str, purse: str | None, text: str) -> int:
    """The line's amount in minor units of the currency of the purse it goes to."""
    query = sa.select(purses.c.name, purses.c.currency).where(purses.c.card == number)
    rows = conn.execute(query.order_by(purses.c.position)).all()
    target = next((r for r in rows if purse is None or r.name == purse), None)
    if target is None:
        if not rows:
            raise NotFound("unknown_card", number=number)
        raise NotFound("unknown_purse", card=number, purse=purse or "")
    if not text:
        raise BadInput("bad_amount", amount=text, currency=target.currency)
    return parse_major(text, target.currency)


def _applied(conn: Connection, order_id: str, number: str) -> Any:
    """This order's "activated" row for the card, if an earlier run made one."""
    return conn.execute(sa.select(order_lines)
                        .where(order_lines.c.order_id == order_id, order_lines.c.card == number,
                               order_lines.c.result == ACTIVATED)).first()


def _already(line: int, done: Any) -> LineResult:
    return LineResult(line, done.card, ALREADY, done.purse, done.currency, done.amount)


def _failed(engine: Engine, order_id: str, line: int, key: str, number: str,
            purse: str | None, err: CardposError, now: datetime) -> LineResult:
    """Record the line's error — unless a concurrent run of the same order activated the card
    meanwhile, which is then what the line reports."""
    values = {"line": line, "purse": purse, "amount": None, "currency": None, "result": ERROR,
              "code": err.code, "detail": json.dumps({k: str(v) for k, v in err.params.items()}),
              "applied_at": now}
    with engine.begin() as conn:
        stmt = insert(conn, order_lines).values(order_id=order_id, card=key[:19], **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["order_id", "card"], set_=values,
                                                where=order_lines.c.result == ERROR))
        done = _applied(conn, order_id, key)
    if done is not None:
        return _already(line, done)
    return LineResult(line, number, ERROR, purse=purse, code=err.code, params=dict(err.params))

