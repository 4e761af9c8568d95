"""One small SQL seam over SQLite (sqlite3) and PostgreSQL (psycopg 3).

Statements are written once with ``?`` placeholders and ``{serial}`` for an
auto-increment key; the dialect translates both. Every call runs on one
dedicated thread (``Database.run``) so the event loop never blocks on I/O
and a SQLite connection is only ever used by the thread that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlparse

import psycopg

from core.errors import ConfigError

P = ParamSpec("P")
T = TypeVar("T")
Row = tuple[Any, ...]


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

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
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
        return self._conn

    def sql(self, statement: str) -> str:
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        statement = statement.replace("{serial}", serial)
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            cursor = self._connect().execute(self.sql(statement), tuple(params))
            return int(cursor.rowcount or 0)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            cursor = self._connect().execute(self.sql(statement), tuple(params))
            return [tuple(row) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together (SQLite: BEGIN IMMEDIATE, a write lock)."""
        with self._lock:
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

    def ping(self) -> bool:
        """One round trip (readiness). On failure the connection is dropped, so the next statement reconnects."""
        with self._lock:
            try:
                self._connect().execute("SELECT 1")
                return True
            except (sqlite3.Error, psycopg.Error, OSError):
                with contextlib.suppress(sqlite3.Error, psycopg.Error, OSError):
                    if self._conn is not None:
                        self._conn.close()
                self._conn = None
                return False

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking journal call on the journal thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._pool.shutdown(wait=True)
