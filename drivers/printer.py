"""ESC/POS receipt printer (python-escpos): network, USB, serial and file transports.

It prints receipts of journal entries and plain slips (the Z report). A document is rendered to
bytes first (python-escpos' `Dummy` records them), then sent through the real transport in one
write: the layout is testable on its own, and a printer that fails is found before it has
printed half a receipt. Before the document, the printer is asked for its paper sensor
(`DLE EOT 4`) where the transport can read an answer (TCP, serial, USB); a printer that does not
answer within `status_timeout` prints anyway, because many cheap printers never do.

Offline (refused, timed out, unplugged) and out of paper raise `DeviceError` with the codes
"printer_offline" / "printer_out_of_paper" — the redemption already stands; the cashier reprints.

Threads: `EscposPrinter.print_receipt` blocks (network round trips); call it only from a worker
thread. `PrinterWorker` is that thread for the UI: submit a receipt or slip, get the outcome by
callback.

Spec strings (`open_printer`), with optional `,key=value` options after the address:
    escpos:tcp:HOST[:PORT]          network printer, raw port 9100 by default
    escpos:usb:VVVV:PPPP            USB vendor and product id (hex)
    escpos:serial:DEVICE[:BAUD]     serial port, 9600 baud by default
    escpos:file:PATH                a device file such as /dev/usb/lp0 (or a plain file)
    options: width=42|48|32, charset=auto|gb18030, status=on|off, name=TEXT
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, replace
from typing import Literal

from escpos import printer as escpos_printer  # type: ignore[import-untyped]
from escpos.constants import QR_ECLEVEL_M  # type: ignore[import-untyped]
from escpos.escpos import Escpos  # type: ignore[import-untyped]
from escpos.exceptions import Error as EscposError  # type: ignore[import-untyped]

from terminal.errors import BadInput, DeviceError
from terminal.receipt import Receipt, Slip, columns, fold

log = logging.getLogger(__name__)

Transport = Literal["tcp", "usb", "serial", "file"]
Charset = Literal["auto", "gb18030"]

#: ESC/POS real-time status request for the paper roll sensor (DLE EOT 4).
PAPER_STATUS_QUERY = b"\x10\x04\x04"
#: Kanji (two-byte) character mode on (FS &): Chinese printers then read GB18030 text.
KANJI_MODE_ON = b"\x1c\x26"
QR_MODULE_DOTS = 4  # 4 dots per module: the support QR is about 25 mm wide at 203 dpi


@dataclass(frozen=True)
class PrinterSpec:
    """A parsed spec string: where the printer is and how to lay out for it."""

    transport: Transport
    address: str  # host, device path or file path; "VVVV:PPPP" for USB
    port: int = 9100  # TCP port, or serial baud rate
    width: int = 42  # characters per line in font A: 42 (80 mm Epson TM-T88), 48, 32 (58 mm)
    charset: Charset = "auto"
    status: bool = True  # ask the paper sensor before printing (where the transport can read)
    name: str = ""

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.transport == "tcp":
            return f"{self.address}:{self.port}"
        if self.transport == "usb":
            return f"USB {self.address}"
        return self.address


SPEC_FORMS = ("escpos:tcp:HOST[:PORT], escpos:usb:VVVV:PPPP, escpos:serial:DEVICE[:BAUD], "
              "escpos:file:PATH")


def parse_spec(arg: str | None) -> PrinterSpec:
    """Parse "escpos:tcp:127.0.0.1:9100,width=48" and friends; the "escpos:" may be left off
    (drivers.registry passes the text after it). BadInput "bad_device_spec" if malformed."""
    text = (arg or "").strip()
    if not text.startswith("escpos:"):
        text = "escpos:" + text

    def bad() -> BadInput:
        return BadInput("bad_device_spec", what="printer", spec=arg, allowed=SPEC_FORMS)

    address_part, *option_parts = text.split(",")
    options: dict[str, str] = {}
    for part in option_parts:
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("width", "charset", "status", "name"):
            raise bad()
        options[key.strip()] = value.strip()
    _, _, rest = address_part.partition(":")
    kind, _, target = rest.partition(":")
    if not target:
        raise bad()
    try:
        if kind == "tcp":
            host, _, port = target.partition(":")
            spec = PrinterSpec("tcp", host, int(port) if port else 9100)
            if not host or not 0 < spec.port < 65536:
                raise bad()
        elif kind == "usb":
            vendor, _, product = target.partition(":")
            spec = PrinterSpec("usb", f"{int(vendor, 16):04x}:{int(product, 16):04x}")
        elif kind == "serial":
            device, _, baud = target.partition(":")
            spec = PrinterSpec("serial", device, int(baud) if baud else 9600)
        elif kind == "file":
            spec = PrinterSpec("file", target)
        else:
            raise bad()
        width = int(options.get("width", spec.width))
    except ValueError as exc:
        raise bad() from exc
    charset = options.get("charset", "auto")
    status = options.get("status", "on")
    if not 24 <= width <= 64 or charset not in ("auto", "gb18030") or status not in ("on", "off"):
        raise bad()
    return replace(spec, width=width, charset="gb18030" if charset == "gb18030" else "auto",
                   status=status == "on", name=options.get("name", ""))


# --- layout -----------------------------------------------------------------------------------

def pair(left: str, right: str, width: int) -> str:
    """`left` and `right` on one line, `right` flush with the right margin (amounts align)."""
    gap = width - columns(left) - columns(right)
    return f"{left}{' ' * max(gap, 1)}{right}"


def wrap(text: str, width: int) -> list[str]:
    """Hard-wrap text without spaces (ids, hashes) at `width` cells."""
    lines, line = [], ""
    for ch in text:
        if columns(line + ch) > width:
            lines.append(line)
            line = ""
        line += ch
    return [*lines, line] if line or not lines else lines


class _Page:
    """Writes text to an escpos printer object in the chosen charset."""

    def __init__(self, printer: Escpos, charset: Charset) -> None:
        self.p = printer
        self.charset = charset

    def line(self, text: str = "") -> None:
        if self.charset == "gb18030":
            self.p._raw(text.encode("gb18030", errors="replace") + b"\n")
        else:
            self.p.textln(text)


def render_receipt(receipt: Receipt, width: int = 42, charset: Charset = "auto") -> bytes:
    """The receipt as ESC/POS bytes: bold title, COPY mark, aligned amounts, support QR, cut.

    Pure (no I/O): python-escpos' Dummy printer records what the commands would send.
    """
    labels = receipt.labels
    copy_mark = labels["copy"] if receipt.copy else None
    p, page = _begin(receipt.title, copy_mark, width, charset)
    rule = "-" * width
    page.line(rule)
    page.line(pair(labels["terminal"], receipt.terminal_id, width))
    page.line(receipt.at)
    page.line(pair(labels["card"], receipt.card, width))
    page.line(pair(labels["program"], receipt.program, width))
    page.line(rule)
    p.set(bold=True)
    for purse, amount in receipt.changes:
        page.line(pair(purse, amount, width))
    p.set(bold=False)
    for name, value in receipt.extra:
        page.line(pair(name, value, width))
    if receipt.balances:
        page.line()
        page.line(labels["balance"])
        for purse, amount in receipt.balances:
            page.line(pair("  " + purse, amount, width))
    page.line(rule)
    page.line(pair(labels["entry"], f"#{receipt.seq}", width))
    for part in wrap(receipt.entry_id, width) + wrap(receipt.chain_hash, width):
        page.line(part)
    p.set(align="center")
    p.qr(receipt.support_code, ec=QR_ECLEVEL_M, size=QR_MODULE_DOTS, native=True)
    page.line()
    return _end(p, page, copy_mark)


def render_slip(slip: Slip, width: int = 42, charset: Charset = "auto") -> bytes:
    """A slip as ESC/POS bytes: the receipt's bold title and COPY mark, a rule, the lines folded
    to `width` cells, cut. Pure, like `render_receipt`."""
    copy_mark = slip.copy_label if slip.copy else None
    p, page = _begin(slip.title, copy_mark, width, charset)
    page.line("-" * width)
    for line in slip.lines:
        for part in fold(line, width):
            page.line(part)
    page.line()
    p.set(align="center")
    return _end(p, page, copy_mark)


def render(document: Receipt | Slip, width: int = 42, charset: Charset = "auto") -> bytes:
    """`render_receipt` or `render_slip`, whichever `document` needs."""
    if isinstance(document, Receipt):
        return render_receipt(document, width, charset)
    return render_slip(document, width, charset)


def _begin(title: str, copy_mark: str | None, width: int,
           charset: Charset) -> tuple[Escpos, _Page]:
    """A Dummy printer with the head every document shares: init, charset, the bold title
    (folded to `width`), and the inverted copy mark on a reprint."""
    p = escpos_printer.Dummy()
    page = _Page(p, charset)
    p.hw("INIT")
    if charset == "gb18030":
        p._raw(KANJI_MODE_ON)
    p.set(align="center", double_height=True, double_width=False)
    p.set(bold=True)
    for part in fold(title, width):
        page.line(part)
    p.set(normal_textsize=True)
    if copy_mark is not None:
        p.set(bold=True, invert=True)
        page.line(f" {copy_mark} ")
        p.set(invert=False)
    p.set(align="left", bold=False)
    return p, page


def _end(p: Escpos, page: _Page, copy_mark: str | None) -> bytes:
    """The shared foot: the copy mark again on a reprint, then feed and cut; the bytes."""
    if copy_mark is not None:
        p.set(bold=True)
        page.line(copy_mark)
        p.set(bold=False)
    p.set(align="left")
    p.cut()
    output: bytes = p.output
    return output


# --- transports -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaperStatus:
    """The answer to DLE EOT 4: paper present/near end/out, or None where nothing answered."""

    raw: int | None

    @property
    def answered(self) -> bool:
        return self.raw is not None

    @property
    def out(self) -> bool:  # bits 5 and 6: roll paper end sensor
        return self.raw is not None and bool(self.raw & 0x60)

    @property
    def low(self) -> bool:  # bits 2 and 3: roll paper near-end sensor
        return self.raw is not None and bool(self.raw & 0x0C)


def is_status_byte(b: int) -> bool:
    """A real-time status byte has bit 4 set and bits 0, 1 and 7 fixed (xxx1xx10 -> 0x12)."""
    return b & 0x93 == 0x12


class EscposPrinter:
    """A receipt printer reached through python-escpos; implements `ReceiptPrinter`.

    Each print opens the transport, checks paper, sends the receipt, and closes again: a printer
    that was switched off and on in between just works, and a network printer is not held busy
    between receipts (many accept one connection at a time). Not thread-safe: one caller thread
    (a `PrinterWorker`).
    """

    def __init__(self, spec: str | PrinterSpec, *, connect_timeout: float = 3.0,
                 io_timeout: float = 10.0, status_timeout: float = 0.5) -> None:
        self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        self.name = self.spec.display_name
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.status_timeout = status_timeout
        #: After a successful print: "printer_ready", or "printer_paper_low" when the near-end
        #: sensor said so (a `PrinterWorker` turns it into a DeviceStatus for the counter).
        self.last_code = "printer_ready"

    def print_receipt(self, receipt: Receipt | Slip) -> None:
        """Print a receipt or slip, or raise DeviceError (printer_offline,
        printer_out_of_paper, printer_error)."""
        self._send(render(receipt, self.spec.width, self.spec.charset))

    def check(self) -> None:
        """Open, ask the paper sensor, close — without printing (DeviceError if not usable)."""
        self._send(b"")

    def _send(self, data: bytes) -> None:
        started = time.monotonic()
        printer = self._open()
        finished = False
        try:
            status = self._paper_status(printer) if self.spec.status else PaperStatus(None)
            if status.out:
                log.warning("printer %s: out of paper (status 0x%02x)", self.name, status.raw)
                raise DeviceError("printer_out_of_paper", name=self.name)
            if data:
                printer._raw(data)
            self._finish(printer)
            finished = True
            self.last_code = "printer_paper_low" if status.low else "printer_ready"
            log.info("printer %s: %d bytes sent in %.0f ms (paper status %s)", self.name,
                     len(data), (time.monotonic() - started) * 1000,
                     "none" if status.raw is None else f"0x{status.raw:02x}")
        except DeviceError:
            raise
        except (OSError, EscposError) as exc:
            log.warning("printer %s: offline while printing: %s", self.name, _describe(exc))
            raise DeviceError("printer_offline", name=self.name) from exc
        finally:
            self._close(printer, discard=not finished)

    def _open(self) -> Escpos:
        """Connect the transport (DeviceError printer_offline when it cannot be reached)."""
        spec = self.spec
        try:
            if spec.transport == "tcp":
                printer = escpos_printer.Network(spec.address, spec.port,
                                                 timeout=self.connect_timeout)
                printer.open()
                printer.device.settimeout(self.io_timeout)
            elif spec.transport == "usb":
                import usb.core  # type: ignore[import-untyped]

                vendor, product = (int(x, 16) for x in spec.address.split(":"))
                try:
                    printer = escpos_printer.Usb(vendor, product,
                                                 timeout=int(self.io_timeout * 1000))
                    printer.open()
                except usb.core.NoBackendError as exc:  # no libusb-1.0 on this machine
                    raise OSError(f"no USB backend (libusb-1.0): {exc}") from exc
            elif spec.transport == "serial":
                printer = escpos_printer.Serial(spec.address, baudrate=spec.port,
                                                timeout=self.io_timeout)
                printer.open()
                printer.device.write_timeout = self.io_timeout  # a stalled port must not hang
            else:
                # append, not escpos' "wb": a plain file collects receipts instead of keeping
                # only the last one; for a device node (/dev/usb/lp0) it makes no difference
                printer = escpos_printer.File(spec.address, auto_flush=True)
                printer.device = open(spec.address, "ab")  # noqa: SIM115 (closed in _close)
        except (OSError, EscposError, ImportError) as exc:  # ImportError: pyusb/pyserial missing
            log.warning("printer %s: cannot connect: %s", self.name, _describe(exc))
            raise DeviceError("printer_offline", name=self.name) from exc
        return printer

    def _paper_status(self, printer: Escpos) -> PaperStatus:
        """Ask DLE EOT 4 and wait `status_timeout` for the answer (None: no answer, go on)."""
        transport = self.spec.transport
        if transport == "file":
            return PaperStatus(None)  # write-only
        printer._raw(PAPER_STATUS_QUERY)
        answer = b""
        try:
            if transport == "tcp":
                sock: socket.socket = printer.device
                sock.settimeout(self.status_timeout)
                try:
                    answer = sock.recv(16)
                    if not answer:  # the other side closed: nobody is printing there
                        raise ConnectionResetError("printer closed the connection")
                finally:
                    sock.settimeout(self.io_timeout)
            elif transport == "serial":
                port = printer.device
                port.timeout = self.status_timeout
                try:  # read(1) returns with the first byte; then whatever else came with it
                    answer = bytes(port.read(1))
                    answer += bytes(port.read(port.in_waiting)) if answer else b""
                finally:
                    port.timeout = self.io_timeout
            else:  # usb: a timeout, or a printer without an IN endpoint, is "no answer"; an
                # unplugged one fails the write that follows
                try:
                    answer = bytes(printer.device.read(printer.in_ep, 16,
                                                       int(self.status_timeout * 1000)))
                except (OSError, ValueError) as exc:
                    log.debug("printer %s: USB status read: %s", self.name, _describe(exc))
        except TimeoutError:
            answer = b""
        if not answer:
            log.info("printer %s: no answer to the paper status query in %.1f s; printing "
                     "without it", self.name, self.status_timeout)
            return PaperStatus(None)
        last = answer[-1]  # automatic status back (ASB) bytes may come first
        if not is_status_byte(last):
            log.warning("printer %s: unexpected status answer %s; printing without it",
                        self.name, answer.hex())
            return PaperStatus(None)
        return PaperStatus(last)

    def _finish(self, printer: Escpos) -> None:
        """Make sure the bytes left us: flush files, half-close TCP and wait briefly for EOF.

        Closing a socket with unread data makes Linux send RST, which can cost the printer the
        tail of the receipt; so we half-close, drain what the printer says, then close.
        """
        if self.spec.transport == "file":
            printer.flush()
        elif self.spec.transport == "tcp":
            sock: socket.socket = printer.device
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(self.status_timeout)
            try:
                while sock.recv(64):
                    pass
            except TimeoutError:
                log.debug("printer %s kept the connection open after the job", self.name)
        elif self.spec.transport == "serial":
            printer.device.flush()

    def _close(self, printer: Escpos, *, discard: bool) -> None:
        """Close the transport; after a failure (`discard`) drop unsent serial bytes first,
        which would otherwise make close()'s drain wait for a printer that is not reading."""
        try:
            if discard and self.spec.transport == "serial" and printer.device:
                printer.device.reset_output_buffer()
            printer.close()
        except (OSError, ValueError) as exc:
            log.debug("printer %s: close failed: %r", self.name, exc)


def _describe(exc: BaseException) -> str:
    """Type and message (python-escpos' exceptions keep their message out of `args`)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def open_printer(arg: str | None) -> EscposPrinter:
    """The printer for a spec ("escpos:tcp:HOST:PORT", ... or the part after "escpos:")."""
    return EscposPrinter(parse_spec(arg))


__all__ = ["EscposPrinter", "PaperStatus", "PrinterSpec", "open_printer", "parse_spec", "render",
           "render_receipt", "render_slip"]
