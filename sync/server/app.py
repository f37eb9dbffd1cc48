"""The server's HTTP API (docs/server-api.md): FastAPI over a SQLAlchemy Core engine.

Stateless: everything lives in the database, so several processes can serve one PostgreSQL.
Every refused request gets a typed JSON error `{"error": code, "message": ...}`; bad input is
never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sync import protocol
from sync.server import auth, holds, pull, relayed
from sync.server.db import make_engine
from sync.server.ledger import AFTER_REJECTED, PushResult, Rejection, apply_push
from terminal.errors import BadInput, CardposError, NotFound, StateError, StoreError

if TYPE_CHECKING:
    from sync.server.relay import RelayLink

log = logging.getLogger(__name__)

# Amounts beyond this (10^15 minor units) cannot be postable money; refusing them keeps sums
# far inside the 64-bit columns.
MAX_AMOUNT = 10**15
MAX_CARD_LENGTH = 19  # cards.number
REQUEST_THREADS = 40  # anyio's default limit for FastAPI's synchronous endpoints
# Threads that run online authorizations: their own pool, so they never wait behind pushes
# and pulls in the 40 above, and a burst queues (first come, first served) instead of 40
# threads trading the GIL at every database round trip. 1, 2, 4 and 40 gave the same latency at
# 100 terminals; 4 the highest ceiling (docs/benchmarks-sync.md, online authorization).
AUTHORIZE_THREADS = 4
PING_IDLE_AFTER_S = 10.0

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": protocol.ErrorResponse} for code in (400, 401, 403, 409, 422)}


_bearer = HTTPBearer(auto_error=False, description="The terminal's credential (POST /v1/enrol)")


def _terminal(request: Request,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
              ) -> auth.Identity:
    """The authenticated terminal of a request (401 / 403 otherwise)."""
    header = f"Bearer {bearer.credentials}" if bearer is not None else None
    return auth.authenticate(request.app.state.engine, header)


Terminal = Annotated[auth.Identity, Depends(_terminal)]


async def _credential(bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                      ) -> str:
    """The request's bearer credential, checked later in the request's own transaction
    (401 now if there is none). `async`: no database, so no trip through the thread pool."""
    return auth.credential_of(f"Bearer {bearer.credentials}" if bearer is not None else None)


Credential = Annotated[str, Depends(_credential)]


class ServerTiming:
    """ASGI middleware: a `Server-Timing: app;dur=<ms>` header on every response, the time from
    the request reaching the app to its response headers (W3C Server Timing). Lets a client or
    a benchmark tell the server's own time from the network's and its own
    (bench/online_auth.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"server-timing", f"app;dur={took:.2f}"
                                                   .encode("ascii"))]}
            await send(message)

        await self.app(scope, receive, timed)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(db_url: str, *, engine: Engine | None = None,
               hold_ttl: timedelta = holds.DEFAULT_TTL, relay: RelayLink | None = None,
               second_factor: holds.SecondFactorPolicy | None = None) -> FastAPI:
    """The API over the database at `db_url` (already migrated: `cardpos server migrate`).
    `hold_ttl`: how long an online authorization's hold counts if its entry never arrives.
    `second_factor`: how one-time codes reach card holders' phones (None: never asked).
    `relay`: this server is a branch relay (docs/relay.md); its link runs with the app's
    lifespan and confirms the branch's authorizations upstream."""
    # As many pooled connections as threads that use them (anyio's 40 and the authorizers): a
    # smaller pool makes bursts open and close "overflow" connections per request, and a new
    # PostgreSQL connection costs milliseconds (docs/benchmarks-sync.md, online authorization).
    # Connections idle for a while are pinged before use; busy ones are not (sync/server/db.py).
    eng = engine or make_engine(db_url, ping_idle_after=PING_IDLE_AFTER_S,
                                pool_size=REQUEST_THREADS + AUTHORIZE_THREADS, max_overflow=0,
                                pool_timeout=30)
    app = FastAPI(title="cardpos server", version=protocol.API_VERSION,
                  description="Enrolment, journal push and cache pull for cardpos terminals. "
                              "See docs/server-api.md.",
                  lifespan=relay.lifespan if relay is not None else None)
    app.state.engine = eng
    # Authorizations run here (AUTHORIZE_THREADS); the threads go when the app does.
    authorizer = ThreadPoolExecutor(AUTHORIZE_THREADS, thread_name_prefix="authorize")
    weakref.finalize(app, authorizer.shutdown, wait=False)
    _handlers(app)
    app.add_middleware(ServerTiming)

    @app.get("/v1/health", response_model=protocol.Health, tags=["service"])
    def health() -> protocol.Health:
        """Liveness and database reachability (no credential needed)."""
        try:
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise ApiError(503, "database_unavailable", "The database is not reachable.") \
                from exc
        return protocol.Health(status="ok", database=eng.dialect.name)

    @app.post("/v1/enrol", response_model=protocol.EnrolResponse, tags=["terminals"],
              responses=_ERROR_RESPONSES)
    def enrol(req: protocol.EnrolRequest) -> protocol.EnrolResponse:
        """Exchange a one-time enrolment code for the terminal's credential."""
        identity, credential = auth.enrol(eng, req.code, req.terminal_id)
        return protocol.EnrolResponse(terminal_id=identity.terminal_id,
                                      branch=identity.branch, credential=credential)

    @app.post("/v1/push", response_model=protocol.PushResponse, tags=["sync"],
              responses=_ERROR_RESPONSES)
    def push(req: protocol.PushRequest, who: Terminal) -> dict[str, Any]:
        """Apply a batch of the terminal's journal entries, in its order, exactly once."""
        return _wire(_push(eng, who.terminal_id, req.entries))

    @app.post("/v1/relay/push", response_model=protocol.PushResponse, tags=["sync"],
              responses=_ERROR_RESPONSES)
    def relay_push(req: protocol.RelayPushRequest, who: Terminal) -> dict[str, Any]:
        """A branch relay forwards entries of a terminal it serves (relay credentials only;
        the terminal is registered under the relay's branch on first use)."""
        relayed.register(eng, who, req.terminal)
        return _wire(_push(eng, req.terminal, req.entries))

    @app.post("/v1/authorize", response_model=protocol.AuthorizeResponse, tags=["sync"],
              responses=_ERROR_RESPONSES)
    async def authorize(req: protocol.AuthorizeRequest, credential: Credential
                        ) -> dict[str, Any]:
        """Hold the amounts of a debit on the card's purses while the terminal commits it; the
        hold is settled when the entry is pushed and expires if it never comes."""
        # On the event loop: parsing and answering. On one of the `authorizer` threads: the
        # transaction. A branch relay's upstream call (network, seconds at worst) goes to the
        # common thread pool so it never holds up the branch's own authorizations.
        placing = partial(holds.authorize, eng, holds.Request(
            "", None, req.hold_id, req.card, req.kind,
            [(p.purse, p.amount, p.currency) for p in req.purses],
            (req.second_factor.challenge, req.second_factor.code) if req.second_factor
            else None), ttl=hold_ttl, second_factor=second_factor, credential=credential)
        verdict = await asyncio.get_running_loop().run_in_executor(authorizer, placing)
        if relay is not None:  # a branch relay: the branch's hold, then upstream's word
            verdict = await run_in_threadpool(relay.confirm, req, verdict)
        return verdict.as_json()

    @app.get("/v1/pull", response_model=protocol.PullResponse, tags=["sync"],
             responses=_ERROR_RESPONSES)
    def pull_changes(who: Terminal,
                     cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
                     limit: Annotated[int, Query(ge=1, le=protocol.MAX_PULL_LIMIT)]
                     = protocol.DEFAULT_PULL_LIMIT) -> Response:
        """Cards, denylist, keys, limits and prices changed after `cursor` for this terminal
        (its branch's cards and those of no branch; a full snapshot when `reset`)."""
        # Pre-serialized canonical JSON (sync/server/pull.py): the response model documents
        # the answer but is not re-validated, which cost more than building the page.
        return Response(pull.pull_json(eng, cursor, limit, who), media_type="application/json")

    return app


