"""Simulated devices: driven from code, they report on their own thread with the same events and
codes as the real adapters, and drive the real terminal core end to end."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from drivers.print_worker import PrinterWorker, PrintOutcome
from drivers.sim import (
    SimCamera,
    SimPrinter,
    SimReader,
    open_sim_camera,
    open_sim_printer,
    open_sim_reader,
)
from terminal.credentials import NfcUid
from terminal.errors import BadInput
from terminal.ports import (
    CardPresented,
    CardRemoved,
    CodeScanned,
    DeviceEvent,
    DeviceState,
    DeviceStatus,
)
from terminal.receipt import Receipt, Slip, build_receipt
from tests.conftest import Till


class Sink:
    """Records events with the name of the thread they arrived on."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def __call__(self, event: DeviceEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[list[DeviceEvent]], bool], timeout: float = 5) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), timeout), self.events


def status(device: str, state: DeviceState, code: str, name: str = "sim") -> DeviceStatus:
    detail = "unplugged (simulated)" if code.endswith("_missing") else ""
    return DeviceStatus(device, name, state, code, detail)


def test_reader_taps_removes_and_unplugs_on_its_own_thread() -> None:
    reader, sink = SimReader(), Sink()
    reader.start(sink)
    try:
        reader.tap("04a1b2c3", b"token")
        reader.tap("04:A1:B2:C4")  # a second card while the first is still there
        reader.remove()
        reader.remove()  # nothing on the reader: no event
        reader.pull_mid_read()
        reader.tap("04A1B2C3")
        reader.unplug()  # the card goes with the reader
        reader.tap("04A1B2C3")  # ignored: no reader
        reader.plug()
        reader.fail("pcscd_unavailable")
        reader.recover()
        assert reader.wait_idle(5)
    finally:
        reader.stop()
    assert sink.events == [
        status("reader", DeviceState.READY, "reader_ready"),
        CardPresented("sim", "04A1B2C3", b"token"),
        CardRemoved("sim"),
        CardPresented("sim", "04A1B2C4", None),
        CardRemoved("sim"),
        status("reader", DeviceState.READY, "card_removed_mid_read"),
        CardPresented("sim", "04A1B2C3", None),
        CardRemoved("sim"),
        status("reader", DeviceState.MISSING, "reader_missing"),
        status("reader", DeviceState.READY, "reader_ready"),
        status("reader", DeviceState.FAILED, "pcscd_unavailable"),
        status("reader", DeviceState.READY, "reader_ready"),
    ]
    assert sink.threads == {"reader:sim"} != {threading.current_thread().name}


def test_bad_uid_is_refused_on_the_callers_thread() -> None:
    reader = SimReader()
    with pytest.raises(BadInput) as err:
        reader.tap("not hex")
    assert err.value.code == "bad_uid"


def test_camera_shows_codes() -> None:
    camera, sink = open_sim_camera("sim:front"), Sink()
    camera.start(sink)
    try:
        camera.show("CP1:ABC")
        camera.unplug()
        camera.show("CP1:LOST")
        camera.plug()
        camera.show("CP1:ABC")  # shown again: reported again
        assert camera.wait_idle(5)
    finally:
        camera.stop()
    assert sink.events == [
        status("camera", DeviceState.READY, "camera_ready", "front"),
        CodeScanned("front", "CP1:ABC"),
        status("camera", DeviceState.MISSING, "camera_missing", "front"),
        status("camera", DeviceState.READY, "camera_ready", "front"),
        CodeScanned("front", "CP1:ABC"),
    ]
    assert sink.threads == {"camera:front"}


def test_started_unplugged_reports_missing_and_stop_is_prompt(
        caplog: pytest.LogCaptureFixture) -> None:
    reader, sink = SimReader("counter"), Sink()
    reader.plugged = False
    reader.start(sink)
    sink.wait(lambda events: len(events) == 1)
    assert sink.events == [status("reader", DeviceState.MISSING, "reader_missing", "counter")]
    started = time.monotonic()
    reader.stop()
    assert time.monotonic() - started < 1
    with caplog.at_level(logging.WARNING, logger="drivers.sim"):
        reader.tap("04A1B2C3")
    assert "stopped" in caplog.text


