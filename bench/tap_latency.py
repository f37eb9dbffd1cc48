"""Tap latency of the PC/SC adapter: from the emulated card's insertion to the card event.

Run:  .venv/bin/python bench/tap_latency.py [--taps 200] [--seed 1] [--system]

Default: a private `pcscd -f` with vpcd in its own namespaces (tests/pcscd.py; needs root), so
nothing else on the machine is touched. `--system` uses the pcscd already running here and a
card connecting to vpcd on 127.0.0.1:35963 instead.

For each kind of card (no token; a signed token in the cardpos file; the same token in a
Type 4 NDEF file) it taps N times: insert the card at a random moment, wait for
`CardPresented`, remove it, wait for `CardRemoved`. Two figures per tap:
- insertion -> event: what a person waits for. vpcd only looks for a card when pcscd polls it,
  every 0.4 s (pcscd's PCSCLITE_STATUS_POLL_RATE for drivers without their own event thread),
  so this is ~uniform over 0..0.4 s plus the rest, whatever the adapter does.
- seen -> event: from the moment vpcd first spoke to the inserted card (pcscd noticed it) to
  the event: pcscd's notification, SCardConnect, the APDUs and our parsing — the part that a
  real reader with interrupt-driven card detection (CCID) adds to its RF activation time.
Prints p50/p90/p99/max in ms; asserts nothing about speed (exit 1 only if a tap goes wrong).
See docs/pcsc.md for a run and what the figures mean.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pcscd, when run as a script

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from drivers.pcsc import PcscReader  # noqa: E402
from drivers.vcard import Carrier, EmulatedCard  # noqa: E402
from terminal.ports import CardPresented, CardRemoved, DeviceEvent  # noqa: E402
from terminal.tokens import TokenPayload, sign_token  # noqa: E402

EVENT_TIMEOUT = 5.0


@dataclass
class Kind:
    label: str
    token: bytes | None
    carrier: Carrier


@dataclass
class Result:
    label: str
    total_ms: list[float]
    after_seen_ms: list[float]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return "  ".join(f"{percentile(values, p):7.1f}" for p in (50, 90, 99)) + \
        f"  {max(values):7.1f}"


class Timed:
    """The reader's sink: each event with the moment it arrived (on the reader's thread)."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[tuple[float, DeviceEvent]] = queue.SimpleQueue()

    def __call__(self, event: DeviceEvent) -> None:
        self.q.put((time.perf_counter(), event))

    def wait(self, kind: type, timeout: float = EVENT_TIMEOUT) -> tuple[float, DeviceEvent]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, event = self.q.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(event, kind):
                return at, event
            if not isinstance(event, CardRemoved | CardPresented):
                print(f"  (status: {event})", flush=True)
        raise SystemExit(f"no {kind.__name__} within {timeout} s")


def run_kind(kind: Kind, taps: int, make_card: Callable[[Kind], EmulatedCard], events: Timed,
             rng: random.Random) -> Result:
    total: list[float] = []
    after_seen: list[float] = []
    card = make_card(kind)
    for i in range(taps):
        time.sleep(rng.uniform(0.0, 0.4))  # tap at a random moment of vpcd's 0.4 s poll
        card.insert()
        at, event = events.wait(CardPresented)
        assert isinstance(event, CardPresented)
        if event.uid != card.uid_hex or event.token != kind.token:
            raise SystemExit(f"tap {i}: wrong card event {event}")
        assert card.inserted_at is not None and card.seen_at is not None
        total.append((at - card.inserted_at) * 1000)
        after_seen.append((at - card.seen_at) * 1000)
        card.remove()
        events.wait(CardRemoved)
    return Result(kind.label, total, after_seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--taps", type=int, default=200, help="taps per kind of card")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--system", action="store_true",
                        help="use the running pcscd and vpcd on 127.0.0.1:35963")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    token = sign_token(TokenPayload(key_id="issuer-1", card_number="6280001234567890",
                                    purses=("fuel", "phone"), issued_at=1_780_000_000,
                                    expires_at=1_800_000_000), Ed25519PrivateKey.generate())
    kinds = [Kind("no token", None, Carrier.CARDPOS),
             Kind(f"token, cardpos file ({len(token)} B)", token, Carrier.CARDPOS),
             Kind(f"token, Type 4 NDEF ({len(token)} B)", token, Carrier.NDEF)]
    uid = bytes.fromhex("04A1B2C3D4E5F6")

    private = None
    if args.system:
        reader_filter = None

        def make_card(kind: Kind) -> EmulatedCard:
            return EmulatedCard(uid, kind.token, carrier=kind.carrier)
    else:
        from tests.pcscd import READER, Pcscd, missing

        why = missing()
        if why is not None:
            raise SystemExit(f"cannot start a private pcscd: {why} (or use --system)")
        private = Pcscd()
        private.open()
        private.start()
        # before this process's first PC/SC call: libpcsclite reads it only once
        os.environ["PCSCLITE_CSOCK_NAME"] = str(private.socket_path)
        reader_filter = READER
        pcscd = private

        def make_card(kind: Kind) -> EmulatedCard:
            return pcscd.card(uid, kind.token, carrier=kind.carrier)

    events = Timed()
    reader = PcscReader(reader_filter)
    results: list[Result] = []
    try:
        reader.start(events)
        for kind in kinds:
            print(f"== {kind.label}: {args.taps} taps", flush=True)
            results.append(run_kind(kind, args.taps, make_card, events, rng))
    finally:
        reader.stop()
        if private is not None:
            private.close()

    print("\n== summary (ms)")
    print(f"{'card':<30} {'insertion -> CardPresented':^36}   "
          f"{'pcscd saw the card -> CardPresented':^36}")
    print(f"{'':<30} {'p50':>7}  {'p90':>7}  {'p99':>7}  {'max':>7}   "
          f"{'p50':>7}  {'p90':>7}  {'p99':>7}  {'max':>7}")
    for r in results:
        print(f"{r.label:<30} {summary(r.total_ms)}   {summary(r.after_seen_ms)}")
    every = [ms for r in results for ms in r.after_seen_ms]
    print(f"mean of pcscd-saw -> event over all taps: {statistics.fmean(every):.2f} ms")
    pcscd_version = subprocess.run(["pcscd", "--version"], capture_output=True, text=True,
                                   check=False).stdout.split("\n", 1)[0]
    print(f"python {platform.python_version()}, pyscard {metadata.version('pyscard')}, "
          f"{pcscd_version.strip()}, {platform.platform()}")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
