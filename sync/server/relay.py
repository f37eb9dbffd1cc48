"""A branch relay's link to its upstream server (docs/relay.md).

`cardpos server run --db BRANCH_DB --upstream URL` serves the branch's terminals exactly as a
central server does, from its own database, and runs a `RelayLink`:

- on its own thread ("relay-link"), rounds of: forward each local terminal's applied entries
  upstream in order (POST /v1/relay/push, recording per terminal what upstream acknowledged),
  then pull upstream's changes with the relay's own cursor and apply them here
  (sync/server/relay_apply.py). Every `interval` seconds while the link works; exponential
  backoff with jitter while it fails; every HTTP call has a bounded timeout. A round that
  fails to forward does not pull (relay_apply's balances rely on that order).
- on the request threads of the relay's POST /v1/authorize (`confirm`): after the branch's own
  hold was placed (which serializes the branch's tills), ask upstream for the same hold id with
  a short timeout. Upstream's "no" releases the branch's hold and is the answer; no answer in
  time leaves the branch's answer standing (the WAN is down), and for `cooldown` seconds
  upstream is not asked at all, so tills do not each wait out a timeout. The upstream hold is
  settled when the forwarded entry arrives there (the same id in `data.hold`).

Started and stopped by the app's lifespan (`create_app(..., relay=link)`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import anyio
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync import protocol
from sync.client import PUSH_BATCH, OnlineAuthorizer, SyncClient
from sync.server import holds, relay_apply, relay_store
from sync.server.db import utc_now
from sync.server.relay_store import Upstream
from terminal.errors import CardposError
from terminal.online import HeldPurse, HoldRequest
from terminal.sync_state import SyncError

log = logging.getLogger(__name__)


class UpstreamClient(SyncClient):
    """`SyncClient` with the relay's own call. Not shared between threads."""

    def relay_push(self, terminal: str, entries: list[dict[str, Any]]) -> protocol.PushResponse:
        body = self._call("POST", "/v1/relay/push", json={"terminal": terminal,
                                                          "entries": entries})
        try:
            return protocol.PushResponse.model_validate(body)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise SyncError("server_garbage", status=200) from exc


def enrol(engine: Engine, url: str, code: str, terminal_id: str, *,
          transport: httpx.BaseTransport | None = None) -> Upstream:
    """Exchange a relay enrolment code made upstream (`cardpos server enrol-code --relay`)
    for the relay's credential, and keep both in the relay's database."""
    client = SyncClient(relay_store.check_url(url), timeout=10.0, transport=transport)
    try:
        answer = client.enrol(code, terminal_id)
    finally:
        client.close()
    relay_store.save_enrolment(engine, url, answer.terminal_id, answer.branch, answer.credential)
    return relay_store.load(engine)


@dataclass(frozen=True)
class LinkStatus:
    """The link as the last round left it."""

    online: bool
    last_round_at: datetime | None
    error: str | None
    forwarded: int  # entries upstream applied in the last good round
    cursor: int

    def as_json(self) -> dict[str, Any]:
        return {"online": self.online, "error": self.error, "forwarded": self.forwarded,
                "cursor": self.cursor,
                "last_round_at": self.last_round_at.isoformat() if self.last_round_at else None}


@dataclass(frozen=True)
class RoundReport:
    forwarded: int
    duplicates: int
    pulled_cards: int
    adjusted: int
    cursor: int


