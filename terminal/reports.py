"""The end-of-shift Z report, computed from the journal — the one source of truth.

Counts and signed sums per operation kind, program and purse; voids; and the offline share (how
much of the shift was approved without the server). Closing a shift writes the report's totals
into the `shift_close` entry itself, so the printed Z is covered by the hash chain.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from terminal import journal
from terminal.errors import NotFound

MONEY_KINDS = ("redeem", "void", "topup", "activate", "buyback", "transfer")


@dataclass(frozen=True)
class Line:
    kind: str
    program: str
    purse: str
    currency: str
    count: int
    amount: int  # signed sum of the purse changes: redemptions are negative


@dataclass(frozen=True)
class ZReport:
    terminal_id: str
    shift_id: str
    cashier: str
    opened_at: str
    closed_at: str | None
    first_seq: int | None
    last_seq: int | None
    lines: tuple[Line, ...]
    voids: int
    money_entries: int
    offline_entries: int
    pin_failures: int

    @property
    def offline_share_pct(self) -> float:
        return round(100 * self.offline_entries / self.money_entries, 1) if self.money_entries \
            else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "lines": [asdict(line) for line in self.lines],
                "offline_share_pct": self.offline_share_pct}


def z_report(conn: sqlite3.Connection, terminal_id: str, shift_id: str | None = None,
             closed_at: str | None = None) -> ZReport:
    """The Z report of `shift_id`, or of the open shift, or else of the last closed one."""
    if shift_id is None:
        row = conn.execute("SELECT id FROM shifts ORDER BY closed_at IS NOT NULL, opened_at DESC"
                           " LIMIT 1").fetchone()
        if row is None:
            raise NotFound("no_shift")
        shift_id = str(row[0])
    shift = conn.execute("SELECT cashier, opened_at, closed_at, first_seq FROM shifts"
                         " WHERE id = ?", (shift_id,)).fetchone()
    if shift is None:
        raise NotFound("no_such_shift", shift_id=shift_id)
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    sums: dict[tuple[str, str, str, str], int] = defaultdict(int)
    voids = money = offline = pin_failures = 0
    seqs: list[int] = []
    for entry in journal.entries(conn, "seq >= ? AND shift = ?", (shift[3], shift_id)):
        seqs.append(entry.seq)
        if entry.kind == "pin_failure":
            pin_failures += 1
        if entry.kind not in MONEY_KINDS:
            continue
        money += 1
        offline += not entry.body["online"]
        voids += entry.kind == "void"
        keys = set()
        for d in entry.deltas:
            key = (entry.kind, d.program, d.purse, d.currency)
            sums[key] += d.amount
            keys.add(key)
        for key in keys or {(entry.kind, "", "", "")}:
            counts[key] += 1
    lines = tuple(Line(*key, counts[key], sums[key]) for key in sorted(counts))
    return ZReport(terminal_id, shift_id, shift[0], shift[1], closed_at or shift[2],
                   seqs[0] if seqs else None, seqs[-1] if seqs else None, lines, voids, money,
                   offline, pin_failures)
