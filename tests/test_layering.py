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


def test_terminal_imports_nothing_outside_the_core() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(terminal.__path__, "terminal."))
    assert "terminal.services" in modules and "terminal.tokens" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=Path(terminal.__file__).parent.parent).stdout.split()
    assert "terminal" in out
    leaked = sorted(set(out) & set(FORBIDDEN))
    assert leaked == [], f"terminal/ pulled in {leaked}"
