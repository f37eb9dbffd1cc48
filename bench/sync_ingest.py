"""Benchmark of journal ingest into PostgreSQL through the real HTTP API: batched vs one
per request.

Run:  .venv/bin/python bench/sync_ingest.py [--terminals 4] [--entries 10000] [--naive-entries 200]
          [--sync-entries N] [--batch 500] [--cards 2000] [--cards-per-terminal shared|disjoint]
          [--seed 1] [--profile]

Prints figures; asserts nothing about speed (it exits non-zero only if the product misbehaves:
an entry rejected, not applied, or applied twice). See docs/benchmarks-sync.md and issue 4
(goal: >= 10,000 entries/s batched on the 2-core machine, load generator included).

Steps:
1. A throwaway PostgreSQL database (tests/postgres.py), migrated; C cards imported on the server
   (`issuer.import_cards`); uvicorn serving `create_app(url)` in a subprocess on a free
   127.0.0.1 port (one worker process, FastAPI's thread pool for the sync endpoints).
2. 3*T terminals (T for each path): a fresh store each with generous offline limits, the same C
   PIN-less cards, one cashier, one open shift, then N redemptions of 0.01 on random cards made
   by the terminal core (`Terminal.redeem`) — real chained journal entries. Enrolled through
   `POST /v1/enrol`. None of this is timed.
3. Before timing, every journal of the naive and batched paths is read and JSON-encoded into
   its `POST /v1/push` bodies (1 or `--batch` entries each), so the load generator only sends
   bytes and reads answers: on this machine it shares the CPUs with the server, and a real
   terminal builds its requests on its own hardware.
   Naive path: T threads, each sends its terminal's bodies of one entry, in order. Batched path:
   the same with `--batch` entries per body. Terminal sync code path: T threads each run the
   push half of `sync.client.sync_once` as the terminal does it (`sync_state.outbox` from the
   store, `SyncClient.push`, `sync_state.record_push`), so the terminal's own costs are in that
   figure. For each path: wall time, and the CPU time of the load generator, the server process
   and PostgreSQL, and of the whole machine (other processes included).
4. Exactly once: the server's `entries` rows per terminal equal the terminal's journal (same
   ids), ledger postings equal the journals' deltas, every terminal's `last_seq` is its
   journal head, cached purse balances equal their ledger sums; then every batch is pushed a
   second time and must come back as duplicates only, with nothing new in the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from benchlib import machine_lines  # noqa: E402

from sync import client as sync_client  # noqa: E402
from sync.server import auth, issuer, ledger, schema  # noqa: E402
from sync.server.db import RETRIES, make_engine, migrate  # noqa: E402
from terminal import admin, journal, sync_state  # noqa: E402
from terminal.credentials import NfcUid  # noqa: E402
from terminal.limits import Limits  # noqa: E402
from terminal.model import Role  # noqa: E402
from terminal.services import Shifts, Terminal  # noqa: E402
from terminal.store.db import Store  # noqa: E402
from tests import postgres  # noqa: E402

DISTS = ("fastapi", "uvicorn", "httpx", "sqlalchemy", "psycopg", "pydantic")
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEADER = "number,uid,program,purse,balance,currency,expiry,status,pin"
CASHIER_PIN = "1111"
STARTUP_S = 30.0
GENEROUS = Limits(offline_per_transaction=1_000_00, offline_per_card_day=10**12,
                  offline_terminal_total=10**13, offline_max_hours=24 * 365,
                  max_purse_balance=10**12)


def log(message: str) -> None:
    """Progress on stderr (figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- cards ---------------------------------------------------------------------------------------

def _luhn(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def card_number(serial: int) -> str:
    body = f"6036{serial:011d}"
    return body + _luhn(body)


def card_uid(serial: int) -> str:
    return f"04{(serial * 2_654_435_761 + 0x1234567) & 0xFFFFFFFFFFFF:012X}"


def write_cards_csv(path: Path, n_cards: int, balance_cents: int = 900_000_00,
                    second_purse_every: int = 0) -> int:
    """PIN-less active cards, one `general` purse each (and a `fuel` one for every
    `second_purse_every`-th card if > 0); returns the number of rows."""
    cents = f"{balance_cents // 100}.{balance_cents % 100:02d}"
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        chunk: list[str] = []
        for serial in range(n_cards):
            number, uid = card_number(serial), card_uid(serial)
            chunk.append(f"{number},{uid},shopping,general,{cents},EUR,2030-12-31,active,\n")
            rows += 1
            if second_purse_every and serial % second_purse_every == 0:
                chunk.append(f"{number},{uid},shopping,fuel,50.00,EUR,2030-12-31,active,\n")
                rows += 1
            if len(chunk) >= 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return rows


# -- the server ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER_CODE = """
import sys, uvicorn
from sync.server.app import create_app
uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False, lifespan="off")
"""


@contextlib.contextmanager
def api_server(db_url: str, log_path: Path | None = None, pids: list[int] | None = None
               ) -> Iterator[str]:
    """uvicorn serving `create_app(db_url)` in a subprocess on a free loopback port; its base
    URL. Its stderr goes to `log_path` if given; its process id is appended to `pids` if
    given. Stopped (terminate, then kill) on exit."""
    port = free_port()
    err = log_path.open("wb") if log_path else None
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, db_url, str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=err)
    if pids is not None:
        pids.append(proc.pid)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if err:
            err.close()


def enrol(engine: sa.Engine, base: str, terminal_id: str) -> str:
    """Enrol through the API; the credential."""
    code = auth.make_enrol_code(engine, terminal_id, "north")
    r = httpx.post(f"{base}/v1/enrol", json={"code": code, "terminal_id": terminal_id},
                   timeout=30)
    r.raise_for_status()
    return str(r.json()["credential"])


@contextlib.contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    if not postgres.reachable():
        raise SystemExit(f"needs {postgres.WHAT} (or CARDPOS_TEST_PG)")
    with postgres.temporary_database(prefix) as url:
        migrate(url)
        yield url


# -- terminals -----------------------------------------------------------------------------------

@dataclass
class Till:
    terminal_id: str
    store: Store
    entries: int = 0
    deltas: int = 0


def make_till(work: Path, terminal_id: str, csv: Path, n_cards: int, n_redeems: int,
              rng: random.Random, lane: tuple[int, int] = (0, 1)) -> Till:
    """A fresh store with the cards, a cashier with an open shift and `n_redeems` redemptions
    of 0.01 on random cards (real chained journal entries). `lane` (i, k): only cards whose
    serial is i modulo k (k = 1: any card)."""
    clock = lambda: START  # noqa: E731
    store = admin.init_store(work / terminal_id, terminal_id, GENEROUS, START)
    admin.import_card_file(store, csv)
    admin.new_cashier(store, "alice", "Alice", Role.CASHIER, CASHIER_PIN)
    shifts = Shifts(store, clock)
    decision, _ = shifts.open("alice", CASHIER_PIN)
    if not decision.approved:
        raise RuntimeError(f"shift not opened: {decision}")
    term = Terminal(store, clock)
    for _ in range(n_redeems):
        i, k = lane
        serial = rng.randrange((n_cards - i + k - 1) // k) * k + i
        result = term.redeem(NfcUid(card_uid(serial)), 1)
        if not result.approved:
            raise RuntimeError(f"redemption refused on {terminal_id}: {result}")
    till = Till(terminal_id, store)
    made = store.read(lambda c: list(journal.entries(c)))
    till.entries, till.deltas = len(made), sum(len(e.deltas) for e in made)
    return till


FAILED_PUSH_RETRIES = 50  # per terminal: a refused push (HTTP 500) is sent again at once


def push_all(till: Till, client: sync_client.SyncClient, batch: int
             ) -> tuple[int, int, int, int]:
    """The push half of `sync_once` with `batch` entries per request: (applied, duplicates,
    requests, failed requests). A push the server fails (HTTP 5xx) is resent at once, as
    `SyncLoop` would after its backoff, at most FAILED_PUSH_RETRIES times. RuntimeError on a
    rejection (the product misbehaved)."""
    applied = duplicates = requests = failed = 0
    bound = till.entries + 2 + FAILED_PUSH_RETRIES  # every loop is bounded
    for _ in range(bound):
        entries = till.store.read(lambda conn: sync_state.outbox(conn, batch))
        if not entries:
            break
        requests += 1
        try:
            answer = client.push(entries)
        except sync_state.SyncError as exc:
            if exc.code != "server_refused" or failed >= FAILED_PUSH_RETRIES:
                raise
            failed += 1
            continue
        if answer.rejected:
            raise RuntimeError(f"{till.terminal_id}: rejected {answer.rejected[0]}")
        applied += len(answer.applied)
        duplicates += len(answer.duplicates)
        till.store.write(functools.partial(sync_state.record_push,
                                           server_last_seq=answer.last_seq, now=START))
    else:
        raise RuntimeError(f"{till.terminal_id}: outbox did not drain")
    return applied, duplicates, requests, failed


def request_bodies(till: Till, batch: int) -> list[bytes]:
    """The terminal's whole journal as `POST /v1/push` bodies of `batch` entries, JSON-encoded
    before timing: the pre-built load (the terminal's own costs are measured by `push_all`)."""
    made = till.store.read(lambda c: [e.as_json() for e in journal.entries(c)])
    return [json.dumps({"entries": made[i:i + batch]}, separators=(",", ":")).encode()
            for i in range(0, len(made), batch)]


def post_all(bodies: list[bytes], base: str, credential: str) -> tuple[int, int, int, int]:
    """Send pre-built push bodies in order on one keep-alive connection: (applied, duplicates,
    requests, failed requests). A push the server fails (HTTP 5xx) is resent at once, at most
    FAILED_PUSH_RETRIES times in all. RuntimeError on a rejection (the product misbehaved)."""
    applied = duplicates = requests = failed = 0
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for body in bodies:
            while True:
                requests += 1
                r = http.post("/v1/push", content=body)
                if r.status_code >= 500 and failed < FAILED_PUSH_RETRIES:
                    failed += 1
                    continue
                r.raise_for_status()
                break
            answer = r.json()
            if answer["rejected"]:
                raise RuntimeError(f"rejected {answer['rejected'][0]}")
            applied += len(answer["applied"])
            duplicates += len(answer["duplicates"])
    return applied, duplicates, requests, failed


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far by the load generator (this process, all threads), the API
    server process, and PostgreSQL (the benchmark database's backends and the background
    processes: WAL writer, checkpointer, ...); and the whole machine's busy and idle CPU
    seconds (/proc/stat), so what other processes took in the same time shows."""

    loadgen: float
    server: float
    postgres: float
    busy: float
    idle: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.loadgen - other.loadgen, self.server - other.server,
                   self.postgres - other.postgres, self.busy - other.busy,
                   self.idle - other.idle)

    @property
    def others(self) -> float:
        """Busy CPU seconds of every other process on the machine."""
        return max(0.0, self.busy - self.loadgen - self.server - self.postgres)


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_now(engine: sa.Engine, server_pid: int, seen: dict[int, float]) -> Cpu:
    """CPU used so far. `seen` keeps the last reading of every PostgreSQL process met, so a
    backend that ends between two readings still counts up to its last one."""
    with engine.connect() as conn:
        pids = conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "OR backend_type <> 'client backend'")).scalars().all()
    for pid in pids:
        seen[int(pid)] = max(seen.get(int(pid), 0.0), _proc_cpu(int(pid)))
    busy, idle = _machine_cpu()
    return Cpu(time.process_time(), _proc_cpu(server_pid), sum(seen.values()), busy, idle)


def _machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot; idle includes iowait."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / _TICK, idle / _TICK


@dataclass(frozen=True)
class PathResult:
    name: str
    batch: int
    terminals: int
    entries: int
    requests: int
    failed: int
    seconds: float
    cpu: Cpu

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0

    def cpu_us(self, seconds: float) -> float:
        """CPU microseconds per entry."""
        return 1e6 * seconds / self.entries if self.entries else 0.0


Pusher = Callable[[Till], tuple[int, int, int, int]]


def run_path(name: str, tills: list[Till], batch: int, push: Pusher,
             cpu: Callable[[], Cpu]) -> PathResult:
    """All terminals push concurrently, one thread each (`push(till)`: applied, duplicates,
    requests, failed); wall time and CPU from the first request to the last answer."""
    results: dict[str, tuple[int, int, int, int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(tills) + 1)

    def work(till: Till) -> None:
        try:
            barrier.wait()
            results[till.terminal_id] = push(till)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,), name=f"push-{t.terminal_id}")
               for t in tills]
    for t in threads:
        t.start()
    before = cpu()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(3600)
    seconds = time.perf_counter() - start
    used = cpu() - before
    if errors:
        raise errors[0]
    applied = sum(r[0] for r in results.values())
    dups = sum(r[1] for r in results.values())
    if dups or applied != sum(t.entries for t in tills):
        raise RuntimeError(f"{name}: applied {applied}, duplicates {dups}, "
                           f"expected {sum(t.entries for t in tills)} new")
    return PathResult(name, batch, len(tills), applied, sum(r[2] for r in results.values()),
                      sum(r[3] for r in results.values()), seconds, used)


def terminal_pusher(creds: dict[str, str], base: str, batch: int) -> Pusher:
    """Push as the terminal does (`push_all`: outbox, SyncClient.push, record_push)."""
    def push(till: Till) -> tuple[int, int, int, int]:
        client = sync_client.SyncClient(base, creds[till.terminal_id], timeout=120)
        try:
            return push_all(till, client, batch)
        finally:
            client.close()
    return push


def prebuilt_pusher(tills: list[Till], creds: dict[str, str], base: str, batch: int
                    ) -> Pusher:
    """Send request bodies built now, before the timed run (`request_bodies`)."""
    bodies = {t.terminal_id: request_bodies(t, batch) for t in tills}
    return lambda till: post_all(bodies[till.terminal_id], base, creds[till.terminal_id])


# -- checks --------------------------------------------------------------------------------------

def table_count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(*where)).scalar_one())


def deadlocks(engine: sa.Engine) -> int:
    """pg_stat_database.deadlocks of the engine's database (the stats may lag ~0.5 s)."""
    time.sleep(0.6)
    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )).scalar_one())


