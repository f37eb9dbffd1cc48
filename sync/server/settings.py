"""Terminal policy held by the server: offline limits (`terminal.limits.Limits`) and buyback
prices (`terminal.buyback.BuybackTable`), set globally, per branch or per terminal, and
distributed to terminals by the pull (sync/server/pull.py).

A scope is ("global", ""), ("branch", B) or ("terminal", T); each has at most one `settings` row
holding a *partial* limits object (only the members set at that scope) and/or a whole prices
table. A terminal's effective limits are global <- branch <- terminal, member by member (the
more specific scope wins); its effective prices are the table of the most specific scope that
has one. Every change is validated with the terminal's own parsers (`Limits.from_json`,
`BuybackTable.from_json`: typed BadInput) and recorded in the change log under the scope's kind
(`SCOPE_KINDS`, key = the branch or terminal id, "global" for the global scope), so the next
pull of every terminal the scope covers carries the new effective values.

Called from the CLI (cardpos/server_settings_commands.py) and the pull; no threads of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server.branches import check_branch
from sync.server.db import insert, utc_now
from sync.server.ledger import ChangeLog
from sync.server.schema import settings, terminals
from terminal.admin import TERMINAL_ID
from terminal.buyback import BuybackTable
from terminal.errors import BadInput
from terminal.limits import Limits

GLOBAL, BRANCH, TERMINAL = "global", "branch", "terminal"
# The change-log kind of each scope (changes.kind is 16 characters at most) and the key of the
# global scope. A branch's or terminal's change has its name as key.
SCOPE_KINDS = {GLOBAL: "global_settings", BRANCH: "branch_settings", TERMINAL: "term_settings"}
GLOBAL_KEY = "global"


@dataclass(frozen=True)
class Scope:
    """Where a setting applies: everywhere, one branch, or one terminal."""

    kind: str
    name: str = ""

    @classmethod
    def of(cls, branch: str | None = None, terminal: str | None = None) -> Scope:
        """The scope of `--branch B` / `--terminal T` (neither: global; both: BadInput)."""
        if branch is not None and terminal is not None:
            raise BadInput("scope_ambiguous")
        if branch is not None:
            return cls(BRANCH, check_branch(branch))
        if terminal is not None:
            if not TERMINAL_ID.match(terminal):
                raise BadInput("bad_terminal_id", terminal_id=terminal)
            return cls(TERMINAL, terminal)
        return cls(GLOBAL)

    @property
    def change_key(self) -> tuple[str, str]:
        """(kind, key) of this scope's rows in the change log."""
        return SCOPE_KINDS[self.kind], self.name or GLOBAL_KEY

    def label(self) -> str:
        return self.kind if self.kind == GLOBAL else f"{self.kind} {self.name}"

    def as_json(self) -> dict[str, Any]:
        return {"scope": self.kind, "name": self.name or None}


@dataclass(frozen=True)
class Effective:
    """A terminal's effective policy: the merged partial limits (None: nothing set anywhere) and
    the prices table in force (None: none set), with where each limits member comes from."""

    limits: dict[str, Any] | None
    prices: dict[str, Any] | None
    sources: dict[str, str]
    prices_source: str | None

    def as_json(self) -> dict[str, Any]:
        return {"limits": self.limits, "prices": self.prices, "sources": self.sources,
                "prices_source": self.prices_source}


def check_limits(partial: dict[str, Any]) -> dict[str, Any]:
    """`partial` if every member is a valid `Limits` member (BadInput otherwise)."""
    if not isinstance(partial, dict):
        raise BadInput("bad_setting", name="limits", value=str(partial))
    Limits.from_json(partial)
    return partial


def check_prices(table: Any) -> dict[str, Any]:
    """`table` if it parses as a `BuybackTable` (BadInput otherwise)."""
    if not isinstance(table, dict):
        raise BadInput("bad_buyback_table", detail="not a JSON object")
    BuybackTable.from_json(table)
    return table


