"""Engines and migrations for the server's database: SQLite (the embedded default) or
PostgreSQL through psycopg 3 (`postgresql+psycopg://user@host/db`).

SQLite gets what the terminal's store has: WAL, `synchronous=FULL`, foreign keys, a busy
timeout, and `BEGIN IMMEDIATE` for every transaction, so writers queue up instead of failing
with "database is locked" half-way through. PostgreSQL runs at READ COMMITTED; what must be
serialized is serialized by row locks (see `ledger`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_MS = 30_000
# Any constant: held (per transaction) while migrating, so several server processes started
# together over one PostgreSQL do not race each other through the same migration.
_MIGRATE_LOCK = 875_000_001

T = TypeVar("T")
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, ping_idle_after: float | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`, set up for this server's transactions (see the module docstring).

    `ping_idle_after` (seconds): a pooled connection that has been idle longer than this is
    pinged (`SELECT 1`) before use, and replaced, with every connection older than it, if the
    database has gone away meanwhile (a restart, a dropped idle connection). A connection in
    steady use is not pinged: SQLAlchemy's `pool_pre_ping` would cost a round trip on every
    checkout, a sixth of an online authorization's (docs/benchmarks-sync.md). A connection that
    turns out dead in use invalidates the pool the same way, and `transaction_retrying` tries
    its transaction again on a new one."""
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    if ping_idle_after is not None:
        _ping_when_idle(engine, ping_idle_after)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """The pool events behind `make_engine(ping_idle_after=...)`; they run in the thread that
    checks the connection in or out."""

    @sa.event.listens_for(engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at <= idle_s:
            return  # fresh from connect, or in steady use
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # The pool replaces this connection and every one older (tried up to 3 times).
            raise sa.exc.InvalidatePoolError(str(exc)) from exc


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would issue a deferred BEGIN).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                   f"busy_timeout={SQLITE_BUSY_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> Config:
    """An Alembic config built in code: no alembic.ini is needed at runtime."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str | Engine, revision: str = "head") -> None:
    """`alembic upgrade head` (or to `revision`) on the database at `url`."""
    engine = make_engine(url) if isinstance(url, str) else url
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
            config = alembic_config(engine.url.render_as_string(hide_password=False))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        if isinstance(url, str):
            engine.dispose()


def head_revision() -> str:
    """The newest migration's revision (what `migrate` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (with `on_conflict_do_nothing` / `_do_update`) for `table`."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def transaction(engine: Engine, job: Callable[[Connection], T]) -> T:
    """Run `job` in one transaction (committed if it returns, rolled back if it raises)."""
    with engine.begin() as conn:
        return job(conn)


RETRIES = 5
_RETRY_SQLSTATES = frozenset(("40001", "40P01"))  # serialization failure, deadlock


def _curable(exc: Exception) -> bool:
    """A failure a second try of the whole transaction can cure. A lost connection is one: the
    pool replaces it (and all older ones) for the next try."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return (exc.connection_invalidated
            or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
            or "database is locked" in str(exc.orig))


def transaction_retrying(engine: Engine, job: Callable[[Connection], T], *, what: str,
                         also: tuple[type[Exception], ...] = (), pause: float = 0.01) -> T:
    """`transaction`, run again (at most RETRIES times, backing off from `pause` seconds) when
    it fails for a reason another try can cure: a deadlock or serialization failure on
    PostgreSQL, a busy SQLite, or one of `also` (the caller's own "start again" signals).
    Each retry is logged with `what`."""
    for attempt in range(RETRIES - 1):
        try:
            with engine.begin() as conn:
                return job(conn)
        except Exception as exc:
            if not (_curable(exc) or isinstance(exc, also)):
                raise
            log.warning("%s retried (attempt %d): %s", what, attempt + 1,
                        type(getattr(exc, "orig", None) or exc).__name__)
        time.sleep(pause * 2 ** attempt)
    with engine.begin() as conn:  # the last try: whatever it raises is the caller's
        return job(conn)
