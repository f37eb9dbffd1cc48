"""The local SQLite store: connection handling (`db`), schema (`schema`) and queries (`queries`)."""
