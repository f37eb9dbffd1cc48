"""Wiring online authorization into one-shot commands (`cardpos redeem|buyback|transfer`).

An enrolled terminal asks its server before each debit (terminal/online.py); these helpers build
the authorizer from what `cardpos enrol` stored and push the entry right after an online
approval, so the server settles the hold at once. The app does the same with its sync thread.
"""

from __future__ import annotations

import logging

from sync.client import OnlineAuthorizer, SyncClient, push_all
from terminal.errors import CardposError
from terminal.services import utc_now
from terminal.store import queries
from terminal.store.db import Store

log = logging.getLogger(__name__)

#: Longer than this and the cashier is better served by the offline rules.
AUTHORIZE_TIMEOUT = 2.0


def authorizer_for(store: Store, timeout: float = AUTHORIZE_TIMEOUT) -> OnlineAuthorizer | None:
    """An authorizer for the store's server, or None when the terminal is not enrolled."""
    meta = store.read(lambda conn: queries.meta_values(conn, "server_url", "server_credential"))
    if "server_url" not in meta:
        return None
    url, credential = meta["server_url"], meta.get("server_credential")
    return OnlineAuthorizer(lambda: SyncClient(url, credential, timeout=timeout))


def push_soon(store: Store, authorizer: OnlineAuthorizer) -> None:
    """Push what is pending if the server answered this command; a failure leaves the entries
    pending for the next sync (logged, never lost)."""
    if not authorizer.ready():
        return
    meta = store.read(lambda conn: queries.meta_values(conn, "server_url", "server_credential"))
    client = SyncClient(meta["server_url"], meta.get("server_credential"),
                        timeout=AUTHORIZE_TIMEOUT)
    try:
        push_all(store, client, utc_now)
    except CardposError as exc:
        log.warning("push after an online approval failed (%s); entries stay pending", exc.code)
    finally:
        client.close()
