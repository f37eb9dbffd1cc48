"""Benchmark of the terminal core at scale: card import, decision latency, durable redeem commit.

Run:  .venv/bin/python bench/core.py [--cards 1000000] [--ops 20000] [--redeems 2000] [--dir DIR]
                                      [--seed 1] [--keep] [--profile]

Prints figures; asserts nothing about speed (it exits non-zero only if the product misbehaves,
e.g. a redemption that should be approved is not). See docs/benchmarks.md for a full run and
what the goals of issue 2 are.

Steps:
1. Generate a CSV of N cards in the import format (valid Luhn numbers, unique 7-byte UIDs, a mix
   of programs, ~20 % with a second purse, no PINs, expiry a year out, all active).
2. Import it with `admin.import_card_file` into a fresh store; close the store (SQLite
   checkpoints the WAL into the main file on last close) and measure the file size.
3. Decision latency: `Terminal.inquire(NfcUid(uid))` for M random cards against a raw indexed
   `SELECT ... WHERE uid = ?` on a plain sqlite3 connection, in alternating blocks (and in a
   shorter pass alternating op by op); plus a breakdown (read transaction, limits load, card
   load, pure rules).
4. Durable redeem commit: `Terminal.redeem(NfcUid(uid), 1)` for K random cards against,
   alternating op by op, a bare `BEGIN IMMEDIATE; INSERT (~600 bytes); COMMIT` on a separate
   database file in the same directory with the same pragmas (WAL, synchronous=FULL), and the same
   INSERT sent through a `Store.write` job of a second Store (the writer-thread hand-off); then
   the WAL bytes per commit and the CPU time of each thread per operation.
5. A summary table, versions and the command line.

With --profile, extra passes (after the timed ones, so the figures are not distorted) run under
cProfile: an import of up to 100,000 cards, inquiries on the main thread, and redemptions on the
store's writer thread (the profiler is switched on from inside a write job, so it runs on the
thread that does the work).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import math
import os
import platform
import pstats
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

from terminal import admin, journal, rules
from terminal.credentials import NfcUid
from terminal.limits import Limits
from terminal.luhn import check_digit
from terminal.model import Card, Role
from terminal.services import Shifts, Terminal
from terminal.store import queries
from terminal.store.db import DB_FILE, Store

TERMINAL_ID = "BENCH-1"
CASHIER, CASHIER_PIN = "bench", "2580"
NUMBER_PREFIX = "6299"
# (program, first purse, second purse); the second is given to ~20 % of cards.
PROGRAMS: tuple[tuple[str, str, str], ...] = (
    ("fuel", "fuel", "general"),
    ("phone", "phone", "general"),
    ("shopping", "general", "bonus"),
    ("transit", "transit", "general"),
)
PROGRAM_WEIGHTS = (30, 30, 30, 10)
SECOND_PURSE_SHARE = 0.20
# UIDs: 0x04 (NXP) + 6 bytes from an odd multiplier mod 2^48 — a bijection, so all unique.
_UID_MUL, _UID_ADD, _UID_MASK = 0x5DEECE66D, 0x1B0C_2E7A_9F31, (1 << 48) - 1
BASELINE_ROW_BYTES = 600
# Limits raised so that no benchmark redemption is declined by the offline limits.
# (offline_max_hours stays within what timedelta accepts: the rule builds timedelta(hours=...).)
RAISED_LIMITS = (("offline_per_transaction", "999999999999"),
                 ("offline_per_card_day", "999999999999"),
                 ("offline_terminal_total", "999999999999"),
                 ("offline_max_hours", "87600"))
PROFILE_IMPORT_CARDS = 100_000


def log(message: str) -> None:
    """Progress on stderr (figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- card data ----------------------------------------------------------------------------------

def card_number(serial: int) -> str:
    body = f"{NUMBER_PREFIX}{serial:011d}"
    return body + check_digit(body)


def card_uid(serial: int) -> str:
    return f"04{(serial * _UID_MUL + _UID_ADD) & _UID_MASK:012X}"


@dataclass(frozen=True)
class CsvInfo:
    cards: int
    rows: int
    bytes: int
    seconds: float


def write_cards_csv(path: Path, n_cards: int, rng: random.Random, expiry: date) -> CsvInfo:
    """The import file: one row per purse, `number,uid,program,purse,balance,currency,...`."""
    start = time.perf_counter_ns()
    exp = expiry.isoformat()
    rows = 0
    programs = rng.choices(range(len(PROGRAMS)), weights=PROGRAM_WEIGHTS, k=n_cards)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("number,uid,program,purse,balance,currency,expiry,status,pin\n")
        chunk: list[str] = []
        for serial in range(n_cards):
            program, first, second = PROGRAMS[programs[serial]]
            number, uid = card_number(serial), card_uid(serial)
            cents = rng.randrange(1_00, 500_01)
            chunk.append(f"{number},{uid},{program},{first},{cents // 100}.{cents % 100:02d},"
                         f"EUR,{exp},active,\n")
            rows += 1
            if rng.random() < SECOND_PURSE_SHARE:
                cents = rng.randrange(1_00, 200_01)
                chunk.append(f"{number},{uid},{program},{second},{cents // 100}."
                             f"{cents % 100:02d},EUR,{exp},active,\n")
                rows += 1
            if len(chunk) >= 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return CsvInfo(n_cards, rows, path.stat().st_size, (time.perf_counter_ns() - start) / 1e9)


# -- statistics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stats:
    """Latency percentiles of one measured operation, in microseconds (nearest rank)."""

    label: str
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, label: str, samples_ns: Sequence[int]) -> Stats:
        data = sorted(samples_ns)
        n = len(data)

        def pct(p: float) -> float:
            return data[max(math.ceil(p / 100 * n) - 1, 0)] / 1000

        return cls(label, n, pct(50), pct(90), pct(99), data[-1] / 1000,
                   statistics.fmean(data) / 1000)

    def row(self) -> str:
        return (f"  {self.label:<50} {self.n:>7} {self.p50:>10.1f} {self.p90:>10.1f}"
                f" {self.p99:>10.1f} {self.max:>10.1f} {self.mean:>10.1f}")


