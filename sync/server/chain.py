"""Checks of pushed journal entries: their shape, then the chain rules of docs/journal.md, as the
terminal's own verify walk (`terminal.journal.row_problem`) applies them, in the same order and
with the same names.

Runs on the request thread for every entry of a push, so each entry's canonical form is made
once (`parse`) and reused for the hash check and for storing; see docs/benchmarks-sync.md.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, NamedTuple

from terminal import journal
from terminal.journal import canonical, parse_timestamp

MEMBERS = frozenset(("v", "id", "terminal", "seq", "kind", "at", "cashier", "shift", "card",
                     "deltas", "ref", "online", "data", "prev"))
KINDS = frozenset(("redeem", "void", "topup", "activate", "buyback", "transfer", "pin_failure",
                   "shift_open", "shift_close", "limits"))
DELTA_MEMBERS = frozenset(("card", "program", "purse", "amount", "currency"))
_OPTIONAL_TEXT = ("cashier", "shift", "card", "ref")
# The form `journal.timestamp` writes; anything else `parse_timestamp` accepts takes its slower
# path (strptime), so both give the same answers.
_WRITTEN_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Pushed(NamedTuple):
    """A pushed entry whose shape is right: its body, its claimed hash, the body's canonical
    form (what is hashed and stored), that form's actual SHA-256, and its time."""

    body: dict[str, Any]
    digest: str
    text: str
    sha256: str
    at: datetime


def parse(raw: Any) -> Pushed | str:
    """A pushed entry (the export form: the body's members plus `hash`), or the reason it is
    malformed. Shape only; the chain is `problem`'s business."""
    if not isinstance(raw, dict):
        return "malformed_entry"
    body = dict(raw)
    digest = body.pop("hash", None)
    if not isinstance(digest, str) or body.keys() != MEMBERS:
        return "malformed_entry"
    if body["v"] != journal.FORMAT_VERSION or isinstance(body["v"], bool):
        return "unknown_version"
    if not isinstance(body["id"], str) or not 1 <= len(body["id"]) <= 36:
        return "malformed_entry"
    if not isinstance(body["seq"], int) or isinstance(body["seq"], bool) or body["seq"] < 1:
        return "malformed_entry"
    if not isinstance(body["terminal"], str) or body["kind"] not in KINDS:
        return "malformed_entry"
    if not isinstance(body["online"], bool) or not isinstance(body["data"], dict):
        return "malformed_entry"
    if not isinstance(body["prev"], str) or not isinstance(body["deltas"], list):
        return "malformed_entry"
    if any(body[k] is not None and not isinstance(body[k], str) for k in _OPTIONAL_TEXT):
        return "malformed_entry"
    try:
        at = _timestamp(body["at"])
    except (TypeError, ValueError):
        return "malformed_entry"
    for d in body["deltas"]:
        if not isinstance(d, dict) or d.keys() != DELTA_MEMBERS:
            return "malformed_entry"
        if not isinstance(d["amount"], int) or isinstance(d["amount"], bool):
            return "malformed_entry"
        if not all(isinstance(d[k], str) for k in ("card", "program", "purse", "currency")):
            return "malformed_entry"
    try:
        text = canonical(body)
    except (TypeError, ValueError):  # NaN or infinity somewhere in `data`
        return "malformed_entry"
    return Pushed(body, digest, text.decode("utf-8"), hashlib.sha256(text).hexdigest(), at)


def _timestamp(text: Any) -> datetime:
    """`parse_timestamp`, without strptime for the form terminals write."""
    if isinstance(text, str) and _WRITTEN_AT.fullmatch(text):
        return datetime.fromisoformat(text)  # "Z" is UTC; the same instant strptime gives
    return parse_timestamp(text)


def problem(entry: Pushed, terminal_id: str, expected_seq: int, prev: str) -> str | None:
    """The first chain rule the entry breaks, given the terminal's head here, or None:
    wrong_terminal, sequence_gap / sequence_out_of_order, chain_broken, hash_mismatch — in
    that order, as `journal.row_problem` checks a stored row. Its first checks (the body text
    parses, is canonical, matches the columns) hold by construction for `parse`'s text."""
    body = entry.body
    if body["terminal"] != terminal_id:
        return "wrong_terminal"
    if body["seq"] != expected_seq:
        return "sequence_gap" if body["seq"] > expected_seq else "sequence_out_of_order"
    if body["prev"] != prev:
        return "chain_broken"
    if entry.sha256 != entry.digest:
        return "hash_mismatch"
    return None
