"""The ESC/POS printer against real transports: a TCP listener on 127.0.0.1 that records the bytes
(and answers the paper status query like a printer, or not at all), a pseudo-terminal as the
serial port, a file, and pyusb with no such device.

Receipts are built from really committed journal entries (the `till` fixture); slips (the Z
report) are plain lines.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from ctypes.util import find_library
from dataclasses import replace

import pytest

from drivers.print_worker import PrinterWorker, PrintOutcome
from drivers.printer import (
    KANJI_MODE_ON,
    PAPER_STATUS_QUERY,
    EscposPrinter,
    open_printer,
    parse_spec,
    render_receipt,
    render_slip,
)
from terminal.credentials import NfcUid
from terminal.errors import BadInput, DeviceError
from terminal.journal import Entry
from terminal.messages import text
from terminal.ports import DeviceState, DeviceStatus
from terminal.receipt import Receipt, Slip, build_receipt
from tests.conftest import Till
from tests.needs import require
from tests.serving import free_port

CARD_NUMBER = "79927398713"
PAPER_OK, PAPER_LOW, PAPER_END = 0x12, 0x1E, 0x72
ESC_INIT = b"\x1b@"
CUT = b"\x1dV\x00"


class FakePrinterPort:
    """A TCP listener on 127.0.0.1 that behaves like a network printer's raw port 9100.

    mode "record": read each connection to EOF and keep its bytes (one job per connection),
    answering DLE EOT 4 with `status` when it is not None; "close": accept and hang up at once.
    """

    def __init__(self, mode: str = "record", status: int | None = PAPER_OK,
                 port: int = 0) -> None:
        self.mode = mode
        self.status = status
        self.jobs: list[bytes] = []
        self.done = threading.Condition()
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.spec = f"escpos:tcp:127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                if self.mode == "close":
                    continue
                conn.settimeout(5)
                data = b""
                answered = False
                while chunk := conn.recv(4096):
                    data += chunk
                    if not answered and PAPER_STATUS_QUERY in data and self.status is not None:
                        conn.sendall(bytes([self.status]))
                        answered = True
            with self.done:
                self.jobs.append(data)
                self.done.notify_all()

    def wait_jobs(self, n: int, timeout: float = 5.0) -> list[bytes]:
        with self.done:
            assert self.done.wait_for(lambda: len(self.jobs) >= n, timeout), self.jobs
            return list(self.jobs)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def port() -> Iterator[FakePrinterPort]:
    p = FakePrinterPort()
    yield p
    p.close()


@pytest.fixture
def entry(till: Till) -> Entry:
    till.import_rows(f"{CARD_NUMBER},04A1B2C3,fuel,fuel,50.00,EUR,2027-12-31,active,",
                     f"{CARD_NUMBER},04A1B2C3,fuel,general,20.00,EUR,2027-12-31,active,")
    committed = till.terminal.redeem(NfcUid("04A1B2C3"), 60_00).entry
    assert committed is not None
    return committed


@pytest.fixture
def receipt(entry: Entry) -> Receipt:
    return build_receipt(entry, "Europe/Vienna", "en")


def text_lines(data: bytes) -> list[bytes]:
    """The printed text lines of a job: ESC/POS commands stripped from their starts, the QR
    code's line left out."""
    return [re.sub(rb"^(?:\x10\x04\x04|\x1b@|\x1c&|\x1b[!Eat].|\x1dB.)+", b"", line, flags=re.S)
            for line in data.split(b"\n") if b"\x1d(k" not in line]


def qr_payload(data: bytes) -> bytes:
    """The text of the QR store command (GS ( k pL pH cn=49 fn=80 m=48 data), checked length."""
    at = data.index(b"\x1d(k")
    while data[at + 5:at + 8] != b"1P0":
        at = data.index(b"\x1d(k", at + 1)
    length = data[at + 3] + 256 * data[at + 4]
    return data[at + 8:at + 5 + length]


