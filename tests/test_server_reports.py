"""Reports (sync/server/reports.py) and `cardpos server report ...`, on SQLite and on a real
PostgreSQL: two terminals in two branches push real entries made by the terminal core — one of
them a double spend of the same purse — and every report gives the exact expected numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server import issuer, ledger, reports, schema
from sync.server.db import make_engine
from sync.server.terminals import add_terminal
from tests.conftest import HEADER, START, SUPERVISOR_PIN, Clock
from tests.server_support import (
    FUEL,
    FUEL_UID,
    PLAIN_UID,
    ROWS,
    SLEEPER_UID,
    make_till,
    pending,
    run_cli,
)

IMPORTED = START - timedelta(days=1)
DAY2 = START + timedelta(days=1)


@pytest.fixture
def scenario(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[tuple[Engine, dict[str, str]]]:
    """Day 1 (2026-06-01), T1 in branch north: FUEL fuel -40.00, PLAIN +5.00 top-up, SLEEPER
    activated with 10.00, PLAIN -3.00 redeemed and voided. Day 2, T2 in branch south, offline
    with the old balance: FUEL fuel -30.00 — a double spend, 20.00 below zero. The PLAIN
    top-up is marked as authorized online (the terminal core writes only offline entries)."""
    engine = make_engine(db_url)
    csv = tmp_path / "cards.csv"
    csv.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    issuer.import_cards(engine, csv, now=IMPORTED)
    add_terminal(engine, "T1", branch="north")
    add_terminal(engine, "T2", branch="south")
    t1, t2 = make_till(tmp_path / "t1", "T1", clock), make_till(tmp_path / "t2", "T2", clock)
    try:
        assert t1.terminal.redeem(FUEL_UID, 40_00, purse="fuel").approved
        topup = t1.terminal.topup(PLAIN_UID, 5_00)
        assert topup.decision.approved and topup.entry is not None
        assert t1.terminal.activate(SLEEPER_UID, amount=10_00).approved
        small = t1.terminal.redeem(PLAIN_UID, 3_00)
        assert small.decision.approved and small.entry is not None
        assert t1.terminal.void(small.entry.id, supervisor_pin=SUPERVISOR_PIN).decision.approved
        clock.advance(days=1)
        assert t2.terminal.redeem(FUEL_UID, 30_00, purse="fuel").approved
        assert ledger.apply_push(engine, "T1", pending(t1)).ok
        pushed = ledger.apply_push(engine, "T2", pending(t2))
        assert pushed.ok and [o.amount for o in pushed.overspends] == [20_00]
        with engine.begin() as conn:
            conn.execute(sa.update(schema.entries).where(schema.entries.c.id == topup.entry.id)
                         .values(online=True))
        ids = {"double_spend": pending(t2)[-1]["id"]}
        yield engine, ids
    finally:
        t1.store.close()
        t2.store.close()
        engine.dispose()


# -- liability ------------------------------------------------------------------------------

def test_liability_now_and_as_of(scenario: tuple[Engine, dict[str, str]]) -> None:
    engine, _ = scenario
    now = reports.liability(engine).as_json()
    assert now["lines"] == [
        {"program": "fuel", "purse": "fuel", "currency": "EUR", "cards": 0, "outstanding": 0,
         "overspent_cards": 1, "overspent": -20_00, "net": -20_00},
        {"program": "fuel", "purse": "general", "currency": "EUR", "cards": 1,
         "outstanding": 20_00, "overspent_cards": 0, "overspent": 0, "net": 20_00},
        {"program": "shopping", "purse": "general", "currency": "EUR", "cards": 2,
         "outstanding": 45_00, "overspent_cards": 0, "overspent": 0, "net": 45_00},
    ]
    assert now["negative"] == [{"card": FUEL, "program": "fuel", "purse": "fuel",
                                "currency": "EUR", "balance": -20_00, "denylisted": True}]
    assert now["totals"] == {"EUR": {"outstanding": 65_00, "overspent": -20_00, "net": 45_00}}
    assert now["as_of"] is None
    # Between T1's day and T2's: the double spend has not happened yet.
    before = reports.liability(engine, START + timedelta(hours=12))
    assert [(x.program, x.purse, x.cards, x.outstanding) for x in before.lines] == [
        ("fuel", "fuel", 1, 10_00), ("fuel", "general", 1, 20_00),
        ("shopping", "general", 2, 45_00)]
    assert before.negative == ()
    # Before any terminal worked: the opening balances of the import only.
    opening = reports.liability(engine, START - timedelta(hours=1))
    assert [(x.purse, x.cards, x.outstanding) for x in opening.lines] == [
        ("fuel", 1, 50_00), ("general", 1, 20_00), ("general", 1, 30_00)]
    assert reports.liability(engine, IMPORTED - timedelta(seconds=1)).lines == ()
    # The report agrees with the cached balances.
    with engine.connect() as conn:
        assert ledger.check_balances(conn) == []


# -- exceptions -----------------------------------------------------------------------------

def test_exceptions_list_the_double_spend(scenario: tuple[Engine, dict[str, str]]) -> None:
    engine, ids = scenario
    report = reports.exceptions(engine).as_json()
    [case] = report["cases"]
    assert {k: v for k, v in case.items() if k not in ("id", "posted_at")} == {
        "card": FUEL, "program": "fuel", "purse": "fuel", "amount": 20_00, "currency": "EUR",
        "entry": ids["double_spend"], "terminal": "T2", "branch": "south",
        "terminals": ["T1", "T2"], "at": DAY2.isoformat(), "resolved_at": None,
        "denylisted": True, "denylist_reason": "overspend"}
    assert report["totals"] == {"EUR": {"cases": 1, "amount": 20_00, "open": 1,
                                        "open_amount": 20_00}}


# -- activity -------------------------------------------------------------------------------

def _lines(activity: reports.Activity) -> list[tuple[str, str, int, int, dict[str, int]]]:
    return [(x.group, x.kind, x.count, x.offline, x.amounts) for x in activity.lines]


T1_LINES = [("redeem", 2, 2, {"EUR": -43_00}), ("void", 1, 1, {"EUR": 3_00}),
            ("topup", 1, 0, {"EUR": 5_00}), ("activate", 1, 1, {"EUR": 10_00})]


def test_activity_by_branch_terminal_program_day(scenario: tuple[Engine, dict[str, str]]
                                                 ) -> None:
    engine, _ = scenario
    by_branch = reports.activity(engine, "branch")
    assert _lines(by_branch) == [("north", *x) for x in T1_LINES] + [
        ("south", "redeem", 1, 1, {"EUR": -30_00})]
    assert [(g.group, g.count, g.offline, g.offline_share, g.amounts)
            for g in by_branch.groups()] == [("north", 5, 4, 0.8, {"EUR": -25_00}),
                                             ("south", 1, 1, 1.0, {"EUR": -30_00})]
    assert _lines(reports.activity(engine, "terminal")) == [("T1", *x) for x in T1_LINES] + [
        ("T2", "redeem", 1, 1, {"EUR": -30_00})]
    assert _lines(reports.activity(engine, "program")) == [
        ("fuel", "redeem", 2, 2, {"EUR": -70_00}),
        ("shopping", "redeem", 1, 1, {"EUR": -3_00}), ("shopping", "void", 1, 1, {"EUR": 3_00}),
        ("shopping", "topup", 1, 0, {"EUR": 5_00}),
        ("shopping", "activate", 1, 1, {"EUR": 10_00})]
    assert _lines(reports.activity(engine, "day")) == [("2026-06-01", *x) for x in T1_LINES] + [
        ("2026-06-02", "redeem", 1, 1, {"EUR": -30_00})]
    # A window: [since, until) on the entries' times.
    assert _lines(reports.activity(engine, "terminal", since=DAY2)) == [
        ("T2", "redeem", 1, 1, {"EUR": -30_00})]
    assert _lines(reports.activity(engine, "terminal", until=DAY2)) == [
        ("T1", *x) for x in T1_LINES]
    assert reports.activity(engine, "day", since=DAY2 + timedelta(seconds=1)).lines == ()
    with pytest.raises(ValueError):
        reports.activity(engine, "cashier")


# -- CLI ------------------------------------------------------------------------------------

def test_report_commands_text_and_json(scenario: tuple[Engine, dict[str, str]], db_url: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--db", db_url)
    assert run_cli("server", "report", "liability", *db) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines()]
    assert ["fuel", "fuel", "0", "0.00", "EUR", "1", "-20.00", "EUR", "-20.00", "EUR"] in rows
    assert ["shopping", "general", "2", "45.00", "EUR", "0", "0.00", "EUR", "45.00", "EUR"] \
        in rows
    assert "Total EUR: outstanding 65.00 EUR, overspent -20.00 EUR, net 45.00 EUR" in text
    assert ["*******8713", "fuel", "fuel", "-20.00", "EUR", "yes"] in rows and FUEL not in text
    assert run_cli("server", "report", "liability", *db, "--as-of", "2026-06-01T12:30",
                   "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["as_of"] == "2026-06-01T12:30:00+00:00" and data["negative"] == []
    assert data["totals"]["EUR"]["outstanding"] == 75_00

    assert run_cli("server", "report", "exceptions", *db) == 0
    text = capsys.readouterr().out
    assert FUEL not in text and "*******8713" in text
    row = next(line for line in text.splitlines() if "8713" in line).split()
    assert row[1:] == ["*******8713", "fuel", "20.00", "EUR", "2026-06-02", "12:00", "T2",
                       "T1,", "T2", "overspend", "open"]
    assert "Total EUR: 1 cases, 20.00 EUR; open 1, 20.00 EUR" in text
    assert run_cli("server", "report", "exceptions", *db, "--json") == 0
    [case] = json.loads(capsys.readouterr().out)["cases"]
    assert (case["card"], case["amount"], case["terminals"]) == (FUEL, 20_00, ["T1", "T2"])

    assert run_cli("server", "report", "activity", *db) == 0  # --by branch
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Activity by branch"
    assert printed[2].split() == ["branch", "kind", "count", "amount", "offline", "offline",
                               "share"]
    assert [line.split() for line in printed[4:]] == [
        ["north", "redeem", "2", "-43.00", "EUR", "2", "100%"],
        ["north", "void", "1", "3.00", "EUR", "1", "100%"],
        ["north", "topup", "1", "5.00", "EUR", "0", "0%"],
        ["north", "activate", "1", "10.00", "EUR", "1", "100%"],
        ["north", "all", "5", "-25.00", "EUR", "4", "80%"],
        ["south", "redeem", "1", "-30.00", "EUR", "1", "100%"],
        ["south", "all", "1", "-30.00", "EUR", "1", "100%"]]
    assert run_cli("server", "report", "activity", *db, "--by", "day", "--since", "2026-06-02",
                   "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["since"] == "2026-06-02T00:00:00+00:00" and data["until"] is None
    assert data["lines"] == [{"group": "2026-06-02", "kind": "redeem", "count": 1,
                              "offline": 1, "offline_share": 1.0, "amounts": {"EUR": -30_00}}]
    assert run_cli("server", "report", "activity", *db, "--until", "2026-01-01") == 0
    assert "No activity." in capsys.readouterr().out


def test_reports_on_an_empty_database(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--db", db_url)
    assert run_cli("server", "report", "liability", *db) == 0
    assert "No balances." in capsys.readouterr().out
    assert run_cli("server", "report", "exceptions", *db) == 0
    assert "No exceptions." in capsys.readouterr().out
    assert run_cli("server", "report", "activity", *db, "--by", "program", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"by": "program", "since": None,
                                                   "until": None, "lines": [], "groups": []}