def _push(engine: Engine, terminal_id: str, batch: Sequence[dict[str, Any]]) -> PushResult:
    """`apply_push`, except that an entry with an amount no money can have is rejected here,
    with everything after it (as the ledger does with the first entry it rejects)."""
    problems = [_unstorable(e) for e in batch]
    cut = next((i for i, p in enumerate(problems) if p is not None), None)
    if cut is None:
        return _apply(engine, terminal_id, batch)
    head = _apply(engine, terminal_id, batch[:cut])
    first = head.rejected[0] if head.rejected else Rejection(
        *_id_seq(batch[cut]), "malformed_entry", {"problem": problems[cut]})
    tail = [_id_seq(e) for e in batch[cut + (0 if head.rejected else 1):]]
    rejected = [*head.rejected, *([] if head.rejected else [first]),
                *(Rejection(i, s, AFTER_REJECTED, {"first": first.id, "first_seq": first.seq})
                  for i, s in tail)]
    return PushResult(head.terminal, head.applied, head.duplicates, tuple(rejected),
                      head.missing, head.last_seq, head.last_hash, head.overspends)


def _apply(engine: Engine, terminal_id: str, batch: Sequence[dict[str, Any]]) -> PushResult:
    try:
        return apply_push(engine, terminal_id, batch)
    except (sa.exc.DataError, sa.exc.StatementError, OverflowError) as exc:
        # A value the columns cannot hold (DataError; or a bind the driver refuses, which
        # SQLAlchemy wraps in a bare StatementError). Other database errors are the server's.
        if isinstance(exc, sa.exc.DBAPIError) and not isinstance(exc, sa.exc.DataError):
            raise
        raise ApiError(422, "unstorable_batch",
                       "The database cannot store this batch; nothing of it was applied.") \
            from exc


