"""Typed errors of the core.

Every error carries a stable `code` and the `params` its message needs, so the CLI and the UI can
show it translated (`terminal.messages.text(err.code, lang, **err.params)`) and logs can record it
as data. A declined request is not an error: it is a `Decision`. Errors are for input the terminal
cannot act on at all, and for failures of the machine (disk full, read-only store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from terminal.reasons import Reason


class CardposError(Exception):
    """Base of every error the core raises on purpose."""

    code: str = "error"

    def __init__(self, code: str | None = None, **params: Any) -> None:
        if code is not None:
            self.code = code
        self.params: dict[str, Any] = params
        super().__init__(self.english())

    def english(self) -> str:
        """The English message, for logs and exception text."""
        from terminal.messages import text

        return text(self.code, "en", **self.params)

    def message(self, lang: str) -> str:
        """The message in `lang` (falls back to English)."""
        from terminal.messages import text

        return text(self.code, lang, **self.params)


class BadInput(CardposError):
    """The request itself is malformed: wrong amount syntax, bad card number, unknown option."""

    code = "bad_input"


class NotFound(CardposError):
    """A named thing (cashier, entry, shift, key) does not exist."""

    code = "not_found"


class StateError(CardposError):
    """The request is well-formed but the terminal's state forbids it (no open shift, ...)."""

    code = "state_error"


class StoreError(CardposError):
    """The local store failed: disk full, read-only file, corrupt database, newer schema."""

    code = "store_error"


class TokenError(CardposError):
    """A signed code was refused. `reason` is the decision reason the refusal maps to."""

    def __init__(self, reason: Reason, **params: Any) -> None:
        self.reason = reason
        super().__init__(reason.value, **params)


@dataclass(frozen=True)
class RowError:
    """One problem in one line of an imported file (line numbers count the header as line 1)."""

    line: int
    column: str
    code: str
    params: dict[str, Any]

    def message(self, lang: str) -> str:
        from terminal.messages import text

        return text("row_error", lang, line=self.line, column=self.column,
                    problem=text(self.code, lang, **self.params))


class ImportRejected(CardposError):
    """A file had errors; nothing from it was imported."""

    code = "import_rejected"

    def __init__(self, errors: Sequence[RowError], total: int | None = None) -> None:
        self.errors = list(errors)
        super().__init__(count=len(self.errors) if total is None else total)


class DeviceError(CardposError):
    """A device could not do what was asked (printer offline or out of paper, no reader)."""

    code = "device_error"
