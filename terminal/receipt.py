"""The receipt of a journal entry: what a printer prints and a screen previews.

Built from the committed entry alone (its deltas and the balances after it, which the entry
records), so a reprint days later shows exactly what the first print showed, marked as a copy.
Card numbers are masked; the entry id and chain hash, and a support code (for a QR) that names
the entry, let support find it in the journal. A `Slip` is the printer's other document: plain
lines under a title (the Z report), built by whoever prints it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from terminal.journal import Entry
from terminal.luhn import mask
from terminal.messages import text
from terminal.money import format_minor

#: Receipt titles by entry kind; kinds without one (shift events, PIN failures) get no receipt.
TITLES = {"redeem": "receipt_redeem", "void": "receipt_void", "topup": "receipt_topup",
          "activate": "receipt_activate", "buyback": "receipt_buyback",
          "transfer": "receipt_transfer"}


@dataclass(frozen=True)
class Receipt:
    title: str
    terminal_id: str
    at: str
    card: str
    program: str
    changes: tuple[tuple[str, str], ...]   # (purse, signed amount with currency)
    balances: tuple[tuple[str, str], ...]  # (purse, balance after, with currency)
    extra: tuple[tuple[str, str], ...]     # (label, value): buyback price, transfer target, ...
    entry_id: str
    seq: int
    chain_hash: str
    support_code: str
    copy: bool
    labels: dict[str, str]

    def text_lines(self, width: int = 42) -> list[str]:
        """Plain text, `width` columns: the screen preview and text-only printers."""
        def pair(left: str, right: str) -> str:
            return f"{left} {right:>{max(width - len(left) - 1, 0)}}"

        lines = [self.title.center(width)]
        if self.copy:
            lines.append(self.labels["copy"].center(width))
        lines += ["-" * width, pair(self.labels["terminal"], self.terminal_id), self.at,
                  pair(self.labels["card"], self.card), pair(self.labels["program"], self.program),
                  "-" * width]
        lines += [pair(purse, amount) for purse, amount in self.changes]
        lines += [pair(label, value) for label, value in self.extra]
        if self.balances:
            lines += ["", self.labels["balance"]]
            lines += [pair("  " + purse, amount) for purse, amount in self.balances]
        lines += ["-" * width, pair(self.labels["entry"], f"#{self.seq}"), self.entry_id,
                  self.chain_hash[:width]]
        return lines


def columns(text: str) -> int:
    """Printed width in font-A cells: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def fold(line: str, width: int) -> list[str]:
    """`line` in pieces of at most `width` cells: broken at the last space that fits, or cut
    where there is none (ids, Chinese text). An empty line stays one empty line."""
    pieces: list[str] = []
    while columns(line) > width:
        cut, cells = 0, 0  # the longest head that fits
        while cells + columns(line[cut]) <= width:
            cells += columns(line[cut])
            cut += 1
        space = line.rfind(" ", 0, cut + 1)
        head = line[:space].rstrip() if space > 0 else ""
        if head:
            pieces.append(head)
            line = line[space:].lstrip()
        else:
            pieces.append(line[:max(cut, 1)])
            line = line[max(cut, 1):]
    return [*pieces, line] if line or not pieces else pieces


@dataclass(frozen=True)
class Slip:
    """A plain text document for the receipt printer that is not a journal entry's receipt:
    the Z report of a shift. No entry id or support QR; long lines are folded to the paper.

    `copy_label` is the mark a reprint carries (a UI passes `text("receipt_copy", lang)`).
    """

    title: str
    lines: tuple[str, ...]
    copy: bool = False
    copy_label: str = text("receipt_copy", "en")

    def text_lines(self, width: int = 42) -> list[str]:
        """Plain text, `width` cells: title centred, the copy mark, a rule, the folded lines."""
        def centre(part: str) -> str:
            return " " * max((width - columns(part)) // 2, 0) + part

        lines = [centre(part) for part in fold(self.title, width)]
        if self.copy:
            lines.append(centre(self.copy_label))
        lines.append("-" * width)
        for line in self.lines:
            lines += fold(line, width)
        return lines


def label(document: Receipt | Slip) -> str:
    """How logs name a printed document: a receipt by its entry id, a slip by its title."""
    if isinstance(document, Receipt):
        return f"receipt {document.entry_id}"
    return f"slip {document.title!r}"


def support_code(entry: Entry) -> str:
    """What the support QR encodes: terminal, sequence, id and hash of the entry."""
    return f"cardpos:e/{entry.body['terminal']}/{entry.seq}/{entry.id}/{entry.hash}"


def build_receipt(entry: Entry, timezone: str, lang: str, *, copy: bool = False) -> Receipt:
    """The receipt of a committed money entry (ValueError for kinds that have none)."""
    if entry.kind not in TITLES:
        raise ValueError(f"no receipt for a {entry.kind} entry")
    card = str(entry.body["card"])
    data = entry.body["data"]
    own = [d for d in entry.deltas if d.card == card]

    def money(amount: int, cur: str) -> str:
        return f"{format_minor(amount, cur)} {cur}"

    extra: list[tuple[str, str]] = []
    if "price" in data:
        extra.append((text("receipt_paid_out", lang),
                      money(int(data["price"]), str(data["currency"]))))
    if "to" in data:
        extra.append((text("receipt_to_card", lang), mask(str(data["to"]))))
    labels = {k: text(f"receipt_{k}", lang)
              for k in ("copy", "terminal", "card", "program", "balance", "entry")}
    return Receipt(
        title=text(TITLES[entry.kind], lang), terminal_id=str(entry.body["terminal"]),
        at=entry.at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z"),
        card=mask(card), program=str(data["program"]),
        changes=tuple((d.purse, money(d.amount, d.currency)) for d in own),
        balances=tuple((str(p["purse"]), money(int(p["balance"]), str(p["currency"])))
                       for p in data["after"]),
        extra=tuple(extra), entry_id=entry.id, seq=entry.seq, chain_hash=entry.hash,
        support_code=support_code(entry), copy=copy, labels=labels)
