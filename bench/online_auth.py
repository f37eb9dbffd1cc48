"""Online authorization latency: POST /v1/authorize at 100 concurrent terminals, on PostgreSQL.

    .venv/bin/python bench/online_auth.py [--terminals 100] [--rate 1] [--seconds 20]

1. A throwaway PostgreSQL database, migrated; `--cards` cards with large balances imported;
   uvicorn serving the API in a subprocess (as bench/sync_ingest.py); `--terminals` terminals
   enrolled through the API, each with its own credential and its own HTTP connection.
2. Baseline: the same terminals call GET /v1/health (no credential, one `SELECT 1`) at the same
   rate, so the figures separate what authorization costs from what the HTTP stack and this
   load generator cost (both share the machine's 2 cores).
3. Open loop: each terminal asks for a hold of 1.00 on a random card at random moments, on
   average `--rate` times a second (Poisson arrivals), for `--seconds` seconds; latency is
   measured from the moment a request was due, so a slow server cannot hide behind a slower
   request rate (no coordinated omission).
4. Closed loop: every terminal asks again the moment it has its answer, for the server's
   throughput ceiling (and the latency there, which is queueing).
Every answer must be an approval (balances are far above what the run holds); the number of
holds in the database must equal the number of approvals.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
import httpx
import sqlalchemy as sa
from sync_ingest import api_server, card_number, enrol, log, pg_database, write_cards_csv

from sync.server import issuer, schema
from sync.server.db import make_engine

DISTS = ("fastapi", "uvicorn", "httpx", "sqlalchemy", "psycopg", "pydantic")


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


@dataclass
class Phase:
    """One phase's figures: latency as the terminal sees it (from the moment the request was
    due), the server's own time (its Server-Timing header) and how late this load generator
    started requests (its event loop's lag: a late start is counted in the latency)."""

    name: str
    latencies_ms: list[float]
    errors: int
    seconds: float
    server_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        return pct(self.latencies_ms, q)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.name:<28} {len(self.latencies_ms):>7} req {self.rate:>8.0f}/s  "
                f"p50 {self.pct(0.50):>7.2f} ms  p99 {self.pct(0.99):>7.2f} ms  "
                f"max {max(self.latencies_ms, default=float('nan')):>7.2f} ms  "
                f"errors {self.errors}\n{'':<28} server p50 {pct(self.server_ms, 0.5):.2f} ms "
                f"p99 {pct(self.server_ms, 0.99):.2f} ms; load generator's start lag p99 "
                f"{pct(self.lag_ms, 0.99):.2f} ms")


def _authorize_body(n_cards: int, rng: random.Random) -> dict[str, object]:
    return {"hold_id": str(uuid.uuid4()), "card": card_number(rng.randrange(n_cards)),
            "kind": "redeem", "purses": [{"purse": "general", "amount": 100, "currency": "EUR"}]}


async def _terminal(client: httpx.AsyncClient, what: str, n_cards: int, rate: float | None,
                    until: float, seed: int, out: Phase) -> None:
    """One terminal: requests at Poisson moments (`rate` per second) or back to back (None)."""
    rng = random.Random(seed)
    due = time.perf_counter() + (rng.expovariate(rate) if rate else 0.0)
    while due < until:
        if rate:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        start = due if rate else time.perf_counter()
        out.lag_ms.append((time.perf_counter() - start) * 1000)
        try:
            if what == "health":
                r = await client.get("/v1/health")
                ok = r.status_code == 200
            else:
                r = await client.post("/v1/authorize", json=_authorize_body(n_cards, rng))
                ok = r.status_code == 200 and r.json()["approved"] is True
        except httpx.HTTPError:
            ok = False
        if ok:
            out.latencies_ms.append((time.perf_counter() - start) * 1000)
            timing = r.headers.get("server-timing", "")
            if timing.startswith("app;dur="):
                out.server_ms.append(float(timing.removeprefix("app;dur=")))
        else:
            out.errors += 1
        due = due + rng.expovariate(rate) if rate else time.perf_counter()


async def run_phase(name: str, what: str, base: str, creds: Sequence[str], n_cards: int,
                    rate: float | None, seconds: float) -> Phase:
    phase = Phase(name, [], 0, seconds)
    clients = [httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Authorization": f"Bearer {c}"},
                                 limits=httpx.Limits(max_connections=1))
               for c in creds]
    try:
        for c in clients:  # connect before timing
            await c.get("/v1/health")
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_terminal(c, what, n_cards, rate, until, i, phase)
                               for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return phase


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1.0,
                        help="authorizations per second per terminal (open loop)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--closed-seconds", type=float, default=10.0,
                        help="length of the closed-loop phase (0: skip)")
    args = parser.parse_args(argv)
    if not (1 <= args.terminals <= 1000 and 1 <= args.cards <= 1_000_000
            and 0 < args.rate <= 100 and 0 < args.seconds <= 600
            and 0 <= args.closed_seconds <= 600):
        parser.error("out of the bounded range")
    print("\n".join(benchlib.machine_lines(*DISTS)))
    print(f"terminals {args.terminals}, cards {args.cards}, open-loop rate {args.rate}/s per "
          f"terminal ({args.rate * args.terminals:.0f}/s in all), {args.seconds:.0f} s per phase")
    with tempfile.TemporaryDirectory() as work, pg_database("cardpos_bench_auth") as url:
        engine = make_engine(url)
        csv = Path(work) / "cards.csv"
        write_cards_csv(csv, args.cards)
        log(f"importing {args.cards} cards")
        issuer.import_cards(engine, csv)
        with api_server(url, Path(work) / "server.log") as base:
            log(f"enrolling {args.terminals} terminals")
            creds = [enrol(engine, base, f"A{i:04}") for i in range(args.terminals)]
            # What the import left alive is no garbage: keep the collector from walking it in
            # the middle of a phase (a full collection here paused this process ~100 ms).
            gc.collect()
            gc.freeze()
            phases = []
            for name, what, rate, seconds in (
                    ("baseline: health, open", "health", args.rate, args.seconds),
                    ("authorize, open loop", "authorize", args.rate, args.seconds),
                    ("authorize, closed loop", "authorize", None, args.closed_seconds)):
                if seconds <= 0:
                    continue
                log(name)
                phases.append(asyncio.run(run_phase(name, what, base, creds, args.cards, rate,
                                                    seconds)))
        with engine.connect() as conn:
            held = conn.execute(sa.select(sa.func.count(sa.distinct(schema.holds.c.id))))\
                .scalar_one()
        engine.dispose()
    for phase in phases:
        print(phase.line())
    base_phase, auth_phase = phases[0], phases[1]
    print(f"ratio authorize/health (open loop): p50 "
          f"{auth_phase.pct(0.5) / base_phase.pct(0.5):.2f}x, p99 "
          f"{auth_phase.pct(0.99) / base_phase.pct(0.99):.2f}x")
    approvals = sum(len(p.latencies_ms) for p in phases[1:])
    print(f"holds in the database {held}, approvals {approvals}: "
          f"{'consistent' if held == approvals else 'MISMATCH'}")
    print(f"goal p99 <= 25 ms at {args.terminals} terminals (open loop): "
          f"{'met' if auth_phase.pct(0.99) <= 25 else 'NOT met'}")
    return 0 if held == approvals and all(p.errors == 0 for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
