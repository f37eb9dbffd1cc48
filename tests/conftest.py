"""Shared fixtures: a store with a controllable clock, and a few cards made to order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terminal import admin
from terminal.limits import Limits
from terminal.model import Role
from terminal.services import Shifts, Terminal
from terminal.store.db import Store

# The server tests' fixtures (database, terminals T1/T2, the API under uvicorn).
pytest_plugins = ("tests.server_fixtures", "tests.ui_fixtures")

# The Qt tests render offscreen (no display in CI); set before PySide6 is first imported.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEADER = "number,uid,program,purse,balance,currency,expiry,status,pin"
CASHIER_PIN = "1111"
SUPERVISOR_PIN = "9999"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Till:
    """A terminal with a store, a clock, an open shift (cashier alice, supervisor sam)."""

    store: Store
    clock: Clock
    terminal: Terminal
    shifts: Shifts
    path: Path

    def import_rows(self, *rows: str) -> None:
        csv = self.path / f"cards-{len(list(self.path.glob('cards-*.csv')))}.csv"
        csv.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
        admin.import_card_file(self.store, csv)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s = admin.init_store(tmp_path / "data", "T1", Limits(), clock())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def till(store: Store, clock: Clock, tmp_path: Path) -> Till:
    admin.new_cashier(store, "alice", "Alice", Role.CASHIER, CASHIER_PIN)
    admin.new_cashier(store, "sam", "Sam", Role.SUPERVISOR, SUPERVISOR_PIN)
    shifts = Shifts(store, clock)
    decision, _ = shifts.open("alice", CASHIER_PIN)
    assert decision.approved
    return Till(store, clock, Terminal(store, clock), shifts, tmp_path)
