"""Every code the core can produce has a message in every language."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from string import Formatter

import pytest

import terminal
from terminal.messages import CATALOGUES, EN, LANGUAGES, text
from terminal.model import CardStatus
from terminal.reasons import Outcome, Reason

ROOT = Path(terminal.__file__).parent.parent


def raised_codes() -> set[str]:
    """Codes passed to the typed errors and the import's row errors in the app's packages."""
    files = itertools.chain(*((ROOT / d).rglob("*.py")
                              for d in ("terminal", "cardpos", "drivers", "ui", "sync")))
    source = "\n".join(p.read_text(encoding="utf-8") for p in files)
    codes = set(re.findall(r"\b(?:BadInput|NotFound|[A-Z]\w*Error)\(\s*\"([a-z_]+)\"", source))
    codes |= set(re.findall(r"\bcode=\"([a-z_]+)\"", source))  # DeviceStatus hints
    codes |= set(re.findall(r"errors\.add\([^\"]*\"[a-z_]+\",\s*\"([a-z_]+)\"", source))
    codes |= set(re.findall(r"_SQLITE_[A-Z]+: \"([a-z_]+)\"", source))
    return codes


def test_the_scan_finds_codes() -> None:
    codes = raised_codes()
    assert {"bad_amount", "no_open_shift", "disk_full", "bad_check_digit", "uid_taken"} <= codes


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_reason_outcome_and_error_has_a_message(lang: str) -> None:
    wanted = {r.value for r in Reason} | {o.value for o in Outcome} | raised_codes()
    missing = sorted(wanted - set(CATALOGUES[lang]))
    assert missing == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translations_use_the_same_placeholders(lang: str) -> None:
    def fields(template: str) -> set[str]:
        return {f for _, f, _, _ in Formatter().parse(template) if f}

    for code, template in CATALOGUES[lang].items():
        assert fields(template) == fields(EN[code]), code
    assert set(CATALOGUES[lang]) == set(EN)


def test_statuses_are_reasons_too() -> None:
    """Each blocking card status has a reason (and so a message) of the same name."""
    for status in CardStatus:
        if status not in (CardStatus.ACTIVE,):
            assert Reason(status.value)


def test_text_formats_and_falls_back() -> None:
    assert text("wrong_pin", "en", tries_left=2) == "Wrong PIN. 2 tries left."
    assert text("wrong_pin", "zh_CN", tries_left=2) == "密码错误，还可以尝试 2 次。"
    assert text("wrong_pin", "fr", tries_left=1) == "Wrong PIN. 1 tries left."
    assert text("wrong_pin", "en") == "Wrong PIN. {tries_left} tries left."
    assert text("no_such_code", "en", x=1) == "no_such_code {'x': 1}"
