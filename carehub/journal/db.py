"""One small SQL seam over SQLite (sqlite3) and PostgreSQL (psycopg 3).

Statements are written once with ``?`` placeholders and ``{serial}`` for an
auto-increment key; the dialect translates both. Every call runs on one
dedicated thread (``Database.run``) so the event loop never blocks on I/O
and a SQLite connection is only ever used by the thread that made it.

Errors of either driver leave this module as ``JournalError`` (carehub/core/errors.py).
A PostgreSQL connection that failed is dropped and made again by the next
statement, at most once per backoff interval (doubling from
``RECONNECT_MIN_S`` to ``RECONNECT_MAX_S``, reset by a success); in between a
statement fails at once as unavailable instead of waiting for a connect
timeout. The hub's readiness watcher (carehub/health.py) probes through
``ping``, so it reconnects on the same schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlparse

import psycopg

from carehub.core.errors import ConfigError, JournalError

P = ParamSpec("P")
T = TypeVar("T")
Row = tuple[Any, ...]


#: Reconnect attempts after a lost PostgreSQL connection: the first after this many seconds, doubling to the max.
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 5.0
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)

#: The journal holds PHI (dead letters keep whole payloads): owner read/write only.
FILE_MODE = 0o600


def private_file(path: str) -> None:
    """Create ``path`` owner-only (0600) before SQLite opens it; tighten an existing looser file.

    SQLite gives its -wal and -shm files the database file's permissions, so they follow.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, FILE_MODE)


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; ``:memory:`` kept."""
    path = urlparse(url).path
    return path[1:] if path.startswith("/") else path


class Database:
    """A connection with a dialect: ``execute``/``query`` plus ``transaction()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        scheme = urlparse(url).scheme
        if scheme == "sqlite":
            self.dialect = "sqlite"
        elif scheme in ("postgresql", "postgres"):
            self.dialect = "postgresql"
        else:
            raise ConfigError(
                f"database_url must be sqlite:/// or postgresql://, got scheme {scheme!r}", file="settings"
            )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._lock = threading.RLock()
        self._conn: Any = None
        self._backoff_s = 0.0
        self._retry_at = 0.0

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise JournalError(f"{self.dialect} journal unreachable; reconnecting in {wait:.1f} s", unavailable=True)
        try:
            return self._open()
        except DRIVER_ERRORS:
            self._backoff_s = min(max(self._backoff_s * 2, RECONNECT_MIN_S), RECONNECT_MAX_S)
            self._retry_at = time.monotonic() + self._backoff_s
            raise

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            path = sqlite_path(self.url)
            if path != ":memory:":
                private_file(path)
            lite = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA synchronous=NORMAL")
            lite.execute("PRAGMA busy_timeout=30000")
            self._conn = lite
        else:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        self._backoff_s = 0.0
        return self._conn

    def _translate(self, exc: Exception) -> JournalError:
        """The driver's error as a JournalError; a failed PostgreSQL connection is dropped (reconnect later)."""
        lost = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        if lost and self.dialect == "postgresql":
            self._drop()
            if self._retry_at <= time.monotonic():
                self._backoff_s = min(max(self._backoff_s * 2, RECONNECT_MIN_S), RECONNECT_MAX_S)
                self._retry_at = time.monotonic() + self._backoff_s
        busy = isinstance(exc, sqlite3.OperationalError)  # locked, busy, disk I/O: transient
        state = getattr(exc, "sqlstate", None)
        detail = f" (SQLSTATE {state})" if state else ""
        return JournalError(f"{self.dialect} journal: {type(exc).__name__}{detail}", unavailable=lost or busy)

    def _drop(self) -> None:
        with contextlib.suppress(*DRIVER_ERRORS, OSError):
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    def sql(self, statement: str) -> str:
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        statement = statement.replace("{serial}", serial)
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            try:
                cursor = self._connect().execute(self.sql(statement), tuple(params))
                return int(cursor.rowcount or 0)
            except DRIVER_ERRORS as exc:
                raise self._translate(exc) from exc

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            try:
                cursor = self._connect().execute(self.sql(statement), tuple(params))
                return [tuple(row) for row in cursor.fetchall()]
            except DRIVER_ERRORS as exc:
                raise self._translate(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together (SQLite: BEGIN IMMEDIATE, a write lock)."""
        with self._lock:
            try:
                conn = self._connect()
                if self.dialect == "postgresql":
                    with conn.transaction():
                        yield
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except DRIVER_ERRORS as exc:
                raise self._translate(exc) from exc

    def ping(self) -> bool:
        """One round trip (readiness). On failure the connection is dropped, so a later statement reconnects."""
        with self._lock:
            try:
                self._connect().execute("SELECT 1")
                return True
            except (sqlite3.Error, psycopg.Error, JournalError, OSError):
                self._drop()
                return False

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking journal call on the journal thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._pool.shutdown(wait=True)
