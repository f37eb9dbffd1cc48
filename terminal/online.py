"""Online authorization, as the core sees it: a port the sync client implements.

While the terminal is online, a debit (redeem, buyback, transfer) is authorized by the server
before it is committed: the server holds the amount on the card's purses and answers yes or no
(docs/server-api.md, POST /v1/authorize). The committed entry then says `online: true` and names
its hold, which the server settles when the entry is pushed; an online entry does not count
against the offline limits, because the server saw it happen.

When the server cannot answer in time — unreachable, slow, or answering garbage — the port says
so (`None`) and the terminal decides by its offline rules as if it had never asked. A server's
"no" is final for that request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HeldPurse:
    purse: str
    amount: int  # positive: how much the debit takes off this purse (minor units)
    currency: str


@dataclass(frozen=True)
class HoldRequest:
    """One debit to authorize. `hold_id` is made by the terminal (a UUID), so a request sent
    again after a lost answer finds the hold it placed instead of holding twice."""

    hold_id: str
    card: str
    kind: str
    purses: tuple[HeldPurse, ...]
    #: (challenge id, code) when the customer has a one-time code from the second factor.
    second_factor: tuple[str, str] | None = None


@dataclass(frozen=True)
class HoldAnswer:
    """The server's answer. Declined answers carry a reason code of `terminal.reasons.Reason`
    (or one the terminal does not know yet) and its parameters."""

    approved: bool
    hold_id: str
    reason: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Approved by a branch relay cut off from its central server: no till of the branch can
    #: spend the money again, but a till of another branch could, so the debit still counts
    #: against the offline limits and is journaled as offline.
    branch_only: bool = False


class Authorizer(Protocol):
    """Asks the server. Implemented by `sync.client.OnlineAuthorizer`.

    Both methods are called on the thread of the operation (a worker thread, never the GUI
    thread and never the store's writer thread), and must return within a bounded time."""

    def ready(self) -> bool:
        """Is it worth asking now? False while the server is known to be unreachable, so a
        terminal that is offline decides at once instead of waiting for a timeout per card."""

    def authorize(self, request: HoldRequest) -> HoldAnswer | None:
        """The server's answer, or None when there is none in time (decide offline)."""
