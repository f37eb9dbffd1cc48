"""Every command the parser offers leads to a handler that exists (handlers load lazily)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator

import pytest

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


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
            ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def test_every_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`cardpos ... --help` works for every command and group (a help text that argparse
    cannot format is a crash a person meets first)."""
    seen = 0
    for path, _parser in parsers(build_parser()):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*path, "--help"])
        assert done.value.code == 0, path
        assert "usage: cardpos" in capsys.readouterr().out, path
        seen += 1
    assert seen > 40