def test_a_failing_sink_does_not_kill_the_device(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[DeviceEvent] = []

    def sink(event: DeviceEvent) -> None:
        seen.append(event)
        if isinstance(event, CodeScanned) and event.text == "boom":
            raise RuntimeError("UI bug")

    camera = SimCamera()
    camera.start(sink)
    try:
        camera.show("boom")
        camera.show("after")
        assert camera.wait_idle(5)
    finally:
        camera.stop()
    assert seen[-1] == CodeScanned("sim", "after")
    assert "the event sink failed" in caplog.text


def test_specs() -> None:
    assert open_sim_reader("sim").name == "sim"
    assert open_sim_reader(None).name == "sim"  # drivers.registry passes None for a bare "sim"
    assert open_sim_camera("front").name == "front"  # ... and NAME for "sim:NAME"
    assert open_sim_printer("sim:Back office").name == "Back office"


@pytest.fixture
def card(till: Till) -> Till:
    till.import_rows("79927398713,04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,")
    return till


def test_tap_redeem_print_end_to_end(card: Till) -> None:
    """The demo's flow: a simulated tap reaches the core, the committed entry's receipt goes to
    the simulated printer through the printer worker; offline, then back, then reprinted."""
    reader, printer = SimReader(), SimPrinter(delay=0.01)
    worker = PrinterWorker(printer, probe_first=0.05, probe_max=0.1)
    outcomes: list[PrintOutcome] = []
    printer_events, done = Sink(), threading.Event()

    def on_printed(outcome: PrintOutcome) -> None:
        outcomes.append(outcome)
        done.set()

    def on_reader(event: DeviceEvent) -> None:  # what the UI would do, on the reader's thread
        if isinstance(event, CardPresented):
            entry = card.terminal.redeem(NfcUid(event.uid), 12_50).entry
            assert entry is not None
            worker.submit(build_receipt(entry, "UTC", "en"), on_printed)

    worker.start(printer_events)
    reader.start(on_reader)
    try:
        reader.tap("04A1B2C3")
        assert done.wait(5)
        (first,) = printer.wait_printed(1, 5)
        assert isinstance(first, Receipt)
        assert first.changes == (("fuel", "-12.50 EUR"),) and not first.copy
        assert outcomes[0].ok

        done.clear()
        printer.set_offline()
        reader.remove()
        reader.tap("04A1B2C3")
        assert done.wait(5)
        assert outcomes[1].error is not None and outcomes[1].error.code == "printer_offline"
        failed = worker.last_failed
        assert isinstance(failed, Receipt) and failed.balances == (("fuel", "25.00 EUR"),)
        printer_events.wait(lambda events: events[-1] == status(
            "printer", DeviceState.MISSING, "printer_offline"))

        printer.set_offline(False)
        printer.set_paper("low")
        printer_events.wait(lambda events: events[-1] == status(
            "printer", DeviceState.READY, "printer_paper_low"))
        done.clear()
        worker.reprint(failed, on_printed)
        assert done.wait(5)
        printed = printer.wait_printed(2, 5)
        assert isinstance(printed[1], Receipt)
        assert printed[1].copy and printed[1].entry_id == failed.entry_id

        done.clear()
        printer.set_paper("out")
        worker.submit(first, on_printed)
        assert done.wait(5)
        assert outcomes[-1].error is not None
        assert outcomes[-1].error.code == "printer_out_of_paper"
    finally:
        reader.stop()
        worker.stop()
    assert printer_events.threads == {"printer:sim"}
    assert [e.code for e in printer_events.events if isinstance(e, DeviceStatus)] == [
        "printer_ready", "printer_offline", "printer_paper_low", "printer_out_of_paper"]


def test_sim_printer_records_slips_between_receipts(card: Till,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A Z report slip goes through the worker like a receipt and is kept in print order."""
    caplog.set_level(logging.INFO, logger="drivers.sim")
    entry = card.terminal.redeem(NfcUid("04A1B2C3"), 5_00).entry
    assert entry is not None
    receipt, slip = build_receipt(entry, "UTC", "en"), Slip("Z report", ("Voids 0",))
    printer = SimPrinter()
    worker = PrinterWorker(printer)
    outcomes: list[PrintOutcome] = []
    worker.start()
    try:
        worker.submit(receipt, outcomes.append)
        worker.submit(slip, outcomes.append)
        assert printer.wait_printed(2, 5) == [receipt, slip]
    finally:
        worker.stop()
    assert [o.ok for o in outcomes] == [True, True] and outcomes[1].receipt == slip
    assert "printed slip 'Z report'" in caplog.text