def setting(engine: sa.Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text(f"SHOW {name}")).scalar_one())


def verify_exactly_once(engine: sa.Engine, tills: list[Till]) -> list[str]:
    """Problems found (empty: every entry applied exactly once)."""
    problems: list[str] = []
    with engine.connect() as conn:
        for till in tills:
            ids = till.store.read(lambda c: [e.id for e in journal.entries(c)])
            held = conn.execute(sa.select(schema.entries.c.id, schema.entries.c.seq)
                                .where(schema.entries.c.terminal == till.terminal_id)).all()
            if sorted(r.id for r in held) != sorted(ids):
                problems.append(f"{till.terminal_id}: server holds {len(held)} entries, "
                                f"journal has {len(ids)} (or different ids)")
            postings = conn.execute(sa.select(sa.func.count()).select_from(schema.ledger)
                                    .where(schema.ledger.c.terminal == till.terminal_id)
                                    ).scalar_one()
            if postings != till.deltas:
                problems.append(f"{till.terminal_id}: {postings} ledger postings, "
                                f"{till.deltas} deltas in the journal")
            last = conn.execute(sa.select(schema.terminals.c.last_seq)
                                .where(schema.terminals.c.id == till.terminal_id)).scalar_one()
            if last != till.entries:
                problems.append(f"{till.terminal_id}: server last_seq {last}, "
                                f"journal head {till.entries}")
        mismatches = ledger.check_balances(conn)
    if mismatches:
        problems.append(f"{len(mismatches)} purses whose balance differs from the ledger")
    return problems


