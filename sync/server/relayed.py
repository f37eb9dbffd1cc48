"""The upstream side of a branch relay: terminals whose entries arrive through a relay.

A relay (a terminal row of role "relay", enrolled with `cardpos server enrol-code --relay`)
pushes its branch's terminals' entries with POST /v1/relay/push, naming the terminal. The first
push for a terminal registers it here — under the relay's branch, without a credential of its
own, with `relay` = the relay's id — and from then on only that relay may push for it. A
terminal enrolled directly, a relay, or one served by another relay is refused (409): two paths
into one chain would make it unclear who is responsible for sending what.

Exactly-once stays the ledger's business (`apply_push` and entry ids): the relay resends
whatever it is not sure upstream applied. Runs on the request's worker thread.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.auth import RELAY, TERMINAL, AuthError, Identity
from sync.server.db import insert, utc_now
from sync.server.schema import terminals
from terminal.admin import TERMINAL_ID
from terminal.errors import BadInput, StateError
from terminal.journal import GENESIS_HASH


def register(engine: Engine, relay: Identity, terminal_id: str) -> None:
    """Make sure `terminal_id` is a terminal served through `relay` (registering it on first
    use). AuthError 403 if `relay` is not a relay; BadInput for a malformed id; StateError
    (409) if the terminal is a relay, enrolled directly, or served by another relay."""
    if relay.role != RELAY:
        raise AuthError(403, "not_a_relay", "Only a relay's credential may push for others.")
    if not TERMINAL_ID.match(terminal_id):
        raise BadInput("bad_terminal_id", terminal_id=terminal_id)
    query = sa.select(terminals.c.role, terminals.c.relay).where(terminals.c.id == terminal_id)
    with engine.connect() as conn:  # every push but the first: one read
        row = conn.execute(query).first()
    if row is None:
        with engine.begin() as conn:
            # A concurrent first push for the same terminal inserts nothing here; both then
            # read the one row.
            conn.execute(insert(conn, terminals).values(
                id=terminal_id, branch=relay.branch, credential_hash=None, revoked=False,
                last_seq=0, last_hash=GENESIS_HASH, enrolled_at=utc_now(), role=TERMINAL,
                relay=relay.terminal_id).on_conflict_do_nothing(index_elements=["id"]))
            row = conn.execute(query).one()
    if row.role != TERMINAL or row.relay is None:
        raise StateError("terminal_not_relayed", terminal=terminal_id)
    if row.relay != relay.terminal_id:
        raise StateError("terminal_of_another_relay", terminal=terminal_id)
