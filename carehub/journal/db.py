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

Group commit: the journal thread takes every call queued while it was busy
(up to ``GROUP_MAX``) and runs them in one transaction. First with no
savepoint at all (a ``transaction()`` inside is then no statement); if any
call fails, or any error passes through a ``transaction()`` block even one a
call catches, the whole transaction is rolled back and the group runs again
call by call, each inside a savepoint of its own, so one failing call is
rolled back alone and the others commit. Calls are journal work only (no
effect outside the database), so running one again after a rollback is the
same as running it once. A caller's ``run`` returns only after the group's
COMMIT, so what it was told is durable is; the deliver stage's concurrent
deliveries then cost one commit and one wake-up of the event loop per group
instead of per call, and half the statements of a group were savepoints
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

#: Calls run in one transaction at most (group commit).
GROUP_MAX = 256

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


class _RolledBack(Exception):
    """A call of a group failed: its savepoint is rolled back (the call keeps its own error)."""


class _Spoiled(Exception):
    """A group run without savepoints met an error: rolled back whole, to run again call by call."""


@dataclass(slots=True)
class _Call:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    queued: float
    result: Any = None
    error: BaseException | None = None


#: Told, on the caller's loop, how long each call took from ``submit`` until its result was back there.
Waited = Callable[[float], None]


def _settle(calls: list[_Call], waited: Waited | None) -> None:
    """On the caller's loop: hand each call its result (one wake-up of the loop per group)."""
    if waited is not None:
        now = time.monotonic()
        for call in calls:
            waited(now - call.queued)
    for call in calls:
        if call.future.cancelled():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)


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
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        #: Each call's round trip, submit to result on the caller's loop (a stream worker's metrics).
        self.waited: Waited | None = None
        self._thread: threading.Thread | None = None
        self._grouped = False  # the journal thread is inside a group's transaction (under the lock)
        self._fast = False  # ... a group's transaction without savepoints (``_run_fast``)
        self._spoiled = False  # an error passed through a transaction() block of the fast group
        self._lock = threading.RLock()
        self._conn: Any = None
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._translated: dict[str, str] = {}

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
        """``statement`` in this dialect (translated once per statement text: the same few run all day)."""
        found = self._translated.get(statement)
        if found is None:
            serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
            found = statement.replace("{serial}", serial)
            found = found.replace("?", "%s") if self.dialect == "postgresql" else found
            if len(self._translated) < 1_024:  # statements built with a varying IN list are not kept
                self._translated[statement] = found
        return found

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            try:
                cursor = self._connect().execute(self.sql(statement), tuple(params))
                return int(cursor.rowcount or 0)
            except DRIVER_ERRORS as exc:
                raise self._translate(exc) from exc

    def execute_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (a batch's inserts): the driver steps it once per row without a
        Python call each. Any failing row fails the call and leaves none of its rows (its own transaction,
        or a savepoint of the one it runs in)."""
        if not rows:
            return
        with self._lock, self.transaction():
            try:
                conn = self._connect()
                if self.dialect == "sqlite":
                    conn.executemany(self.sql(statement), rows)
                else:
                    with conn.cursor() as cursor:
                        cursor.executemany(self.sql(statement), rows)
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
        """All statements inside commit together (SQLite: BEGIN IMMEDIATE, a write lock).

        Inside a group (``run``) it is a savepoint of the group's transaction: rolled back alone on error.
        """
        with self._lock:
            if self._fast:  # a group without savepoints: any error spoils it (run again call by call)
                try:
                    yield
                except BaseException:
                    self._spoiled = True
                    raise
                return
            try:
                conn = self._connect()
                if self.dialect == "postgresql":
                    with conn.transaction():  # nested in a group's: a savepoint
                        yield
                    return
                begin, commit, rollback = (
                    ("SAVEPOINT tx", "RELEASE tx", "ROLLBACK TO tx; RELEASE tx")
                    if self._grouped
                    else ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
                )
                conn.execute(begin)
                try:
                    yield
                except BaseException:
                    for statement in rollback.split("; "):
                        conn.execute(statement)
                    raise
                conn.execute(commit)
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
        """Run a blocking journal call on the journal thread; it returns once its group has committed."""
        return await self.submit(fn, *args, **kwargs)

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue a journal call now; the future resolves once its group has committed.

        Calls run in the order they were queued, so a caller that queues several before awaiting any
        (a stage batch) gets one group of them instead of a round trip each, and each call still sees
        what the calls queued before it wrote.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(lambda: fn(*args, **kwargs), loop, future, time.monotonic()))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name="journal", daemon=True)
                    self._thread.start()
        return future

    def _serve(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            group = [first]
            while len(group) < GROUP_MAX:
                try:
                    nxt = self._calls.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # closing: finish this group, then stop
                    self._calls.put(None)
                    break
                group.append(nxt)
            self._run_group(group)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
            for call in group:
                by_loop.setdefault(call.loop, []).append(call)
            for loop, calls in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, calls, self.waited)

    def _run_group(self, group: list[_Call]) -> None:
        if self._run_fast(group):
            return
        self._run_careful(group)

    def _run_fast(self, group: list[_Call]) -> bool:
        """The calls in one transaction without savepoints; False (nothing written, no call answered) when
        any error came up, or the transaction could not begin or commit: the group then runs carefully."""
        with self._lock:
            self._spoiled = False
            try:
                with self.transaction():
                    self._fast = True
                    try:
                        for call in group:
                            self._run_call(call)
                            if call.error is not None or self._spoiled:
                                raise _Spoiled
                    finally:
                        self._fast = False
            except Exception:  # noqa: BLE001 - rolled back (or never begun): every call again, one by one
                for call in group:
                    call.result, call.error = None, None
                return False
            return True

    def _run_careful(self, group: list[_Call]) -> None:
        """The calls in one transaction, each in a savepoint; a failed COMMIT fails every call.

        A call alone is a group of one: what a call wrote is rolled back when it raises, whatever its group.
        When the transaction cannot even begin (the database unreachable, reconnect backoff), each call runs
        on its own and meets the failure itself, as it would without grouping (``ping`` then answers False).
        """
        with self._lock, contextlib.ExitStack() as outer:
            try:
                outer.enter_context(self.transaction())
            except JournalError:
                for call in group:
                    self._run_call(call)
                return
            try:
                self._grouped = True
                for call in group:
                    try:
                        with self.transaction():
                            self._run_call(call)
                            if call.error is not None:
                                raise _RolledBack
                    except _RolledBack:  # the call failed: its savepoint is undone, its error kept
                        pass
                    except JournalError as exc:  # the savepoint itself failed
                        call.error = call.error or exc
            finally:
                self._grouped = False
            try:
                outer.close()  # COMMIT
            except Exception as exc:  # noqa: BLE001 - nothing of the group is durable: every call fails
                for call in group:
                    if call.error is None:
                        call.result, call.error = None, exc

    @staticmethod
    def _run_call(call: _Call) -> None:
        try:
            call.result = call.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as its exception
            call.error = exc

    def close(self) -> None:
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None
        with self._lock:
            self._drop()