def test_receipt_bytes_over_tcp(port: FakePrinterPort, receipt: Receipt, entry: Entry) -> None:
    printer = open_printer(port.spec)
    printer.print_receipt(receipt)
    (job,) = port.wait_jobs(1)
    assert job.startswith(PAPER_STATUS_QUERY + ESC_INIT)  # status asked before anything prints
    assert b"REDEMPTION" in job and b"*******8713" in job
    assert CARD_NUMBER.encode() not in job
    lines = text_lines(job)
    assert b"fuel" + b" " * 28 + b"-50.00 EUR" in lines  # amounts flush right in 42 columns
    assert b"general" + b" " * 25 + b"-10.00 EUR" in lines
    assert b"  general" + b" " * 24 + b"10.00 EUR" in lines
    assert entry.id.encode() in job and entry.hash[:42].encode() in job
    assert entry.hash[42:].encode() in lines  # the whole chain hash, wrapped
    assert re.search(rb"\x1bE\x01(\x1bt.)?REDEMPTION\n", job)  # bold title
    assert qr_payload(job) == receipt.support_code.encode()
    assert job.endswith(CUT) and b"COPY" not in job
    assert all(len(line) <= 42 for line in lines)
    assert printer.last_code == "printer_ready"


def test_48_columns_and_paper_near_end(receipt: Receipt) -> None:
    port = FakePrinterPort(status=PAPER_LOW)
    try:
        printer = open_printer(port.spec + ",width=48,name=Counter 2")
        assert printer.name == "Counter 2"
        printer.print_receipt(receipt)
        (job,) = port.wait_jobs(1)
    finally:
        port.close()
    lines = text_lines(job)
    assert b"fuel" + b" " * 34 + b"-50.00 EUR" in lines
    assert max(len(line) for line in lines) == 48
    assert printer.last_code == "printer_paper_low"  # printed, with a warning for the counter


def test_printer_that_hangs_up_is_offline(receipt: Receipt) -> None:
    port = FakePrinterPort(mode="close")
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError) as err:
            open_printer(port.spec).print_receipt(receipt)
        assert err.value.code == "printer_offline"
        assert err.value.params == {"name": f"127.0.0.1:{port.port}"}
        assert time.monotonic() - started < 2
    finally:
        port.close()


def test_nothing_listening_is_offline_quickly(receipt: Receipt) -> None:
    printer = EscposPrinter(f"escpos:tcp:127.0.0.1:{free_port()}", connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DeviceError) as err:
        printer.print_receipt(receipt)
    assert err.value.code == "printer_offline"
    assert time.monotonic() - started < 1.5


def test_out_of_paper_prints_nothing(receipt: Receipt) -> None:
    port = FakePrinterPort(status=PAPER_END)
    try:
        with pytest.raises(DeviceError) as err:
            open_printer(port.spec).print_receipt(receipt)
        assert err.value.code == "printer_out_of_paper"
        (job,) = port.wait_jobs(1)
    finally:
        port.close()
    assert job == PAPER_STATUS_QUERY


def test_printer_that_never_answers_status_still_prints(receipt: Receipt) -> None:
    port = FakePrinterPort(status=None)
    try:
        printer = EscposPrinter(port.spec, status_timeout=0.3)
        started = time.monotonic()
        printer.print_receipt(receipt)
        elapsed = time.monotonic() - started
        (job,) = port.wait_jobs(1)
    finally:
        port.close()
    assert 0.3 <= elapsed < 2
    assert b"REDEMPTION" in job and job.endswith(CUT)


def test_status_off_skips_the_query(port: FakePrinterPort, receipt: Receipt) -> None:
    open_printer(port.spec + ",status=off").print_receipt(receipt)
    (job,) = port.wait_jobs(1)
    assert job.startswith(ESC_INIT) and PAPER_STATUS_QUERY not in job


class Recorder:
    """Collects callbacks and events with the thread they arrived on."""

    def __init__(self) -> None:
        self.items: list[tuple[object, str]] = []
        self.cond = threading.Condition()

    def __call__(self, item: object) -> None:
        with self.cond:
            self.items.append((item, threading.current_thread().name))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[object], bool], timeout: float = 5.0) -> None:
        """Until some item satisfies `predicate` (fails the test after `timeout`)."""
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(i) for i, _ in self.items),
                                      timeout), self.items