STATS_HEADER = (f"  {'operation':<50} {'n':>7} {'p50 µs':>10} {'p90 µs':>10} {'p99 µs':>10}"
                f" {'max µs':>10} {'mean µs':>10}")


def timed(op: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    op()
    return time.perf_counter_ns() - start


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


# -- import -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportResult:
    cards: int
    purses: int
    seconds: float
    close_seconds: float
    db_bytes: int
    wal_bytes_before_close: int


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def run_import(store_dir: Path, csv_path: Path, now: datetime) -> ImportResult:
    store = admin.init_store(store_dir, TERMINAL_ID, Limits(), now)
    db = store_dir / DB_FILE
    try:
        gc.collect()
        start = time.perf_counter_ns()
        summary = admin.import_card_file(store, csv_path)
        seconds = (time.perf_counter_ns() - start) / 1e9
        wal = file_size(db.with_name(db.name + "-wal"))
    finally:
        start = time.perf_counter_ns()
        store.close()  # the last connection to close checkpoints the WAL into the main file
        close_seconds = (time.perf_counter_ns() - start) / 1e9
    leftover = file_size(db.with_name(db.name + "-wal"))
    return ImportResult(summary.cards, summary.purses, seconds, close_seconds,
                        file_size(db) + leftover, wal)


# -- decision -----------------------------------------------------------------------------------

def plain_connection(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           isolation_level=None)


@dataclass(frozen=True)
class DecisionResult:
    raw: Stats
    inquire: Stats
    cold: list[Stats]
    parts: list[Stats]


DECISION_BLOCK = 500


def run_decisions(store: Store, db_path: Path, n_cards: int, n_ops: int, rng: random.Random
                  ) -> DecisionResult:
    """Time M raw SELECTs and M inquiries in alternating blocks of DECISION_BLOCK: each runs in
    its own hot loop (as a benchmark of either alone would), and both see the same machine over
    the run. Then a shorter pass alternating op by op (each op after the other kind: colder CPU
    caches), to show how sensitive the small raw figure is."""
    terminal = Terminal(store)
    raw_conn = plain_connection(db_path)
    raw_sql = "SELECT number, program, status FROM cards WHERE uid = ?"

    def raw(uid: str) -> int:
        start = time.perf_counter_ns()
        row = raw_conn.execute(raw_sql, (uid,)).fetchone()
        elapsed = time.perf_counter_ns() - start
        if row is None:
            raise SystemExit(f"unexpected: card {uid} not found")
        return elapsed

    def inquire(uid: NfcUid) -> int:
        start = time.perf_counter_ns()
        result = terminal.inquire(uid)
        elapsed = time.perf_counter_ns() - start
        if not result.approved:
            raise SystemExit(f"unexpected: card {uid.uid} not usable: {result.decision.as_json()}")
        return elapsed

    def uids(n: int) -> list[str]:
        return [card_uid(rng.randrange(n_cards)) for _ in range(n)]

    try:
        # Warm both paths (statement caches, connection setup, first pages, CPU caches).
        for uid in uids(min(n_ops, 2000)):
            raw(uid)
        for uid in uids(min(n_ops, 2000)):
            inquire(NfcUid(uid))
        raw_ns: list[int] = []
        inquire_ns: list[int] = []
        gc.collect()
        done = 0
        while done < n_ops:
            size = min(DECISION_BLOCK, n_ops - done)
            raw_ns += [raw(u) for u in uids(size)]
            inquire_ns += [inquire(NfcUid(u)) for u in uids(size)]
            done += size
        raw_cold: list[int] = []
        inquire_cold: list[int] = []
        for uid_a, uid_b in zip(uids(max(n_ops // 4, 1)), uids(max(n_ops // 4, 1)), strict=True):
            raw_cold.append(raw(uid_a))
            inquire_cold.append(inquire(NfcUid(uid_b)))
        parts = decision_breakdown(store, raw_conn, n_cards, n_ops, rng)
    finally:
        raw_conn.close()
    return DecisionResult(
        Stats.of("raw SELECT by uid (plain sqlite3)", raw_ns),
        Stats.of("decision: Terminal.inquire(NfcUid)", inquire_ns),
        [Stats.of("  raw SELECT, alternating op by op", raw_cold),
         Stats.of("  Terminal.inquire, alternating op by op", inquire_cold)],
        parts)


def decision_breakdown(store: Store, conn: sqlite3.Connection, n_cards: int, n_ops: int,
                       rng: random.Random) -> list[Stats]:
    """Pieces of the decision path, each timed on its own, to show where the time goes."""
    n = max(n_ops // 2, 1)
    uids = [card_uid(rng.randrange(n_cards)) for _ in range(n)]
    limits = queries.load_limits(conn)
    now = datetime.now(UTC)
    today = now.date()
    exposure = rules.OfflineExposure(now - timedelta(hours=1), 0, 0)
    cards: list[Card] = []
    for uid in uids:
        card = queries.load_card(conn, uid=uid)
        assert card is not None
        cards.append(card)

    def rules_path(card: Card) -> None:
        state = rules.card_state(card, today, limits)
        plan, _ = rules.plan_debit(card, 1, None, limits)
        offline = rules.offline_gate(1, now, exposure, limits)
        assert state.approved and plan.approved and offline.approved

    gc.collect()
    out = [
        Stats.of("  store.read(no-op job): BEGIN/COMMIT",
                 [timed(lambda: store.read(lambda c: None)) for _ in range(n)]),
        Stats.of("  queries.load_limits (meta + JSON + check)",
                 [timed(lambda: queries.load_limits(conn)) for _ in range(n)]),
        Stats.of("  queries.load_card(uid=) (card + purses)",
                 [timed(lambda u=u: queries.load_card(conn, uid=u)) for u in uids]),  # type: ignore[misc]
        Stats.of("  rules only: card_state+plan_debit+offline_gate",
                 [timed(lambda c=c: rules_path(c)) for c in cards]),  # type: ignore[misc]
    ]
    return out


# -- redeem -------------------------------------------------------------------------------------

def baseline_connection(path: Path) -> sqlite3.Connection:
    """A plain connection with the store's pragmas: WAL, synchronous=FULL, autocommit mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise SystemExit("WAL refused for the baseline file")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    return conn


def baseline_row(rng: random.Random) -> str:
    return rng.randbytes(BASELINE_ROW_BYTES // 2).hex()


@dataclass(frozen=True)
class RedeemResult:
    redeem: Stats
    bare: Stats
    via_store: Stats
    approved: int
    attempted: int
    journal_body_bytes: float
    wal_bytes_per_redeem: float
    wal_bytes_per_bare: float
    journal_ok: bool
    cpu: list[CpuSplit]


@dataclass(frozen=True)
class CpuSplit:
    """Wall time of an operation next to the CPU time the threads spent on it (medians, in µs);
    the rest is waiting (for fdatasync, mostly, and for the thread hand-off)."""

    label: str
    n: int
    wall_us: float
    caller_cpu_us: float
    writer_cpu_us: float
    wall_mean_us: float

    def row(self) -> str:
        waiting = self.wall_us - self.caller_cpu_us - self.writer_cpu_us
        return (f"  {self.label:<50} {self.n:>7} {self.wall_us:>10.1f} {self.caller_cpu_us:>10.1f}"
                f" {self.writer_cpu_us:>10.1f} {waiting:>10.1f} {self.wall_mean_us:>10.1f}")


CPU_HEADER = (f"  {'operation (medians)':<50} {'n':>7} {'wall µs':>10} {'caller CPU':>10}"
              f" {'writer CPU':>10} {'waiting':>10} {'wall mean':>10}")


def writer_cpu_ns(store: Store) -> int:
    """CPU time so far of the store's writer thread, read from inside a (no-op) write job."""
    return store.write(lambda c: time.thread_time_ns())


def cpu_split(label: str, n: int, op: Callable[[], object], writer: Store | None) -> CpuSplit:
    """Run `op` n times: wall time, caller-thread CPU and writer-thread CPU of each run."""
    probe = 0.0
    if writer is not None:  # what one probe job costs the writer thread, to take it off
        marks = [writer_cpu_ns(writer) for _ in range(51)]
        probe = statistics.median(b - a for a, b in itertools.pairwise(marks))
    wall: list[int] = []
    caller: list[int] = []
    busy: list[int] = []
    for _ in range(n):
        w0 = writer_cpu_ns(writer) if writer is not None else 0
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        op()
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        w1 = writer_cpu_ns(writer) if writer is not None else 0
        wall.append(t1 - t0)
        caller.append(c1 - c0)
        busy.append(w1 - w0)
    return CpuSplit(label, n, statistics.median(wall) / 1000, statistics.median(caller) / 1000,
                    max(statistics.median(busy) - probe, 0.0) / 1000,
                    statistics.fmean(wall) / 1000)


def wal_path(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def run_redeems(store: Store, db_path: Path, work: Path, n_cards: int, n_redeems: int,
                rng: random.Random) -> RedeemResult:
    now = datetime.now(UTC)
    for name, value in RAISED_LIMITS:
        admin.set_limit(store, name, value, now)
    admin.new_cashier(store, CASHIER, "Bench cashier", Role.CASHIER, CASHIER_PIN)
    decision, shift = Shifts(store).open(CASHIER, CASHIER_PIN)
    if not decision.approved or shift is None:
        raise SystemExit(f"could not open a shift: {decision.as_json()}")
    terminal = Terminal(store)
    bare_path = work / "baseline.sqlite3"
    bare = baseline_connection(bare_path)
    # A second Store (own file, same code) to time the same bare INSERT through the writer
    # thread: the hand-off cost any Store.write pays, without the redeem's own work.
    side_store = Store.create(work / "side-store")
    side_store.write(lambda c: c.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    approved = attempted = 0
    bodies: list[int] = []

    def redeem() -> int:
        """One timed redemption of 0.01 from a random card; returns its wall time in ns."""
        nonlocal approved, attempted
        uid = NfcUid(card_uid(rng.randrange(n_cards)))
        start = time.perf_counter_ns()
        result = terminal.redeem(uid, 1)
        elapsed = time.perf_counter_ns() - start
        attempted += 1
        if not result.approved:
            raise SystemExit(f"redemption not approved: {result.decision.as_json()}")
        approved += 1
        if len(bodies) < 200:
            assert result.entry is not None
            bodies.append(len(journal.canonical(result.entry.body)))
        return elapsed

    def insert(conn: sqlite3.Connection, row: str) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (row,))
        conn.execute("COMMIT")

    def insert_in_job(row: str) -> None:
        side_store.write(lambda c: c.execute("INSERT INTO t (body) VALUES (?)", (row,)))

    try:
        # WAL bytes per commit: the WAL only grows until the first checkpoint (1000 pages), so
        # a few commits on a fresh WAL show how many pages each one writes.
        probe = 20
        before = file_size(wal_path(db_path))
        for _ in range(probe):
            redeem()
        wal_redeem = (file_size(wal_path(db_path)) - before) / probe
        before = file_size(wal_path(bare_path))
        for _ in range(probe):
            insert(bare, baseline_row(rng))
        wal_bare = (file_size(wal_path(bare_path)) - before) / probe
        for _ in range(min(n_redeems, 200)):  # warm-up
            redeem()
            insert(bare, baseline_row(rng))
            insert_in_job(baseline_row(rng))
        redeem_ns: list[int] = []
        bare_ns: list[int] = []
        via_ns: list[int] = []
        attempted_before = attempted
        gc.collect()
        for _ in range(n_redeems):
            rows = baseline_row(rng), baseline_row(rng)
            redeem_ns.append(redeem())
            bare_ns.append(timed(lambda r=rows[0]: insert(bare, r)))  # type: ignore[misc]
            via_ns.append(timed(lambda r=rows[1]: insert_in_job(r)))  # type: ignore[misc]
        timed_attempts = attempted - attempted_before
        n_cpu = min(n_redeems, 500)
        cpu = [
            cpu_split("bare BEGIN IMMEDIATE; INSERT; COMMIT", n_cpu,
                      lambda: insert(bare, baseline_row(rng)), None),
            cpu_split("  same INSERT as a Store.write job", n_cpu,
                      lambda: insert_in_job(baseline_row(rng)), side_store),
            cpu_split("redeem: Terminal.redeem(NfcUid, 1)", n_cpu, redeem, store),
        ]
        verify = admin.verify_journal(store)
        redeems_in_journal = store.read(lambda c: c.execute(
            "SELECT count(*) FROM journal WHERE kind = 'redeem'").fetchone()[0])
        if redeems_in_journal != approved:
            raise SystemExit(f"journal holds {redeems_in_journal} redeem entries, "
                             f"{approved} were approved")
    finally:
        bare.close()
        side_store.close()
    return RedeemResult(
        Stats.of("redeem: Terminal.redeem(NfcUid, 1) durable", redeem_ns),
        Stats.of("bare BEGIN IMMEDIATE; INSERT ~600 B; COMMIT", bare_ns),
        Stats.of("  same INSERT as a Store.write job", via_ns),
        approved, attempted, statistics.fmean(bodies) if bodies else 0.0,
        wal_redeem, wal_bare, verify.ok and timed_attempts == n_redeems, cpu)


# -- profiles -----------------------------------------------------------------------------------

def profile_text(prof: cProfile.Profile, title: str, sort: str, limit: int,
                 callers_of: str | None = None, cumulative: int = 0) -> str:
    buf = io.StringIO()
    buf.write(f"\n== profile: {title} (sorted by {sort}, top {limit})\n")
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(sort)
    stats.print_stats(limit)
    if callers_of is not None:
        stats.print_callers(callers_of)
    if cumulative:
        buf.write(f"\n== profile: {title} (sorted by cumulative time, top {cumulative})\n")
        stats.sort_stats("cumulative").print_stats(cumulative)
    return buf.getvalue()


def run_profiles(store: Store, work: Path, csv_path: Path, n_cards: int, n_ops: int,
                 n_redeems: int, rng: random.Random, now: datetime) -> str:
    out: list[str] = []
    # Import of a subset (the first cards of the file) into its own store, profiled on the
    # writer thread.
    subset = work / "profile-cards.csv"
    limit_rows = PROFILE_IMPORT_CARDS
    with csv_path.open(encoding="utf-8") as src, subset.open("w", encoding="utf-8") as dst:
        dst.write(next(src))
        seen: set[str] = set()
        for line in src:
            number = line.split(",", 1)[0]
            if number not in seen and len(seen) >= limit_rows:
                break
            seen.add(number)
            dst.write(line)
    side = admin.init_store(work / "profile-store", TERMINAL_ID, Limits(), now)
    prof = cProfile.Profile()
    side.write(lambda c: prof.enable())
    admin.import_card_file(side, subset)
    side.write(lambda c: prof.disable())
    side.close()
    out.append(profile_text(prof, f"import of {len(seen):,} cards (writer thread)", "tottime",
                            15))

    terminal = Terminal(store)
    prof = cProfile.Profile()
    uids = [NfcUid(card_uid(rng.randrange(n_cards))) for _ in range(min(n_ops, 5000))]
    prof.enable()
    for uid in uids:
        terminal.inquire(uid)
    prof.disable()
    out.append(profile_text(prof, f"{len(uids):,} x Terminal.inquire (main thread)", "tottime",
                            18, callers_of="execute", cumulative=25))

    prof = cProfile.Profile()
    count = min(n_redeems, 1000)
    store.write(lambda c: prof.enable())
    for _ in range(count):
        terminal.redeem(NfcUid(card_uid(rng.randrange(n_cards))), 1)
    store.write(lambda c: prof.disable())
    out.append(profile_text(prof, f"{count:,} x Terminal.redeem (writer thread)", "tottime", 18,
                            callers_of="execute", cumulative=30))
    return "".join(out)


# -- report -------------------------------------------------------------------------------------

def versions() -> list[str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    return [
        f"python {platform.python_version()} ({platform.python_implementation()})",
        f"sqlite {sqlite3.sqlite_version} (module sqlite3)",
        f"sqlite-utils {version('sqlite-utils')}; cardpos {version('cardpos')}",
        f"platform {platform.platform()}; {os.cpu_count()} CPUs; machine {platform.machine()}",
        f"cardpos source: {source_revision()}",
        "load average (1/5/15 min) now: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    ]


def source_revision() -> str:
    """The git commit of the checkout and how many files differ from it (read-only git calls)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status",
                                 "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = len(status.stdout.splitlines())
    return f"git {head.stdout.strip()}" + (f" + {changed} changed files" if changed else "")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cards", type=int, default=1_000_000, help="cards to import (N)")
    parser.add_argument("--ops", type=int, default=20_000, help="decisions to time (M)")
    parser.add_argument("--redeems", type=int, default=None,
                        help="redemptions to time (K; default min(2000, --ops))")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent directory of the run's work directory (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="after the timed passes, print cProfile profiles")
    args = parser.parse_args(argv)
    n_cards, n_ops = args.cards, args.ops
    n_redeems = args.redeems if args.redeems is not None else min(2000, n_ops)
    if n_cards < 1 or n_ops < 1 or n_redeems < 1:
        parser.error("--cards, --ops and --redeems must be positive")
    command = shlex.join([sys.executable, *sys.argv])
    started_at = datetime.now(UTC)
    rng = random.Random(args.seed)

    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cardpos-bench-", dir=args.dir))
    print(f"cardpos core benchmark, {started_at.isoformat(timespec='seconds')}")
    print(f"command: {command}")
    for line in versions():
        print(line)
    print(f"work dir: {work}{' (kept)' if args.keep else ' (removed at the end)'}")
    print(f"sizes: {n_cards:,} cards, {n_ops:,} decisions, {n_redeems:,} redemptions,"
          f" seed {args.seed}")
    print("note: the card file has no PINs; a clear PIN costs ~80 ms of scrypt at import by"
          " design (1M PINs ~ 22 CPU-hours), so the import figures exclude PIN hashing.",
          flush=True)
    try:
        now = datetime.now(UTC)
        csv_path = work / "cards.csv"
        log(f"writing {n_cards:,} cards to {csv_path}")
        csv_info = write_cards_csv(csv_path, n_cards, rng, now.date() + timedelta(days=365))
        log(f"csv: {csv_info.rows:,} rows, {csv_info.bytes / 1e6:.1f} MB in"
            f" {csv_info.seconds:.1f} s; importing")
        store_dir = work / "store"
        imp = run_import(store_dir, csv_path, now)
        db_path = store_dir / DB_FILE
        log(f"imported in {imp.seconds:.1f} s (+{imp.close_seconds:.1f} s checkpoint on close);"
            " timing decisions")

        store = Store.open(store_dir)
        try:
            dec = run_decisions(store, db_path, n_cards, n_ops, rng)
            log("timing redemptions")
            red = run_redeems(store, db_path, work, n_cards, n_redeems, rng)
            profiles = ""
            if args.profile:
                log("profiling")
                profiles = run_profiles(store, work, csv_path, n_cards, n_ops, n_redeems, rng,
                                        now)
        finally:
            store.close()

        print()
        print("== import")
        print(f"  csv: {csv_info.cards:,} cards, {csv_info.rows:,} rows,"
              f" {csv_info.bytes / 1e6:.1f} MB, written in {csv_info.seconds:.1f} s")
        print(f"  admin.import_card_file: {imp.cards:,} cards / {imp.purses:,} purse rows in"
              f" {imp.seconds:.2f} s = {imp.purses / imp.seconds:,.0f} rows/s"
              f" ({imp.cards / imp.seconds:,.0f} cards/s)")
        print(f"  WAL before close: {imp.wal_bytes_before_close / 1e6:.1f} MB;"
              f" close (checkpoint into the main file): {imp.close_seconds:.2f} s")
        print(f"  store file after close: {imp.db_bytes / 1e6:.1f} MB"
              f" = {imp.db_bytes / imp.cards:.0f} bytes/card")
        print()
        print("== decision (random cards; raw and inquire in alternating blocks of"
              f" {DECISION_BLOCK})")
        print(STATS_HEADER)
        for s in (dec.raw, dec.inquire, *dec.cold, *dec.parts):
            print(s.row())
        print()
        print("== durable redeem commit (random cards; the three alternate op by op)")
        print(STATS_HEADER)
        for s in (red.bare, red.via_store, red.redeem):
            print(s.row())
        print(f"  journal entry body: {red.journal_body_bytes:.0f} bytes on average;"
              f" baseline row: {BASELINE_ROW_BYTES} bytes")
        print(f"  WAL written per commit: redeem {red.wal_bytes_per_redeem:,.0f} bytes"
              f" ({red.wal_bytes_per_redeem / 4120:.1f} pages),"
              f" bare insert {red.wal_bytes_per_bare:,.0f} bytes"
              f" ({red.wal_bytes_per_bare / 4120:.1f} pages)")
        print()
        print("== where the commit time goes: CPU per op (time.thread_time_ns; writer CPU is read")
        print("   from inside write jobs; waiting = wall - CPU: fdatasync, thread hand-off)")
        print(CPU_HEADER)
        for c in red.cpu:
            print(c.row())
        if profiles:
            print(profiles)

        d50, d99 = ratio(dec.inquire.p50, dec.raw.p50), ratio(dec.inquire.p99, dec.raw.p99)
        r50, r99 = ratio(red.redeem.p50, red.bare.p50), ratio(red.redeem.p99, red.bare.p99)
        print()
        print("== summary")
        print(STATS_HEADER)
        for s in (dec.raw, dec.inquire, dec.parts[-1], red.bare, red.redeem):
            print(s.row())
        print(f"  import: {imp.cards:,} cards ({imp.purses:,} rows) in {imp.seconds:.1f} s ="
              f" {imp.purses / imp.seconds:,.0f} rows/s; checkpoint on close"
              f" {imp.close_seconds:.1f} s")
        print(f"  store size: {imp.db_bytes / 1e6:.1f} MB = {imp.db_bytes / imp.cards:.0f}"
              " bytes/card")
        print(f"  decision / raw SELECT: p50 {d50:.1f}x, p99 {d99:.1f}x (goal <= 20x:"
              f" {verdict(d50 <= 20 and d99 <= 20)}); decision p99 {dec.inquire.p99:.0f} µs"
              f" (goal <= 1000 µs: {verdict(dec.inquire.p99 <= 1000)})")
        print(f"  redeem / bare INSERT+COMMIT: p50 {r50:.2f}x, p99 {r99:.2f}x (goal <= 1.5x:"
              f" {verdict(r50 <= 1.5 and r99 <= 1.5)})")
        print(f"  redemptions approved: {red.approved:,} of {red.attempted:,};"
              f" journal chain verified: {'ok' if red.journal_ok else 'FAILED'}")
        for line in versions():
            print(f"  {line}")
        print(f"  command: {command}")
        print(f"  total run time: {(datetime.now(UTC) - started_at).total_seconds():.0f} s")
        return 0 if red.journal_ok else 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
