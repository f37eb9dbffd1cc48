"""A real PostgreSQL for tests: the server on 127.0.0.1:5432 (trust auth, user postgres), a
throw-away database per use with a unique name, dropped afterwards.

Override the server with CARDPOS_TEST_PG (a libpq conninfo for the maintenance database, e.g.
"host=127.0.0.1 port=5432 user=postgres dbname=postgres").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

WHAT = "PostgreSQL on 127.0.0.1:5432"
CONNINFO = os.environ.get("CARDPOS_TEST_PG",
                          "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def reachable() -> bool:
    try:
        with psycopg.connect(CONNINFO, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextmanager
def temporary_database(prefix: str = "cardpos_test") -> Iterator[str]:
    """Create an empty database with a unique name; yield its SQLAlchemy URL
    (`postgresql+psycopg://...`); drop it (closing leftover connections) afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(CONNINFO, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = admin.info
        user, host, port = info.user, info.host, info.port
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(CONNINFO, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))
