"""`cardpos cashier`, `cardpos kiosk` and `cardpos demo`: the windowed terminal.

`cashier` and `kiosk` run on the terminal's own data directory and devices. `demo` makes a
fresh directory with a demo site (an embedded server on SQLite with demo cards, the terminal
enrolled with it: cardpos/demo_site.py), opens the cashier (or `--kiosk`) window on simulated
devices with the device simulator panel, and removes the directory afterwards (`--keep` keeps
it). `--screenshot PATH` renders the start screen once startup has settled, saves a PNG and
exits (ui/app.py). `demo --script` is the headless walk through a cashier's day.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cardpos.cli import EXIT_OK, Out

if TYPE_CHECKING:  # the parser imports this module: Qt and the station load per command
    from PySide6.QtWidgets import QMainWindow

    from cardpos.station import Station
    from ui.app import Launch


def add_ui_arguments(p: argparse.ArgumentParser, *, devices: bool) -> None:
    p.add_argument("--screenshot", type=Path, metavar="PATH",
                   help="render the start screen to a PNG file and exit")
    p.add_argument("--size", metavar="WxH",
                   help="window size (default 1920x1080 cashier, 1080x1920 kiosk)")
    p.add_argument("--fullscreen", action="store_true", help="full screen (the kiosk's default)")
    p.add_argument("--windowed", action="store_true", help="a window, even for the kiosk")
    if devices:
        p.add_argument("--reader", action="append", metavar="SPEC",
                       help="card reader (repeatable; default pcsc): pcsc[:NAME], nfcpy:usb, sim")
        p.add_argument("--camera", action="append", metavar="SPEC",
                       help="QR camera (repeatable): camera:0, camera:/path/clip.avi, sim")
        p.add_argument("--printer", metavar="SPEC",
                       help="receipt printer: escpos:tcp:HOST:PORT, escpos:usb:..., sim")
        p.add_argument("--no-voice", action="store_true", help="no spoken results")


def _launch(args: argparse.Namespace, out: Out, mode: str,
            extend: Callable[[QMainWindow], None] | None = None,
            signed_in: str | None = None) -> Launch:
    """The kiosk is full screen by default, except in the demo (the simulator sits beside)."""
    from ui.app import Launch, parse_size

    full_by_default = mode == "kiosk" and extend is None
    return Launch(mode=mode, lang=out.lang, screenshot=args.screenshot,
                  size=parse_size(args.size) if args.size else None,
                  fullscreen=(args.fullscreen or full_by_default) and not args.windowed
                  and args.screenshot is None,
                  extend=extend, signed_in=signed_in)


def _run(station: Station, launch: Launch) -> int:
    from ui.app import run

    return run(station, launch)


def _station(args: argparse.Namespace, mode: str) -> Station:
    from cardpos.station import Station, StationConfig

    return Station.open(StationConfig(
        args.data, readers=tuple(args.reader or ("pcsc",)), cameras=tuple(args.camera or ()),
        printer=args.printer, voice=None if args.no_voice or mode == "cashier" else "espeak-ng"))


def cashier(args: argparse.Namespace, out: Out) -> int:
    launch = _launch(args, out, "cashier")  # bad options first: before anything is opened
    return _run(_station(args, "cashier"), launch) or EXIT_OK


def kiosk(args: argparse.Namespace, out: Out) -> int:
    launch = _launch(args, out, "kiosk")
    return _run(_station(args, "kiosk"), launch) or EXIT_OK


def demo(args: argparse.Namespace, out: Out) -> int:
    if args.script:
        from cardpos.commands import demo as scripted

        return scripted(args, out)
    from cardpos.demo import CASHIER, CASHIER_PIN
    from cardpos.demo_site import start_demo_site
    from cardpos.station import Station, StationConfig

    if args.size:
        from ui.app import parse_size

        parse_size(args.size)  # a bad size is refused before anything starts
    data = Path(tempfile.mkdtemp(prefix="cardpos-demo-")) / "site"
    mode = "kiosk" if args.kiosk else "cashier"
    site = start_demo_site(data)
    try:
        if args.kiosk:
            from terminal import admin
            from terminal.services import utc_now
            from terminal.store.db import Store

            with Store.open(data) as store:  # the demo kiosk lets customers pay
                admin.set_limit(store, "kiosk_self_redeem", "true", utc_now())
        station = Station.open(StationConfig(
            data, readers=("sim",), cameras=("sim",), printer="sim",
            voice=None if args.no_voice or mode == "cashier" else "espeak-ng",
            sync_interval=5.0))
        decision, _ = station.shifts.open(CASHIER, CASHIER_PIN)  # ready to sell at once
        assert decision.approved

        def extend(window: QMainWindow) -> None:
            from ui.simulator import attach_simulator

            attach_simulator(window, station, site)

        return _run(station, _launch(args, out, mode, extend, CASHIER)) or EXIT_OK
    finally:
        site.stop()
        if args.keep:
            print(f"Demo data kept in {data}")
        else:
            shutil.rmtree(data.parent, ignore_errors=True)
