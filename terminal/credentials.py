"""How a card is presented (typed number, NFC UID, QR code) and how that finds the card.

Resolution verifies signed codes offline against the issuer keys in the store. It only reads; a
money-moving operation then marks a dynamic code as used in its own write transaction, so looking
a card up (inquiry, then redeem with the same code) does not burn the code.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from terminal import tokens
from terminal.errors import BadInput, TokenError
from terminal.luhn import normalize_card_number
from terminal.model import Card
from terminal.reasons import Reason
from terminal.rules import APPROVE, Decision, decline
from terminal.store import queries

_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$")


@dataclass(frozen=True)
class CardNumber:
    """A printed number typed by a person (spaces and dashes allowed)."""

    number: str


@dataclass(frozen=True)
class NfcUid:
    """The UID an NFC reader read (4, 7 or 10 bytes, hex). A lookup key only: UIDs can be cloned."""

    uid: str


@dataclass(frozen=True)
class NfcCard:
    """What a reader got from a tapped card: its UID and, if the card carries one, the signed
    token read from it (raw bytes, docs/token-format.md). A token is verified offline; the UID
    is then only checked against the card's recorded UID (a token copied onto another chip
    does not match)."""

    uid: str
    token: bytes | None = None


@dataclass(frozen=True)
class QrCode:
    """The text of a scanned QR code carrying a signed token."""

    text: str


Credential = CardNumber | NfcUid | NfcCard | QrCode


def normalize_uid(text: str) -> str:
    uid = re.sub(r"[\s:]", "", text).upper()
    if not _UID.match(uid):
        raise BadInput("bad_uid", uid=text)
    return uid


@dataclass(frozen=True)
class Presented:
    """The outcome of looking a credential up."""

    via: str  # "number" | "uid" | "qr" | "nfc" (a tapped card's signed token)
    card: Card | None
    token: tokens.TokenPayload | None
    decision: Decision


def resolve(conn: sqlite3.Connection, credential: Credential, now: datetime, skew_s: int
            ) -> Presented:
    """Find the card a credential names. Bad syntax is BadInput; a refused code is a decline."""
    if isinstance(credential, CardNumber):
        card = queries.load_card(conn, number=normalize_card_number(credential.number))
        return _found("number", card, None)
    if isinstance(credential, NfcUid) or (isinstance(credential, NfcCard)
                                          and credential.token is None):
        card = queries.load_card(conn, uid=normalize_uid(credential.uid))
        return _found("uid", card, None)
    via = "qr" if isinstance(credential, QrCode) else "nfc"
    try:
        raw = (tokens.from_qr_text(credential.text) if isinstance(credential, QrCode)
               else credential.token or b"")
        payload = tokens.verify_token(raw, queries.public_keys(conn), int(now.timestamp()),
                                      skew_s)
    except TokenError as exc:
        return Presented(via, None, None, decline(exc.reason))
    if payload.dynamic is not None and queries.code_seen(
            conn, payload.key_id, payload.card_number, payload.dynamic.counter):
        return Presented(via, None, payload, decline(Reason.REPLAYED_CODE))
    card = queries.load_card(conn, number=payload.card_number)
    if (isinstance(credential, NfcCard) and card is not None and card.uid is not None
            and card.uid != normalize_uid(credential.uid)):
        return Presented(via, None, payload, decline(Reason.CARD_MISMATCH))
    return _found(via, card, payload)


def _found(via: str, card: Card | None, token: tokens.TokenPayload | None) -> Presented:
    return Presented(via, card, token, APPROVE if card else decline(Reason.UNKNOWN_CARD))


def consume_code(conn: sqlite3.Connection, presented: Presented, now: datetime, skew_s: int
                 ) -> Decision:
    """Inside a write: mark a dynamic code used, or decline it as a replay."""
    token = presented.token
    if token is None or token.dynamic is None:
        return APPROVE
    # verify_token refuses a dynamic code after issued_at + window + skew; keep it a bit longer.
    forget_after = token.issued_at + token.dynamic.window_s + 2 * skew_s
    fresh = queries.mark_code_seen(conn, token.key_id, token.card_number, token.dynamic.counter,
                                   forget_after, int(now.timestamp()))
    return APPROVE if fresh else decline(Reason.REPLAYED_CODE)
