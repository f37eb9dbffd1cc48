"""Synchronisation with the central server: wire protocol, the terminal's client, and the
reference server (sync/server/)."""
