"""The terminal's operations: inquiry, redeem, void, top-up, activation, buyback, transfer.

Each money-moving operation is one `Store.write` job: it reads the card under the write lock,
runs the rules, and — only if approved — changes the balances, the offline counters and appends
the journal entry, all in one transaction. The result is returned after COMMIT, so whatever the
caller shows or prints is already durable. A declined request writes nothing, except a failed
PIN, whose count and journal entry are committed so a crash cannot reset the lock-out.

Methods block; call them from a worker thread (the UI does), never from the GUI thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from terminal import journal, people, rules
from terminal.buyback import DEFAULT_TABLE, BuybackTable, Quote, quote
from terminal.credentials import Credential, Presented, consume_code, resolve
from terminal.errors import BadInput, StateError
from terminal.limits import Limits
from terminal.luhn import mask
from terminal.model import Card, CardStatus, Delta
from terminal.online import Authorizer, HeldPurse, HoldAnswer, HoldRequest
from terminal.reasons import Outcome, Reason
from terminal.reports import ZReport, z_report
from terminal.rules import APPROVE, Decision, decline
from terminal.store import queries
from terminal.store.db import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PurseView:
    name: str
    currency: str
    balance: int


@dataclass(frozen=True)
class CardView:
    """What may be shown to the person holding the card: never the full number or PIN data."""

    masked_number: str
    program: str
    status: str
    expiry: str | None
    days_to_expiry: int | None
    purses: tuple[PurseView, ...]
    has_pin: bool

    @classmethod
    def of(cls, card: Card, today: date) -> CardView:
        return cls(mask(card.number), card.program, card.status.value,
                   card.expiry.isoformat() if card.expiry else None,
                   (card.expiry - today).days if card.expiry else None,
                   tuple(PurseView(p.name, p.currency, p.balance) for p in card.purses),
                   card.has_pin)

    def as_json(self) -> dict[str, Any]:
        return {"number": self.masked_number, "program": self.program, "status": self.status,
                "expiry": self.expiry, "days_to_expiry": self.days_to_expiry,
                "has_pin": self.has_pin,
                "purses": [{"name": p.name, "currency": p.currency, "balance": p.balance}
                           for p in self.purses]}


@dataclass(frozen=True)
class Result:
    """The answer to any operation: the decision, the card as it now stands, and the entry
    written (None when nothing was written). `quote` is set by quote and buyback."""

    decision: Decision
    card: CardView | None = None
    entry: journal.Entry | None = None
    quote: Quote | None = None

    @property
    def approved(self) -> bool:
        return self.decision.approved

    def as_json(self) -> dict[str, Any]:
        return {**self.decision.as_json(),
                "card": self.card.as_json() if self.card else None,
                "entry": _masked(self.entry) if self.entry else None,
                **({"quote": self.quote.as_json()} if self.quote else {})}


@dataclass(frozen=True)
class Voidable:
    """A redemption a supervisor may still void: what the void screen lists."""

    entry_id: str
    seq: int
    at: datetime
    card: str  # masked
    amount: int
    currency: str


@dataclass
class _Context:
    """What every operation needs, read once (one meta query) at the start of its transaction."""

    conn: sqlite3.Connection
    now: datetime
    limits: Limits
    terminal_id: str
    last_sync_at: datetime
    offline_total: int

    @classmethod
    def load(cls, conn: sqlite3.Connection, now: datetime) -> _Context:
        meta = queries.meta_values(conn, "terminal_id", "limits", "last_sync_at",
                                   "offline_total")
        if "terminal_id" not in meta or "last_sync_at" not in meta:
            raise StateError("no_store", path="?")
        return cls(conn, now, queries.parse_limits(meta.get("limits")), meta["terminal_id"],
                   datetime.fromisoformat(meta["last_sync_at"]),
                   int(meta.get("offline_total", "0")))

    @property
    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.limits.timezone)).date()

    def card_view(self, number: str) -> CardView | None:
        card = queries.load_card(self.conn, number=number)
        return CardView.of(card, self.today) if card else None

    def append(self, entry: journal.NewEntry) -> journal.Entry:
        return journal.append(self.conn, self.terminal_id, entry, self.now)

    def append_money(self, kind: str, card: Card, deltas: Sequence[Delta], cashier: str,
                     shift: str, data: dict[str, Any], ref: str | None = None,
                     online: bool = False, clamp: bool = False) -> journal.Entry:
        """Apply `deltas` and journal them, recording the card's program and balances after,
        so the entry alone can print (and reprint) its receipt. A debit a server approved is
        the server's to judge: the cached balances stop at zero (`clamp`)."""
        queries.apply_deltas(self.conn, deltas, clamp=clamp)
        after = (queries.load_card(self.conn, number=card.number) or card) if clamp \
            else card.after(deltas)
        data = {**data, "program": card.program,
                "after": [{"purse": p.name, "balance": p.balance, "currency": p.currency}
                          for p in after.purses]}
        return self.append(journal.NewEntry(kind, card.number, deltas, cashier, shift, ref=ref,
                                            online=online, data=data))


