"""Plain-text rendering of results for the CLI (the `--json` form comes from `as_json`)."""

from __future__ import annotations

from terminal.journal import VerifyResult
from terminal.messages import text
from terminal.money import format_minor
from terminal.reasons import Reason
from terminal.reports import ZReport
from terminal.rules import Decision
from terminal.services import CardView, Result

_AMOUNT_PARAMS = ("available", "approved_amount", "requested_amount", "limit", "remaining")


def reason_texts(decision: Decision, lang: str, currency: str) -> list[tuple[Reason, str]]:
    """Each reason of `decision` with its translated sentence (amounts formatted)."""
    params = {k: format_minor(v, currency) if k in _AMOUNT_PARAMS and isinstance(v, int) else v
              for k, v in decision.params.items()}
    return [(r, text(r.value, lang, **params)) for r in decision.reasons]


def decision_lines(decision: Decision, lang: str, currency: str) -> list[str]:
    """The outcome in capitals, then one translated line per reason."""
    head = decision.outcome.value.upper().replace("_", " ")
    lines = [head + ": " + text(decision.outcome.value, lang)]
    lines += [("  ! " if r in (Reason.EXPIRING_SOON, Reason.PARTIAL_APPROVAL) else "  - ") + line
              for r, line in reason_texts(decision, lang, currency)]
    return lines


def card_lines(card: CardView) -> list[str]:
    expiry = "no expiry" if card.expiry is None else (
        f"expires {card.expiry} ({card.days_to_expiry} days)")
    lines = [f"Card {card.masked_number}  program {card.program}  {card.status}  {expiry}"
             + ("  PIN" if card.has_pin else "")]
    lines += [f"  {p.name:<14} {format_minor(p.balance, p.currency):>12} {p.currency}"
              for p in card.purses]
    return lines


def result_lines(result: Result, lang: str, currency: str) -> list[str]:
    lines = decision_lines(result.decision, lang, currency)
    if result.card is not None:
        lines += card_lines(result.card)
    if result.quote is not None:
        q = result.quote
        lines.append(f"Buyback price {format_minor(q.price, q.currency)} {q.currency}"
                     f" for {format_minor(q.balance, q.currency)} ({q.rate_bp / 100:.2f} %,"
                     f" season {q.season})")
    if result.entry is not None:
        e = result.entry
        lines.append(f"Entry {e.id}  seq {e.seq}  {e.kind}  hash {e.hash[:16]}")
    return lines


def z_lines(report: ZReport) -> list[str]:
    lines = [f"Z report  terminal {report.terminal_id}  shift {report.shift_id}",
             f"Cashier {report.cashier}  opened {report.opened_at}"
             f"  closed {report.closed_at or '(open)'}",
             f"Entries {report.first_seq}..{report.last_seq}", ""]
    lines += [f"  {ln.kind:<10} {ln.program or '-':<12} {ln.purse or '-':<12} {ln.count:>5}"
              f" {format_minor(ln.amount, ln.currency) if ln.currency else '':>14} {ln.currency}"
              for ln in report.lines]
    lines += ["", f"Voids {report.voids}   PIN failures {report.pin_failures}",
              f"Money operations {report.money_entries}, offline {report.offline_entries}"
              f" ({report.offline_share_pct} %)"]
    return lines


def verify_lines(result: VerifyResult) -> list[str]:
    if result.ok:
        return [f"Journal OK: {result.checked} entries, chain intact."]
    return [f"Journal BROKEN at seq {result.bad_seq} (entry {result.bad_id}): {result.problem}."
            f" {result.checked} entries before it are intact."]
