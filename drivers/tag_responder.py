"""NFC Forum Type 2 and Type 4 tags emulated over nfcpy's ``udp:`` link (part of the test kit).

nfcpy's ``udp:HOST:PORT`` device stands in for a USB reader: instead of driving an RF field it
sends each frame of the reader/tag conversation as one UDP datagram, ``b"106A <hex>"`` (bit
rate and technology, a space, the frame in hex), and a reader that turns its field off sends
``b"RFOFF"``. nfcpy itself can only play a Type 3 tag on the other end, so this module plays
the two tag types the cardpos reader adapter must read, at frame level, like the chips do:

- **Type 2** (an NXP NTAG215): ISO 14443-3 A anticollision, READ (0x30, four 4-byte pages per
  answer), GET_VERSION (0x60); memory with the UID pages, the capability container in page 3
  and an NDEF message TLV from page 4.
- **Type 4** (an ISO-DEP card with the NFC Forum NDEF application): anticollision, RATS/ATS,
  ISO-DEP I-, R- and S-blocks (with chaining and retransmission), and the APDUs SELECT of the
  NDEF application, SELECT of the CC file (E103) and the NDEF file (E104), READ BINARY.

A `TagResponder` answers on its own thread, bound to 127.0.0.1 only. Tests drive it from code:
`present()` puts the tag on the reader, `remove()` takes it away, `leave_mid_read(n)` makes it
leave the field after answering n more commands, as a hand pulling a card away does. See
docs/nfcpy.md. Run ``python -m drivers.tag_responder --help`` to present one by hand.
"""

from __future__ import annotations

import argparse
import binascii
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterable
from enum import Enum, auto
from functools import reduce
from operator import xor
from typing import Literal

import ndef  # type: ignore[import-untyped]

from terminal.tokens import NDEF_TYPE

log = logging.getLogger(__name__)

TagKind = Literal["type2", "type4"]

#: The only technology and bit rate the responders speak; nfcpy's udp driver labels frames so.
BRTY = "106A"

# --- Type 2: an NTAG215 (135 pages of 4 bytes, 504 bytes of user memory) ----------------------
NTAG215_VERSION = bytes.fromhex("0004040201001103")
NTAG215_PAGES = 135
NTAG215_USER_BYTES = 504
T2_READ, T2_GET_VERSION, T2_HALT = 0x30, 0x60, 0x50
T2_NAK = b"\x00"  # the 4-bit NAK "invalid argument", sent as one byte over udp

# --- Type 4: NFC Forum Type 4 Tag, mapping version 2.0 ----------------------------------------
NDEF_AID_V2 = bytes.fromhex("D2760000850101")
NDEF_AID_V1 = bytes.fromhex("D2760000850100")
CC_FILE_ID = bytes.fromhex("E103")
NDEF_FILE_ID = bytes.fromhex("E104")
NDEF_FILE_MAX = 2048  # bytes the NDEF file may hold, length field included
T4_MLE = 0x00FF       # longest READ BINARY answer: longer than one frame, so answers chain
T4_MLC = 0x00FF
#: ATS: TL=5, T0 (TA TB TC follow, FSCI 8 = 256-byte frames), TA (106 kbit/s only),
#: TB (FWI 8 = 77 ms frame waiting time, SFGI 0), TC (no CID, no NAD).
DEFAULT_ATS = bytes.fromhex("0578808000")
FSD_BY_FSDI = (16, 24, 32, 40, 48, 64, 96, 128, 256)
SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_NO_FILE = b"\x69\x86"
SW_READ_ONLY = b"\x69\x82"
SW_BAD_OFFSET = b"\x6b\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_BAD_INS = b"\x6d\x00"
SW_BAD_CLA = b"\x6e\x00"


