"""What a reader says to a cardpos card, and how it checks every answer — transport-free.

A cardpos card (and the emulated one in drivers/vcard.py) answers ISO/IEC 7816-4 short APDUs.
A reader asks, in this order (docs/pcsc.md has the byte layout):

1. `FF CA 00 00 00` — GET UID, the PC/SC pseudo-APDU a contactless reader (or our card) answers
   with the chip's UID.
2. SELECT of the cardpos application (`CARDPOS_AID`), SELECT of its token file
   (`TOKEN_FILE_ID`), READ BINARY of a 2-byte length and then of the token in chunks.
3. Otherwise the NFC Forum Type 4 Tag path: SELECT of the NDEF application (`NDEF_AID`), the
   capability container (`CC_FILE_ID`), the NDEF file it names, and in the NDEF message the
   external record of type `terminal.tokens.NDEF_TYPE` whose payload is the token.

The card is whoever holds it up, so every response is checked (status word, lengths, offsets,
NDEF structure) and anything else is a `CorruptResponse` — never an IndexError escaping from a
reader thread. `read_card` takes the transport as a function (bytes in, bytes out), as nfcpy
passes the transport into its drivers, so the same sequence runs over pyscard, over nfcpy, or
straight against the emulated card in a unit test. No thread of its own: it runs on the caller's
thread (a reader's worker thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from terminal.errors import DeviceError
from terminal.tokens import NDEF_TYPE

log = logging.getLogger(__name__)

#: Proprietary AID of the cardpos application: category F (proprietary, ISO/IEC 7816-4 8.2.1.2)
#: followed by ASCII "cardpos".
CARDPOS_AID = bytes.fromhex("F0") + b"cardpos"
#: Elementary file of the cardpos application holding a 2-byte big-endian length + the token.
TOKEN_FILE_ID = 0xC001
#: NFC Forum Type 4 Tag: NDEF Tag Application (mapping version 2.0), capability container file.
NDEF_AID = bytes.fromhex("D2760000850101")
CC_FILE_ID = 0xE103
#: The NDEF file id our emulated card uses; a reader takes the one the CC names.
NDEF_FILE_ID = 0xE104

#: Largest token a reader accepts. A v1 token is at most ~300 bytes; this only bounds how much a
#: hostile card can make us read.
MAX_TOKEN_LEN = 4096
#: Largest chunk a reader asks for in one READ BINARY (a short APDU's Le is at most 256; 255
#: avoids the Le=00 encoding that some cards misread).
MAX_READ_CHUNK = 0xFF
#: UID lengths of ISO/IEC 14443 (single, double, triple size) plus 8-byte (e.g. FeliCa IDm).
UID_LENGTHS = (4, 7, 8, 10)

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282  # fewer bytes than Le: end of file reached
SW_WRONG_LENGTH = 0x6700
SW_NOT_ALLOWED = 0x6986  # e.g. READ BINARY with no file selected
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_NOT_FOUND = 0x6A82  # file or application not found
SW_WRONG_P1P2 = 0x6B00  # offset beyond the end of the file
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
#: Status words that mean "this card has no such application / cannot do this": not an error.
SW_ABSENT = frozenset({SW_NOT_FOUND, SW_FUNCTION_NOT_SUPPORTED, SW_INS_NOT_SUPPORTED,
                       SW_CLA_NOT_SUPPORTED, SW_NOT_ALLOWED, 0x6A86, 0x6999})

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_GET_DATA = 0xCA

NDEF_TNF_EXTERNAL = 0x04


class CardReadError(DeviceError):
    """A tap that produced no card event; `code` is the hint shown at the counter."""

    code = "card_unreadable"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail=detail)


class CorruptResponse(CardReadError):
    """The card answered something the protocol does not allow (length, status word, NDEF)."""

    code = "card_unreadable"


class CardRemovedMidRead(CardReadError):
    """The card went away (or the link to it broke) before it had answered everything."""

    code = "card_removed_mid_read"


class UnsupportedCard(CardReadError):
    """The card answers, but has no UID we can use (e.g. a contact chip card)."""

    code = "card_unsupported"


@dataclass(frozen=True)
class Command:
    """A short command APDU. `le` is the expected response length 1..256, or None for none."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def to_bytes(self) -> bytes:
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out += bytes((self.le & 0xFF,))  # 256 is encoded as 00
        return out

    @classmethod
    def parse(cls, raw: bytes) -> Command:
        """Decode a short APDU (cases 1-4); ValueError for anything else (extended, garbage)."""
        if len(raw) < 4:
            raise ValueError(f"APDU of {len(raw)} bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        lc = body[0]
        if lc == 0:
            raise ValueError("extended-length APDUs are not supported")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, data=body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, data=body[1:-1], le=body[-1] or 256)
        raise ValueError(f"Lc {lc} does not match a body of {len(body)} bytes")


