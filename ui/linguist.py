"""Qt's translation tools for the windows, as one command:

    python -m ui.linguist update    # lupdate: collect self.tr() strings from ui/ into the .ts
    python -m ui.linguist release   # lrelease: build the .qm the app loads (ui/i18n.py)
    python -m ui.linguist check     # both .ts and .qm are current and fully translated

The .ts files (XML, edited with Qt Linguist or by hand) are the sources and are committed; so
is the .qm built from them, so an installed terminal needs no Qt tools. `check` is what the
tests run: a string added to the UI without a translation, or a .qm not rebuilt, fails it.
The tools are the lupdate and lrelease binaries that come with PySide6-Essentials.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import PySide6

from ui.i18n import TRANSLATIONS, qm_path

UI = Path(__file__).parent
TRANSLATED = ("zh_CN",)
#: English is the source language; its file holds only the plural forms ("%n day(s)" -> "1 day",
#: "5 days"), as Qt's tools intend.
PLURALS_ONLY = ("en",)


def ts_path(lang: str) -> Path:
    return TRANSLATIONS / f"cardpos_{lang}.ts"


def _tool(name: str) -> str:
    path = Path(PySide6.__file__).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} not found beside PySide6 ({path})")
    return str(path)


def sources() -> list[str]:
    return sorted(str(p) for p in UI.rglob("*.py"))


def update(ts: Path, *, plurals_only: bool = False) -> None:
    """Merge the current source strings into `ts` (obsolete ones are dropped)."""
    subprocess.run([_tool("lupdate"), "-silent", "-no-obsolete", "-locations", "none",
                    *(["-pluralonly"] if plurals_only else []), *sources(), "-ts", str(ts)],
                   check=True)


def release(ts: Path, qm: Path) -> None:
    subprocess.run([_tool("lrelease"), "-silent", str(ts), "-qm", str(qm)], check=True)


def messages(ts: Path) -> dict[tuple[str, str], bool]:
    """(context, source) -> translated? for every message of a .ts file."""
    found: dict[tuple[str, str], bool] = {}
    for context in ET.parse(ts).getroot().iter("context"):
        name = context.findtext("name") or ""
        for message in context.iter("message"):
            translation = message.find("translation")
            done = translation is not None and translation.get("type") not in (
                "unfinished", "vanished", "obsolete") and bool(
                (translation.text or "").strip() or translation.findall("numerusform"))
            found[(name, message.findtext("source") or "")] = done
    return found


def check() -> list[str]:
    """Problems, one line each (empty: all current and translated)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for lang in (*TRANSLATED, *PLURALS_ONLY):
            committed = ts_path(lang)
            if not committed.exists():
                problems.append(f"{committed} is missing: run python -m ui.linguist update")
                continue
            fresh = Path(tmp) / committed.name
            shutil.copy(committed, fresh)
            update(fresh, plurals_only=lang in PLURALS_ONLY)
            have, want = messages(committed), messages(fresh)
            problems += [f"{lang}: not in the .ts yet ({ctx}): {src!r}"
                         for ctx, src in want.keys() - have.keys()]
            problems += [f"{lang}: no longer used ({ctx}): {src!r}"
                         for ctx, src in have.keys() - want.keys()]
            problems += [f"{lang}: not translated ({ctx}): {src!r}"
                         for (ctx, src), done in want.items() if not done]
            built = Path(tmp) / f"{lang}.qm"
            release(committed, built)
            if not qm_path(lang).exists() or qm_path(lang).read_bytes() != built.read_bytes():
                problems.append(f"{qm_path(lang)} is not built from the .ts: "
                                "run python -m ui.linguist release")
    return problems


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        for lang in (*TRANSLATED, *PLURALS_ONLY):
            update(ts_path(lang), plurals_only=lang in PLURALS_ONLY)
    elif command == "release":
        for lang in (*TRANSLATED, *PLURALS_ONLY):
            release(ts_path(lang), qm_path(lang))
    elif command == "check":
        problems = check()
        for line in problems:
            print(line)
        return 1 if problems else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
