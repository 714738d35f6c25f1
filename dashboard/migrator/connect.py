"""Connections to a target database for running migrations, and what else needs one.

A run holds one direct connection for minutes, through networks that can
go silent: a connection that only sets a connect timeout stays "alive" for
about two hours of Linux keepalive defaults (forever behind some
middleboxes) while the server keeps its locks. :func:`target_engine` sets
libpq's TCP keepalives and ``tcp_user_timeout`` so the client notices a dead
path within ``tcp_timeout``; the runner sets the server's side
(``tcp_keepalives_*``, ``idle_in_transaction_session_timeout``).

:func:`assert_direct_session` refuses a transaction-pooling proxy
(PgBouncer ``pool_mode = transaction``/``statement``): it hands consecutive
transactions to different server sessions, which silently defeats the
session advisory lock and the session ``SET``\\ s a run relies on.

:func:`signal_backend` cancels or terminates a run's server session from a
second connection (a tech lead's *Cancel*, a run past its deadline), only if
that pid still carries the run's ``application_name``.

Never imports Django.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from dashboard.migrator.locks import find_advisory_lock_holder, probe_sqlite_file_lock
from dashboard.migrator.secrets import scrub_secret

__all__ = [
    "LockEvidence",
    "TransactionPoolingDetected",
    "assert_direct_session",
    "backend_pid",
    "lock_evidence",
    "signal_backend",
    "target_engine",
]

LockEvidence = Literal["held_by_run", "held_by_other", "free", "unknown"]


class TransactionPoolingDetected(Exception):
    """The URL goes through a transaction-pooling proxy; the message says what to do."""


def target_engine(
    url: str,
    *,
    application_name: str = "",
    connect_timeout: float = 5.0,
    tcp_timeout: timedelta | None = None,
    statement_timeout: timedelta | None = None,
) -> Engine:
    """A pool-less engine for one run's (or one check's) connection to a target.

    PostgreSQL: ``connect_timeout``, ``application_name`` (at most 63
    characters), TCP keepalives (idle ``tcp_timeout``/3, interval /6, 3 probes)
    and ``tcp_user_timeout`` = ``tcp_timeout``, and optionally a
    ``statement_timeout`` for short checks. Other dialects: as given.
    """
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(int(round(connect_timeout)), 1)}
        if application_name:
            connect_args["application_name"] = application_name[:63]
        if tcp_timeout:
            seconds = max(int(tcp_timeout.total_seconds()), 3)
            connect_args.update(
                keepalives=1,
                keepalives_idle=max(seconds // 3, 1),
                keepalives_interval=max(seconds // 6, 1),
                keepalives_count=3,
                tcp_user_timeout=seconds * 1000,
            )
        if statement_timeout:
            ms = int(statement_timeout.total_seconds() * 1000)
            connect_args["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    elif parsed.get_backend_name() == "sqlite":
        connect_args = {"timeout": connect_timeout}
        engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
        sqlite_transactional_ddl(engine)
        return engine
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)


def sqlite_transactional_ddl(engine: Engine) -> None:
    """Make SQLite run DDL inside the transaction SQLAlchemy opens (all-or-nothing).

    Python's ``sqlite3`` begins a transaction only before DML, so Alembic's
    ``CREATE``/``ALTER`` would each commit on their own and a failed plan would
    leave the revisions before the failing one applied. SQLAlchemy's documented
    recipe: turn the driver's own transaction handling off and emit ``BEGIN``
    when SQLAlchemy begins (``docs.sqlalchemy.org``, "Serializable isolation /
    Savepoints / Transactional DDL" for pysqlite).
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def backend_pid(connection: Connection) -> int:
    """The server process of ``connection`` (PostgreSQL); commits the read."""
    pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    connection.commit()
    return pid


def assert_direct_session(connection: Connection, engine: Engine, *, wait: float = 2.0) -> int:
    """Refuse a transaction-pooling proxy; return the session's backend pid.

    Asks ``connection`` for its backend pid while a second connection of
    ``engine`` holds a transaction open: a transaction pooler hands the
    first connection's next transaction to another server session (the pid
    changes), or makes it wait for one (it blocks); a direct connection
    answers at once with the same pid. Raises :class:`TransactionPoolingDetected`.
    """
    first = backend_pid(connection)
    answers: dict[str, Any] = {}

    def ask() -> None:
        try:
            answers["pid"] = backend_pid(connection)
        except BaseException as exc:  # handed to the caller's thread
            answers["error"] = exc

    with engine.connect() as other:
        other.execute(text("SELECT pg_backend_pid()"))  # holds a server session in a transaction
        asker = threading.Thread(target=ask, name="pooling-probe", daemon=True)
        asker.start()
        asker.join(timeout=wait)
        blocked = asker.is_alive()
        other.rollback()
    asker.join(timeout=wait + 5)
    if "error" in answers:
        raise answers["error"]
    if blocked or answers.get("pid") != first or backend_pid(connection) != first:
        raise TransactionPoolingDetected(
            "the database URL goes through a transaction-pooling proxy (PgBouncer in"
            " transaction or statement mode): consecutive transactions reach different"
            " server sessions, which defeats the migration lock and the session timeouts."
            " Give this environment a direct URL to PostgreSQL (or a session-mode pool)"
            " for migrations"
        )
    return first


def signal_backend(
    url: str,
    *,
    pid: int,
    application_name: str,
    terminate: bool,
    connect_timeout: float = 5.0,
) -> bool | None:
    """Cancel (``pg_cancel_backend``) or terminate a run's server session from a new connection.

    Only a session whose ``application_name`` is still the run's is signalled
    (a recycled pid never is). Returns True if it was signalled, False if no
    such session exists any more, None if the target could not be reached.
    """
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    engine = target_engine(
        url, connect_timeout=connect_timeout, statement_timeout=timedelta(seconds=5)
    )
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    f"SELECT {function}(pid) FROM pg_stat_activity"  # noqa: S608 -- constant
                    " WHERE pid = :pid AND application_name = :name"
                ),
                {"pid": pid, "name": application_name[:63]},
            ).first()
            connection.commit()
            return bool(row and row[0])
    except (SQLAlchemyError, OSError):
        return None
    finally:
        engine.dispose()


