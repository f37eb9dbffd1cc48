"""Decision outcomes and reason codes: the vocabulary shared by rules, services, CLI and UI.

The codes are stable strings (they appear in `--json` output, in the journal and, later, on the
wire), so a code is never renamed; a new situation gets a new code. The UI and the CLI turn each
code into translated text through `terminal.messages`.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What the terminal may do with a request."""

    APPROVE = "approve"
    DECLINE = "decline"
    NEEDS_PIN = "needs_pin"
    NEEDS_SUPERVISOR = "needs_supervisor"
    NEEDS_ONLINE = "needs_online"
    #: The server wants the one-time code it sent to the card holder's phone.
    NEEDS_SECOND_FACTOR = "needs_second_factor"


class Reason(StrEnum):
    """Why a request was declined or held back, or a warning that goes with an approval."""

    # Card state
    UNKNOWN_CARD = "unknown_card"
    NOT_ACTIVATED = "not_activated"
    ALREADY_ACTIVE = "already_active"
    FROZEN = "frozen"
    LOST = "lost"
    EXPIRED = "expired"
    CLOSED = "closed"
    DENYLISTED = "denylisted"
    EXPIRING_SOON = "expiring_soon"  # warning only
    # Money
    INSUFFICIENT_BALANCE = "insufficient_balance"
    PARTIAL_APPROVAL = "partial_approval"  # warning: less than asked was approved
    UNKNOWN_PURSE = "unknown_purse"
    CURRENCY_MISMATCH = "currency_mismatch"
    NOTHING_TO_REDEEM = "nothing_to_redeem"
    BALANCE_LIMIT = "balance_limit"
    TOPUP_LIMIT = "topup_limit"
    # PIN and people
    PIN_REQUIRED = "pin_required"
    WRONG_PIN = "wrong_pin"
    PIN_LOCKED = "pin_locked"
    SUPERVISOR_REQUIRED = "supervisor_required"
    # Offline limits
    OFFLINE_LIMIT_TRANSACTION = "offline_limit_transaction"
    OFFLINE_LIMIT_CARD_DAY = "offline_limit_card_day"
    OFFLINE_LIMIT_TERMINAL = "offline_limit_terminal"
    OFFLINE_TOO_LONG = "offline_too_long"
    # Signed codes
    MALFORMED_CODE = "malformed_code"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_CODE = "expired_code"
    CODE_NOT_YET_VALID = "code_not_yet_valid"
    REPLAYED_CODE = "replayed_code"
    CARD_MISMATCH = "card_mismatch"  # a chip's UID and the signed token on it name different cards
    # Voids
    VOID_NOT_FOUND = "void_not_found"
    VOID_NOT_ALLOWED = "void_not_allowed"
    VOID_TOO_LATE = "void_too_late"
    ALREADY_VOIDED = "already_voided"
    # Online authorization (the server's answers)
    DECLINED_ONLINE = "declined_online"  # a reason this terminal does not know yet
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    WRONG_ONE_TIME_CODE = "wrong_one_time_code"
    ONE_TIME_CODE_EXPIRED = "one_time_code_expired"


#: Reasons that accompany an approval instead of preventing it.
WARNINGS = frozenset({Reason.EXPIRING_SOON, Reason.PARTIAL_APPROVAL})
