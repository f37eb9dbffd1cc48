"""Terminal enrolment and request authentication.

- An operator makes a one-time **enrolment code** for a terminal id (`make_enrol_code`); only
  the code's SHA-256 is stored. It is used at most once and expires after 24 hours.
- The terminal exchanges it (`enrol`) for a **credential**: 32 random bytes, URL-safe base64.
  Only its SHA-256 is stored (`terminals.credential_hash`). Enrolling a terminal that exists
  already (a replaced machine) gives it a new credential and keeps its chain head; the old
  credential stops working.
- Every request carries `Authorization: Bearer <credential>` (`authenticate`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.server.db import utc_now
from sync.server.schema import enrol_codes, terminals
from terminal.admin import TERMINAL_ID
from terminal.errors import BadInput, StateError
from terminal.journal import GENESIS_HASH

CODE_TTL = timedelta(hours=24)
# Crockford's base32 alphabet (no I, L, O, U): easy to read out and type.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS, _GROUP = 4, 5  # 20 symbols: 100 bits


class AuthError(Exception):
    """A refused enrolment or request: `status` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Identity:
    """The terminal a request is authenticated as."""

    terminal_id: str
    branch: str | None
    #: TERMINAL, or RELAY: a branch relay, which may push for the terminals it serves.
    role: str = "terminal"


TERMINAL, RELAY = "terminal", "relay"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_code(code: str) -> str:
    """Upper case without dashes or spaces, as read out: 'abcd-...' is 'ABCD...'."""
    return "".join(code.split()).replace("-", "").upper()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite drops the zone


def make_enrol_code(engine: Engine, terminal_id: str, branch: str | None = None, *,
                    now: datetime | None = None, role: str = TERMINAL) -> str:
    """A fresh one-time code that enrols `terminal_id` (in `branch`, as a `role`) within 24
    hours."""
    if not TERMINAL_ID.match(terminal_id):
        raise BadInput("bad_terminal_id", terminal_id=terminal_id)
    now = now or utc_now()
    symbols = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_GROUPS * _GROUP))
    code = "-".join(symbols[i:i + _GROUP] for i in range(0, len(symbols), _GROUP))
    with engine.begin() as conn:
        revoked = conn.execute(sa.select(terminals.c.revoked)
                               .where(terminals.c.id == terminal_id)).scalar()
        if revoked:
            raise StateError("terminal_revoked", terminal=terminal_id)
        conn.execute(sa.insert(enrol_codes).values(
            code_hash=_sha256(normalize_code(code)), terminal=terminal_id, branch=branch,
            created_at=now, expires_at=now + CODE_TTL, used_at=None, role=role))
    return code


def enrol(engine: Engine, code: str, terminal_id: str, *, now: datetime | None = None
          ) -> tuple[Identity, str]:
    """Exchange a one-time code for a credential: (the terminal, the credential). AuthError 403
    if the code is unknown, made for another terminal, used or expired."""
    now = now or utc_now()
    code_hash = _sha256(normalize_code(code))
    credential = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        row = conn.execute(sa.select(enrol_codes).where(enrol_codes.c.code_hash == code_hash)
                           .with_for_update()).first()
        if row is None or row.terminal != terminal_id:
            raise AuthError(403, "enrol_code_invalid",
                            "This enrolment code is not valid for this terminal.")
        if row.used_at is not None:
            raise AuthError(403, "enrol_code_used", "This enrolment code has been used.")
        if _aware(row.expires_at) <= now:
            raise AuthError(403, "enrol_code_expired", "This enrolment code has expired.")
        used = conn.execute(sa.update(enrol_codes)
                            .where(enrol_codes.c.code_hash == code_hash,
                                   enrol_codes.c.used_at.is_(None))
                            .values(used_at=now))
        if used.rowcount != 1:  # a concurrent enrolment won
            raise AuthError(403, "enrol_code_used", "This enrolment code has been used.")
        term = conn.execute(sa.select(terminals.c.revoked, terminals.c.branch,
                                      terminals.c.role)
                            .where(terminals.c.id == terminal_id).with_for_update()).first()
        branch = row.branch
        if term is None:
            conn.execute(sa.insert(terminals).values(
                id=terminal_id, branch=branch, credential_hash=_sha256(credential),
                revoked=False, last_seq=0, last_hash=GENESIS_HASH, enrolled_at=now,
                role=row.role))
        elif term.revoked:
            raise AuthError(403, "terminal_revoked", "This terminal has been revoked.")
        elif term.role != row.role:  # a till's id cannot become a relay's, nor the reverse
            raise AuthError(409, "enrol_role_conflict",
                            f"This code enrols a {row.role}, but {terminal_id} is a {term.role}.")
        else:
            branch = branch if branch is not None else term.branch
            conn.execute(sa.update(terminals).where(terminals.c.id == terminal_id)
                         .values(credential_hash=_sha256(credential), branch=branch,
                                 enrolled_at=now))
    return Identity(terminal_id, branch, str(row.role)), credential


def credential_of(authorization: str | None) -> str:
    """The credential of an `Authorization: Bearer <credential>` header (AuthError 401 if the
    header is missing or not a bearer credential)."""
    scheme, _, credential = (authorization or "").strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthError(401, "unauthorized", "A terminal credential is required.")
    return credential


def identify(conn: Connection, credential: str) -> Identity:
    """The terminal holding `credential`, inside the caller's transaction. AuthError 401 if it
    is unknown, 403 if the terminal is revoked."""
    row = conn.execute(sa.select(terminals.c.id, terminals.c.branch, terminals.c.revoked,
                                 terminals.c.role)
                       .where(terminals.c.credential_hash == _sha256(credential))).first()
    if row is None:
        raise AuthError(401, "unauthorized", "The terminal credential is not valid.")
    if row.revoked:
        raise AuthError(403, "terminal_revoked", "This terminal has been revoked.")
    return Identity(str(row.id), row.branch, str(row.role))


def authenticate(engine: Engine, authorization: str | None) -> Identity:
    """The terminal of an `Authorization: Bearer <credential>` header. AuthError 401 if it is
    missing or unknown, 403 if the terminal is revoked."""
    credential = credential_of(authorization)
    with engine.connect() as conn:
        return identify(conn, credential)