def lock_evidence(
    url: str,
    *,
    key: int,
    pid: int | None,
    owner: str,
    connect_timeout: float = 3.0,
) -> tuple[LockEvidence, str]:
    """Whether the run that took lock ``key`` (PostgreSQL backend ``pid``) still holds it.

    SQLite: whether the file's migration ``flock`` is held, and by ``owner``
    (the run's label in the holder file). Returns the evidence and a short
    description without secrets ("pid 4711 still holds the lock", "target
    unreachable: ...").
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = probe_sqlite_file_lock(parsed.database or "")
        if holder is None:
            return "free", "nobody holds the migration lock"
        if holder.application_name == owner:
            return "held_by_run", f"the run's process still holds the lock ({holder.describe()})"
        return "held_by_other", holder.describe()
    engine = target_engine(
        url, connect_timeout=connect_timeout, statement_timeout=timedelta(seconds=connect_timeout)
    )
    try:
        with engine.connect() as connection:
            holder = find_advisory_lock_holder(connection, key)
            connection.commit()
    except (SQLAlchemyError, OSError) as exc:
        return "unknown", f"target unreachable: {scrub_secret(_first_line(exc), url)}"
    finally:
        engine.dispose()
    if holder is None:
        return "free", "nobody holds the migration lock"
    if pid is not None and holder.pid == pid:
        return "held_by_run", f"its session (pid {pid}) still holds the lock"
    return "held_by_other", holder.describe()


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return lines[0] if lines else type(inner).__name__
