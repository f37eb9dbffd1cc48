"""One operation as a person experiences it: ask the core, and when it needs something more — the
card's PIN, a supervisor, the one-time code from the card holder's phone — ask for it and try
again, until it is approved, declined, or the person cancels.

The core call runs on the store worker; the asking happens on the GUI thread through an `Asker`
(the cashier's dialogs, the kiosk's PIN screen), whose answers come back by callback — no nested
event loop, so nothing blocks and tests drive the dialogs like a person. A wrong PIN or code is
asked again with the core's message ("Wrong PIN. 2 tries left."), until the core locks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from terminal.reasons import Outcome, Reason
from terminal.services import Result
from ui.bridge import Worker


@dataclass(frozen=True)
class Extras:
    """What a retry adds to the call."""

    pin: str | None = None
    supervisor: str | None = None
    supervisor_pin: str | None = None
    second_factor: tuple[str, str] | None = None


class Asker(Protocol):
    """Asks the person at the terminal; `answer(None)` means they cancelled."""

    def ask_pin(self, message: str, answer: Callable[[str | None], None]) -> None: ...

    def ask_supervisor(self, message: str,
                       answer: Callable[[tuple[str, str] | None], None]) -> None: ...

    def ask_code(self, message: str, answer: Callable[[str | None], None]) -> None: ...


Call = Callable[[Extras], Result]


class Operation:
    """Runs `call` until it has a final result, then `done(result)` (GUI thread); a typed
    error from the core goes to `failed(exc)`. `message(result)` words the prompt."""

    def __init__(self, worker: Worker, asker: Asker, call: Call, *,
                 done: Callable[[Result], None], failed: Callable[[Exception], None],
                 message: Callable[[Result], str]) -> None:
        self._worker, self._asker, self._call = worker, asker, call
        self._done, self._failed, self._message = done, failed, message
        self._extras = Extras()
        self._asked: str | None = None  # what the last question was: "pin" | "supervisor"

    def start(self) -> None:
        extras = self._extras
        self._worker.run(lambda: self._call(extras), self._answered, self._failed)

    def _answered(self, result: Result) -> None:
        decision = result.decision
        outcome, reasons = decision.outcome, set(decision.reasons)
        if outcome is Outcome.NEEDS_PIN or (
                outcome is Outcome.DECLINE and Reason.WRONG_PIN in reasons
                and self._asked == "pin"):
            self._asked = "pin"
            self._asker.ask_pin(self._message(result), lambda pin: self._retry(
                result, None if pin is None else replace(self._extras, pin=pin)))
        elif outcome is Outcome.NEEDS_SUPERVISOR or (
                outcome is Outcome.DECLINE and Reason.WRONG_PIN in reasons
                and self._asked == "supervisor"):
            self._asked = "supervisor"
            self._asker.ask_supervisor(self._message(result), lambda who: self._retry(
                result, None if who is None else replace(
                    self._extras, supervisor=who[0], supervisor_pin=who[1])))
        elif outcome is Outcome.NEEDS_SECOND_FACTOR or (
                outcome is Outcome.DECLINE and Reason.WRONG_ONE_TIME_CODE in reasons
                and self._extras.second_factor is not None):
            challenge = str(decision.params.get("challenge")
                            or (self._extras.second_factor or ("", ""))[0])
            self._asked = "code"
            self._asker.ask_code(self._message(result), lambda code: self._retry(
                result, None if code is None else replace(
                    self._extras, second_factor=(challenge, code))))
        else:
            self._done(result)

    def _retry(self, last: Result, extras: Extras | None) -> None:
        if extras is None:  # cancelled: the last answer stands (nothing was written)
            self._done(last)
            return
        self._extras = extras
        self.start()
