"""The core must stay headless: terminal/ imports no Qt, device or HTTP library."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import terminal

FORBIDDEN = ("PySide6", "shiboken6", "smartcard", "nfc", "cv2", "pyzbar", "zxingcpp", "httpx",
             "requests", "escpos", "fastapi", "uvicorn", "sqlalchemy", "psycopg", "drivers",
             "ui", "sync", "cardpos")


def loaded_after_importing(modules: list[str]) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing `modules`."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True, cwd=Path(terminal.__file__).parent.parent
                              ).stdout.split())


def test_terminal_imports_nothing_outside_the_core() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(terminal.__path__, "terminal."))
    assert "terminal.services" in modules and "terminal.tokens" in modules
    out = loaded_after_importing(modules)
    assert "terminal" in out
    leaked = sorted(set(out) & set(FORBIDDEN))
    assert leaked == [], f"terminal/ pulled in {leaked}"


def test_only_ui_imports_qt() -> None:
    """drivers/, sync/ and cardpos/ (the composition root, which starts the windows lazily)
    load no Qt module: importing all of them leaves PySide6 out of the interpreter."""
    import cardpos
    import drivers
    import sync

    modules = sorted(m.name for pkg in (cardpos, drivers, sync)
                     for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
                     # alembic's env and entry points run when imported: not library modules
                     if ".migrations" not in m.name and not m.name.endswith("__main__"))
    assert "cardpos.ui_commands" in modules and "drivers.sim" in modules
    out = loaded_after_importing(modules)
    assert "cardpos" in out
    leaked = sorted(set(out) & {"PySide6", "shiboken6", "ui"})
    assert leaked == [], f"outside ui/, Qt was loaded: {leaked}"
