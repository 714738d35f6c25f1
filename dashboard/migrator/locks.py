"""Per-target migration locks, so two runs never touch one database at once.

PostgreSQL: a *session* advisory lock on the connection that will run the
migrations, acquired by polling ``pg_try_advisory_lock`` until the wait runs
out (a blocking ``pg_advisory_lock`` could not be given up after a deadline
and would not let us report who is in the way). The lock lives as long as the
session, so a killed worker frees it when its connection dies. The holder is
read from ``pg_locks`` joined with ``pg_stat_activity``.

SQLite: an exclusive ``flock`` on the database file. SQLite itself uses POSIX
``fcntl`` record locks, which are independent of ``flock`` on Linux, so this
excludes other dashboards without disturbing SQLite. The holder writes who it
is into a sidecar file ``<database>.migrate-lock`` for the error message.

Hand-written because it is the product itself: no library offers a polled
advisory lock that names its holder. Never imports Django.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

__all__ = [
    "LockHolder",
    "LockNotAcquired",
    "advisory_lock_key",
    "find_advisory_lock_holder",
    "LockWaitStopped",
    "pg_advisory_lock",
    "probe_sqlite_file_lock",
    "sqlite_file_lock",
]


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as far as the server can tell."""

    pid: int | None
    application_name: str = ""
    user: str = ""
    client_addr: str = ""
    since: str = ""

    def describe(self) -> str:
        parts = [f"pid {self.pid}" if self.pid is not None else "unknown process"]
        if self.application_name:
            parts.append(f"application '{self.application_name}'")
        if self.user:
            parts.append(f"user {self.user}")
        if self.client_addr:
            parts.append(f"from {self.client_addr}")
        if self.since:
            parts.append(f"since {self.since}")
        return ", ".join(parts)


class LockNotAcquired(Exception):
    """The lock was still held by someone else when the wait ran out."""

    def __init__(self, holder: LockHolder | None, waited: float) -> None:
        self.holder = holder
        self.waited = waited
        who = holder.describe() if holder else "holder unknown"
        super().__init__(f"another migration holds the lock ({who}); waited {waited:.1f}s")


class LockWaitStopped(Exception):
    """The caller asked to stop waiting for the lock (e.g. the run was cancelled)."""


def advisory_lock_key(identity: str) -> int:
    """A stable signed 64-bit advisory lock key for ``identity`` (e.g. the version table)."""
    digest = hashlib.sha256(f"migrations-dashboard:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _split_key(key: int) -> tuple[int, int]:
    """``pg_locks`` shows a bigint advisory key as (classid, objid) = (high, low) 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def find_advisory_lock_holder(connection: Connection, key: int) -> LockHolder | None:
    """Return the session holding advisory lock ``key`` in this database, if any.

    Runs one read-only query; commits nothing and leaves the connection's
    transaction state as it found it only if the caller manages it.
    """
    classid, objid = _split_key(key)
    row = connection.execute(
        text(
            "SELECT l.pid, a.application_name, a.usename, a.client_addr::text,"
            " a.backend_start::text"
            " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = :classid AND l.objid::bigint = :objid"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " LIMIT 1"
        ),
        {"classid": classid, "objid": objid},
    ).first()
    if row is None:
        return None
    return LockHolder(
        pid=row[0],
        application_name=row[1] or "",
        user=row[2] or "",
        client_addr=row[3] or "",
        since=row[4] or "",
    )


@contextlib.contextmanager
def pg_advisory_lock(
    connection: Connection,
    *,
    key: int,
    wait: float,
    poll_interval: float = 0.2,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """Hold session advisory lock ``key`` on ``connection`` for the ``with`` block.

    Polls ``pg_try_advisory_lock`` until it succeeds or ``wait`` seconds have
    passed, then raises :class:`LockNotAcquired` naming the holder. Each poll is
    committed, so on entry to the block the connection has no open
    transaction (Alembic needs that). The lock is released on exit if the
    connection is still usable; otherwise the server drops it with the session.
    ``should_stop`` is asked between polls: True raises :class:`LockWaitStopped`.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    started = time.monotonic()
    while True:
        acquired = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        connection.commit()
        if acquired:
            break
        if time.monotonic() >= deadline:
            holder = find_advisory_lock_holder(connection, key)
            connection.commit()
            raise LockNotAcquired(holder, time.monotonic() - started)
        if should_stop is not None and should_stop():
            raise LockWaitStopped("stopped waiting for the lock")
        time.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.01)))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


def _holder_file(database: Path) -> Path:
    return database.with_name(database.name + ".migrate-lock")


@contextlib.contextmanager
def sqlite_file_lock(
    database: str | os.PathLike[str],
    *,
    wait: float,
    poll_interval: float = 0.1,
    owner: str = "",
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the SQLite file ``database`` for the block.

    Polls a non-blocking ``flock`` until ``wait`` seconds have passed, then
    raises :class:`LockNotAcquired` with the holder read from the sidecar file.
    The kernel drops the lock when the holding process dies.
    """
    path = Path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    deadline = started + max(wait, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockNotAcquired(_read_sqlite_holder(path), time.monotonic() - started)
                if should_stop is not None and should_stop():
                    raise LockWaitStopped("stopped waiting for the lock")
                time.sleep(poll_interval)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "owner": owner}
        holder["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _holder_file(path).write_text(json.dumps(holder))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                _holder_file(path).unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def probe_sqlite_file_lock(database: str | os.PathLike[str]) -> LockHolder | None:
    """Who holds the migration ``flock`` of a SQLite file (None: nobody), without keeping it.

    The holder's label is in ``application_name`` (the ``owner`` it passed).
    A missing file has no holder.
    """
    path = Path(database)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_sqlite_holder(path) or LockHolder(pid=None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_sqlite_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(_holder_file(path).read_text())
    except (OSError, ValueError):
        return None
    return LockHolder(
        pid=data.get("pid"),
        application_name=str(data.get("owner", "")),
        client_addr=str(data.get("host", "")),
        since=str(data.get("since", "")),
    )
