"""Run an Alembic upgrade or downgrade on one connection, exactly as planned, reporting as it goes.

The caller owns the connection (a direct one, usually already holding the
per-target lock from :mod:`dashboard.migrator.locks`) and hands it over with
no transaction open, together with a :class:`~dashboard.migrator.pinned.PinnedScript`
(the script directory whose plan revisions are bound to their approved
bytes, and env.py's approved bytes). :func:`run_plan`:

- takes the process's Alembic context (:mod:`dashboard.migrator.alembic_context`:
  two migrations in two threads of one process would cross-wire);
- sets the environment's timeouts on the session (PostgreSQL: ``lock_timeout``,
  ``statement_timeout``, ``idle_in_transaction_session_timeout``, server-side
  TCP keepalives and ``tcp_user_timeout``, ``client_connection_check_interval``);
- executes the pinned env.py bytes inside an ``EnvironmentContext`` of the
  pinned script directory (what ``alembic.command.upgrade`` does, without
  reading anything from disk again), passing the connection through
  ``config.attributes["connection"]`` and the context options through
  ``config.attributes["context_options"]`` (the env.py contract of this
  repository);
- refuses before the first statement when the steps Alembic resolves are
  not exactly ``planned_revisions``, and after the last step -- inside the
  migration transaction, before its COMMIT in one-transaction mode -- when
  the revisions applied or the version table's heads differ from the plan
  (:class:`RunFailed` with reason ``plan_mismatch``).

Reporting is by callbacks, so the caller decides where rows go:
``on_progress`` after every applied revision (Alembic's ``on_version_apply``),
``on_log`` for log lines, ``on_sql`` for every statement sent to the target.
Callbacks must not raise; an exception from one aborts the run. The result
carries the count and SHA-256 of the statements sent (:func:`executed_sql_sha256`).

Transactions: by default Alembic wraps the whole plan in one transaction
(all or nothing on PostgreSQL, whose DDL is transactional, and on SQLite
with an engine from ``connect.target_engine``, which BEGINs before DDL; a revision's
``autocommit_block`` commits what came before it, as Alembic documents);
with ``transaction_per_migration`` each revision commits on its own. What
is committed is known for sure only from the version table afterwards: the
caller reads the heads (``committed_between``). Never imports Django.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event

from dashboard.migrator.alembic_context import exclusive_run
from dashboard.migrator.pinned import PinnedScript, load_pinned_script
from dashboard.migrator.plan import applied_revisions

__all__ = [
    "ProgressEvent",
    "RunFailed",
    "RunOptions",
    "RunResult",
    "classify_error",
    "committed_between",
    "executed_sql_sha256",
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
    idle_in_transaction_timeout: timedelta | None = None
    # Server side of the silent-network guard (the client side is the
    # connection's libpq keepalive parameters, set by whoever connects).
    tcp_timeout: timedelta | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One revision applied (not necessarily committed yet in one-transaction mode)."""

    index: int  # 1-based position in the plan
    total: int
    revision: str
    heads: tuple[str, ...]
    next_revision: str | None
    seconds: float = 0.0  # how long this revision took


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    duration: float = 0.0
    statements: int = 0
    sql_sha256: str = ""


