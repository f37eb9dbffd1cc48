"""Every command the parser offers leads to a handler that exists (handlers load lazily)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator

from cardpos.cli import build_parser


def handlers(parser: argparse.ArgumentParser, path: str = "cardpos"
             ) -> Iterator[tuple[str, object]]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from handlers(sub, f"{path} {name}")
    handler = parser.get_default("handler")
    if handler is not None:
        yield path, handler


def test_every_command_has_a_real_handler() -> None:
    found = dict(handlers(build_parser()))
    assert {"cardpos redeem", "cardpos devices watch", "cardpos sync",
            "cardpos server run", "cardpos journal verify"} <= set(found)
    for path, handler in found.items():
        target = getattr(handler, "target", None)
        if target is None:  # registered directly, not lazily
            assert callable(handler), path
            continue
        module, name = target
        assert callable(getattr(importlib.import_module(module), name)), path