@dataclass(frozen=True)
class Response:
    """A response APDU: data and the 2-byte status word."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise CorruptResponse(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


def get_uid() -> Command:
    return Command(0xFF, INS_GET_DATA, 0x00, 0x00, le=256)


def select_aid(aid: bytes) -> Command:
    return Command(0x00, INS_SELECT, 0x04, 0x00, aid, le=256)


def select_file(file_id: int) -> Command:
    # P2=0C: no FCI wanted, which every Type 4 tag must accept.
    return Command(0x00, INS_SELECT, 0x00, 0x0C, file_id.to_bytes(2, "big"))


def read_binary(offset: int, length: int) -> Command:
    if not 0 <= offset <= 0x7FFF or not 1 <= length <= 256:
        raise ValueError(f"READ BINARY at {offset} of {length} bytes")
    return Command(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)


# -- NDEF (NFC Forum NDEF 1.0 records, Type 4 Tag 2.0 capability container) -----------------


@dataclass(frozen=True)
class NdefRecord:
    tnf: int
    type: bytes
    payload: bytes
    id: bytes = b""


def encode_ndef_message(records: list[NdefRecord]) -> bytes:
    """Records as one NDEF message: short records where the payload fits in 255 bytes."""
    out = bytearray()
    for i, rec in enumerate(records):
        short = len(rec.payload) < 256
        header = rec.tnf & 0x07
        header |= 0x80 if i == 0 else 0  # MB
        header |= 0x40 if i == len(records) - 1 else 0  # ME
        header |= 0x10 if short else 0  # SR
        header |= 0x08 if rec.id else 0  # IL
        out.append(header)
        out.append(len(rec.type))
        out += len(rec.payload).to_bytes(1 if short else 4, "big")
        if rec.id:
            out.append(len(rec.id))
        out += rec.type + rec.id + rec.payload
    return bytes(out)


def parse_ndef_message(data: bytes) -> list[NdefRecord]:
    """The records of an NDEF message; `CorruptResponse` for any structural error."""
    records: list[NdefRecord] = []
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise CorruptResponse(f"NDEF {what} runs past the end of the message")
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    while pos < len(data):
        header = take(1, "header")[0]
        if not records and not header & 0x80:
            raise CorruptResponse("first NDEF record lacks the message-begin flag")
        if header & 0x20:
            raise CorruptResponse("chunked NDEF records are not supported")
        type_len = take(1, "type length")[0]
        payload_len = int.from_bytes(take(1 if header & 0x10 else 4, "payload length"), "big")
        id_len = take(1, "id length")[0] if header & 0x08 else 0
        rtype = take(type_len, "type")
        rid = take(id_len, "id")
        payload = take(payload_len, "payload")
        records.append(NdefRecord(header & 0x07, rtype, payload, rid))
        if header & 0x40:
            if pos != len(data):
                raise CorruptResponse(f"{len(data) - pos} bytes after the last NDEF record")
            return records
    raise CorruptResponse("NDEF message has no message-end record")


def token_record(token: bytes) -> NdefRecord:
    """The NDEF record that carries a cardpos token (external type, docs/token-format.md)."""
    return NdefRecord(NDEF_TNF_EXTERNAL, NDEF_TYPE.encode("ascii"), token)


def token_from_ndef(records: list[NdefRecord]) -> bytes | None:
    """The payload of the first cardpos token record (external type names are
    case-insensitive, NFC Forum RTD 1.0), or None when the message carries none."""
    wanted = NDEF_TYPE.encode("ascii").lower()
    for rec in records:
        if rec.tnf == NDEF_TNF_EXTERNAL and rec.type.lower() == wanted:
            return rec.payload
    return None


@dataclass(frozen=True)
class CapabilityContainer:
    mle: int  # largest R-APDU data the tag sends in one READ BINARY
    ndef_file_id: int
    max_ndef_size: int
    read_access: int  # 0x00 = readable without security


def encode_cc(mle: int, mlc: int, ndef_file_id: int, max_ndef_size: int) -> bytes:
    """A 15-byte Type 4 Tag capability container (mapping version 2.0, free read access,
    no write access)."""
    return (
        (15).to_bytes(2, "big") + b"\x20" + mle.to_bytes(2, "big") + mlc.to_bytes(2, "big")
        + b"\x04\x06" + ndef_file_id.to_bytes(2, "big") + max_ndef_size.to_bytes(2, "big")
        + b"\x00\xff"
    )


def parse_cc(data: bytes) -> CapabilityContainer:
    if len(data) < 15:
        raise CorruptResponse(f"capability container of {len(data)} bytes")
    if data[2] >> 4 not in (1, 2):
        raise CorruptResponse(f"unsupported Type 4 mapping version {data[2]:#04x}")
    mle = int.from_bytes(data[3:5], "big")
    if data[7] != 0x04 or data[8] != 0x06:
        raise CorruptResponse("capability container has no NDEF file control TLV")
    cc = CapabilityContainer(
        mle=mle,
        ndef_file_id=int.from_bytes(data[9:11], "big"),
        max_ndef_size=int.from_bytes(data[11:13], "big"),
        read_access=data[13],
    )
    if mle < 0x0F:
        raise CorruptResponse(f"capability container MLe {mle} is below the minimum 15")
    return cc


# -- the read sequence -------------------------------------------------------------------------

#: Sends one command APDU, returns the raw response APDU. Raises `CardRemovedMidRead` when the
#: card is gone, `CardReadError` for other transport failures.
Transmit = Callable[[bytes], bytes]


@dataclass(frozen=True)
class CardData:
    uid: str  # upper-case hex
    token: bytes | None
    via: str  # "cardpos" | "ndef" | "none": where the token came from, for the log


def exchange(transmit: Transmit, command: Command) -> Response:
    """Send `command`; retry once with the exact Le when the card answers 6Cxx."""
    response = Response.parse(transmit(command.to_bytes()))
    if response.sw >> 8 == 0x6C and command.le is not None:
        exact = response.sw & 0xFF or 256
        response = Response.parse(transmit(Command(command.cla, command.ins, command.p1,
                                                   command.p2, command.data, exact).to_bytes()))
    if command.le is not None and len(response.data) > command.le:
        raise CorruptResponse(
            f"{len(response.data)} bytes in answer to INS {command.ins:02X} with Le {command.le}")
    return response


def read_uid(transmit: Transmit) -> str:
    response = exchange(transmit, get_uid())
    if response.sw in SW_ABSENT:
        raise UnsupportedCard(f"GET UID answered {response.sw:04X}")
    if response.sw != SW_OK:
        raise CorruptResponse(f"GET UID answered {response.sw:04X}")
    if len(response.data) not in UID_LENGTHS:
        raise CorruptResponse(f"UID of {len(response.data)} bytes")
    return response.data.hex().upper()


def _select(transmit: Transmit, command: Command) -> bool:
    """True if selected, False if the card has no such application/file."""
    response = exchange(transmit, command)
    if response.sw == SW_OK:
        return True
    if response.sw in SW_ABSENT:
        return False
    raise CorruptResponse(f"SELECT answered {response.sw:04X}")


def read_file(transmit: Transmit, start: int, length: int, chunk: int) -> bytes:
    """`length` bytes of the selected file from offset `start`, `chunk` bytes at a time.

    A card may answer fewer bytes than asked (we continue from where it stopped), never more,
    and never none.
    """
    out = bytearray()
    while len(out) < length:
        offset = start + len(out)
        if offset > 0x7FFF:
            raise CorruptResponse(f"file offset {offset} beyond READ BINARY's 15 bits")
        want = min(chunk, length - len(out))
        response = exchange(transmit, read_binary(offset, want))
        if response.sw not in (SW_OK, SW_END_OF_FILE):
            raise CorruptResponse(f"READ BINARY at {offset} answered {response.sw:04X}")
        if not response.data:
            raise CorruptResponse(f"READ BINARY at {offset} returned no data")
        out += response.data
    return bytes(out)


def _read_length_prefixed(transmit: Transmit, chunk: int, limit: int) -> bytes:
    size = int.from_bytes(read_file(transmit, 0, 2, chunk), "big")
    if size > limit:
        raise CorruptResponse(f"file claims {size} bytes (limit {limit})")
    return read_file(transmit, 2, size, chunk) if size else b""


def read_cardpos_token(transmit: Transmit) -> bytes | None:
    """The token of the cardpos application, None if the card has no such application."""
    if not _select(transmit, select_aid(CARDPOS_AID)):
        return None
    if not _select(transmit, select_file(TOKEN_FILE_ID)):
        raise CorruptResponse("cardpos application without its token file")
    token = _read_length_prefixed(transmit, MAX_READ_CHUNK, MAX_TOKEN_LEN)
    return token or None


def read_ndef_token(transmit: Transmit) -> bytes | None:
    """The token in a Type 4 tag's NDEF message, None if no NDEF application or no record."""
    if not _select(transmit, select_aid(NDEF_AID)):
        return None
    if not _select(transmit, select_file(CC_FILE_ID)):
        raise CorruptResponse("NDEF application without a capability container")
    cc = parse_cc(read_file(transmit, 0, 15, 15))
    if cc.read_access != 0x00:
        log.info("NDEF file %04X is read-protected (%02X)", cc.ndef_file_id, cc.read_access)
        return None
    if not _select(transmit, select_file(cc.ndef_file_id)):
        raise CorruptResponse(f"NDEF file {cc.ndef_file_id:04X} named by the CC is missing")
    chunk = min(cc.mle, MAX_READ_CHUNK)
    # max_ndef_size counts the 2-byte NLEN; the token record adds a few header bytes.
    message = _read_length_prefixed(transmit, chunk,
                                    min(cc.max_ndef_size - 2, MAX_TOKEN_LEN + 64))
    if not message:
        return None
    return token_from_ndef(parse_ndef_message(message))


def read_card(transmit: Transmit) -> CardData:
    """UID, then the token by the cardpos application, else by the Type 4 NDEF file."""
    uid = read_uid(transmit)
    token = read_cardpos_token(transmit)
    if token is not None:
        return CardData(uid, token, "cardpos")
    token = read_ndef_token(transmit)
    return CardData(uid, token, "ndef" if token is not None else "none")
