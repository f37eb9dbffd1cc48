"""Wiring online authorization into one-shot commands (`cardpos redeem|buyback|transfer`).

An enrolled terminal asks its server before each debit (terminal/online.py); these helpers build
the authorizer from what `cardpos enrol` stored and push the entry right after an online
approval, so the server settles the hold at once. The app does the same with its sync thread.
"""

from __future__ import annotations

import logging

from sync.client import OnlineAuthorizer, SyncClient, push_all
from terminal.errors import CardposError, StateError
from terminal.services import utc_now
from terminal.store import queries
from terminal.store.db import Store

log = logging.getLogger(__name__)

#: Longer than this and the cashier is better served by the offline rules.
AUTHORIZE_TIMEOUT = 2.0


def client_for(store: Store, timeout: float = 5.0) -> SyncClient:
    """A client for the server the store was enrolled with (`not_enrolled` otherwise)."""
    meta = store.read(lambda conn: queries.meta_values(conn, "server_url", "server_credential"))
    if "server_url" not in meta:
        raise StateError("not_enrolled")
    url, credential = meta["server_url"], meta.get("server_credential")
    return SyncClient(url, credential, timeout=timeout)


def authorizer_for(store: Store, timeout: float = AUTHORIZE_TIMEOUT) -> OnlineAuthorizer | None:
    """An authorizer for the store's server, or None when the terminal is not enrolled."""
    if store.read(lambda conn: queries.get_meta(conn, "server_url")) is None:
        return None
    return OnlineAuthorizer(lambda: client_for(store, timeout))


def push_soon(store: Store, authorizer: OnlineAuthorizer) -> None:
    """Push what is pending if the server answered this command; a failure leaves the entries
    pending for the next sync (logged, never lost)."""
    if not authorizer.ready():
        return
    client = client_for(store, AUTHORIZE_TIMEOUT)
    try:
        push_all(store, client, utc_now)
    except CardposError as exc:
        log.warning("push after an online approval failed (%s); entries stay pending", exc.code)
    finally:
        client.close()
