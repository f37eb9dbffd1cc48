"""Holds of online authorizations: placed by `authorize`, settled when the entry arrives.

While a terminal is online it asks the server before it debits a card (POST /v1/authorize). The
server locks the card's purses, checks the card as the terminal's rules would, and holds the
amount: a purse's *available* balance is its ledger balance less its open holds (unsettled and
not yet expired). The terminal then commits its journal entry with `online: true` and the hold's
id in `data.hold`; when the entry is pushed, `settle` closes the hold in the same transaction
that posts the entry to the ledger, so the amount is never counted twice. A hold whose entry
never comes (the terminal crashed before its commit, or the cashier's code check failed after
the server said yes) stops counting at `expires_at`.

The hold id is made by the terminal, so a retried request (a lost answer) finds the hold it
already placed and gets the same answer instead of holding twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.server.schema import holds


def settle(conn: Connection, settled: Sequence[tuple[str, str]], now: datetime) -> int:
    """Close the holds named by applied entries: `settled` is (hold id, entry id) pairs. A hold
    that does not exist, or is settled already, is left alone (the entry is a fact anyway).
    Returns how many hold rows (one per purse) were settled."""
    done = 0
    for hold_id, entry_id in settled:
        done += conn.execute(
            sa.update(holds).where(holds.c.id == hold_id, holds.c.settled_at.is_(None))
            .values(settled_at=now, entry_id=entry_id)).rowcount
    return done