def ndef_message(token: bytes | None = None, uri: str | None = None) -> bytes:
    """The NDEF message a cardpos card carries: an optional URI record (an issuer's balance
    page, say) and the token record (docs/token-format.md, "NFC"). Both None: an empty message.
    """
    records: list[ndef.Record] = []
    if uri is not None:
        records.append(ndef.UriRecord(uri))
    if token is not None:
        records.append(ndef.Record(f"urn:nfc:ext:{NDEF_TYPE}", "", token))
    return b"".join(ndef.message_encoder(records)) if records else b""


def _bcc(data: bytes) -> int:
    return reduce(xor, data, 0)


def _cascade_levels(uid: bytes) -> list[bytes]:
    """The 4-byte UID parts answered at cascade levels 1..3 (0x88 marks "more to come")."""
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [b"\x88" + uid[0:3], uid[3:7]]
    if len(uid) == 10:
        return [b"\x88" + uid[0:3], b"\x88" + uid[3:6], uid[6:10]]
    raise ValueError(f"a Type A UID has 4, 7 or 10 bytes, not {len(uid)}")


def ntag215_memory(uid: bytes, message: bytes) -> bytes:
    """The 540 bytes of an NTAG215 holding `message` as its NDEF message TLV."""
    if len(uid) != 7 or uid[0] != 0x04:
        raise ValueError("an NTAG has a 7-byte UID starting with 04 (NXP)")
    tlv_len = bytes([len(message)]) if len(message) < 0xFF else b"\xff" + len(message).to_bytes(2)
    user = b"\x03" + tlv_len + message + b"\xfe"
    if len(user) > NTAG215_USER_BYTES:
        raise ValueError(f"NDEF message of {len(message)} bytes does not fit an NTAG215")
    header = (uid[0:3] + bytes([_bcc(b"\x88" + uid[0:3])]) + uid[3:7]
              + bytes([_bcc(uid[3:7]), 0x48, 0x00, 0x00])
              + bytes([0xE1, 0x10, NTAG215_USER_BYTES // 8, 0x00]))  # CC: NDEF 1.0, read/write
    config = (bytes.fromhex("000000BD")     # dynamic lock bytes
              + bytes.fromhex("040000FF")   # CFG0: AUTH0 = FF, no password protection
              + bytes.fromhex("00050000")   # CFG1 (ACCESS)
              + bytes(8))                   # PWD (reads as zeros), PACK, RFU
    return header + user.ljust(NTAG215_USER_BYTES, b"\x00") + config


def type4_files(message: bytes) -> dict[bytes, bytes]:
    """The CC file and the NDEF file of a Type 4 tag holding `message`, by file id."""
    if len(message) + 2 > NDEF_FILE_MAX:
        raise ValueError(f"NDEF message of {len(message)} bytes does not fit the NDEF file")
    cc = (b"\x00\x0f\x20" + T4_MLE.to_bytes(2) + T4_MLC.to_bytes(2)
          + b"\x04\x06" + NDEF_FILE_ID + NDEF_FILE_MAX.to_bytes(2)
          + b"\x00\xff")  # NDEF file control TLV: read freely, never written (this tag is static)
    return {CC_FILE_ID: cc, NDEF_FILE_ID: len(message).to_bytes(2) + message}


class _State(Enum):
    IDLE = auto()      # powered, waiting for SENS_REQ
    READY = auto()     # answering anticollision at some cascade level
    ACTIVE = auto()    # selected (a Type 4 tag waits for RATS here)
    ISO_DEP = auto()   # Type 4: after the ATS, exchanging ISO-DEP blocks
    HALT = auto()      # after HLTA or DESELECT: only a new field wakes it


class TagResponder:
    """One emulated tag at ``udp:127.0.0.1:<port>``, answering on its own thread.

    `kind` is "type2" (an NTAG215; the UID must be 7 bytes starting with 04) or "type4" (UID of
    4, 7 or 10 bytes); `message` is the NDEF message it holds (see `ndef_message`). `port` 0
    takes a free port; read it back from `port` or `path`. The tag starts away from the reader.
    The control methods are called from any thread; the frames are answered on the responder's.
    """

    def __init__(self, kind: TagKind, uid: bytes, message: bytes = b"", *, port: int = 0,
                 ats: bytes = DEFAULT_ATS) -> None:
        self.kind: TagKind = kind
        self.uid = bytes(uid)
        self._levels = _cascade_levels(self.uid)
        self._memory = ntag215_memory(self.uid, message) if kind == "type2" else b""
        self._files = type4_files(message) if kind == "type4" else {}
        #: The answer to RATS; a test may set a corrupt one (it takes effect at the next RATS).
        self.ats = ats
        self._lock = threading.Lock()
        self._present = False
        self._state = _State.IDLE
        self._level = 0
        self._leave_after: int | None = None
        #: Counters the tests read: tag activations (anticollision done) and commands answered
        #: after activation (READ, GET_VERSION, ISO-DEP blocks).
        self.activations = 0
        self.commands = 0
        #: `time.monotonic()` of the first poll answered since `present()` (None: none yet), so
        #: a measurement can tell the reader's polling delay from the read itself.
        self.first_answer_at: float | None = None
        self._left = threading.Event()
        self._reset_iso_dep()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", port))
        self._sock.settimeout(0.1)  # so close() is noticed within 0.1 s
        self.port: int = self._sock.getsockname()[1]
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"tag-responder:{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        """The nfcpy device path that reaches this tag."""
        return f"udp:127.0.0.1:{self.port}"

    # --- control (any thread) -----------------------------------------------------------------

    def present(self) -> None:
        """Put the tag on the reader: from now on it answers the reader's polls."""
        with self._lock:
            self._present = True
            self.first_answer_at = None
            self._power_up()

    def remove(self) -> None:
        """Take the tag away: it stops answering (and loses its state, unpowered)."""
        with self._lock:
            self._present = False
            self._power_up()

    def load(self, message: bytes) -> None:
        """Give the tag a new NDEF message, as a tag writer would (takes effect at once)."""
        memory = ntag215_memory(self.uid, message) if self.kind == "type2" else b""
        files = type4_files(message) if self.kind == "type4" else {}
        with self._lock:
            self._memory, self._files = memory, files

    @property
    def is_present(self) -> bool:
        with self._lock:
            return self._present

    def leave_mid_read(self, after: int) -> None:
        """Answer `after` more commands after activation, then leave the field unannounced.

        Commands are READs for a Type 2 tag and ISO-DEP blocks for a Type 4 tag; the budget
        spans re-activations, so nfcpy's habit of re-selecting an NTAG does not reset it.
        """
        with self._lock:
            self._leave_after = after
            self._left.clear()

    def wait_left(self, timeout: float) -> bool:
        """Wait until an armed `leave_mid_read` has happened."""
        return self._left.wait(timeout)

    def close(self) -> None:
        """Stop answering and release the port (joins the responder thread)."""
        self._closing.set()
        self._thread.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> TagResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the responder thread -----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                datagram, addr = self._sock.recvfrom(1024)
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._closing.is_set():
                    log.error("tag responder on port %d stopped: %s", self.port, exc)
                return
            if datagram.startswith(b"RFOFF"):
                with self._lock:
                    self._power_up()  # the reader switched its field off: back to IDLE
                continue
            try:
                brty, hexdata = datagram.decode("ascii").split()
                frame = binascii.unhexlify(hexdata)
            except (UnicodeDecodeError, ValueError, binascii.Error):
                log.warning("tag responder: ignored a malformed datagram %r", datagram[:40])
                continue
            if brty != BRTY:
                continue  # a Type B or F poll: this Type A tag stays silent
            with self._lock:
                answer = self._answer(frame)
            if answer is not None:
                self._sock.sendto(f"{BRTY} {answer.hex()}".encode("ascii"), addr)

    def _power_up(self) -> None:
        self._state = _State.IDLE
        self._level = 0
        self._reset_iso_dep()

    def _reset_iso_dep(self) -> None:
        self._block = 1           # the PICC's block number starts at 1 (ISO 14443-4 rule C)
        self._last_block = b""
        self._command = b""       # a chained command being received
        self._pending = b""       # the rest of a chained response
        self._max_inf = 253
        self._selected_app = False
        self._selected_file: bytes | None = None

    def _answer(self, frame: bytes) -> bytes | None:
        """The tag's answer to one frame, or None for silence. Called with the lock held."""
        if not self._present or not frame:
            return None
        if frame in (b"\x26", b"\x52"):  # SENS_REQ (REQA) / ALL_REQ (WUPA)
            if self._state is _State.HALT and frame == b"\x26":
                return None
            self._power_up()
            self._state = _State.READY
            if self.first_answer_at is None:
                self.first_answer_at = time.monotonic()
            size_bits = (len(self._levels) - 1) << 6
            return bytes([size_bits | 0x04, 0x03 if self.kind == "type4" else 0x00])
        if self._state is _State.READY:
            return self._anticollision(frame)
        if self._state in (_State.ACTIVE, _State.ISO_DEP):
            if self._leave_after is not None:
                if self._leave_after == 0:
                    log.debug("tag %s leaves the field mid-read", self.uid.hex())
                    self._leave_after = None
                    self._present = False
                    self._power_up()
                    self._left.set()
                    return None
                self._leave_after -= 1
            self.commands += 1
            if self.kind == "type2":
                return self._type2_command(frame)
            if self._state is _State.ACTIVE:
                return self._rats(frame)
            return self._iso_dep_block(frame)
        return None

    def _anticollision(self, frame: bytes) -> bytes | None:
        sel_cmd = (0x93, 0x95, 0x97)[self._level]
        part = self._levels[self._level]
        sdd_res = part + bytes([_bcc(part)])
        if frame == bytes([sel_cmd, 0x20]):          # SDD_REQ: which UID part?
            return sdd_res
        if frame == bytes([sel_cmd, 0x70]) + sdd_res:  # SEL_REQ: this one
            if self._level + 1 < len(self._levels):
                self._level += 1
                return b"\x04"  # SEL_RES: UID not complete, go on at the next level
            self._state = _State.ACTIVE
            self.activations += 1
            return b"\x20" if self.kind == "type4" else b"\x00"
        self._state = _State.IDLE  # not addressed to us
        return None

    # --- Type 2 ---------------------------------------------------------------------------------

    def _type2_command(self, frame: bytes) -> bytes | None:
        if frame[0] == T2_READ and len(frame) == 2:
            page = frame[1]
            if page >= NTAG215_PAGES:
                self._state = _State.IDLE
                return T2_NAK
            start = page * 4
            data = (self._memory[start:] + self._memory)[:16]  # reads roll over to page 0
            return data
        if frame == bytes([T2_GET_VERSION]):
            return NTAG215_VERSION
        if frame == bytes([T2_HALT, 0x00]):
            self._state = _State.HALT
            return None
        # Unsupported (AUTHENTICATE of an Ultralight C, writes: this tag is static): NAK, and
        # the chip drops back to IDLE, so nfcpy must select it again.
        self._state = _State.IDLE
        return T2_NAK

    # --- Type 4: RATS and ISO-DEP -----------------------------------------------------------------

    def _rats(self, frame: bytes) -> bytes | None:
        if frame[0] != 0xE0 or len(frame) != 2:
            self._state = _State.IDLE
            return None
        self._reset_iso_dep()
        self._max_inf = FSD_BY_FSDI[min(frame[1] >> 4, 8)] - 3  # PCB and CRC take 3 bytes
        self._state = _State.ISO_DEP
        return self.ats

    def _iso_dep_block(self, frame: bytes) -> bytes | None:
        pcb = frame[0]
        if pcb & 0xE2 == 0x02:  # I-block
            self._block ^= 1  # rule D: any I-block toggles the PICC's block number
            self._command += frame[1:]
            if pcb & 0x10:  # chained: acknowledge, wait for the rest
                return self._send(bytes([0xA2 | self._block]))
            apdu, self._command = self._command, b""
            return self._send_chunk(self._apdu(apdu))
        if pcb & 0xE6 == 0xA2:  # R-block
            same = (pcb & 0x01) == self._block
            if pcb & 0x10:  # R(NAK): a presence check, or the reader missed our answer
                return self._last_block if same else bytes([0xA2 | self._block])
            if same:  # R(ACK) for our current block: it was lost, send it again
                return self._last_block
            self._block ^= 1  # rule E: R(ACK) asks for the next block of a chained answer
            return self._send_chunk(self._pending)
        if pcb & 0xF7 == 0xC2:  # S(DESELECT)
            self._state = _State.HALT
            return bytes([0xC2])
        return None

    def _send_chunk(self, data: bytes) -> bytes:
        chunk, self._pending = data[: self._max_inf], data[self._max_inf:]
        pcb = (0x12 if self._pending else 0x02) | self._block
        return self._send(bytes([pcb]) + chunk)

    def _send(self, block: bytes) -> bytes:
        self._last_block = block
        return block

    def _apdu(self, apdu: bytes) -> bytes:
        """Answer one command APDU (short length fields only) with data + status word."""
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data, le = b"", 0
        if len(body) == 1:
            le = body[0] or 256
        elif len(body) > 1:
            lc = body[0]
            if len(body) not in (1 + lc, 2 + lc):
                return SW_WRONG_LENGTH
            data = body[1:1 + lc]
            if len(body) == 2 + lc:
                le = body[-1] or 256
        if cla != 0x00:
            return SW_BAD_CLA
        if ins == 0xA4 and p1 == 0x04:  # SELECT by name
            self._selected_app = data in (NDEF_AID_V2, NDEF_AID_V1)
            self._selected_file = None
            return SW_OK if self._selected_app else SW_NOT_FOUND
        if ins == 0xA4 and p1 == 0x00:  # SELECT by file id
            if not self._selected_app or data not in self._files:
                return SW_NOT_FOUND
            self._selected_file = data
            return SW_OK
        if ins == 0xB0:  # READ BINARY
            if self._selected_file is None:
                return SW_NO_FILE
            content = self._files[self._selected_file]
            offset = (p1 << 8) | p2
            if p1 & 0x80 or offset > len(content):
                return SW_BAD_OFFSET
            return content[offset:offset + (le or 256)] + SW_OK
        if ins == 0xD6:  # UPDATE BINARY: this tag is read-only
            return SW_READ_ONLY
        return SW_BAD_INS


def main(argv: Iterable[str] | None = None) -> int:
    """Present one emulated tag by hand, e.g. to try ``nfcpy:udp:127.0.0.1:54321``."""
    parser = argparse.ArgumentParser(prog="python -m drivers.tag_responder", description=(
        "Emulate an NFC Type 2 or Type 4 tag for nfcpy's udp: reader on 127.0.0.1. "
        "Press Enter to take the tag away or put it back; Ctrl-C quits."))
    parser.add_argument("--kind", choices=("type2", "type4"), default="type2")
    parser.add_argument("--uid", default="04A1B2C3D4E501", help="UID in hex")
    parser.add_argument("--token-hex", help="token bytes in hex (none: a tag without a token)")
    parser.add_argument("--uri", help="also carry a URI record")
    parser.add_argument("--port", type=int, default=54321)
    args = parser.parse_args(list(argv) if argv is not None else None)
    token = bytes.fromhex(args.token_hex) if args.token_hex else None
    with TagResponder(args.kind, bytes.fromhex(args.uid), ndef_message(token, args.uri),
                      port=args.port) as tag:
        tag.present()
        print(f"{args.kind} tag {args.uid.upper()} on {tag.path}: on the reader", flush=True)
        try:
            for _ in sys.stdin:
                (tag.remove if tag.is_present else tag.present)()
                print("on the reader" if tag.is_present else "taken away", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