@dataclass(frozen=True)
class _Staged:
    """A debit that passed every local check except the offline limits: what to commit, once
    the offline limits or the server say yes. `show` is the card to show afterwards when it
    is not the debited one (a transfer's target)."""

    kind: str
    usable: _Usable
    deltas: tuple[Delta, ...]
    decision: Decision
    cashier_id: str
    shift: str
    data: dict[str, Any]
    closes: bool = False
    quote: Quote | None = None
    show: str | None = None

    @property
    def card(self) -> Card:
        return self.usable.card

    @property
    def debits(self) -> tuple[Delta, ...]:
        """The deltas that take money off the debited card."""
        return tuple(d for d in self.deltas if d.amount < 0 and d.card == self.card.number)


@dataclass(frozen=True)
class _Usable:
    """A card that passed the shared checks of a debit, with who supervised it (if anyone)."""

    presented: Presented
    card: Card
    decision: Decision
    supervisor: str | None


class Terminal:
    """The operations of one terminal over its store. Thread-safe; every call blocks."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now,
                 authorizer: Authorizer | None = None) -> None:
        self.store = store
        self.clock = clock
        #: Asks the server before a debit while online (None: always decide offline).
        self.authorizer = authorizer

    def _context(self, conn: sqlite3.Connection) -> _Context:
        return _Context.load(conn, self.clock())

    # -- looking ------------------------------------------------------------------------------

    def inquire(self, credential: Credential, pin: str | None = None) -> Result:
        """Balance and state of a card. Needs the PIN only for a typed number of a PIN card
        (anyone can type a number); a PIN, when given, is checked and its failure counted."""
        return self._look(credential, pin, with_quote=False)

    def quote(self, credential: Credential, pin: str | None = None) -> Result:
        """What the terminal would pay for the card now (the kiosk's "what is my card worth")."""
        return self._look(credential, pin, with_quote=True)

    def _look(self, credential: Credential, pin: str | None, with_quote: bool) -> Result:
        def job(conn: sqlite3.Connection) -> Result:
            ctx = self._context(conn)
            presented = resolve(conn, credential, ctx.now, ctx.limits.code_skew_seconds)
            card = presented.card
            if card is None:
                return Result(presented.decision)
            if pin is not None or (presented.via == "number" and card.has_pin):
                decision = self._card_pin(ctx, card, pin)
                if not decision.approved:
                    return Result(decision)
            view = CardView.of(card, ctx.today)
            state = rules.card_state(card, ctx.today, ctx.limits,
                                     denylisted=queries.is_denylisted(conn, card.number))
            if not with_quote or not state.approved:
                return Result(state, view)
            decision, q = self._quote(ctx, card)
            return Result(rules.combine(state, decision), view, quote=q)

        # Without a PIN nothing is written, so a read connection serves (and proves it).
        return self.store.write(job) if pin is not None else self.store.read(job)

    def _quote(self, ctx: _Context, card: Card) -> tuple[Decision, Quote | None]:
        if any(p.currency != ctx.limits.currency for p in card.purses if p.balance):
            return decline(Reason.CURRENCY_MISMATCH, currency=ctx.limits.currency), None
        balance = sum(p.balance for p in card.purses)
        if balance == 0:
            return decline(Reason.NOTHING_TO_REDEEM), None
        return APPROVE, quote(self._buyback_table(ctx.conn), balance, ctx.limits.currency,
                              card.program, ctx.today, card.expiry)

    @staticmethod
    def _buyback_table(conn: sqlite3.Connection) -> BuybackTable:
        text = queries.get_meta(conn, "buyback")
        return DEFAULT_TABLE if text is None else BuybackTable.from_json(json.loads(text))

    # -- moving money -------------------------------------------------------------------------

    def redeem(self, credential: Credential, amount: int, *, purse: str | None = None,
               pin: str | None = None, cashier: str | None = None, allow_partial: bool = False,
               supervisor_pin: str | None = None, supervisor: str | None = None,
               second_factor: tuple[str, str] | None = None) -> Result:
        """Take `amount` (minor units) off the card: from `purse`, or by the purse order.
        `second_factor` is (challenge id, code) when the server asked for a one-time code."""
        _positive(amount)

        def prepare(ctx: _Context) -> _Staged | Result:
            shift, cashier_id = people.current_shift(ctx.conn, cashier)
            usable = self._usable_card(ctx, credential, pin, cashier_id, shift,
                                       supervisor_pin=supervisor_pin, supervisor=supervisor)
            if isinstance(usable, Result):
                return usable
            card = usable.card
            plan, deltas = rules.plan_debit(card, amount, purse, ctx.limits,
                                            allow_partial=allow_partial)
            decision = rules.combine(usable.decision, plan)
            if not decision.approved:
                return Result(decision, CardView.of(card, ctx.today))
            data = {"supervisor": usable.supervisor} if usable.supervisor else {}
            return _Staged("redeem", usable, tuple(deltas), decision, cashier_id, shift, data)

        return self._debit(prepare, second_factor)

    def void(self, entry_id: str, *, supervisor_pin: str | None, supervisor: str | None = None,
             cashier: str | None = None) -> Result:
        """Reverse a recent redemption with a new entry; needs a supervisor's PIN."""
        def job(conn: sqlite3.Connection) -> Result:
            ctx = self._context(conn)
            shift, cashier_id = people.current_shift(conn, cashier)
            original = next(journal.entries(conn, "id = ?", (entry_id,)), None)
            if original is None:
                return Result(decline(Reason.VOID_NOT_FOUND, entry=entry_id))
            if original.kind != "redeem":
                return Result(decline(Reason.VOID_NOT_ALLOWED, kind=original.kind))
            if conn.execute("SELECT 1 FROM journal WHERE ref = ? AND kind = 'void'",
                            (entry_id,)).fetchone():
                return Result(decline(Reason.ALREADY_VOIDED))
            if ctx.now - original.at > timedelta(minutes=ctx.limits.void_window_minutes):
                return Result(decline(Reason.VOID_TOO_LATE,
                                      minutes=ctx.limits.void_window_minutes))
            card = queries.load_card(conn, number=str(original.body["card"]))
            if card is None or card.status is CardStatus.CLOSED:
                return Result(decline(Reason.VOID_NOT_ALLOWED, kind="closed"))
            sup = people.check_supervisor(conn, supervisor_pin, supervisor, ctx.limits)
            if not sup.decision.approved:
                return Result(sup.decision, CardView.of(card, ctx.today))
            reversal = [Delta(d.card, d.program, d.purse, -d.amount, d.currency)
                        for d in original.deltas]
            if not original.body["online"]:
                refunded = rules.total(original.deltas)
                day = original.at.astimezone(ZoneInfo(ctx.limits.timezone)).date()
                queries.add_card_day(conn, card.number, day, -refunded)
                queries.add_offline_total(conn, -refunded)
            entry = ctx.append_money("void", card, reversal, cashier_id, shift,
                                     {"supervisor": sup.cashier_id}, ref=entry_id)
            return Result(APPROVE, CardView.of(card.after(reversal), ctx.today), entry)

        return self.store.write(job)

    def voidable(self, limit: int = 20) -> list[Voidable]:
        """The open shift's redemptions that a void could still reverse (newest first): not
        voided yet and inside the void window. A read; what the void screen lists."""
        def job(conn: sqlite3.Connection) -> list[Voidable]:
            ctx = self._context(conn)
            shift = queries.open_shift(conn)
            if shift is None:
                return []
            since = journal.timestamp(ctx.now - timedelta(minutes=ctx.limits.void_window_minutes))
            found = journal.entries(
                conn, "kind = 'redeem' AND shift = ? AND at >= ? AND id NOT IN "
                "(SELECT ref FROM journal WHERE kind = 'void' AND ref IS NOT NULL)",
                (shift[0], since))
            rows = [Voidable(e.id, e.seq, e.at, mask(str(e.body["card"])),
                             -sum(d.amount for d in e.deltas), e.deltas[0].currency)
                    for e in found if e.deltas]
            return rows[::-1][:limit]

        return self.store.read(job)

    def topup(self, credential: Credential, amount: int, *, purse: str | None = None,
              cashier: str | None = None) -> Result:
        """Add money to a purse of an active card (the customer has paid for it)."""
        _positive(amount)
        return self._credit("topup", credential, amount, purse, cashier)

    def activate(self, credential: Credential, *, amount: int = 0, purse: str | None = None,
                 cashier: str | None = None) -> Result:
        """Activate a card from an issued batch, optionally loading a first amount."""
        if amount < 0:
            raise BadInput("bad_amount", amount=str(amount), currency="")
        return self._credit("activate", credential, amount, purse, cashier)

    def _credit(self, kind: str, credential: Credential, amount: int, purse: str | None,
                cashier: str | None) -> Result:
        def job(conn: sqlite3.Connection) -> Result:
            ctx = self._context(conn)
            shift, cashier_id = people.current_shift(conn, cashier)
            presented = resolve(conn, credential, ctx.now, ctx.limits.code_skew_seconds)
            card = presented.card
            if card is None:
                return Result(presented.decision)
            decision = rules.combine(presented.decision, rules.card_state(
                card, ctx.today, ctx.limits, denylisted=queries.is_denylisted(conn, card.number),
                activating=kind == "activate"))
            deltas: list[Delta] = []
            if decision.approved and amount:
                credit, delta = rules.credit_gate(card, purse, amount, ctx.limits)
                decision = rules.combine(decision, credit)
                deltas = [delta] if delta else []
            if not decision.approved:
                return Result(decision, CardView.of(card, ctx.today))
            data: dict[str, Any] = {}
            if kind == "activate":
                queries.set_card_status(conn, card.number, CardStatus.ACTIVE)
                data["status"] = CardStatus.ACTIVE.value
            entry = ctx.append_money(kind, card, deltas, cashier_id, shift, data)
            return Result(decision, ctx.card_view(card.number), entry)

        return self.store.write(job)

    def buyback(self, credential: Credential, *, pin: str | None = None,
                cashier: str | None = None, supervisor_pin: str | None = None,
                supervisor: str | None = None,
                second_factor: tuple[str, str] | None = None) -> Result:
        """Pay the quoted price for the card's whole balance and close the card."""
        def prepare(ctx: _Context) -> _Staged | Result:
            shift, cashier_id = people.current_shift(ctx.conn, cashier)
            usable = self._usable_card(ctx, credential, pin, cashier_id, shift,
                                       supervisor_pin=supervisor_pin, supervisor=supervisor)
            if isinstance(usable, Result):
                return usable
            card = usable.card
            decision, q = self._quote(ctx, card)
            decision = rules.combine(usable.decision, decision)
            view = CardView.of(card, ctx.today)
            if not decision.approved or q is None:
                return Result(decision, view, quote=q)
            data: dict[str, Any] = {"price": q.price, "rate_bp": q.rate_bp, "currency": q.currency}
            if usable.supervisor:
                data["supervisor"] = usable.supervisor
            elif q.price > ctx.limits.buyback_supervisor_above:
                sup = people.check_supervisor(ctx.conn, supervisor_pin, supervisor, ctx.limits)
                if not sup.decision.approved:
                    return Result(sup.decision, view, quote=q)
                data["supervisor"] = sup.cashier_id
            return _Staged("buyback", usable, tuple(rules.debit_all(card)), decision, cashier_id,
                           shift, data, closes=True, quote=q)

        return self._debit(prepare, second_factor)

    def transfer(self, source: Credential, target: Credential, *, pin: str | None = None,
                 cashier: str | None = None, supervisor_pin: str | None = None,
                 supervisor: str | None = None,
                 second_factor: tuple[str, str] | None = None) -> Result:
        """Move every purse of `source` to the same purse of `target` and close `source`
        (a damaged card replaced, or two cards merged). Needs a supervisor."""
        def prepare(ctx: _Context) -> _Staged | Result:
            shift, cashier_id = people.current_shift(ctx.conn, cashier)
            sup = people.check_supervisor(ctx.conn, supervisor_pin, supervisor, ctx.limits)
            if not sup.decision.approved:
                return Result(sup.decision)
            usable = self._usable_card(ctx, source, pin, cashier_id, shift,
                                       supervised_by=sup.cashier_id)
            if isinstance(usable, Result):
                return usable
            src = usable.card
            dst_presented = resolve(ctx.conn, target, ctx.now, ctx.limits.code_skew_seconds)
            dst = dst_presented.card
            if dst is None:
                return Result(dst_presented.decision, CardView.of(src, ctx.today))
            if dst.number == src.number:
                raise BadInput("same_card")
            decision = rules.combine(usable.decision, rules.card_state(
                dst, ctx.today, ctx.limits, denylisted=queries.is_denylisted(ctx.conn, dst.number)),
                _fits(src, dst, ctx.limits))
            if not decision.approved:
                return Result(decision, CardView.of(src, ctx.today))
            debits = rules.debit_all(src)
            credits = [Delta(dst.number, dst.program, d.purse, -d.amount, d.currency)
                       for d in debits]
            return _Staged("transfer", usable, (*debits, *credits), decision, cashier_id, shift,
                           {"to": dst.number, "supervisor": sup.cashier_id}, closes=True,
                           show=dst.number)

        return self._debit(prepare, second_factor)

    # -- debits: offline, or authorized online first -------------------------------------------

    def _debit(self, prepare: Callable[[_Context], _Staged | Result],
               second_factor: tuple[str, str] | None) -> Result:
        """Run a debit. Offline (no authorizer, or the server known unreachable): one write
        job — checks, offline limits, commit. Online: the checks in one job (a wrong PIN is
        committed there), the server asked *outside* any store transaction (the writer is
        never held across the network), then the commit in a second job. No answer in time
        means the offline path, from a fresh look at the card."""
        def offline(conn: sqlite3.Connection) -> Result:
            ctx = self._context(conn)
            staged = prepare(ctx)
            if isinstance(staged, Result):
                return staged
            decision = self._last_gates(ctx, staged.usable, rules.total(staged.debits),
                                        staged.decision)
            if not decision.approved:
                return Result(decision, CardView.of(staged.card, ctx.today), quote=staged.quote)
            return self._commit(ctx, staged, decision, hold=None)

        if self.authorizer is None or not self.authorizer.ready():
            return self.store.write(offline)
        staged = self.store.write(lambda conn: prepare(self._context(conn)))
        if isinstance(staged, Result):
            return staged
        request = HoldRequest(journal.new_id(), staged.card.number, staged.kind, tuple(
            HeldPurse(d.purse, -d.amount, d.currency) for d in staged.debits), second_factor)
        answer = self.authorizer.authorize(request)
        if answer is None:
            return self.store.write(offline)
        if not answer.approved:
            shown = self.store.read(lambda conn: self._context(conn).card_view(
                staged.card.number))
            return Result(_server_decline(answer), shown, quote=staged.quote)

        def online(conn: sqlite3.Connection) -> Result:
            ctx = self._context(conn)
            if answer.branch_only:  # a relay without its central server: limits apply too
                decision = self._last_gates(ctx, staged.usable, rules.total(staged.debits),
                                            staged.decision)
            else:
                decision = rules.combine(staged.decision, consume_code(
                    conn, staged.usable.presented, ctx.now, ctx.limits.code_skew_seconds))
            if not decision.approved:  # the hold is never used and expires
                return Result(decision, ctx.card_view(staged.card.number), quote=staged.quote)
            return self._commit(ctx, staged, decision, hold=answer.hold_id,
                                online=not answer.branch_only)

        return self.store.write(online)

    def _commit(self, ctx: _Context, staged: _Staged, decision: Decision, hold: str | None,
                online: bool = False) -> Result:
        """Commit an approved debit: offline exposure (unless the central server approved
        it), balances, the entry (naming its hold), and closing the source card for a buyback
        or transfer."""
        card = staged.card
        data = dict(staged.data)
        if not online:
            taken = rules.total(staged.debits)
            queries.add_card_day(ctx.conn, card.number, ctx.today, taken)
            queries.add_offline_total(ctx.conn, taken)
        if hold is not None:
            # The server approved against its ledger; a pull since the checks may have lowered
            # the cached balance, which then follows the server down to zero, never below
            # (`clamp`: append_money reads the balances after from the store).
            data["hold"] = hold
        entry = ctx.append_money(staged.kind, card, staged.deltas, staged.cashier_id,
                                 staged.shift, data, online=online, clamp=hold is not None)
        if staged.closes:
            queries.set_card_status(ctx.conn, card.number, CardStatus.CLOSED)
        return Result(decision, ctx.card_view(staged.show or card.number), entry, staged.quote)

    # -- shared steps -------------------------------------------------------------------------

    def _usable_card(self, ctx: _Context, credential: Credential, pin: str | None,
                     cashier_id: str, shift: str, *, supervisor_pin: str | None = None,
                     supervisor: str | None = None, supervised_by: str | None = None
                     ) -> _Usable | Result:
        """Resolve the credential and run the checks every debit shares: card state, the
        typed-number rule and the card PIN. Returns a Result instead when one of them says no."""
        presented = resolve(ctx.conn, credential, ctx.now, ctx.limits.code_skew_seconds)
        card = presented.card
        if card is None:
            return Result(presented.decision)
        view = CardView.of(card, ctx.today)
        state = rules.card_state(card, ctx.today, ctx.limits,
                                 denylisted=queries.is_denylisted(ctx.conn, card.number))
        if not state.approved:
            return Result(state, view)
        if (presented.via == "number" and not card.has_pin and supervised_by is None
                and ctx.limits.typed_number_needs_supervisor):
            sup = people.check_supervisor(ctx.conn, supervisor_pin, supervisor, ctx.limits)
            if not sup.decision.approved:
                return Result(sup.decision, view)
            supervised_by = sup.cashier_id
        pin_decision = self._card_pin(ctx, card, pin, cashier_id, shift)
        if not pin_decision.approved:
            return Result(pin_decision, view)
        return _Usable(presented, card, rules.combine(presented.decision, state), supervised_by)

    def _card_pin(self, ctx: _Context, card: Card, pin: str | None,
                  cashier_id: str | None = None, shift: str | None = None) -> Decision:
        """Check the card PIN; a wrong one is journaled (with the count already updated)."""
        decision, failed = people.check_card_pin(ctx.conn, card, pin, ctx.limits)
        if failed:
            ctx.append(journal.NewEntry("pin_failure", card.number, (), cashier_id, shift,
                                        data={"failures": card.pin_failures + 1}))
        return decision

    def _last_gates(self, ctx: _Context, usable: _Usable, amount: int, decision: Decision
                    ) -> Decision:
        """The offline limits, then — only if still approved — using up a dynamic code, so a
        code is spent only by an operation that goes through."""
        if decision.approved:
            exposure = rules.OfflineExposure(
                ctx.last_sync_at, ctx.offline_total,
                queries.card_day_total(ctx.conn, usable.card.number, ctx.today))
            decision = rules.combine(decision,
                                     rules.offline_gate(amount, ctx.now, exposure, ctx.limits))
        if decision.approved:
            decision = rules.combine(decision, consume_code(
                ctx.conn, usable.presented, ctx.now, ctx.limits.code_skew_seconds))
        return decision


def _masked(entry: journal.Entry) -> dict[str, Any]:
    """An entry as shown to people and scripts: every card number masked (the journal itself,
    its export and its sync keep the full numbers)."""
    shown = entry.as_json()
    if shown["card"]:
        shown["card"] = mask(shown["card"])
    shown["deltas"] = [{**d, "card": mask(d["card"])} for d in shown["deltas"]]
    if "to" in shown["data"]:
        shown["data"] = {**shown["data"], "to": mask(shown["data"]["to"])}
    return shown


def _server_decline(answer: HoldAnswer) -> Decision:
    """The server's "no", in the terminal's terms: its reason if the terminal knows the code,
    else `declined_online` naming it (a newer server may have new reasons)."""
    try:
        reason = Reason(str(answer.reason))
    except ValueError:
        return Decision(Outcome.DECLINE, (Reason.DECLINED_ONLINE,), {"code": str(answer.reason)})
    if reason is Reason.SECOND_FACTOR_REQUIRED:
        return Decision(Outcome.NEEDS_SECOND_FACTOR, (reason,), dict(answer.params))
    return Decision(Outcome.DECLINE, (reason,), dict(answer.params))


def _positive(amount: int) -> None:
    if amount <= 0:
        raise BadInput("amount_not_positive")


def _fits(src: Card, dst: Card, limits: Limits) -> Decision:
    """Every non-empty purse of `src` has a same-named, same-currency purse on `dst` with room."""
    for p in src.purses:
        if p.balance == 0:
            continue
        target = dst.purse(p.name)
        if target is None:
            return decline(Reason.UNKNOWN_PURSE, purse=p.name)
        if target.currency != p.currency:
            return decline(Reason.CURRENCY_MISMATCH, currency=p.currency)
        if target.balance + p.balance > limits.max_purse_balance:
            return decline(Reason.BALANCE_LIMIT, limit=limits.max_purse_balance)
    if not any(p.balance for p in src.purses):
        return decline(Reason.NOTHING_TO_REDEEM)
    return APPROVE


class Shifts:
    """Opening and closing shifts, and the Z report. Blocking calls, like `Terminal`'s."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def open(self, cashier_id: str, pin: str) -> tuple[Decision, str | None]:
        """Log a cashier in and open a shift; returns the decision and the new shift id."""
        def job(conn: sqlite3.Connection) -> tuple[Decision, str | None]:
            decision, entry = people.open_shift(conn, cashier_id, pin, queries.load_limits(conn),
                                                queries.terminal_id(conn), self.clock())
            return decision, entry.body["shift"] if entry else None

        return self.store.write(job)

    def login(self, cashier_id: str, pin: str) -> tuple[Decision, str | None]:
        """Log a cashier in at the start of the app: open a shift, or resume the shift they
        left open (the app was closed or crashed mid-shift). Another cashier's open shift is
        `shift_already_open`: it must be closed with its own cashier's PIN first."""
        def job(conn: sqlite3.Connection) -> tuple[Decision, str | None]:
            open_shift = queries.open_shift(conn)
            if open_shift is None or open_shift[1] != cashier_id:
                decision, entry = people.open_shift(
                    conn, cashier_id, pin, queries.load_limits(conn), queries.terminal_id(conn),
                    self.clock())
                return decision, entry.body["shift"] if entry else None
            cashier = queries.load_cashier(conn, cashier_id)
            assert cashier is not None  # the shift's cashier exists (foreign key)
            decision = people.check_cashier_pin(conn, cashier, pin, queries.load_limits(conn))
            return decision, open_shift[0] if decision.approved else None

        return self.store.write(job)

    def current(self) -> tuple[str, str, str] | None:
        """(shift id, cashier id, opened at) of the open shift, or None."""
        return self.store.read(queries.open_shift)

    def check_supervisor(self, supervisor: str, pin: str) -> Decision:
        """Whether `pin` is supervisor `supervisor`'s (the kiosk's way out). A write: a wrong
        PIN counts against that supervisor and locks them out like any other PIN check.
        An unknown or inactive id is NotFound."""
        def job(conn: sqlite3.Connection) -> Decision:
            return people.check_supervisor(conn, pin, supervisor,
                                           queries.load_limits(conn)).decision

        return self.store.write(job)

    def close(self, pin: str) -> tuple[Decision, ZReport | None]:
        """Close the open shift with its cashier's PIN; the Z totals go into the close entry."""
        def job(conn: sqlite3.Connection) -> tuple[Decision, ZReport | None]:
            limits, terminal_id, now = queries.load_limits(conn), queries.terminal_id(conn), \
                self.clock()
            shift_id, cashier_id = people.current_shift(conn, None)
            cashier = queries.load_cashier(conn, cashier_id)
            assert cashier is not None
            decision = people.check_cashier_pin(conn, cashier, pin, limits)
            if not decision.approved:
                return decision, None
            closed_at = journal.timestamp(now)
            report = z_report(conn, terminal_id, shift_id, closed_at)
            conn.execute("UPDATE shifts SET closed_at = ? WHERE id = ?", (closed_at, shift_id))
            journal.append(conn, terminal_id, journal.NewEntry(
                "shift_close", cashier=cashier_id, shift=shift_id, data={"z": report.as_json()}),
                now)
            return decision, report

        return self.store.write(job)

    def z_report(self, shift_id: str | None = None) -> ZReport:
        return self.store.read(lambda conn: z_report(conn, queries.terminal_id(conn), shift_id))
