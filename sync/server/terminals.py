"""Terminals known to the server. Enrolment with one-time codes and credentials comes with the
HTTP API; this is the data-layer part: a row whose chain head starts at the genesis hash."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.db import utc_now
from sync.server.schema import terminals
from terminal.admin import TERMINAL_ID
from terminal.errors import BadInput, NotFound, StateError
from terminal.journal import GENESIS_HASH


def add_terminal(engine: Engine, terminal_id: str, *, branch: str | None = None,
                 credential_hash: str | None = None, now: datetime | None = None) -> None:
    if not TERMINAL_ID.match(terminal_id):
        raise BadInput("bad_terminal_id", terminal_id=terminal_id)
    with engine.begin() as conn:
        if conn.execute(sa.select(terminals.c.id).where(terminals.c.id == terminal_id)).first():
            raise StateError("terminal_exists", terminal=terminal_id)
        conn.execute(sa.insert(terminals).values(
            id=terminal_id, branch=branch, credential_hash=credential_hash, revoked=False,
            last_seq=0, last_hash=GENESIS_HASH, enrolled_at=now or utc_now()))


def revoke_terminal(engine: Engine, terminal_id: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(sa.update(terminals).where(terminals.c.id == terminal_id)
                            .values(revoked=True))
        if done.rowcount == 0:
            raise NotFound("unknown_terminal", terminal=terminal_id)


def list_terminals(engine: Engine) -> list[dict[str, object]]:
    """Every terminal (and relay) the server knows: id, branch, revoked, chain head, when it
    enrolled and last pushed — what an administrator checks before revoking one."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(
            terminals.c.id, terminals.c.branch, terminals.c.revoked, terminals.c.last_seq,
            terminals.c.enrolled_at, terminals.c.last_push_at).order_by(terminals.c.id))
        return [dict(row._mapping) for row in rows]