def resend_everything(engine: sa.Engine, tills: list[Till], creds: dict[str, str], base: str,
                      batch: int) -> list[str]:
    """Push every journal again from seq 1: all duplicates, nothing new applied."""
    problems: list[str] = []
    before = (table_count(engine, schema.entries), table_count(engine, schema.ledger))
    for till in tills:
        journal_all = till.store.read(lambda c: [e.as_json() for e in journal.entries(c)])
        client = sync_client.SyncClient(base, creds[till.terminal_id], timeout=120)
        try:
            for i in range(0, len(journal_all), batch):
                answer = client.push(journal_all[i:i + batch])
                if answer.applied or answer.rejected or \
                        len(answer.duplicates) != len(journal_all[i:i + batch]):
                    problems.append(f"{till.terminal_id}: resend gave applied "
                                    f"{len(answer.applied)}, rejected {len(answer.rejected)}")
                    break
        finally:
            client.close()
    after = (table_count(engine, schema.entries), table_count(engine, schema.ledger))
    if after != before:
        problems.append(f"resend changed the tables: {before} -> {after}")
    return problems


# -- profile -------------------------------------------------------------------------------------

def profile_server_push(engine: sa.Engine, till: Till, batch: int, limit: int = 18) -> str:
    """`ledger.apply_push` in-process under cProfile for one terminal's journal (a fresh
    terminal id's worth is not needed: the caller gives a till not yet pushed)."""
    entries = till.store.read(lambda c: [e.as_json() for e in journal.entries(c)])
    # This process holds every journal and request body of the run: keep the garbage
    # collector's full passes over them out of apply_push's profile.
    gc.collect()
    gc.freeze()
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    for i in range(0, len(entries), batch):
        result = ledger.apply_push(engine, till.terminal_id, entries[i:i + batch])
        if result.rejected:
            raise RuntimeError(f"profile push rejected: {result.rejected[0]}")
    prof.disable()
    seconds = time.perf_counter() - start
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    head = (f"apply_push in-process (no HTTP): {len(entries):,} entries in {seconds:.2f} s = "
            f"{len(entries) / seconds:,.0f} entries/s under cProfile")
    return head + "\n" + out.getvalue()


