"""The terminal's sync client: push the journal, pull the cache, on its own thread.

`SyncClient` is the HTTP side (httpx, one instance per thread that uses it). `sync_once` does one
round — push every pending entry in batches, then pull pages until the server has no more —
with all store changes in `terminal.sync_state` functions run as `Store.write` jobs, so a crash
at any point leaves a state the next round continues from (the server applies entries exactly
once; a pulled page is applied whole or not at all). `SyncLoop` repeats rounds on a worker
thread with backoff and jitter, and publishes a status snapshot for the UI.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx

from sync.protocol import DEFAULT_PULL_LIMIT, AuthorizeResponse, EnrolResponse, PushResponse
from terminal import sync_state
from terminal.errors import CardposError
from terminal.online import HoldAnswer, HoldRequest
from terminal.store import queries
from terminal.store.db import Store
from terminal.sync_state import SyncError

log = logging.getLogger(__name__)

PUSH_BATCH = 500


class SyncClient:
    """HTTP calls to one server. Not shared between threads (httpx.Client is not)."""

    def __init__(self, base_url: str, credential: str | None = None, *, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, parse: Callable[[bytes], Any] | None = None,
              **kwargs: Any) -> Any:
        """The parsed JSON answer (`parse` reads a successful answer's bytes instead)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SyncError("server_unreachable", detail=f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise SyncError("terminal_not_authorised" if response.status_code == 401
                            else "terminal_revoked")
        try:
            body = (response.json() if parse is None or response.status_code >= 400
                    else parse(response.content))
        except ValueError as exc:
            raise SyncError("server_garbage", status=response.status_code) from exc
        if response.status_code >= 400:
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise SyncError("server_refused", status=response.status_code, error=error)
        return body

    def healthy(self) -> bool:
        """Does the server answer its health check now (for `cardpos status`)?"""
        try:
            self._call("GET", "/v1/health")
        except SyncError:
            return False
        return True

    def enrol(self, code: str, terminal_id: str) -> EnrolResponse:
        return EnrolResponse.model_validate(
            self._call("POST", "/v1/enrol", json={"code": code, "terminal_id": terminal_id}))

    def push(self, entries: list[dict[str, Any]]) -> PushResponse:
        try:
            return PushResponse.model_validate(
                self._call("POST", "/v1/push", json={"entries": entries}))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise SyncError("server_garbage", status=200) from exc

    def authorize(self, request: HoldRequest) -> AuthorizeResponse:
        body = {"hold_id": request.hold_id, "card": request.card, "kind": request.kind,
                "purses": [{"purse": p.purse, "amount": p.amount, "currency": p.currency}
                           for p in request.purses],
                "second_factor": ({"challenge": request.second_factor[0],
                                   "code": request.second_factor[1]}
                                  if request.second_factor else None)}
        try:
            return AuthorizeResponse.model_validate(self._call("POST", "/v1/authorize",
                                                               json=body))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise SyncError("server_garbage", status=200) from exc

    def pull(self, cursor: int, limit: int = DEFAULT_PULL_LIMIT) -> dict[str, Any]:
        """One page, parsed and its checksum checked (`sync_state.parse_pull`)."""
        body: dict[str, Any] = self._call("GET", "/v1/pull",
                                          params={"cursor": cursor, "limit": limit},
                                          parse=sync_state.parse_pull)
        return body


