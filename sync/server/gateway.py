"""Message gateways: how the server sends a text message (a one-time code, an expiry reminder)
to a card holder's phone. See docs/second-factor.md for the contract.

A gateway is anything with `send(phone, text) -> message id` (`MessageGateway`). It either hands
the message on and returns the provider's id for it, or raises `GatewayError`; it never returns
quietly without sending. `send` may be called from several threads at once (one per request
of the HTTP server), so a gateway must be thread-safe.

Two gateways come with cardpos, neither of which reaches a phone:

- `FileGateway` ("file:/path"): appends one JSON line per message to a file and fsyncs it, for
  the demo and the tests, which read the code back from the file. The file holds whole phone
  numbers and live codes: it stands in for the phones, so it is made readable by its owner only.
- `LogGateway` ("log:"): writes one log record per message with the phone masked and every run
  of six or more digits (a code, a phone number) blanked. It proves the flow runs where no
  provider is set up; it delivers nothing readable.

A real SMS provider is one more class with the same `send`, and one more prefix in
`make_gateway`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Protocol

from sync.server.db import utc_now
from terminal.errors import BadInput, CardposError

log = logging.getLogger(__name__)

SPECS = ("file:/PATH", "log:")
_LONG_DIGITS = re.compile(r"\d{6,}")


class GatewayError(CardposError):
    """A message could not be handed to the gateway (params: gateway, detail). Nothing was sent,
    as far as the gateway knows; the caller may try again later."""

    code = "gateway_failed"


class MessageGateway(Protocol):
    """Sends text messages to phones (E.164 numbers, validated by the caller)."""

    def send(self, phone: str, text: str) -> str:
        """Hand `text` over for `phone`; return the message's id. GatewayError if it cannot."""
        ...


def mask_phone(phone: str) -> str:
    """'+8613812341234' -> '+86*******1234': the country code's first digits and the last four,
    for a cashier to read out and for logs."""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:]


class FileGateway:
    """Appends `{"id", "phone", "text", "time"}` as one JSON line per message to `path`, fsynced
    before `send` returns (demo and tests only: the file holds the codes in clear)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one whole line per write, in order, across threads

    def send(self, phone: str, text: str) -> str:
        message_id = str(uuid.uuid4())
        line = json.dumps({"id": message_id, "phone": phone, "text": text,
                           "time": utc_now().isoformat()}, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise GatewayError(gateway=f"file:{self.path}", detail=exc.strerror or str(exc)
                               ) from exc
        return message_id


class LogGateway:
    """Logs each message (phone masked, long digit runs blanked) at INFO on this module's
    logger; delivers nothing."""

    def send(self, phone: str, text: str) -> str:
        message_id = str(uuid.uuid4())
        log.info("message %s to %s: %s", message_id, mask_phone(phone),
                 _LONG_DIGITS.sub(lambda m: "*" * len(m.group()), text))
        return message_id


def make_gateway(spec: str) -> MessageGateway:
    """The gateway a spec names: "file:/path/messages.jsonl" or "log:". BadInput otherwise."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "file" and rest:
        return FileGateway(Path(rest).expanduser())
    if sep and kind == "log" and not rest:
        return LogGateway()
    raise BadInput("bad_gateway_spec", spec=spec, allowed=", ".join(SPECS))
