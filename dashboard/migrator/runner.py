"""Run an Alembic upgrade or downgrade on one connection, reporting as it goes.

The caller owns the connection (a direct one, usually already holding the
per-target lock from :mod:`dashboard.migrator.locks`) and hands it over with
no transaction open. :func:`run_plan` sets the environment's timeouts on the
session (PostgreSQL), passes the connection to the project's ``env.py``
through ``config.attributes["connection"]`` and the context options through
``config.attributes["context_options"]`` (the env.py contract of this
repository), and calls ``alembic.command.upgrade`` / ``downgrade``.

Reporting is by callbacks, so the caller decides where rows go:
``on_progress`` after every applied revision (Alembic's ``on_version_apply``),
``on_log`` for log lines, ``on_sql`` for every statement sent to the target.
Callbacks must not raise; an exception from one aborts the run.

Transactions: by default Alembic wraps the whole plan in one transaction
(all or nothing on PostgreSQL, whose DDL is transactional); with
``transaction_per_migration`` each revision commits on its own and the
result lists what was committed before a failure. Never imports Django.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, event

__all__ = [
    "ProgressEvent",
    "RunFailed",
    "RunOptions",
    "RunResult",
    "classify_error",
    "read_heads_on_connection",
    "run_plan",
]

ProgressCallback = Callable[["ProgressEvent"], None]
LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run: the environment's knobs."""

    direction: str  # "upgrade" | "downgrade"
    target: str  # an Alembic target accepted by command.upgrade/downgrade
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    transaction_per_migration: bool = False
    lock_timeout: timedelta | None = None
    statement_timeout: timedelta | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One revision applied (not necessarily committed yet in one-transaction mode)."""

    index: int  # 1-based position in the plan
    total: int
    revision: str
    heads: tuple[str, ...]
    next_revision: str | None


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    duration: float = 0.0


class RunFailed(Exception):
    """The run stopped with an error; ``result`` says what was applied and committed."""

    def __init__(
        self, message: str, *, reason: str, result: RunResult, revision: str | None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result
        self.revision = revision


def classify_error(exc: BaseException) -> str:
    """A short machine reason for a failed statement: lock_timeout, statement_timeout, error."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate == "55P03":
        return "lock_timeout"
    if sqlstate == "57014":
        return "statement_timeout"
    return "error"


def _ms(value: timedelta | None) -> int:
    return int(value.total_seconds() * 1000) if value else 0


def _set_timeouts(connection: Connection, options: RunOptions) -> None:
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql(f"SET lock_timeout = {_ms(options.lock_timeout)}")
    connection.exec_driver_sql(f"SET statement_timeout = {_ms(options.statement_timeout)}")
    if (connection.dialect.server_version_info or (0,)) >= (14,):
        # A killed worker's session would otherwise run on (and hold its locks)
        # until its current statement ends; PostgreSQL 14+ can notice sooner.
        connection.exec_driver_sql("SET client_connection_check_interval = 1000")
    connection.commit()


def read_heads_on_connection(
    connection: Connection, *, version_table: str, version_table_schema: str | None
) -> tuple[str, ...]:
    """The heads in the version table, read on ``connection``; leaves no transaction open."""
    context = MigrationContext.configure(
        connection,
        opts={"version_table": version_table, "version_table_schema": version_table_schema},
    )
    heads = tuple(sorted(context.get_current_heads()))
    if connection.in_transaction():
        connection.commit()
    return heads


class _AlembicLogRelay(logging.Handler):
    """Forwards Alembic's own log lines ("Running upgrade a -> b") from this thread."""

    def __init__(self, on_log: LineCallback) -> None:
        super().__init__(logging.INFO)
        self._thread = threading.get_ident()
        self._on_log = on_log

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self._on_log(record.getMessage())


def run_plan(
    *,
    config: Config,
    connection: Connection,
    options: RunOptions,
    planned_revisions: Sequence[str],
    on_progress: ProgressCallback | None = None,
    on_log: LineCallback | None = None,
    on_sql: LineCallback | None = None,
) -> RunResult:
    """Apply ``options.target`` in ``options.direction`` on ``connection``.

    ``config`` is the project's Alembic config (its ``env.py`` must honour the
    connection contract above); ``planned_revisions`` is the ordered plan, used
    for "revision k of n" and to name the revision that failed. The connection
    must have no open transaction. Raises :class:`RunFailed` on any error,
    after rolling back what was not committed. Returns what ran.
    """
    result = RunResult()
    total = len(planned_revisions)
    emit_log = on_log or (lambda _line: None)
    started = time.monotonic()
    per_migration = options.transaction_per_migration

    def version_applied(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        # Upgrade or downgrade, the revision applied or reverted is the "up" side.
        revision = step.up_revision_id or ",".join(step.up_revision_ids)
        result.applied.append(revision)
        if per_migration:
            result.committed.append(revision)
        index = len(result.applied)
        upcoming = planned_revisions[index] if index < total else None
        if on_progress:
            on_progress(ProgressEvent(index, total, revision, tuple(sorted(heads)), upcoming))

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if on_sql:
            on_sql(statement)

    if connection.in_transaction():
        raise ValueError("run_plan needs a connection without an open transaction")
    _set_timeouts(connection, options)
    config.attributes["connection"] = connection
    config.attributes["context_options"] = {
        "on_version_apply": version_applied,
        "transaction_per_migration": per_migration,
        "version_table": options.version_table,
        "version_table_schema": options.version_table_schema,
    }
    relay = _AlembicLogRelay(emit_log)
    alembic_logger = logging.getLogger("alembic")
    alembic_logger.addHandler(relay)
    previous_level = alembic_logger.level
    if not alembic_logger.isEnabledFor(logging.INFO):
        alembic_logger.setLevel(logging.INFO)
    event.listen(connection, "before_cursor_execute", before_execute)
    direction = "upgrade" if options.direction == "upgrade" else "downgrade"
    emit_log(f"{direction} to {options.target}: {total} revision(s) planned")
    try:
        getattr(command, direction)(config, options.target)
        if connection.in_transaction():
            connection.commit()
    except Exception as exc:
        if connection.in_transaction():
            connection.rollback()
        index = len(result.applied)
        failing = planned_revisions[index] if index < total else None
        result.duration = time.monotonic() - started
        message = f"{type(exc).__name__}: {_first_line(exc)}"
        emit_log(f"failed at revision {failing or '?'}: {message}")
        raise RunFailed(message, reason=classify_error(exc), result=result, revision=failing)
    finally:
        event.remove(connection, "before_cursor_execute", before_execute)
        alembic_logger.removeHandler(relay)
        alembic_logger.setLevel(previous_level)
    if not per_migration:
        result.committed = list(result.applied)
    result.duration = time.monotonic() - started
    emit_log(f"{direction} finished: {len(result.applied)} revision(s) in {result.duration:.2f}s")
    return result


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
