"""The emulated stored-value card: a Python card that pcscd's vpcd driver sees as a real one.

Part of the product's test kit and of `cardpos devices emulate-card`. vsmartcard's vpcd is a
pcscd reader driver that listens on TCP port 35963 (35964 for its second slot); a "virtual
ICC" connects to it. Opening the connection is inserting the card, closing it is removing it.
Every message is a 2-byte big-endian length and then the data; a 1-byte message is control
(0 power off, 1 power on, 2 reset, 4 "send your ATR", the only one answered), anything longer
is a command APDU to answer with a response APDU.

Two layers:
- `CardApplet` is the card's content and logic (`respond(apdu) -> response`), with no I/O, so
  a protocol test can run the reader's sequence (`drivers.apdu.read_card`) against it directly.
- `EmulatedCard` is the vpcd link: `insert()` connects and starts the card's own thread (named
  "vcard-<uid>") that answers vpcd until `remove()` closes the connection.

The card carries its token in the cardpos application (AID `drivers.apdu.CARDPOS_AID`, token
file C001: 2-byte length + token) or as a Type 4 Tag (NDEF application, CC file E103, NDEF file
E104 with the token in an external record `cardpos.org:t`), or both. For tests it can misbehave
on purpose: answer slowly, be pulled away in the middle of reading the token, or send a corrupt
answer (`Fault`). Layout and figures: docs/pcsc.md.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from drivers import apdu
from drivers.apdu import Command, Response
from terminal.errors import BadInput
from terminal.tokens import from_qr_text

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
#: ATR of an ISO/IEC 14443-4 card as a PC/SC contactless reader reports it (PC/SC part 3:
#: 3B 8n 80 01 + n historical bytes + TCK; here n = 0).
DEFAULT_ATR = bytes.fromhex("3B80800101")
#: Largest READ BINARY answer of the emulated card (also its CC's MLe): smaller than a token,
#: so a reader must read in several chunks.
DEFAULT_MAX_READ = 0x80

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


class Carrier(StrEnum):
    """Where the card keeps its token."""

    CARDPOS = "cardpos"  # the cardpos application's token file only
    NDEF = "ndef"  # a Type 4 Tag NDEF message only
    BOTH = "both"


class Fault(StrEnum):
    """Ways the card misbehaves on purpose, for tests."""

    PULL_MID_READ = "pull-mid-read"  # link closed instead of answering the 1st token read
    TRUNCATED_UID = "truncated-uid"  # GET UID answered with one byte: no status word
    OVERLONG_READ = "overlong-read"  # READ BINARY answered with more bytes than asked
    BAD_NDEF = "bad-ndef"  # NDEF record whose payload runs past the end of the message


class CardApplet:
    """The card's files and its answers to APDUs. No I/O, no thread: `respond` runs on
    whichever thread asks (the `EmulatedCard`'s link thread, or a test)."""

    def __init__(self, uid: bytes, token: bytes | None, carrier: Carrier = Carrier.CARDPOS,
                 fault: Fault | None = None, max_read: int = DEFAULT_MAX_READ) -> None:
        if len(uid) not in apdu.UID_LENGTHS:
            raise BadInput(detail=f"a UID has 4, 7, 8 or 10 bytes, not {len(uid)}")
        if not 0x0F <= max_read <= 256:
            raise BadInput(detail=f"max_read {max_read} outside 15..256")
        self.uid = uid
        self.token = token
        self.carrier = carrier
        self.fault = fault
        self.max_read = max_read
        self._apps: dict[bytes, dict[int, bytes]] = {}
        if token is not None and carrier in (Carrier.CARDPOS, Carrier.BOTH):
            self._apps[apdu.CARDPOS_AID] = {
                apdu.TOKEN_FILE_ID: len(token).to_bytes(2, "big") + token}
        if carrier in (Carrier.NDEF, Carrier.BOTH):
            message = apdu.encode_ndef_message([apdu.token_record(token)]) if token else b""
            if fault is Fault.BAD_NDEF and message:
                message = message[:-1]  # the record's payload now runs past the message
            ndef_file = len(message).to_bytes(2, "big") + message
            max_size = max(len(ndef_file), 0x400)
            self._apps[apdu.NDEF_AID] = {
                apdu.CC_FILE_ID: apdu.encode_cc(max_read, 0xFF, apdu.NDEF_FILE_ID, max_size),
                apdu.NDEF_FILE_ID: ndef_file,
            }
        self._app: dict[int, bytes] | None = None
        self._file: bytes | None = None
        self._token_reads = 0

    def reset(self) -> None:
        """Power-on/reset: nothing selected (the state a card has after the field comes up)."""
        self._app = None
        self._file = None
        self._token_reads = 0

    def respond(self, raw: bytes) -> bytes | None:
        """The response APDU to `raw`, or None when the card is "pulled away" now."""
        try:
            cmd = Command.parse(raw)
        except ValueError as exc:
            log.debug("unparsable APDU %s: %s", raw.hex(), exc)
            return Response(b"", apdu.SW_WRONG_LENGTH).to_bytes()
        if cmd.cla == 0xFF and cmd.ins == apdu.INS_GET_DATA:
            return self._get_uid(cmd)
        if cmd.cla != 0x00:
            return Response(b"", apdu.SW_CLA_NOT_SUPPORTED).to_bytes()
        if cmd.ins == apdu.INS_SELECT:
            return self._select(cmd).to_bytes()
        if cmd.ins == apdu.INS_READ_BINARY:
            return self._read_binary(cmd)
        return Response(b"", apdu.SW_INS_NOT_SUPPORTED).to_bytes()

    def _get_uid(self, cmd: Command) -> bytes:
        if cmd.p1 != 0x00 or cmd.p2 != 0x00:
            return Response(b"", apdu.SW_FUNCTION_NOT_SUPPORTED).to_bytes()
        if self.fault is Fault.TRUNCATED_UID:
            return b"\x90"
        return Response(self.uid, apdu.SW_OK).to_bytes()

    def _select(self, cmd: Command) -> Response:
        if cmd.p1 == 0x04:  # by application name (AID)
            app = self._apps.get(cmd.data)
            if app is None:
                return Response(b"", apdu.SW_NOT_FOUND)
            self._app, self._file = app, None
            return Response(b"", apdu.SW_OK)
        if cmd.p1 == 0x00 and cmd.p2 in (0x00, 0x0C) and len(cmd.data) == 2:  # by file id
            if self._app is None:
                return Response(b"", apdu.SW_NOT_FOUND)
            file = self._app.get(int.from_bytes(cmd.data, "big"))
            if file is None:
                return Response(b"", apdu.SW_NOT_FOUND)
            self._file = file
            return Response(b"", apdu.SW_OK)
        return Response(b"", 0x6A86)  # incorrect P1/P2

    def _read_binary(self, cmd: Command) -> bytes | None:
        if self._file is None:
            return Response(b"", apdu.SW_NOT_ALLOWED).to_bytes()
        if cmd.p1 & 0x80:
            return Response(b"", 0x6A86).to_bytes()  # short-EF addressing: not supported
        offset = (cmd.p1 << 8) | cmd.p2
        if offset > len(self._file):
            return Response(b"", apdu.SW_WRONG_P1P2).to_bytes()
        if offset >= 2:  # past the length prefix: reading the token itself
            self._token_reads += 1
            if self.fault is Fault.PULL_MID_READ and self._token_reads == 1:
                return None
        want = min(cmd.le or 256, self.max_read)
        data = self._file[offset:offset + want]
        if self.fault is Fault.OVERLONG_READ and offset >= 2:
            data += b"\x00" * 8
        sw = apdu.SW_OK if offset + want <= len(self._file) else apdu.SW_END_OF_FILE
        return Response(data, sw).to_bytes()


class EmulatedCard:
    """A card presented to vpcd over TCP; `insert()` / `remove()` from any thread.

    While inserted, the card's own daemon thread answers vpcd. `connect` makes the TCP
    connection (default: to `host`:`port`); tests pass one that connects inside pcscd's private
    network namespace. `delay_s` delays every response APDU (a slow card).
    """

    def __init__(self, uid: bytes, token: bytes | None = None, *,
                 carrier: Carrier = Carrier.CARDPOS, fault: Fault | None = None,
                 delay_s: float = 0.0, max_read: int = DEFAULT_MAX_READ,
                 atr: bytes = DEFAULT_ATR, host: str = VPCD_HOST, port: int = VPCD_PORT,
                 connect: Callable[[], socket.socket] | None = None) -> None:
        self.applet = CardApplet(uid, token, carrier, fault, max_read)
        self.atr = atr
        self.delay_s = delay_s
        self.host, self.port = host, port
        self._connect = connect or self._tcp_connect
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: time.perf_counter() when the last insert() connected, and when vpcd first spoke to
        #: the card after it (the moment the reader "saw" it) — for bench/tap_latency.py.
        self.inserted_at: float | None = None
        self.seen_at: float | None = None
        self._seen = threading.Event()

    @property
    def uid_hex(self) -> str:
        return self.applet.uid.hex().upper()

    @property
    def inserted(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _tcp_connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=5.0)

    def insert(self) -> None:
        """Connect to vpcd and start answering it. OSError if vpcd is not listening."""
        with self._lock:
            if self.inserted:
                return
            sock = self._connect()
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.applet.reset()
            self._seen.clear()
            self.seen_at = None
            self.inserted_at = time.perf_counter()
            self._sock = sock
            self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                            name=f"vcard-{self.uid_hex}")
            self._thread.start()
        log.info("card %s inserted", self.uid_hex)

    def remove(self, timeout: float = 5.0) -> None:
        """Close the link (the card leaves the field) and wait for the card's thread."""
        with self._lock:
            sock, thread = self._sock, self._thread
            self._sock = None
        if sock is not None:
            _close(sock)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("card %s: link thread still running after %.1f s",
                            self.uid_hex, timeout)
        if sock is not None:
            log.info("card %s removed", self.uid_hex)

    def wait_seen(self, timeout: float) -> bool:
        """Wait until vpcd has spoken to the inserted card (pcscd noticed it)."""
        return self._seen.wait(timeout)

    def run_forever(self, stop: threading.Event | None = None, retry_s: float = 1.0) -> None:
        """Keep the card inserted until `stop` is set (or KeyboardInterrupt): re-insert when
        vpcd is not there yet or drops the link (pcscd restarted). Blocks the calling thread."""
        stop = stop or threading.Event()
        reported = False
        try:
            while not stop.is_set():
                if not self.inserted:
                    try:
                        self.insert()
                        reported = False
                    except OSError as exc:
                        if not reported:
                            log.warning("vpcd on %s:%d is not reachable (%s): is pcscd running "
                                        "with vsmartcard-vpcd? Retrying.", self.host,
                                        self.port, exc)
                            reported = True
                        stop.wait(retry_s)
                        continue
                stop.wait(0.2)
        finally:
            self.remove()

    def _serve(self, sock: socket.socket) -> None:
        """The card's thread: answer vpcd's messages until the link closes."""
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    break
                (length,) = struct.unpack(">H", header)
                message = _recv_exact(sock, length)
                if message is None:
                    break
                if not self._seen.is_set():
                    self.seen_at = time.perf_counter()
                    self._seen.set()
                if length == 1:
                    reply = self._control(message[0])
                else:
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    reply = self.applet.respond(message)
                    if reply is None:
                        log.info("card %s pulled away mid-read", self.uid_hex)
                        break
                if reply is not None:
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError as exc:
            if self._sock is sock:
                log.warning("card %s: vpcd link failed: %s", self.uid_hex, exc)
            else:  # remove() closed the socket under us: expected
                log.debug("card %s: link closed by remove(): %s", self.uid_hex, exc)
        finally:
            with self._lock:
                if self._sock is sock:
                    self._sock = None
            _close(sock)

    def _control(self, code: int) -> bytes | None:
        if code == CTRL_ATR:
            return self.atr
        if code in (CTRL_ON, CTRL_RESET):
            self.applet.reset()
        elif code != CTRL_OFF:
            log.warning("card %s: unknown vpcd control byte %d", self.uid_hex, code)
        return None


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Exactly n bytes, or None at end of stream."""
    buf = bytearray()
    while len(buf) < n:
        # vpcd writes the length and the APDU with two send() calls and Nagle on: unless we
        # acknowledge the first at once, the second waits for our delayed ACK (40 ms a message).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:  # not connected any more: nothing to shut down
        log.debug("shutdown of card link: %s", exc)
    sock.close()


def parse_uid(uid_hex: str) -> bytes:
    """The UID bytes of `uid_hex` ("04A1B2C3D4E5F6", spaces and colons allowed)."""
    cleaned = uid_hex.replace(" ", "").replace(":", "")
    try:
        uid = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise BadInput(detail=f"UID {uid_hex!r} is not hex") from exc
    if len(uid) not in apdu.UID_LENGTHS:
        raise BadInput(detail=f"a UID has 4, 7, 8 or 10 bytes, not {len(uid)}")
    return uid


def emulate(uid_hex: str, token_text: str | None, host: str = VPCD_HOST,
            port: int = VPCD_PORT) -> None:
    """Present a card to vpcd until Ctrl-C (then remove it and return). For
    `cardpos devices emulate-card`; `token_text` is the token's QR text ("CP1:...")."""
    token = from_qr_text(token_text) if token_text is not None else None
    card = EmulatedCard(parse_uid(uid_hex), token, carrier=Carrier.BOTH, host=host, port=port)
    try:
        card.run_forever()
    except KeyboardInterrupt:
        log.info("card %s: interrupted, removed", card.uid_hex)
