"""Handlers of `cardpos devices ...` and `cardpos scan-image`: support staff's tools on site."""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import time
from typing import Any

from cardpos.cli import EXIT_DECLINED, EXIT_OK, Out
from drivers import inventory, registry
from terminal import tokens
from terminal.messages import text
from terminal.ports import CardPresented, CardRemoved, CodeScanned, DeviceEvent


def devices_list(args: argparse.Namespace, out: Out) -> int:
    found = inventory.everything()
    out.emit({"devices": [f.as_json() for f in found]},
             [f"{'ok ' if f.ok else 'no '} {f.kind:<8} {f.name:<36} {f.detail}" for f in found])
    return EXIT_OK


def event_json(event: DeviceEvent, lang: str) -> dict[str, Any]:
    """The `--json` line of one device event (a token is shown in its QR text form)."""
    if isinstance(event, CardPresented):
        return {"kind": "card", "reader": event.reader, "uid": event.uid,
                "token": tokens.to_qr_text(event.token) if event.token is not None else None}
    if isinstance(event, CardRemoved):
        return {"kind": "removed", "reader": event.reader}
    if isinstance(event, CodeScanned):
        return {"kind": "code", "source": event.source, "text": event.text}
    return {"kind": "status", "device": event.device, "name": event.name,
            "state": event.state.value, "code": event.code, "detail": event.detail,
            "message": text(event.code, lang, name=event.name, detail=event.detail)}


def _event_line(data: dict[str, Any]) -> str:
    if data["kind"] == "card":
        return f"card   {data['uid']}  on {data['reader']}" + (
            f"  token {data['token']}" if data["token"] else "  (no token)")
    if data["kind"] == "removed":
        return f"removed from {data['reader']}"
    if data["kind"] == "code":
        return f"code   {data['text']}  from {data['source']}"
    return f"{data['device']} {data['state']}: {data['message']}"


def devices_watch(args: argparse.Namespace, out: Out) -> int:
    """Print each event of the reader until interrupted, or the first card with --once."""
    device = registry.open_reader(args.reader)
    events: queue.SimpleQueue[DeviceEvent] = queue.SimpleQueue()
    device.start(events.put)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            data = event_json(event, out.lang)
            print(json.dumps(data, ensure_ascii=False, sort_keys=True) if out.json
                  else _event_line(data), flush=True)
            if args.once and isinstance(event, CardPresented):
                return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        device.stop()
    return EXIT_DECLINED if args.once else EXIT_OK


def devices_emulate_card(args: argparse.Namespace, out: Out) -> int:
    """Present the emulated stored-value card to pcscd's vpcd until interrupted."""
    from drivers.vcard import emulate

    token_text = args.token
    if token_text is not None:
        tokens.from_qr_text(token_text)  # refuse a malformed token before presenting it
    print(f"Presenting card {args.uid} to vpcd on 127.0.0.1:{args.port}; Ctrl-C removes it.",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a person removes the card
        emulate(args.uid, token_text, port=args.port)
    return EXIT_OK


def scan_image(args: argparse.Namespace, out: Out) -> int:
    """Decode QR codes in image files with the camera's decoder; one line per file, exit 0."""
    from drivers.qr_decode import scan_files

    results = scan_files(args.files)
    out.emit({"results": [r.as_json(out.lang) for r in results]},
             [r.line(out.lang) for r in results])
    return EXIT_OK

