"""Cold start of the windows, and tap-to-result through the cashier window.

    .venv/bin/python bench/ui_start.py [--runs 7] [--taps 100]

1. A demo terminal is seeded in a temporary directory (cardpos/demo.py), a shift open.
2. Cold start: each run is a new Python process started the way `cardpos cashier` starts
   (cardpos.station + ui.app.run, simulated devices, offscreen), timed from just before the
   process is spawned to the window being ready: shown, painted, its first store job done.
   Baseline, in the same runs: a process that only starts Qt and shows one label — what any
   PySide6 program pays. Goal (issue 5): cashier cold start <= 1.5 s.
3. Tap to result, in one process: a simulated tap goes through the reader's thread, the inbox,
   the store worker (an inquiry) and back; timed until the card panel shows the card. Then a
   redemption the way a cashier does it: tap, "1", Enter, until the approved banner and the
   receipt preview show (committed with synchronous=FULL before the screen says so).
Prints min/median/max and p50/p99 in ms. Asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import benchlib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


def child(mode: str, data: Path, t0: float, taps: int) -> None:
    """Runs in the spawned process: start like `cardpos cashier|kiosk`, report readiness."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if mode == "qt-only":
        from PySide6.QtWidgets import QApplication, QLabel

        app = QApplication(sys.argv[:1])
        label = QLabel("cardpos")
        label.show()
        label.grab()  # painted
        print(f"READY {(time.time() - t0) * 1000:.1f}", flush=True)
        del app
        return
    from cardpos.station import Station, StationConfig
    from ui.app import Launch, run

    station = Station.open(StationConfig(data, readers=("sim",), cameras=("sim",),
                                         printer="sim", voice=None))

    def ready(window: object) -> None:
        from PySide6.QtWidgets import QApplication, QWidget

        assert isinstance(window, QWidget)
        window.grab()  # one full paint, as a person's first look would cause
        print(f"READY {(time.time() - t0) * 1000:.1f}", flush=True)
        if taps:
            tap_to_result(window, station, taps)
        QApplication.quit()  # the program's own quit (a kiosk refuses a plain close)

    run(station, Launch(mode=mode, lang="en", size=(1920, 1080), signed_in="alice",
                        on_ready=ready))


def tap_to_result(window: object, station: object, taps: int) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from cardpos.demo import demo_cards
    from cardpos.station import Station
    from drivers.sim import SimReader
    from ui.cashier.window import CashierWindow

    assert isinstance(window, CashierWindow) and isinstance(station, Station)
    reader = station.readers[0]
    assert isinstance(reader, SimReader)
    uid = demo_cards(date.today())[0].uid
    sale = window.sale

    def wait(done: object) -> None:
        deadline = time.perf_counter() + 10
        while not done():  # type: ignore[operator]
            QApplication.processEvents()
            if time.perf_counter() > deadline:
                raise TimeoutError("no result within 10 s")

    shown, redeemed = [], []
    for _ in range(taps):
        sale.forget()
        start = time.perf_counter()
        reader.tap(uid)
        wait(lambda: sale.card is not None and not window.ctx.worker.busy)
        shown.append((time.perf_counter() - start) * 1000)
        reader.remove()
        sale.forget()
        start = time.perf_counter()
        reader.tap(uid)
        wait(lambda: sale.card is not None and not window.ctx.worker.busy)
        QTest.keyClick(sale.entry, Qt.Key.Key_1)
        QTest.keyClick(sale.entry, Qt.Key.Key_Return)
        wait(lambda: sale.receipt is not None and not window.ctx.worker.busy)
        redeemed.append((time.perf_counter() - start) * 1000)
        reader.remove()
    for name, values in (("tap -> card shown", shown), ("tap, 1, Enter -> approved + receipt",
                                                         redeemed)):
        print(f"TAP {name}: p50 {pct(values, 0.5):.1f} ms, p99 {pct(values, 0.99):.1f} ms, "
              f"max {max(values):.1f} ms ({len(values)} taps)", flush=True)


def spawn(mode: str, data: Path, taps: int = 0) -> tuple[float, list[str]]:
    t0 = time.time()
    run = subprocess.run([sys.executable, __file__, "--child", mode, str(data), repr(t0),
                          str(taps)], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    lines = run.stdout.splitlines()
    ready = [float(line.split()[1]) for line in lines if line.startswith("READY ")]
    if run.returncode != 0 or not ready:
        raise RuntimeError(f"{mode} run failed ({run.returncode}): {run.stderr[-2000:]}")
    return ready[0], [line for line in lines if line.startswith("TAP ")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--taps", type=int, default=100)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "DATA", "T0", "TAPS"))
    args = parser.parse_args()
    if args.child:
        mode, data, t0, taps = args.child
        child(mode, Path(data), float(t0), int(taps))
        return 0
    from cardpos.demo import CASHIER, CASHIER_PIN, seed
    from terminal.services import Shifts
    from terminal.store.db import Store

    for line in benchlib.machine_lines("PySide6-Essentials"):
        print(line)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "t"
        seed(data)
        with Store.open(data) as store:
            assert Shifts(store).open(CASHIER, CASHIER_PIN)[0].approved
        spawn("cashier", data)  # warm the OS file cache: every run below starts alike
        results: dict[str, list[float]] = {"qt-only": [], "cashier": [], "kiosk": []}
        for _ in range(args.runs):
            for mode, values in results.items():
                values.append(spawn(mode, data)[0])
        print(f"\nCold start to a ready window, {args.runs} runs each (ms, new process each):")
        base = statistics.median(results["qt-only"])
        for mode, values in results.items():
            median = statistics.median(values)
            print(f"  {mode:<8} min {min(values):7.1f}  median {median:7.1f}  max "
                  f"{max(values):7.1f}   x{median / base:.2f} of Qt alone")
        _, taps = spawn("cashier", data, args.taps)
        print("\nThrough the cashier window (simulated reader, offscreen):")
        for line in taps:
            print("  " + line[4:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