def test_worker_prints_and_reprints_marked_copy(port: FakePrinterPort,
                                                receipt: Receipt) -> None:
    worker = PrinterWorker(open_printer(port.spec))
    done, events = Recorder(), Recorder()
    worker.start(events)
    try:
        worker.submit(receipt, done)
        worker.reprint(receipt, done)
        done.wait(lambda _: len(done.items) == 2)
    finally:
        worker.stop()
    outcomes = [i for i, _ in done.items]
    assert all(isinstance(o, PrintOutcome) and o.ok for o in outcomes)
    assert {thread for _, thread in done.items} == {f"printer:127.0.0.1:{port.port}"}
    jobs = [j for j in port.wait_jobs(3) if ESC_INIT in j]  # the start-up probe prints nothing
    assert len(jobs) == 2
    assert b"COPY" not in jobs[0]
    assert jobs[1].count(b"*** COPY ***") == 2  # under the title and after the QR
    assert qr_payload(jobs[1]) == receipt.support_code.encode()
    assert DeviceStatus("printer", worker.name, DeviceState.READY, "printer_ready") in [
        e for e, _ in events.items]


def test_worker_reports_offline_then_recovery(receipt: Receipt) -> None:
    number = free_port()
    worker = PrinterWorker(EscposPrinter(f"escpos:tcp:127.0.0.1:{number}"), probe_first=0.1,
                           probe_max=0.2)
    done, events = Recorder(), Recorder()
    worker.start(events)
    port: FakePrinterPort | None = None
    try:
        worker.submit(receipt, done)
        done.wait(lambda i: isinstance(i, PrintOutcome))
        (outcome,) = [i for i, _ in done.items]
        assert isinstance(outcome, PrintOutcome) and outcome.error is not None
        assert outcome.error.code == "printer_offline" and not outcome.ok
        assert worker.last_failed == receipt  # for a "print again" button
        offline = DeviceStatus("printer", worker.name, DeviceState.MISSING, "printer_offline")
        events.wait(lambda e: e == offline)
        port = FakePrinterPort(port=number)  # the printer is switched on
        events.wait(lambda e: isinstance(e, DeviceStatus) and e.code == "printer_ready")
        worker.reprint(receipt, done)
        done.wait(lambda _: len(done.items) == 2)
        assert [i for i, _ in done.items][1] == PrintOutcome(replace(receipt, copy=True))
        assert worker.last_failed is None
    finally:
        worker.stop()
        if port is not None:
            port.close()
    codes = [e.code for e, _ in events.items if isinstance(e, DeviceStatus)]
    assert codes.count("printer_offline") == 1  # reported on change, not on every probe
    assert all(thread == f"printer:127.0.0.1:{number}" for _, thread in events.items)


def test_worker_survives_a_failing_printer_and_cancels_on_stop(receipt: Receipt) -> None:
    class Broken:
        name = "broken"

        def print_receipt(self, receipt: Receipt | Slip) -> None:
            time.sleep(0.2)
            raise ValueError("a bug in a driver")

    worker = PrinterWorker(Broken())
    done = Recorder()
    worker.start()
    worker.submit(receipt, done)
    worker.submit(receipt, done)  # still queued when stop() comes
    time.sleep(0.05)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 2
    outcomes = [i for i, _ in done.items]
    assert len(outcomes) == 2
    first, second = outcomes
    assert isinstance(first, PrintOutcome) and first.error is not None
    assert first.error.code == "printer_error"
    assert isinstance(second, PrintOutcome) and second.cancelled and not second.ok


def test_file_transport_appends_receipts(tmp_path: os.PathLike[str], receipt: Receipt) -> None:
    path = f"{tmp_path}/receipts.bin"
    printer = open_printer(f"escpos:file:{path}")
    printer.print_receipt(receipt)
    printer.print_receipt(receipt)
    with open(path, "rb") as f:
        data = f.read()
    assert data == render_receipt(receipt) * 2
    assert PAPER_STATUS_QUERY not in data  # a file cannot answer
    with pytest.raises(DeviceError) as err:
        open_printer(f"escpos:file:{tmp_path}/no/such/dir/lp0").print_receipt(receipt)
    assert err.value.code == "printer_offline"


