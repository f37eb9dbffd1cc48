"""The local store: one SQLite file in WAL mode, written by one thread, read by any.

Why this shape: a redemption is approved only after its journal entry and balance change are
COMMITted with `synchronous=FULL` (they survive power loss), and every write transaction starts
with `BEGIN IMMEDIATE` so it holds the write lock from its first read — the balance a decision
sees is the balance it debits. All writes go through `Store.write`, which runs the job on the
store's own writer thread (the only connection that writes); callers on any thread block on the
result, so the UI calls it from a worker, never from the GUI thread. Reads use one read-only
connection per calling thread and never wait for the writer.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from terminal.errors import CardposError, StateError, StoreError
from terminal.store.schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

DB_FILE = "cardpos.sqlite3"
#: Commits after which the writer checkpoints the WAL when it is idle, and regardless.
CHECKPOINT_WHEN_IDLE = 200
CHECKPOINT_ANYWAY = 2000

log = logging.getLogger(__name__)

# Primary SQLite result codes (the low byte of an extended code).
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL = 8, 10, 11, 13
_SQLITE_CANTOPEN, _SQLITE_NOTADB, _SQLITE_BUSY = 14, 26, 5


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """Translate an SQLite failure into a StoreError a person can act on."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    names = {_SQLITE_FULL: "disk_full", _SQLITE_READONLY: "store_read_only",
             _SQLITE_CORRUPT: "store_corrupt", _SQLITE_NOTADB: "store_corrupt",
             _SQLITE_CANTOPEN: "store_cannot_open", _SQLITE_IOERR: "store_io_error",
             _SQLITE_BUSY: "store_busy"}
    return StoreError(names.get(code, "store_error"), path=str(path), detail=str(exc))


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    # Each connection is used by one thread only; check_same_thread is off so `close()` can
    # close the read connections of threads that have gone.
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=10.0)
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise StoreError("store_error", path=str(path), detail="WAL mode refused")
        conn.execute("PRAGMA synchronous = FULL")
        # The writer checkpoints itself between operations (see Store._after_job), so that a
        # customer's redemption does not pay for copying the WAL into the database file.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


class Store:
    """Owns one store file. Create with `Store.create`, open with `Store.open`, then `close()`."""

    def __init__(self, path: Path) -> None:
        """Open `path` (which must exist) and start the writer thread; migrate if needed."""
        self.path = path
        self._jobs: queue.SimpleQueue[tuple[Job[object], Future[object]] | None] = (
            queue.SimpleQueue())
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run_writer, args=(started,),
                                        name="store-writer", daemon=True)
        self._thread.start()
        started.result()

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        path = data_dir / DB_FILE
        if not path.exists():
            raise StateError("no_store", path=str(data_dir))
        return cls(path)

    @classmethod
    def create(cls, data_dir: Path) -> Store:
        """Make a new, empty store (schema only); refuses to overwrite an existing one."""
        path = data_dir / DB_FILE
        if path.exists():
            raise StateError("store_exists", path=str(data_dir))
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(path).close()
        except OSError as exc:
            raise StoreError("store_cannot_open", path=str(data_dir), detail=str(exc)) from exc
        except sqlite3.Error as exc:
            raise store_error(exc, path) from exc
        return cls(path)

    # -- the writer thread -------------------------------------------------------------------

    def _run_writer(self, started: Future[None]) -> None:
        try:
            conn = _connect(self.path, read_only=False)
            self._migrate(conn)
        except sqlite3.Error as exc:
            started.set_exception(store_error(exc, self.path))
            return
        except CardposError as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        commits = 0
        try:
            while (item := self._jobs.get()) is not None:
                job, result = item
                if result.set_running_or_notify_cancel():
                    self._run_job(conn, job, result)
                    commits += 1
                commits = self._after_job(conn, commits)
        finally:
            conn.close()

    def _after_job(self, conn: sqlite3.Connection, commits: int) -> int:
        """Checkpoint the WAL once the caller has its answer: when no other job is waiting and
        enough commits have piled up, or regardless once the WAL has grown large. Returns the
        commits not yet checkpointed."""
        if commits < CHECKPOINT_WHEN_IDLE or (self._jobs.qsize() and commits < CHECKPOINT_ANYWAY):
            return commits
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            # The data is safe in the WAL; the next checkpoint (or the next open) retries.
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
            return commits
        return 0

    def _run_job(self, conn: sqlite3.Connection, job: Job[object], result: Future[object]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            value = job(conn)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never swallowed
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            result.set_exception(store_error(exc, self.path) if isinstance(exc, sqlite3.Error)
                                 else exc)
        else:
            result.set_result(value)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError("store_too_new", path=str(self.path), version=version,
                             supported=SCHEMA_VERSION)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- public API --------------------------------------------------------------------------

    def write(self, job: Job[T]) -> T:
        """Run `job(conn)` on the writer thread inside BEGIN IMMEDIATE ... COMMIT.

        Blocks the calling thread until the COMMIT has returned (the change is durable) or the
        job has been rolled back, in which case its exception is raised here. Never call this
        from the GUI thread.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("Store.write called from inside a write job")
        result: Future[T] = Future()
        self._jobs.put((job, result))  # type: ignore[arg-type]
        return result.result()

    def read(self, job: Job[T]) -> T:
        """Run `job(conn)` on this thread's read-only connection (a consistent snapshot)."""
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            try:
                conn = _connect(self.path, read_only=True)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc
            self._readers.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        try:
            conn.execute("BEGIN")
            try:
                return job(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def close(self) -> None:
        """Finish queued writes, stop the writer and close every read connection.

        Call it when no other thread is still reading.
        """
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._readers = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain ';' inside BEGIN ... END)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