def _unstorable(entry: dict[str, Any]) -> str | None:
    """Why the database could not store `entry` although its shape may pass, or None: an
    amount no money can have, a card number longer than any card's, a NUL character."""
    deltas = entry.get("deltas")
    for d in deltas if isinstance(deltas, list) else []:
        if isinstance(d, dict):
            amount = d.get("amount")
            if isinstance(amount, int) and abs(amount) > MAX_AMOUNT:
                return "amount_out_of_range"
            if any(isinstance(v, str) and "\x00" in v for v in d.values()):
                return "nul_character"
    if any(isinstance(v, str) and "\x00" in v for v in entry.values()):
        return "nul_character"
    card = entry.get("card")
    if isinstance(card, str) and len(card) > MAX_CARD_LENGTH:
        return "card_too_long"
    return None


def _id_seq(entry: dict[str, Any]) -> tuple[str | None, int | None]:
    entry_id, seq = entry.get("id"), entry.get("seq")
    return (entry_id if isinstance(entry_id, str) else None,
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None)


def _wire(result: PushResult) -> dict[str, Any]:
    return {"applied": list(result.applied), "duplicates": list(result.duplicates),
            "rejected": [r.as_json() for r in result.rejected],
            "gap": ({"from_seq": result.missing[0], "to_seq": result.missing[1]}
                    if result.missing else None),
            "last_seq": result.last_seq, "last_hash": result.last_hash,
            "overspends": [o.as_json() for o in result.overspends]}


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(auth.AuthError)
    def auth_error(_request: Request, exc: auth.AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"location": [str(p) for p in e.get("loc", ())], "type": str(e.get("type")),
                    "message": str(e.get("msg"))} for e in exc.errors()]
        if any(d["type"] == "json_invalid" for d in details):
            return _error(400, "malformed_json", "The request body is not valid JSON.", details)
        return _error(422, "invalid_request", "The request does not match the API.", details)

    @app.exception_handler(HTTPException)
    def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return _error(exc.status_code, code, str(exc.detail),
                      headers=getattr(exc, "headers", None))

    @app.exception_handler(CardposError)
    def core_error(_request: Request, exc: CardposError) -> JSONResponse:
        if isinstance(exc, StateError) and exc.code == "terminal_revoked":
            status = 403
        elif isinstance(exc, NotFound):
            status = 404
        elif isinstance(exc, StateError):
            status = 409
        elif isinstance(exc, BadInput):
            status = 400
        elif isinstance(exc, StoreError):
            status = 503
        else:
            status = 400
        return _error(status, exc.code, exc.english())

    @app.exception_handler(Exception)
    def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "The server failed; the request was not applied.")
