"""Fixtures of the server tests (registered in tests/conftest.py): the server database on SQLite
and on a real PostgreSQL, terminals T1 and T2, and the API served by uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from sync import protocol
from sync.server import auth, issuer
from sync.server.app import create_app
from sync.server.db import make_engine, migrate
from tests import postgres
from tests.conftest import Clock, Till
from tests.needs import require
from tests.server_support import DATABASES, ROWS, empty, make_till, write_csv
from tests.serving import serve

# -- a live server --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run; `db_url` empties it for each test."""
    require(postgres.reachable(), postgres.WHAT)
    with postgres.temporary_database("cardpos_server") as url:
        migrate(url)
        yield url


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty server database: a SQLite file, then the PostgreSQL one."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        engine = make_engine(url)
        try:
            empty(engine)
        finally:
            engine.dispose()
        return url
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    return url


@pytest.fixture
def t1(till: Till) -> Till:
    """Terminal T1 (the conftest till) with the cards of ROWS."""
    till.import_rows(*ROWS)
    return till


@pytest.fixture
def t2(tmp_path: Path, clock: Clock) -> Iterator[Till]:
    """Terminal T2 with the cards of ROWS, on the same clock."""
    till = make_till(tmp_path / "t2", "T2", clock)
    try:
        yield till
    finally:
        till.store.close()


@dataclass
class Api:
    base: str
    engine: Engine
    client: httpx.Client

    def enrol(self, terminal_id: str, branch: str | None = "north") -> dict[str, str]:
        """Enrol `terminal_id` through the API; the Authorization header it then uses."""
        code = auth.make_enrol_code(self.engine, terminal_id, branch)
        r = self.client.post("/v1/enrol", json={"code": code, "terminal_id": terminal_id})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['credential']}"}

    def pull(self, headers: dict[str, str], cursor: int, limit: int | None = None
             ) -> dict[str, Any]:
        params = {"cursor": cursor} | ({"limit": limit} if limit is not None else {})
        r = self.client.get("/v1/pull", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert protocol.verify_checksum(body)
        protocol.PullResponse.model_validate(body)
        return body


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """uvicorn serving `create_app(db_url)` on a free loopback port, in a thread; the server
    holds the cards of ROWS."""
    engine = make_engine(db_url)
    issuer.import_cards(engine, write_csv(tmp_path / "server-cards.csv", *ROWS))
    app = create_app(db_url)
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            yield Api(base, engine, client)
    finally:
        app.state.engine.dispose()
        engine.dispose()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """Where a test's file gateway writes its text messages."""
    return tmp_path / "messages.jsonl"