def test_chinese_receipt_in_gb18030(till: Till, entry: Entry) -> None:
    receipt = build_receipt(entry, "Asia/Shanghai", "zh_CN")
    data = render_receipt(receipt, 42, "gb18030")
    assert b"\x1c&" in data  # Kanji mode on
    assert "消费凭条".encode("gb18030") in data
    line = ("卡号" + " " * 27 + "*******8713").encode("gb18030")  # 2 cells per character
    assert line in text_lines(data)


Z_LINES = ("Shift 0192f1c4-7d2e-7c11-9a55-3b1e2d4c5f60 cashier anna",
           "  redeem fuel fuel 3 -37.50 EUR", "",
           "Money operations 3, offline 1 (33.3 %)",
           "hash:" + "ab" * 30)


def test_slip_text_lines_fold_to_the_width() -> None:
    slip = Slip("Z report", Z_LINES)
    lines = slip.text_lines(42)
    assert lines[0] == " " * 17 + "Z report" and lines[1] == "-" * 42
    assert lines[2:] == ["Shift 0192f1c4-7d2e-7c11-9a55-3b1e2d4c5f60", "cashier anna",
                         "  redeem fuel fuel 3 -37.50 EUR", "",
                         "Money operations 3, offline 1 (33.3 %)",
                         "hash:" + "ab" * 18 + "a", "b" + "ab" * 11]
    assert all(len(line) <= 42 for line in lines)
    copy = Slip("班结报表", ("长" * 30,), copy=True,
                copy_label=text("receipt_copy", "zh_CN")).text_lines(42)
    assert copy == [" " * 17 + "班结报表", " " * 15 + "*** 副本 ***", "-" * 42,
                    "长" * 21, "长" * 9]


def test_slip_bytes_over_tcp(port: FakePrinterPort) -> None:
    slip = Slip("Z report", Z_LINES)
    printer = open_printer(port.spec)
    printer.print_receipt(slip)
    (job,) = port.wait_jobs(1)
    assert job == PAPER_STATUS_QUERY + render_slip(slip)  # status first, then the slip
    assert re.search(rb"\x1bE\x01(\x1bt.)?Z report\n", job)  # bold title, like a receipt's
    lines = text_lines(job)
    body = lines[lines.index(b"-" * 42) + 1:]
    assert body[:7] == [b"Shift 0192f1c4-7d2e-7c11-9a55-3b1e2d4c5f60", b"cashier anna",
                        b"  redeem fuel fuel 3 -37.50 EUR", b"",
                        b"Money operations 3, offline 1 (33.3 %)",
                        b"hash:" + b"ab" * 18 + b"a", b"b" + b"ab" * 11]
    assert all(len(line) <= 42 for line in lines)
    assert b"\x1d(k" not in job and b"COPY" not in job  # no support QR on a slip
    assert job.endswith(CUT)
    assert printer.last_code == "printer_ready"


def test_chinese_slip_in_gb18030(port: FakePrinterPort) -> None:
    slip = Slip("班结报表", ("收银员 张三", "长" * 30), copy=True,
                copy_label=text("receipt_copy", "zh_CN"))
    open_printer(port.spec + ",charset=gb18030,width=32").print_receipt(slip)
    (job,) = port.wait_jobs(1)
    assert job.startswith(PAPER_STATUS_QUERY + ESC_INIT + KANJI_MODE_ON)
    assert "班结报表\n".encode("gb18030") in job
    lines = text_lines(job)
    for line in ("收银员 张三", "长" * 16, "长" * 14):  # folded at 32 cells, 2 per character
        assert line.encode("gb18030") in lines
    assert job.count("*** 副本 ***".encode("gb18030")) == 2  # under the title and at the end
    assert job.endswith(CUT)


