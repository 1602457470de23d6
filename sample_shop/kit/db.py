"""The database of a service: a SQLAlchemy (Core) engine from DATABASE_URL, schema created on start.

SQLite files by default (WAL, busy_timeout, and `BEGIN IMMEDIATE` for write transactions so concurrent
writers - threads or replicas sharing the file - queue on the lock instead of failing on a stale snapshot);
PostgreSQL through `postgresql+psycopg://`. SQLite statements take well under a millisecond, so they run
inline on the event loop (a thread-pool hop costs more than the statement); while a database fault is
active, and always for PostgreSQL, they run in a small thread pool so a slow database (or the `db-slow`
fault) delays the requests that use it, not the event loop. The fault hooks are a SQLAlchemy
`before_cursor_execute` listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from sample_shop.kit.errors import DatabaseUnavailable
from sample_shop.kit.faults import FaultRegistry

T = TypeVar("T")
log = logging.getLogger("sample_shop.db")


def _private_sqlite_file(path: Path) -> None:
    """The database folder 0700 and the file 0600 (it holds e-mails and password hashes): created so
    before SQLite opens it, and tightened if an older run left it readable. SQLite gives the -wal and
    -shm files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(PermissionError):  # a folder that is not ours: leave its mode alone
        os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(file, 0o600)


class Database:
    def __init__(
        self, url: str, metadata: MetaData, *, faults: FaultRegistry | None = None, threads: int = 4
    ) -> None:
        self.url = url
        self.metadata = metadata
        self.faults = faults
        self.threads = threads
        self.is_sqlite = url.startswith("sqlite")
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        self.engine: Engine = self._create_engine()

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                _private_sqlite_file(Path(path))
            engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 10},
                pool_size=self.threads,
                max_overflow=0,
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=10000")  # first, so switching to WAL waits for the lock
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
                conn.exec_driver_sql(f"BEGIN {mode}")
        else:
            engine = create_engine(self.url, pool_size=self.threads, max_overflow=0, pool_pre_ping=True)

        @event.listens_for(engine, "before_cursor_execute")
        def _fault_hook(*_args: Any) -> None:
            if self.faults is None:
                return
            decision = self.faults.database_decision()
            if decision is None:
                return
            if decision.delay_s > 0:
                time.sleep(decision.delay_s)  # in a db worker thread, like a slow query
            if decision.unavailable:
                raise DatabaseUnavailable("database unavailable (injected db-unavailable fault)")

        return engine

    def create_schema(self) -> None:
        """Create missing tables in one write transaction: replicas starting together on a fresh SQLite file
        queue on its write lock instead of failing with "database is locked"."""
        for attempt in range(5):
            try:
                with self.engine.connect() as conn:
                    if self.is_sqlite:
                        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                    with conn.begin():
                        self.metadata.create_all(conn)
                return
            except DBAPIError as exc:
                if attempt == 4 or "locked" not in str(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))

    def runs_inline(self) -> bool:
        """SQLite without an active database fault: the statement is cheaper than the hop to a thread.
        No fault can start between this check and the statement: faults are added by the admin API on this
        same event loop, and fn runs without yielding to it."""
        return self.is_sqlite and not (self.faults is not None and self.faults.database)

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            if self.runs_inline():
                return fn()
            loop = asyncio.get_running_loop()
            ctx = contextvars.copy_context()  # keeps the trace context in log lines written by fn
            return await loop.run_in_executor(self._executor, ctx.run, fn)
        except DBAPIError as exc:
            if (
                exc.connection_invalidated
                or "database is locked" in str(exc)
                or "connect" in str(exc).lower()
            ):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run fn(conn) in a read transaction."""

        def work() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return await self._run(work)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn(conn) in one write transaction, committed when fn returns, rolled back when it raises."""

        def work() -> T:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    return fn(conn)

        return await self._run(work)

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar())

    def close(self) -> None:
        self.engine.dispose()
        self._executor.shutdown(wait=False, cancel_futures=True)
