"""Checks of pushed journal entries: their shape, then the chain rules of docs/journal.md, using
the terminal's own code (`terminal.journal`) so both sides verify exactly the same way."""

from __future__ import annotations

from typing import Any

from terminal import journal
from terminal.journal import canonical, parse_timestamp

MEMBERS = frozenset(("v", "id", "terminal", "seq", "kind", "at", "cashier", "shift", "card",
                     "deltas", "ref", "online", "data", "prev"))
KINDS = frozenset(("redeem", "void", "topup", "activate", "buyback", "transfer", "pin_failure",
                   "shift_open", "shift_close", "limits"))
DELTA_MEMBERS = frozenset(("card", "program", "purse", "amount", "currency"))
_OPTIONAL_TEXT = ("cashier", "shift", "card", "ref")


def split(raw: Any) -> tuple[dict[str, Any], str] | str:
    """A pushed entry (the export form: the body's members plus `hash`) as (body, hash), or the
    reason it is malformed. Shape only; the chain is `problem`'s business."""
    if not isinstance(raw, dict):
        return "malformed_entry"
    digest = raw.get("hash")
    body = {k: v for k, v in raw.items() if k != "hash"}
    if not isinstance(digest, str) or set(body) != MEMBERS:
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
        parse_timestamp(body["at"])
    except (TypeError, ValueError):
        return "malformed_entry"
    for d in body["deltas"]:
        if not isinstance(d, dict) or set(d) != DELTA_MEMBERS:
            return "malformed_entry"
        if not isinstance(d["amount"], int) or isinstance(d["amount"], bool):
            return "malformed_entry"
        if not all(isinstance(d[k], str) for k in ("card", "program", "purse", "currency")):
            return "malformed_entry"
    try:
        canonical(body)
    except (TypeError, ValueError):  # NaN or infinity somewhere in `data`
        return "malformed_entry"
    return body, digest


def problem(body: dict[str, Any], digest: str, terminal_id: str, expected_seq: int,
            prev: str) -> str | None:
    """The first chain rule `body` breaks, given the terminal's head here, or None.

    Runs the terminal's own row check (`terminal.journal`'s verify walk) on the row the entry
    would be in a terminal's store: wrong_terminal, sequence_gap / sequence_out_of_order,
    chain_broken, hash_mismatch — in that order.
    """
    row = (body["seq"], body["id"], body["kind"], body["at"], body["card"], body["cashier"],
           body["shift"], body["ref"], canonical(body).decode("utf-8"), digest)
    return journal.row_problem(row, terminal_id, expected_seq, prev)
