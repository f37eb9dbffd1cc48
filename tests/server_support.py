"""What the server tests share: the cards both sides hold, terminals that make real journals,
an emptied server database, and the `cardpos` CLI run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cardpos import cli
from sync.server import schema
from terminal import admin, journal
from terminal.credentials import NfcUid
from terminal.limits import Limits
from terminal.model import Role
from terminal.services import Shifts, Terminal
from tests.conftest import CASHIER_PIN, HEADER, SUPERVISOR_PIN, Clock, Till

FUEL = "79927398713"         # fuel 50.00 + general 20.00, UID 04A1B2C3
PLAIN = "6011000990139424"   # general 30.00, UID 04A1B2C7
SLEEPER = "5555555555554444"  # not activated, general 0.00, UID 04A1B2C6
ROWS = (
    f"{FUEL},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,",
    f"{FUEL},04A1B2C3,fuel,general,20.00,EUR,2027-12-31,active,",
    f"{PLAIN},04A1B2C7,shopping,general,30.00,EUR,2027-12-31,active,",
    f"{SLEEPER},04A1B2C6,shopping,general,0.00,EUR,2027-12-31,not_activated,",
)
FUEL_UID, PLAIN_UID, SLEEPER_UID = NfcUid("04A1B2C3"), NfcUid("04A1B2C7"), NfcUid("04A1B2C6")
DATABASES = ("sqlite", "postgresql")


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def empty(engine: Engine) -> None:
    """Delete every row of the server schema (counters back to 0), keeping the tables."""
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            if table is schema.counters:
                conn.execute(sa.update(table).values(value=0))
            else:
                conn.execute(sa.delete(table))


def make_till(path: Path, terminal_id: str, clock: Clock) -> Till:
    """A terminal in `path` with the cards of ROWS, cashier alice on shift, supervisor sam."""
    path.mkdir(exist_ok=True)
    store = admin.init_store(path / "data", terminal_id, Limits(), clock())
    admin.new_cashier(store, "alice", "Alice", Role.CASHIER, CASHIER_PIN)
    admin.new_cashier(store, "sam", "Sam", Role.SUPERVISOR, SUPERVISOR_PIN)
    shifts = Shifts(store, clock)
    assert shifts.open("alice", CASHIER_PIN)[0].approved
    till = Till(store, clock, Terminal(store, clock), shifts, path)
    till.import_rows(*ROWS)
    return till


def pending(till: Till) -> list[dict[str, Any]]:
    """The terminal's journal in the export form a push sends (members plus hash)."""
    return till.store.read(lambda c: [e.as_json() for e in journal.entries(c)])


def run_cli(*argv: str) -> int:
    """`cardpos ARGV` in-process, in English."""
    return cli.main(["--lang", "en", *argv])


def sent_messages(path: Path) -> list[dict[str, Any]]:
    """The messages a file gateway (sync/server/gateway.py) has written to `path`, oldest
    first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