def _row(conn: Connection, scope: Scope, *, lock: bool = False
         ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(partial limits, prices) set at exactly `scope`; `lock` row-locks it for a change."""
    query = sa.select(settings.c.limits, settings.c.prices).where(
        settings.c.scope == scope.kind, settings.c.name == scope.name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None, None
    return (json.loads(row.limits) if row.limits else None,
            json.loads(row.prices) if row.prices else None)


def _store(conn: Connection, scope: Scope, limits: dict[str, Any] | None,
           prices: dict[str, Any] | None, now: datetime) -> None:
    values = {"limits": json.dumps(limits, sort_keys=True) if limits else None,
              "prices": json.dumps(prices, sort_keys=True) if prices is not None else None,
              "updated_at": now}
    stmt = insert(conn, settings).values(scope=scope.kind, name=scope.name, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["scope", "name"], set_=values))
    log = ChangeLog()
    log.add(*scope.change_key)
    log.flush(conn)


def set_limit(engine: Engine, scope: Scope, name: str, text: str, *,
              now: datetime | None = None) -> dict[str, Any]:
    """Set one limits member at `scope` from its text form, parsed exactly as the terminal's
    `cardpos limits set NAME VALUE` (`Limits.with_setting`). Returns the scope's partial
    limits after the change."""
    value = Limits().with_setting(name, text).as_json()[name]
    with engine.begin() as conn:
        limits, prices = _row(conn, scope, lock=True)
        merged = check_limits({**(limits or {}), name: value})
        _store(conn, scope, merged, prices, now or utc_now())
    return merged


def set_prices(engine: Engine, scope: Scope, table: Any, *,
               now: datetime | None = None) -> dict[str, Any]:
    """Set the whole buyback prices table at `scope`."""
    checked = check_prices(table)
    with engine.begin() as conn:
        limits, _prices = _row(conn, scope, lock=True)
        _store(conn, scope, limits, checked, now or utc_now())
    return checked


def scope_settings(engine: Engine, scope: Scope) -> tuple[dict[str, Any] | None,
                                                          dict[str, Any] | None]:
    """What is set at exactly `scope`: (partial limits, prices), None where nothing is."""
    with engine.connect() as conn:
        return _row(conn, scope)


def effective(conn: Connection, branch: str | None, terminal: str | None) -> Effective:
    """The policy in force for a terminal of `branch` (global <- branch <- terminal)."""
    chain = [Scope(GLOBAL)]
    if branch is not None:
        chain.append(Scope(BRANCH, branch))
    if terminal is not None:
        chain.append(Scope(TERMINAL, terminal))
    wanted = sa.or_(*(sa.and_(settings.c.scope == s.kind, settings.c.name == s.name)
                      for s in chain))
    held = {(r.scope, r.name): r for r in conn.execute(
        sa.select(settings.c.scope, settings.c.name, settings.c.limits, settings.c.prices)
        .where(wanted))}
    limits: dict[str, Any] = {}
    sources: dict[str, str] = {}
    prices: dict[str, Any] | None = None
    prices_source: str | None = None
    for scope in chain:  # least specific first: later ones override
        row = held.get((scope.kind, scope.name))
        if row is None:
            continue
        for member, value in (json.loads(row.limits) if row.limits else {}).items():
            limits[member], sources[member] = value, scope.label()
        if row.prices:
            prices, prices_source = json.loads(row.prices), scope.label()
    return Effective(limits or None, prices, sources, prices_source)


def effective_for(engine: Engine, scope: Scope) -> Effective:
    """What a terminal in `scope` gets: for a terminal its enrolled branch counts too; for a
    branch, a terminal of that branch without its own settings; for global, global alone."""
    with engine.connect() as conn:
        if scope.kind == TERMINAL:
            branch = conn.execute(sa.select(terminals.c.branch)
                                  .where(terminals.c.id == scope.name)).scalar()
            return effective(conn, branch, scope.name)
        return effective(conn, scope.name if scope.kind == BRANCH else None, None)


def relevant(kind: str, key: str, branch: str | None, terminal: str | None) -> bool:
    """Does a change-log row (kind, key) change the policy of this terminal?"""
    if kind == SCOPE_KINDS[GLOBAL]:
        return True
    if kind == SCOPE_KINDS[BRANCH]:
        return branch is not None and key == branch
    return kind == SCOPE_KINDS[TERMINAL] and terminal is not None and key == terminal