def count_statements(engine: sa.Engine, till: Till, batch: int) -> tuple[int, int]:
    """SQL statements (execute calls) that `apply_push` sends for one batch: (statements,
    entries)."""
    entries = till.store.read(lambda c: [e.as_json() for e in journal.entries(c)])[:batch]
    n = [0]

    def counter(*_args: object) -> None:
        n[0] += 1

    sa.event.listen(engine, "before_cursor_execute", counter)
    try:
        ledger.apply_push(engine, till.terminal_id, entries)
    finally:
        sa.event.remove(engine, "before_cursor_execute", counter)
    return n[0], len(entries)


# -- main ----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--terminals", type=int, default=4, help="concurrent terminals (T)")
    parser.add_argument("--entries", type=int, default=10000,
                        help="redemptions per terminal for the batched path")
    parser.add_argument("--naive-entries", type=int, default=200,
                        help="redemptions per terminal for the one-per-request path")
    parser.add_argument("--sync-entries", type=int, default=None,
                        help="redemptions per terminal for the batched path through the "
                             "terminal's sync code (default: --entries, at most 1,000; "
                             "0: skip it)")
    parser.add_argument("--batch", type=int, default=500, help="entries per batched push")
    parser.add_argument("--cards", type=int, default=2000, help="cards on server and terminals")
    parser.add_argument("--cards-per-terminal", choices=("shared", "disjoint"), default="shared",
                        help="shared: every terminal redeems any card (batches of concurrent "
                             "terminals touch common purses); disjoint: terminal i only cards "
                             "i mod T")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="after the timed runs, profile apply_push in-process")
    args = parser.parse_args(argv)
    if args.sync_entries is None:
        args.sync_entries = min(args.entries, 1000)
    if min(args.terminals, args.entries, args.naive_entries, args.batch, args.cards) < 1 \
            or args.batch > 1000 or args.sync_entries < 0:
        parser.error("sizes must be >= 1 (--sync-entries >= 0) and --batch <= 1000")
    rng = random.Random(args.seed)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)

    print(f"cardpos sync ingest benchmark, {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command: {command}")
    for line in machine_lines(*DISTS):
        print(line)
    with postgres_version() as pg:
        print(f"postgresql: {pg}")
    print(f"sizes: {args.terminals} terminals per path, {args.entries:,} redemptions each "
          f"(batched, {args.batch}/request), {args.naive_entries:,} each (naive, 1/request), "
          f"{args.sync_entries:,} each (terminal sync code), {args.cards:,} cards")

    with tempfile.TemporaryDirectory(prefix="cardpos-ingest-") as tmp, \
            pg_database("cardpos_bench_ingest") as url:
        work = Path(tmp)
        csv = work / "cards.csv"
        write_cards_csv(csv, args.cards)
        engine = make_engine(url)
        tills: list[Till] = []
        try:
            issuer.import_cards(engine, csv)
            t0 = time.perf_counter()
            k = args.terminals if args.cards_per_terminal == "disjoint" else 1

            def fleet(prefix: str, n_redeems: int) -> list[Till]:
                return [make_till(work, f"{prefix}{i + 1}", csv, args.cards, n_redeems, rng,
                                  (i % k, k)) for i in range(args.terminals)]

            naive, batched = fleet("N", args.naive_entries), fleet("B", args.entries)
            synced = fleet("S", args.sync_entries) if args.sync_entries else []
            spare = (make_till(work, "P1", csv, args.cards, min(args.entries, 2000), rng)
                     if args.profile else None)
            tills = naive + batched + synced + ([spare] if spare else [])
            log(f"made {len(tills)} terminals and "
                f"{sum(t.entries for t in tills):,} journal entries in "
                f"{time.perf_counter() - t0:.1f} s (not timed)")
            server_log = work / "server.log"
            server_pids: list[int] = []
            with api_server(url, server_log, server_pids) as base:
                creds = {t.terminal_id: enrol(engine, base, t.terminal_id) for t in tills}
                seen: dict[int, float] = {}
                cpu = functools.partial(cpu_now, engine, server_pids[0], seen)
                t0 = time.perf_counter()
                naive_push = prebuilt_pusher(naive, creds, base, 1)
                batched_push = prebuilt_pusher(batched, creds, base, args.batch)
                log(f"request bodies built in {time.perf_counter() - t0:.1f} s (not timed)")
                log("naive path ...")
                d0 = deadlocks(engine)
                n_res = run_path("naive (1 entry/request)", naive, 1, naive_push, cpu)
                d1 = deadlocks(engine)
                log("batched path ...")
                b_res = run_path(f"batched ({args.batch} entries/request)", batched,
                                 args.batch, batched_push, cpu)
                d2 = deadlocks(engine)
                s_res = None
                if synced:
                    log("batched path through the terminal's sync code ...")
                    s_res = run_path(f"terminal sync code ({args.batch}/request)", synced,
                                     args.batch, terminal_pusher(creds, base, args.batch),
                                     cpu)
                d3 = deadlocks(engine)
                log("checking exactly-once ...")
                pushed = naive + batched + synced
                problems = verify_exactly_once(engine, pushed)
                problems += resend_everything(engine, pushed, creds, base, args.batch)
            print()
            print("== ingest through POST /v1/push into PostgreSQL "
                  f"({args.terminals} terminals concurrently, one thread each)")
            print(f"  {'path':<34} {'entries':>7} {'requests':>8} {'seconds':>7} "
                  f"{'entries/s':>9} {'ms/request':>10} {'HTTP 500':>8} "
                  f"{'CPU us/entry: loadgen server postgres':>38}")
            results = [r for r in (n_res, b_res, s_res) if r is not None]
            for r in results:
                print(f"  {r.name:<34} {r.entries:>7,} {r.requests:>8,} {r.seconds:>7.2f} "
                      f"{r.rate:>9,.0f} {1000 * r.seconds / r.requests * r.terminals:>10.2f}"
                      f" {r.failed:>8} {r.cpu_us(r.cpu.loadgen):>21,.0f} "
                      f"{r.cpu_us(r.cpu.server):>6,.0f} {r.cpu_us(r.cpu.postgres):>8,.0f}")
            ratio = b_res.rate / n_res.rate if n_res.rate else float("inf")
            print(f"  ratio batched/naive: {ratio:.1f}x")
            for r in results:
                ours = r.cpu.loadgen + r.cpu.server + r.cpu.postgres
                print(f"  machine CPU during {r.name}: {r.cpu.busy:.1f} s busy "
                      f"(this benchmark {ours:.1f} s, other processes {r.cpu.others:.1f} s), "
                      f"{r.cpu.idle:.1f} s idle, of {r.seconds * (os.cpu_count() or 1):.1f} s; "
                      f"{r.cpu_us(ours):,.0f} us CPU per entry in all = at most "
                      f"{(os.cpu_count() or 1) * r.entries / ours if ours else 0:,.0f} "
                      "entries/s with the CPUs to this benchmark alone")
            print(f"  PostgreSQL deadlocks detected (pg_stat_database; each costs "
                  f"deadlock_timeout = {setting(engine, 'deadlock_timeout')} before "
                  f"apply_push retries the whole batch): naive {d1 - d0}, batched {d2 - d1}"
                  + (f", terminal sync code {d3 - d2}" if s_res else ""))
            text = server_log.read_text(encoding="utf-8", errors="replace")
            print(f"  server log: {text.count('unhandled error')} unhandled errors (HTTP 500), "
                  f"{text.count('DeadlockDetected')} of them DeadlockDetected after "
                  f"{RETRIES} attempts")
            print(f"  cards redeemed: {args.cards_per_terminal} "
                  f"({args.cards:,} cards on server and terminals)")
            print("  (entries include each journal's shift_open; ms/request is per terminal "
                  "thread; naive and batched send request bodies built before timing, the "
                  "terminal sync code path reads its outbox, pushes with SyncClient and "
                  f"records the answer; load generator, server and PostgreSQL share "
                  f"{os.cpu_count()} CPUs: CPU us/entry is each one's CPU time in the run)")
            print()
            print("== exactly once")
            ok = not problems
            total = sum(t.entries for t in pushed)
            if ok:
                print(f"  ok: {total:,} entries held once each, "
                      f"{sum(t.deltas for t in pushed):,} ledger postings, "
                      "every last_seq = journal head, balances = ledger sums; "
                      "a full resend came back as duplicates only")
            for p in problems:
                print(f"  PROBLEM: {p}")
            if spare is not None:
                print()
                print("== profile (after the timed runs)")
                stmts, n = count_statements(engine, spare, args.batch)
                print(f"  SQL statements for one batch of {n} entries: {stmts} "
                      f"({stmts / n:.1f} per entry)")
                print(profile_server_push(engine, spare, args.batch))
            print()
            print("== summary")
            goal = 10_000
            print(f"SUMMARY ingest batched={b_res.rate:.0f} entries/s "
                  f"deadlocks={d2 - d1} http500={b_res.failed} "
                  f"naive={n_res.rate:.0f} entries/s ratio={ratio:.1f} "
                  + (f"terminal_sync_code={s_res.rate:.0f} entries/s " if s_res else "")
                  + f"goal>={goal} {'met' if b_res.rate >= goal else 'missed'} "
                  f"exactly_once={'ok' if ok else 'FAILED'}")
            return 0 if ok else 1
        finally:
            for t in tills:
                t.store.close()
            engine.dispose()


@contextlib.contextmanager
def postgres_version() -> Iterator[str]:
    import psycopg
    try:
        with psycopg.connect(postgres.CONNINFO, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        yield str(row[0]) if row else "?"
    except psycopg.Error:
        yield "unreachable"


if __name__ == "__main__":
    sys.exit(main())
