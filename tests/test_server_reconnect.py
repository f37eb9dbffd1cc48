"""The server's engine without SQLAlchemy's pre-ping (sync/server/db.py, `ping_idle_after`): a
pooled PostgreSQL connection that died is replaced, either by the ping before an idle
connection's use or by `transaction_retrying` trying the transaction again. Against the real
PostgreSQL: the connection's backend is terminated as a database restart would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server import holds, issuer, schema
from sync.server.db import make_engine, utc_now
from terminal import journal
from tests.server_support import FUEL, ROWS, empty, write_csv


def _engine(pg_url: str, tmp_path: Path, ping_idle_after: float) -> Engine:
    """One pooled connection, so the next checkout gets the connection just killed."""
    engine = make_engine(pg_url, ping_idle_after=ping_idle_after, pool_size=1, max_overflow=0)
    empty(engine)
    issuer.import_cards(engine, write_csv(tmp_path / "cards.csv", *ROWS))
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.terminals).values(
            id="T1", branch=None, credential_hash=None, revoked=False, last_seq=0,
            last_hash=journal.GENESIS_HASH, enrolled_at=utc_now()))
    return engine


@pytest.fixture
def busy(pg_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose connections count as in steady use for an hour (never pinged)."""
    engine = _engine(pg_url, tmp_path, ping_idle_after=3600)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def idle(pg_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine that pings every connection that was checked in before."""
    engine = _engine(pg_url, tmp_path, ping_idle_after=0)
    try:
        yield engine
    finally:
        engine.dispose()


def _kill_pooled_connection(engine: Engine, pg_url: str) -> None:
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    other = make_engine(pg_url)
    try:
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": pid}).scalar_one()
    finally:
        other.dispose()


def _authorize(engine: Engine, hold_id: str) -> holds.Verdict:
    return holds.authorize(engine, holds.Request("T1", None, hold_id, FUEL, "redeem",
                                                 [("fuel", 1_00, "EUR")]))


def test_an_authorization_on_a_dead_connection_is_retried_on_a_new_one(
        busy: Engine, pg_url: str) -> None:
    assert _authorize(busy, "h1").approved
    _kill_pooled_connection(busy, pg_url)
    assert _authorize(busy, "h2").approved
    with busy.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.holds)).scalar() == 2


def test_a_dead_connection_in_steady_use_fails_its_statement_once(
        busy: Engine, pg_url: str) -> None:
    """What the ping is saved from: outside `transaction_retrying` the first use fails."""
    _kill_pooled_connection(busy, pg_url)
    with pytest.raises(sa.exc.DBAPIError) as failed, busy.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert failed.value.connection_invalidated
    with busy.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_an_idle_connection_is_pinged_and_replaced_before_use(
        idle: Engine, pg_url: str) -> None:
    _kill_pooled_connection(idle, pg_url)
    with idle.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
