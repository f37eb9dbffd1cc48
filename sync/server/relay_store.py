"""What a branch relay keeps in its own database (tables of migration 0007; docs/relay.md):
its enrolment upstream, what upstream acknowledged of each local terminal, and the entries
still to forward.

Plain functions over the engine, each one short transaction; called by the link thread
(sync/server/relay.py), by `cardpos server relay ...` and by the relay's /v1/authorize.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server.db import insert, utc_now
from sync.server.schema import entries, holds, relay_acks, relay_upstream, terminals
from terminal.errors import BadInput, StateError

ROW = "upstream"  # the one row of relay_upstream
MAX_URL = 200
MAX_ERROR = 200


@dataclass(frozen=True)
class Upstream:
    """Where this relay syncs to and as whom."""

    url: str
    terminal: str
    branch: str | None
    credential: str
    cursor: int
    last_round_at: datetime | None = None
    last_error: str | None = None


def check_url(url: str) -> str:
    """`url` without a trailing slash if it is an http(s) URL with a host, else BadInput."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL:
        raise BadInput("bad_upstream_url", url=url)
    return url.rstrip("/")


def save_enrolment(engine: Engine, url: str, terminal: str, branch: str | None,
                   credential: str) -> None:
    """Record (or replace) the relay's enrolment upstream. Enrolled again as the same
    terminal, the relay keeps its pull cursor; as another, it pulls a fresh snapshot."""
    now = utc_now()
    with engine.begin() as conn:
        held = conn.execute(sa.select(relay_upstream.c.terminal, relay_upstream.c.cursor)
                            .where(relay_upstream.c.name == ROW)).first()
        cursor = int(held.cursor) if held is not None and held.terminal == terminal else 0
        values = {"url": check_url(url), "terminal": terminal, "branch": branch,
                  "credential": credential, "cursor": cursor, "enrolled_at": now,
                  "last_error": None}
        conn.execute(insert(conn, relay_upstream).values(name=ROW, **values)
                     .on_conflict_do_update(index_elements=["name"], set_=values))


def load(engine: Engine) -> Upstream:
    """The relay's enrolment; StateError `relay_not_enrolled` when it has none."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(relay_upstream).where(relay_upstream.c.name == ROW)).first()
    if row is None:
        raise StateError("relay_not_enrolled")
    return Upstream(row.url, row.terminal, row.branch, row.credential, int(row.cursor),
                    _aware(row.last_round_at), row.last_error)


def set_url(engine: Engine, url: str) -> None:
    """Point the enrolled relay at `url` (`cardpos server run --upstream URL`)."""
    with engine.begin() as conn:
        done = conn.execute(sa.update(relay_upstream).where(relay_upstream.c.name == ROW)
                            .values(url=check_url(url)))
    if done.rowcount == 0:
        raise StateError("relay_not_enrolled")


def set_cursor(conn: Connection, cursor: int) -> None:
    """Inside the transaction that applied the page the cursor comes from."""
    conn.execute(sa.update(relay_upstream).where(relay_upstream.c.name == ROW)
                 .values(cursor=cursor))


def record_round(engine: Engine, error: str | None) -> None:
    """The outcome of a link round: None when it worked, else why not."""
    values: dict[str, Any] = {"last_error": error[:MAX_ERROR] if error else None}
    if error is None:
        values["last_round_at"] = utc_now()
    with engine.begin() as conn:
        conn.execute(sa.update(relay_upstream).where(relay_upstream.c.name == ROW)
                     .values(**values))


# -- forwarding ---------------------------------------------------------------------------------

# A terminal's acknowledged seq upstream (0 before its first forward), in a query that
# outer-joins relay_acks on the terminal.
ACKED = sa.func.coalesce(relay_acks.c.acked_seq, 0)


def backlog(engine: Engine) -> list[tuple[str, int]]:
    """(terminal, acknowledged seq) of every local terminal with entries upstream lacks."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(terminals.c.id, ACKED.label("acked"))
            .select_from(terminals.outerjoin(relay_acks, relay_acks.c.terminal == terminals.c.id))
            .where(terminals.c.last_seq > ACKED).order_by(terminals.c.id))
        return [(str(r.id), int(r.acked)) for r in rows]


def outbox(engine: Engine, terminal: str, after: int, limit: int) -> list[dict[str, Any]]:
    """The terminal's next `limit` applied entries after seq `after`, in the export form a
    push sends (the stored canonical body plus its hash)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(entries.c.body, entries.c.hash)
                            .where(entries.c.terminal == terminal, entries.c.seq > after)
                            .order_by(entries.c.seq).limit(limit))
        return [{**json.loads(r.body), "hash": r.hash} for r in rows]


def record_ack(engine: Engine, terminal: str, last_seq: int, rejected: str | None) -> None:
    """Upstream holds `terminal`'s chain up to `last_seq` (it is the authority: after a restore
    it may hold less than it once said, and the relay sends those entries again)."""
    values = {"acked_seq": last_seq, "acked_at": utc_now(),
              "rejected": rejected[:MAX_ERROR] if rejected else None}
    with engine.begin() as conn:
        conn.execute(insert(conn, relay_acks).values(terminal=terminal, **values)
                     .on_conflict_do_update(index_elements=["terminal"], set_=values))


@dataclass(frozen=True)
class TerminalLag:
    """A local terminal's forwarding state, for `cardpos server relay status`."""

    terminal: str
    last_seq: int
    acked_seq: int
    rejected: str | None

    def as_json(self) -> dict[str, Any]:
        return {"terminal": self.terminal, "last_seq": self.last_seq,
                "acked_seq": self.acked_seq, "pending": self.last_seq - self.acked_seq,
                "rejected": self.rejected}


def lags(engine: Engine) -> list[TerminalLag]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(terminals.c.id, terminals.c.last_seq, ACKED.label("acked"),
                      relay_acks.c.rejected)
            .select_from(terminals.outerjoin(relay_acks, relay_acks.c.terminal == terminals.c.id))
            .order_by(terminals.c.id))
        return [TerminalLag(str(r.id), int(r.last_seq), int(r.acked), r.rejected) for r in rows]


# -- holds --------------------------------------------------------------------------------------

def release_hold(engine: Engine, hold_id: str) -> int:
    """Drop a local hold upstream said no to (unless an entry settled it meanwhile): the money
    is available to the branch again. Returns how many purse rows were released."""
    with engine.begin() as conn:
        return int(conn.execute(sa.delete(holds).where(holds.c.id == hold_id,
                                                       holds.c.settled_at.is_(None))).rowcount)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC wall times."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