class OnlineAuthorizer:
    """`terminal.online.Authorizer` over HTTP: asks POST /v1/authorize with a short timeout.

    Called on the threads of operations (several may ask at once, each gets its own
    `SyncClient`). When the server does not answer in time, or answers something unusable, it
    returns None — the terminal then decides offline — and stays quiet for `cooldown` seconds,
    so an offline terminal does not wait out a timeout on every card; `mark_online` (the sync
    loop after a good round) ends the quiet period early."""

    def __init__(self, make_client: Callable[[], SyncClient], *, cooldown: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._make_client, self._cooldown, self._monotonic = make_client, cooldown, monotonic
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[SyncClient] = []
        self._quiet_until = 0.0

    def ready(self) -> bool:
        with self._lock:
            return self._monotonic() >= self._quiet_until

    def mark_online(self) -> None:
        with self._lock:
            self._quiet_until = 0.0

    def authorize(self, request: HoldRequest) -> HoldAnswer | None:
        try:
            answer = self._client().authorize(request)
        except SyncError as exc:
            log.warning("online authorization unavailable (%s); deciding offline", exc.code)
            with self._lock:
                self._quiet_until = self._monotonic() + self._cooldown
            return None
        return HoldAnswer(answer.approved, answer.hold_id, answer.reason, answer.params,
                          answer.branch_only)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _client(self) -> SyncClient:
        client: SyncClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
            with self._lock:
                self._clients.append(client)
        return client


@dataclass(frozen=True)
class RoundReport:
    pushed: int
    duplicates: int
    rejected: list[dict[str, Any]]
    pending: int
    pulled_cards: int
    cursor: int

    def as_json(self) -> dict[str, Any]:
        return {"pushed": self.pushed, "duplicates": self.duplicates, "rejected": self.rejected,
                "pending": self.pending, "pulled_cards": self.pulled_cards, "cursor": self.cursor}


@dataclass(frozen=True)
class PushReport:
    pushed: int
    duplicates: int
    rejected: list[dict[str, Any]]
    pending: int


def push_all(store: Store, client: SyncClient, clock: Callable[[], datetime]) -> PushReport:
    """Push every pending entry, in batches, recording each acknowledgement as it comes."""
    pushed = duplicates = 0
    rejected: list[dict[str, Any]] = []
    while True:
        batch = store.read(lambda conn: sync_state.outbox(conn, PUSH_BATCH))
        answer = client.push(batch) if batch else None
        last_seq = answer.last_seq if answer else store.read(sync_state.acked_seq)
        pending = store.write(functools.partial(sync_state.record_push,
                                                server_last_seq=last_seq, now=clock()))
        if answer is None:
            break
        pushed += len(answer.applied)
        duplicates += len(answer.duplicates)
        rejected += [r.model_dump() for r in answer.rejected]
        if answer.rejected or not (answer.applied or answer.duplicates) or pending == 0:
            break  # done, or stuck on an entry the server refuses: report it, pull anyway
    return PushReport(pushed, duplicates, rejected, pending)


def sync_once(store: Store, client: SyncClient, clock: Callable[[], datetime],
              progress: Callable[[int], bool] | None = None,
              limit: int = DEFAULT_PULL_LIMIT) -> RoundReport:
    """One round: push all pending entries (in batches), then pull until nothing more.

    `progress(cards so far)` is called after each applied page; when it returns False the
    round stops there. Each page is applied with its cursor in one transaction, so a stopped
    round loses nothing: the next one goes on from the last applied page."""
    pushed = push_all(store, client, clock)
    cursor = int(store.read(lambda conn: queries.get_meta(conn, "sync_cursor")) or 0)
    cards = 0
    pending = sync_state.PendingDeltas()  # summed once per round, topped up per page
    # Pipelined: the next page is requested (and built by the server) while this one is being
    # applied. `client` is used by the fetching thread alone until the loop ends; a prefetched
    # page is only ever applied after the page before it was applied whole.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-pull") as fetcher:
        ahead: Future[dict[str, Any]] | None = fetcher.submit(client.pull, cursor, limit)
        while ahead is not None:
            page = ahead.result()
            following = _following(page)
            ahead = (fetcher.submit(client.pull, following, limit) if following is not None
                     else None)
            summary = store.write(functools.partial(sync_state.apply_pull, page=page,
                                                    pending=pending, checked=True))
            cursor, cards = summary.cursor, cards + summary.cards
            if progress is not None and ahead is not None and not progress(cards):
                ahead.cancel()
                break
    return RoundReport(pushed.pushed, pushed.duplicates, pushed.rejected, pushed.pending, cards,
                       cursor)


def _following(page: dict[str, Any]) -> int | None:
    """The cursor of the page after `page`, or None when it says there is none (a malformed
    page is refused by `apply_pull`, so nothing is fetched after it)."""
    try:
        return int(page["cursor"]) if page["more"] else None
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SyncStatus:
    """What the UI shows: online?, pending entries, last good sync, cursor, last problem."""

    online: bool
    pending: int
    last_sync: datetime | None
    cursor: int
    error: str | None
    #: Cards received so far by a round that is still pulling pages (None: no such round).
    pulling: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"online": self.online, "pending": self.pending,
                "last_sync": self.last_sync.isoformat() if self.last_sync else None,
                "cursor": self.cursor, "error": self.error}


def stored_status(store: Store) -> SyncStatus:
    """The status as the store records it (online is unknown here, so False)."""
    def job(conn: Any) -> SyncStatus:
        meta = queries.meta_values(conn, "last_sync_at", "sync_cursor", "server_url")
        synced = meta.get("last_sync_at") if "server_url" in meta else None
        return SyncStatus(False, sync_state.pending_count(conn),
                          datetime.fromisoformat(synced) if synced else None,
                          int(meta.get("sync_cursor", "0")), None)

    return store.read(job)


class SyncLoop:
    """Rounds of `sync_once` on a worker thread: every `interval` seconds while it works, with
    exponential backoff and jitter while the server fails. `on_status` is called on the worker
    thread with every new status (the UI hands it to its GUI thread)."""

    def __init__(self, store: Store, make_client: Callable[[], SyncClient],
                 clock: Callable[[], datetime], *, interval: float = 15.0,
                 max_backoff: float = 300.0,
                 on_status: Callable[[SyncStatus], None] | None = None) -> None:
        self._store, self._make_client, self._clock = store, make_client, clock
        self._interval, self._max_backoff = interval, max_backoff
        self._on_status = on_status
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._status = stored_status(store)
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)

    @property
    def status(self) -> SyncStatus:
        with self._lock:
            return self._status

    def start(self) -> None:
        self._thread.start()

    def sync_now(self) -> None:
        """Ask for a round at once (after a redemption, or a button)."""
        self._wake.set()

    def cancel_round(self) -> None:
        """Stop the running round after the page in hand (a long first snapshot the person at
        the terminal does not want to wait for); the next round goes on from there. Any thread."""
        self._cancel.set()

    def _progress(self, cards: int) -> bool:
        self._publish(pulling=cards)
        return not (self._cancel.is_set() or self._stopping.is_set())

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _publish(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
            status = self._status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:  # a listener's bug must not stop syncing
                log.exception("sync status listener failed")

    def _run(self) -> None:
        failures = 0
        client = self._make_client()
        try:
            while not self._stopping.is_set():
                self._cancel.clear()
                try:
                    report = sync_once(self._store, client, self._clock, self._progress)
                except CardposError as exc:
                    failures += 1
                    log.warning("sync round failed (%s): %s", exc.code, exc)
                    self._publish(online=False, error=exc.code, pulling=None,
                                  pending=self._store.read(sync_state.pending_count))
                    delay = min(self._interval * 2 ** min(failures, 10), self._max_backoff)
                    delay *= random.uniform(0.8, 1.2)  # jitter: terminals don't retry in step
                else:
                    failures = 0
                    self._publish(online=True, error=None, pending=report.pending,
                                  last_sync=self._clock(), cursor=report.cursor, pulling=None)
                    delay = self._interval
                self._wake.wait(delay)
                self._wake.clear()
        finally:
            client.close()
