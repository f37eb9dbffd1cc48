"""`python -m sync.server openapi [FILE]`: write the API's OpenAPI schema (docs/openapi.json).

To serve or migrate, use `cardpos server run|migrate` (cardpos/server_commands.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sync.server.app import create_app


def openapi_text() -> str:
    app = create_app("sqlite://")
    try:
        return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    finally:
        app.state.engine.dispose()


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "openapi" or len(argv) > 2:
        print("usage: python -m sync.server openapi [FILE]", file=sys.stderr)
        return 2
    text = openapi_text()
    if len(argv) == 2:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