class RunFailed(Exception):
    """The run stopped with an error; ``result`` says what was applied (and sent)."""

    def __init__(
        self, message: str, *, reason: str, result: RunResult, revision: str | None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result
        self.revision = revision


class PlanMismatch(Exception):
    """What Alembic resolves or applied is not the approved plan."""


def classify_error(exc: BaseException) -> str:
    """A short machine reason for a failed statement: lock_timeout, statement_timeout, error."""
    if isinstance(exc, PlanMismatch):
        return "plan_mismatch"
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate == "55P03":
        return "lock_timeout"
    if sqlstate == "57014":
        return "statement_timeout"
    return "error"


def executed_sql_sha256(statements: Iterable[str]) -> str:
    """The SHA-256 of statements as sent, each followed by a newline (the executed-SQL hash)."""
    digest = hashlib.sha256()
    for statement in statements:
        digest.update(statement.encode("utf-8") + b"\n")
    return digest.hexdigest()


def committed_between(
    script: ScriptDirectory,
    *,
    direction: str,
    from_heads: Sequence[str],
    final_heads: Sequence[str],
    planned: Sequence[str],
) -> list[str]:
    """Revisions of ``planned`` that the database's version table shows as done, in plan order.

    Upgrade: planned revisions applied at ``final_heads`` but not at
    ``from_heads``; downgrade: applied before but not any more. Derived from
    the heads read after the run, it holds whatever the transaction mode or
    an ``autocommit_block`` committed.
    """
    before = applied_revisions(script, from_heads)
    after = applied_revisions(script, final_heads)
    done = after - before if direction == "upgrade" else before - after
    return [revision for revision in planned if revision in done]


def _ms(value: timedelta | None) -> int:
    return int(value.total_seconds() * 1000) if value else 0


def _set_session(connection: Connection, options: RunOptions) -> None:
    if connection.dialect.name != "postgresql":
        return
    settings = {
        "lock_timeout": _ms(options.lock_timeout),
        "statement_timeout": _ms(options.statement_timeout),
        "idle_in_transaction_session_timeout": _ms(options.idle_in_transaction_timeout),
    }
    if options.tcp_timeout:
        seconds = max(int(options.tcp_timeout.total_seconds()), 3)
        settings.update(
            tcp_keepalives_idle=max(seconds // 3, 1),
            tcp_keepalives_interval=max(seconds // 6, 1),
            tcp_keepalives_count=3,
        )
    version = connection.dialect.server_version_info or (0,)
    if options.tcp_timeout and version >= (12,):
        settings["tcp_user_timeout"] = _ms(options.tcp_timeout)
    if version >= (14,):
        # A killed worker's session would otherwise run on (and hold its locks)
        # until its current statement ends; PostgreSQL 14+ can notice sooner.
        settings["client_connection_check_interval"] = 1000
    for name, value in settings.items():
        connection.exec_driver_sql(f"SET {name} = {int(value)}")
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


@dataclass
class _Run:
    """The mutable state of one run_plan call (callbacks close over it)."""

    planned: Sequence[str] | None
    expected_heads: Sequence[str] | None
    on_progress: ProgressCallback | None
    on_sql: LineCallback | None
    per_migration: bool = False
    result: RunResult = field(default_factory=RunResult)
    digest: Any = field(default_factory=hashlib.sha256)
    mark: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return len(self.planned) if self.planned is not None else 0

    def version_applied(self, *, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        # Upgrade or downgrade, the revision applied or reverted is the "up" side.
        revision = step.up_revision_id or ",".join(step.up_revision_ids)
        self.result.applied.append(revision)
        if self.per_migration:  # the caller's word for it comes from the heads read after
            self.result.committed.append(revision)
        now = time.monotonic()
        seconds, self.mark = now - self.mark, now
        index = len(self.result.applied)
        upcoming = self.planned[index] if self.planned and index < self.total else None
        if self.on_progress:
            self.on_progress(
                ProgressEvent(
                    index, self.total, revision, tuple(sorted(heads)), upcoming, round(seconds, 3)
                )
            )

    def before_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.result.statements += 1
        self.digest.update(statement.encode("utf-8") + b"\n")
        if self.on_sql:
            self.on_sql(statement)

    def steps(self, resolve: Callable[[Any], list[Any]]) -> Callable[[Any, Any], Iterator[Any]]:
        """Alembic's ``fn``: yields exactly the planned steps, then checks before COMMIT."""

        def generate(heads: Any, context: MigrationContext) -> Iterator[Any]:
            resolved = resolve(heads)
            ids = [step.revision.revision for step in resolved]
            if self.planned is not None and ids != list(self.planned):
                raise PlanMismatch(
                    f"Alembic resolves {', '.join(ids) or 'nothing'} here, the approved plan is "
                    f"{', '.join(self.planned) or 'nothing'}: nothing was run"
                )
            self.mark = time.monotonic()
            yield from resolved
            # Every step ran; in one-transaction mode its COMMIT has not happened yet.
            self._check_outcome(context)

        return generate

    def _check_outcome(self, context: MigrationContext) -> None:
        if self.planned is not None and self.result.applied != list(self.planned):
            raise PlanMismatch(
                f"applied {', '.join(self.result.applied) or 'nothing'}, "
                f"approved {', '.join(self.planned)}"
            )
        if self.expected_heads is not None:
            heads = sorted(context.get_current_heads())
            if heads != sorted(self.expected_heads):
                raise PlanMismatch(
                    f"the version table would hold {', '.join(heads) or 'nothing'}, "
                    f"the approved plan ends at {', '.join(sorted(self.expected_heads)) or 'base'}"
                )


def run_plan(
    *,
    config: Config,
    connection: Connection,
    options: RunOptions,
    planned_revisions: Sequence[str] | None,
    pinned: PinnedScript | None = None,
    expected_heads: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    on_log: LineCallback | None = None,
    on_sql: LineCallback | None = None,
) -> RunResult:
    """Apply ``options.target`` in ``options.direction`` on ``connection``, exactly as planned.

    ``pinned`` is the script directory to run (:func:`load_pinned_script`);
    ``None`` loads the project of ``config`` as it is on disk (test set-up and
    benchmarks only). ``planned_revisions`` is the ordered approved plan (the
    run refuses to deviate from it) or ``None`` for "whatever Alembic
    resolves"; ``expected_heads`` what the version table must hold at the end.
    The connection must have no open transaction. Raises :class:`RunFailed`
    on any error, after rolling back what was not committed, and
    ``ConcurrentRunRefused`` (before touching anything) when another
    migration runs in this process. Returns what ran.
    """
    if connection.in_transaction():
        raise ValueError("run_plan needs a connection without an open transaction")
    with exclusive_run():
        pinned = pinned or load_pinned_script(config, revision_hashes={}, env_sha256=None)
        state = _Run(
            planned=planned_revisions,
            expected_heads=expected_heads,
            on_progress=on_progress,
            on_sql=on_sql,
            per_migration=options.transaction_per_migration,
        )
        return _run_locked(config, pinned, connection, options, state, on_log)


def _run_locked(
    config: Config,
    pinned: PinnedScript,
    connection: Connection,
    options: RunOptions,
    state: _Run,
    on_log: LineCallback | None,
) -> RunResult:
    result = state.result
    emit_log = on_log or (lambda _line: None)
    started = time.monotonic()
    script = pinned.script
    direction = "upgrade" if options.direction == "upgrade" else "downgrade"
    target = options.target

    def resolve(heads: Any) -> list[Any]:
        if direction == "upgrade":
            return script._upgrade_revs(target, heads)
        return script._downgrade_revs(target, heads)

    _set_session(connection, options)
    config.attributes["connection"] = connection
    config.attributes["context_options"] = {
        "on_version_apply": state.version_applied,
        "transaction_per_migration": options.transaction_per_migration,
        "version_table": options.version_table,
        "version_table_schema": options.version_table_schema,
    }
    if connection.dialect.name == "sqlite":
        # SQLite's DDL is transactional when the driver lets SQLAlchemy BEGIN
        # (connect.sqlite_transactional_ddl): a failed plan then rolls back whole.
        config.attributes["context_options"]["transactional_ddl"] = True
    relay = _AlembicLogRelay(emit_log)
    alembic_logger = logging.getLogger("alembic")
    alembic_logger.addHandler(relay)
    previous_level = alembic_logger.level
    if not alembic_logger.isEnabledFor(logging.INFO):
        alembic_logger.setLevel(logging.INFO)
    event.listen(connection, "before_cursor_execute", state.before_execute)
    emit_log(f"{direction} to {target}: {state.total or '?'} revision(s) planned")
    try:
        with EnvironmentContext(
            config,
            script,
            fn=state.steps(resolve),
            as_sql=False,
            starting_rev=None,
            destination_rev=target,
            tag=None,
        ):
            _exec_env(pinned)
        if connection.in_transaction():
            connection.commit()
    except Exception as exc:
        with contextlib.suppress(Exception):  # a dead connection cannot roll back: the server does
            if connection.in_transaction():
                connection.rollback()
        index = len(result.applied)
        planned = state.planned or ()
        failing = planned[index] if index < len(planned) else None
        result.duration = time.monotonic() - started
        result.sql_sha256 = state.digest.hexdigest() if result.statements else ""
        message = f"{type(exc).__name__}: {_first_line(exc)}"
        emit_log(f"failed at revision {failing or '?'}: {message}")
        raise RunFailed(message, reason=classify_error(exc), result=result, revision=failing)
    finally:
        event.remove(connection, "before_cursor_execute", state.before_execute)
        alembic_logger.removeHandler(relay)
        alembic_logger.setLevel(previous_level)
        config.attributes.pop("connection", None)
    result.committed = list(result.applied)
    result.duration = time.monotonic() - started
    result.sql_sha256 = state.digest.hexdigest() if result.statements else ""
    emit_log(f"{direction} finished: {len(result.applied)} revision(s) in {result.duration:.2f}s")
    return result


def _exec_env(pinned: PinnedScript) -> None:
    """Run env.py from its pinned bytes (Alembic's ``run_env`` would read the file again)."""
    module = types.ModuleType("env_py")
    module.__file__ = pinned.env_path
    code = compile(pinned.env_source, pinned.env_path, "exec")
    exec(code, module.__dict__)  # noqa: S102 -- the approved, hashed env.py


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
