"""Alembic migrations of the server's database; run them with `sync.server.db.migrate`."""
