"""Benchmark of loading the card snapshot into an empty terminal, and of a 10k-change delta.

Run:  .venv/bin/python bench/sync_snapshot.py [--cards 100000] [--changes 10000] [--limit N]
          [--analyze] [--profile]

Prints figures; asserts nothing about speed (it exits non-zero only if the product misbehaves:
the terminal does not end up with every card, or the frozen cards are not frozen there). Goals
of issue 4: 1M cards into an empty terminal <= 30 s; a 10k-change delta <= 1 s. See
docs/benchmarks-sync.md.

Steps (only 3 and 5 are timed):
1. A throwaway PostgreSQL database, migrated; N PIN-less cards imported (`issuer.import_cards`,
   one purse each, every 5th card a second one); uvicorn serving `create_app(url)` in a
   subprocess on a free 127.0.0.1 port (bench/sync_ingest.py's helper).
2. A fresh terminal store (`admin.init_store`), enrolled through `POST /v1/enrol`.
3. `sync.client.sync_once` — the terminal's real round: nothing to push, then pull pages of
   `--limit` changes until `more` is false, each page checked and applied in one store write
   while the next one is fetched. By default right after the import, before autovacuum has
   given the planner statistics (`--analyze` runs ANALYZE first).
4. K cards frozen on the server (`ledger.set_status` in one transaction, as `issuer.freeze`
   does per card).
5. `sync_once` again: the delta of K changed cards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shlex
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from benchlib import machine_lines
from sync_ingest import (  # sibling: `python bench/X.py` puts bench/ on the path
    DISTS,
    GENEROUS,
    START,
    api_server,
    card_number,
    enrol,
    log,
    pg_database,
    postgres_version,
    write_cards_csv,
)

from sync import client as sync_client
from sync.server import issuer, ledger
from sync.server.db import make_engine, utc_now
from terminal import admin
from terminal.store.db import Store


def freeze_many(engine: sa.Engine, numbers: list[str]) -> None:
    now = utc_now()
    with engine.begin() as conn:
        changes = ledger.ChangeLog()
        for number in numbers:
            ledger.set_status(conn, number, "frozen", "bench", now, log=changes)
        changes.flush(conn)


def store_counts(store: Store) -> tuple[int, int]:
    def job(conn: sqlite3.Connection) -> tuple[int, int]:
        c = conn.execute("SELECT count(*) FROM cards").fetchone()[0]
        f = conn.execute("SELECT count(*) FROM cards WHERE status = 'frozen'").fetchone()[0]
        return int(c), int(f)
    return store.read(job)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cards", type=int, default=100_000, help="cards on the server (N)")
    parser.add_argument("--changes", type=int, default=10_000,
                        help="cards frozen for the delta (K)")
    parser.add_argument("--limit", type=int, default=None,
                        help="pull page size (default: the client's, DEFAULT_PULL_LIMIT)")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the server database after the import (as autovacuum does"
                             " within a minute); default: the snapshot right after the import,"
                             " with no planner statistics yet")
    parser.add_argument("--profile", action="store_true",
                        help="profile the client side of the snapshot (server runs apart)")
    args = parser.parse_args(argv)
    if args.cards < 1 or not 0 <= args.changes <= args.cards:
        parser.error("need --cards >= 1 and 0 <= --changes <= --cards")
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)
    print(f"cardpos sync snapshot benchmark, {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command: {command}")
    for line in machine_lines(*DISTS):
        print(line)
    with postgres_version() as pg:
        print(f"postgresql: {pg}")
    from sync.protocol import DEFAULT_PULL_LIMIT
    limit = args.limit or DEFAULT_PULL_LIMIT
    print(f"sizes: {args.cards:,} cards, {args.changes:,} frozen for the delta, "
          f"pull pages of {limit}")
    if args.limit:  # sync_once pulls with the protocol default: patch the call it makes
        original = sync_client.SyncClient.pull
        sync_client.SyncClient.pull = (  # type: ignore[method-assign]
            lambda self, cursor, limit=limit: original(self, cursor, limit))

    with tempfile.TemporaryDirectory(prefix="cardpos-snapshot-") as tmp, \
            pg_database("cardpos_bench_snapshot") as url:
        work = Path(tmp)
        csv = work / "cards.csv"
        rows = write_cards_csv(csv, args.cards, balance_cents=100_00, second_purse_every=5)
        engine = make_engine(url)
        store = None
        try:
            t0 = time.perf_counter()
            issuer.import_cards(engine, csv)
            if args.analyze:
                # What autovacuum does within a minute of a big import.
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("ANALYZE"))
            log(f"server import of {args.cards:,} cards ({rows:,} purse rows) in "
                f"{time.perf_counter() - t0:.1f} s{' + ANALYZE' if args.analyze else ''}"
                " (not timed)")
            store = admin.init_store(work / "term", "S1", GENEROUS, START)
            with api_server(url, work / "server.log") as base:
                client = sync_client.SyncClient(base, enrol(engine, base, "S1"), timeout=300)
                try:
                    prof = cProfile.Profile() if args.profile else None
                    log("snapshot ...")
                    t0 = time.perf_counter()
                    if prof:
                        prof.enable()
                    snap = sync_client.sync_once(store, client, lambda: START)
                    if prof:
                        prof.disable()
                    snap_s = time.perf_counter() - t0
                    held, _ = store_counts(store)
                    frozen_numbers = [card_number(i) for i in range(0, args.cards,
                                                                    max(args.cards //
                                                                        max(args.changes, 1),
                                                                        1))][:args.changes]
                    t1 = time.perf_counter()
                    freeze_many(engine, frozen_numbers)
                    log(f"froze {len(frozen_numbers):,} cards on the server in "
                        f"{time.perf_counter() - t1:.1f} s (not timed)")
                    log("delta ...")
                    t0 = time.perf_counter()
                    delta = sync_client.sync_once(store, client, lambda: START)
                    delta_s = time.perf_counter() - t0
                    held_after, frozen = store_counts(store)
                finally:
                    client.close()
            problems = []
            if held != args.cards or snap.pulled_cards != args.cards:
                problems.append(f"snapshot: terminal holds {held:,} cards, pulled "
                                f"{snap.pulled_cards:,}, server has {args.cards:,}")
            if frozen != len(frozen_numbers) or held_after != args.cards:
                problems.append(f"delta: {frozen:,} frozen on the terminal, "
                                f"{len(frozen_numbers):,} on the server")
            pages = -(-args.cards // limit)
            print()
            print("== snapshot into an empty terminal (sync_once: pull until more=false)")
            print(f"  {snap.pulled_cards:,} cards in {snap_s:.2f} s = "
                  f"{snap.pulled_cards / snap_s:,.0f} cards/s ({pages:,} pages of {limit}, "
                  f"{1000 * snap_s / pages:.0f} ms/page)")
            per_million = snap_s * 1_000_000 / args.cards
            print(f"  linear extrapolation to 1,000,000 cards: {per_million:.0f} s "
                  f"(goal <= 30 s){' — measured, not extrapolated' if args.cards >= 10**6 else ''}")
            print("== delta")
            print(f"  {delta.pulled_cards:,} changed cards in {delta_s:.2f} s "
                  f"(goal <= 1 s for 10,000)")
            for p in problems:
                print(f"  PROBLEM: {p}")
            if prof:
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
                print("== profile of the client side of the snapshot (tottime)")
                print(out.getvalue())
            print()
            print(f"SUMMARY snapshot cards={args.cards} seconds={snap_s:.2f} "
                  f"cards_per_s={snap.pulled_cards / snap_s:.0f} "
                  f"extrapolated_1M_s={per_million:.0f} delta_changes={delta.pulled_cards} "
                  f"delta_s={delta_s:.2f} ok={'yes' if not problems else 'NO'}")
            return 0 if not problems else 1
        finally:
            if store is not None:
                store.close()
            engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