def test_worker_prints_a_slip_and_reprints_it_as_a_copy(port: FakePrinterPort) -> None:
    worker = PrinterWorker(open_printer(port.spec))
    slip = Slip("Z report", Z_LINES)
    done = Recorder()
    worker.start()
    try:
        worker.submit(slip, done)
        worker.reprint(slip, done)
        done.wait(lambda _: len(done.items) == 2)
    finally:
        worker.stop()
    first, second = (i for i, _ in done.items)
    assert first == PrintOutcome(slip) and first.ok
    assert second == PrintOutcome(replace(slip, copy=True)) and second.ok
    jobs = [j for j in port.wait_jobs(3) if ESC_INIT in j]  # the start-up probe prints nothing
    assert len(jobs) == 2 and b"COPY" not in jobs[0]
    assert jobs[1].count(b"*** COPY ***") == 2


def serial_printer(
        status: int | None) -> tuple[str, list[bytes], threading.Thread, tuple[int, int]]:
    """A pseudo-terminal as the printer's serial port; a thread reads the master side until the
    cut (or a second of silence), answering the paper status query with `status`."""
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes as they are: no newline translation, no echo
    path = os.ttyname(slave)
    received: list[bytes] = []

    def serve() -> None:
        answered = False
        data = b""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 1 and not data.endswith(CUT):
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data += os.read(master, 4096)
            except OSError:
                break
            quiet_since = time.monotonic()
            if not answered and PAPER_STATUS_QUERY in data and status is not None:
                os.write(master, bytes([status]))
                answered = True
        received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return path, received, thread, (master, slave)


def test_serial_printer_on_a_pty(receipt: Receipt) -> None:
    require(_has_module("serial"), "pyserial (python-escpos[serial]) for serial printers")
    path, received, thread, fds = serial_printer(PAPER_OK)
    try:
        open_printer(f"escpos:serial:{path}:19200").print_receipt(receipt)
        thread.join(6)
    finally:
        for fd in fds:
            os.close(fd)
    assert received[0].startswith(PAPER_STATUS_QUERY + ESC_INIT)
    assert received[0].endswith(CUT)

    path, received, thread, fds = serial_printer(PAPER_END)
    try:
        with pytest.raises(DeviceError) as err:
            open_printer(f"escpos:serial:{path}").print_receipt(receipt)
        assert err.value.code == "printer_out_of_paper"
        thread.join(6)
    finally:
        for fd in fds:
            os.close(fd)
    assert received[0] == PAPER_STATUS_QUERY


def test_usb_printer_that_is_not_plugged_in(receipt: Receipt) -> None:
    require(_has_module("usb"), "pyusb (python-escpos[usb]) for USB printers")
    require(find_library("usb-1.0") is not None, "libusb-1.0 (Debian libusb-1.0-0)")
    started = time.monotonic()
    with pytest.raises(DeviceError) as err:
        open_printer("escpos:usb:04b8:0e28").print_receipt(receipt)
    assert err.value.code == "printer_offline"
    assert err.value.params == {"name": "USB 04b8:0e28"}
    assert time.monotonic() - started < 5


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("spec", [
    "escpos:tcp:", "escpos:tcp:host:99999", "escpos:usb:zz:01", "escpos:lpt:1", "", None,
    "escpos:tcp:host,width=10", "escpos:tcp:host,colour=red", "escpos:file:/x,charset=latin9"])
def test_bad_specs_are_refused(spec: str | None) -> None:
    with pytest.raises(BadInput) as err:
        parse_spec(spec)
    assert err.value.code == "bad_device_spec" and err.value.params["spec"] == spec
    assert "escpos:tcp:HOST[:PORT]" in err.value.params["allowed"]


def test_good_specs() -> None:
    assert parse_spec("escpos:tcp:10.0.0.5").port == 9100
    usb = parse_spec("escpos:usb:4b8:202,width=48")
    assert (usb.address, usb.width, usb.display_name) == ("04b8:0202", 48, "USB 04b8:0202")
    serial = parse_spec("escpos:serial:/dev/ttyUSB0:115200,charset=gb18030,status=off")
    assert (serial.port, serial.charset, serial.status) == (115200, "gb18030", False)
    assert parse_spec("escpos:file:/dev/usb/lp0").display_name == "/dev/usb/lp0"
    assert parse_spec("tcp:10.0.0.5:9101") == parse_spec("escpos:tcp:10.0.0.5:9101")  # registry