class RelayLink:
    """Forwarding, pulling and asking upstream for one relay database (see the module)."""

    def __init__(self, engine: Engine, *, interval: float = 5.0, max_backoff: float = 120.0,
                 timeout: float = 10.0, authorize_timeout: float = 2.0,
                 cooldown: float = 15.0) -> None:
        self._engine = engine
        self._upstream = relay_store.load(engine)
        self._interval, self._max_backoff, self._timeout = interval, max_backoff, timeout
        url, credential = self._upstream.url, self._upstream.credential
        self._authorizer = OnlineAuthorizer(
            lambda: UpstreamClient(url, credential, timeout=authorize_timeout),
            cooldown=cooldown)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._status = LinkStatus(False, self._upstream.last_round_at, self._upstream.last_error,
                                  0, self._upstream.cursor)
        self._thread: threading.Thread | None = None

    @property
    def upstream(self) -> Upstream:
        return self._upstream

    @property
    def status(self) -> LinkStatus:
        with self._lock:
            return self._status

    def client(self) -> UpstreamClient:
        return UpstreamClient(self._upstream.url, self._upstream.credential,
                              timeout=self._timeout)

    # -- the link thread --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the relay link runs already")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="relay-link", daemon=True)
        self._thread.start()

    def sync_now(self) -> None:
        """Ask for a round at once."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """End the link thread (it finishes the HTTP call it is in: bounded by `timeout`s)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._authorizer.close()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """FastAPI's lifespan: the link runs while the app serves."""
        self.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self.stop)

    def _run(self) -> None:
        failures = 0
        client = self.client()
        try:
            while not self._stopping.is_set():
                error = self._round_safely(client)
                if error is None:
                    failures = 0
                    delay = self._interval
                else:
                    failures += 1
                    delay = min(self._interval * 2 ** min(failures, 10), self._max_backoff)
                    delay *= random.uniform(0.8, 1.2)  # jitter: relays don't retry in step
                self._wake.wait(delay)
                self._wake.clear()
        finally:
            client.close()

    def _round_safely(self, client: UpstreamClient) -> str | None:
        """One round; the code of what went wrong, or None. A failure is logged and recorded
        (status, and the relay's database for `cardpos server relay status`), never raised:
        the link must outlive any one bad round."""
        error: str | None
        try:
            report = self.round(client)
        except CardposError as exc:
            log.warning("relay round failed (%s): %s", exc.code, exc)
            error = exc.code
        except sa.exc.SQLAlchemyError as exc:
            log.exception("relay round failed on the relay's database")
            error = f"database_failed: {type(exc).__name__}"
        except Exception as exc:  # a bug must not end the link; it is logged with its trace
            log.exception("relay round failed")
            error = f"internal_error: {type(exc).__name__}"
        else:
            self._authorizer.mark_online()
            self._publish(online=True, error=None, last_round_at=utc_now(),
                          forwarded=report.forwarded, cursor=report.cursor)
            relay_store.record_round(self._engine, None)
            return None
        self._publish(online=False, error=error)
        try:
            relay_store.record_round(self._engine, error)
        except sa.exc.SQLAlchemyError:
            log.exception("cannot record the relay round's failure")
        return error

    def _publish(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    # -- one round ----------------------------------------------------------------------------

    def round(self, client: UpstreamClient) -> RoundReport:
        """Forward everything upstream lacks, then pull until upstream has no more. Raises
        SyncError when upstream cannot be used (nothing is pulled then)."""
        forwarded, duplicates = self._forward(client)
        cursor = relay_store.load(self._engine).cursor
        cards = adjusted = 0
        while True:
            applied = relay_apply.apply_page(self._engine, client.pull(cursor))
            cursor, cards, adjusted = applied.cursor, cards + applied.cards, \
                adjusted + applied.adjusted
            if not applied.more:
                break
        return RoundReport(forwarded, duplicates, cards, adjusted, cursor)

    def _forward(self, client: UpstreamClient) -> tuple[int, int]:
        """Each local terminal's entries after what upstream acknowledged, in order, in
        batches. A terminal upstream refuses (typed 4xx: enrolled there directly, ...) or
        whose entry it rejects is recorded and skipped; the others go on."""
        applied = duplicates = 0
        for terminal, start in relay_store.backlog(self._engine):
            acked = start
            while True:
                batch = relay_store.outbox(self._engine, terminal, acked, PUSH_BATCH)
                if not batch:
                    break
                try:
                    answer = client.relay_push(terminal, batch)
                except SyncError as exc:
                    if exc.code != "server_refused":
                        raise
                    log.warning("upstream refuses %s's entries: %s", terminal, exc)
                    relay_store.record_ack(self._engine, terminal, acked,
                                           str(exc.params.get("error") or exc.code))
                    break
                rejected = answer.rejected[0] if answer.rejected else None
                if rejected is not None:
                    log.warning("upstream rejected %s's entry %s (seq %s): %s", terminal,
                                rejected.id, rejected.seq, rejected.reason)
                relay_store.record_ack(self._engine, terminal, answer.last_seq,
                                       rejected.reason if rejected else None)
                applied += len(answer.applied)
                duplicates += len(answer.duplicates)
                if rejected is not None or answer.last_seq <= acked:
                    break
                acked = answer.last_seq
        return applied, duplicates

    # -- online authorization (request threads) ----------------------------------------------

    def confirm(self, request: protocol.AuthorizeRequest, local: holds.Verdict) -> holds.Verdict:
        """The relay's answer to an authorization the branch approved (`local`): upstream's
        "no" (the branch's hold released), else the branch's answer."""
        if not local.approved:
            return local
        if not self._authorizer.ready():
            return replace(local, branch_only=True)
        answer = self._authorizer.authorize(HoldRequest(
            request.hold_id, request.card, request.kind,
            tuple(HeldPurse(p.purse, p.amount, p.currency) for p in request.purses),
            (request.second_factor.challenge, request.second_factor.code)
            if request.second_factor is not None else None))
        if answer is None:
            return replace(local, branch_only=True)
        if answer.approved:
            return local
        relay_store.release_hold(self._engine, request.hold_id)
        return holds.Verdict(False, request.hold_id, answer.reason, dict(answer.params))
