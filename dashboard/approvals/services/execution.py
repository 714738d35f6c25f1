"""Executing an approved request: claim, lock, check, run exactly the pinned plan, record.

Contract of a run (one per request, never re-run):

1. ``run_start`` checks that the approvals still meet the policy (an
   approver who lost the role no longer counts; the request goes back to
   pending, audited), claims the request (conditional UPDATE, exactly one
   winner; a duplicate delivery gets None) and creates the ``Run`` with its
   deadline (audit ``dashboard.run.started``).
2. ``run_execute`` refuses when the environment's execution settings differ
   from the ones pinned at request time, opens a direct (pool-less)
   connection to the target with TCP keepalives, refuses a
   transaction-pooling proxy, and takes the per-target lock (PostgreSQL
   session advisory lock polled until the environment's ``lock_wait``;
   SQLite ``flock``). When the lock is busy and no DDL ran, it asks to be
   retried later (:class:`RetryLater`) a few times, then fails naming the holder.
3. Under the lock it re-reads the heads, loads the pinned files
   (``load_pinned_script``: the revision modules and env.py that run are the
   hashed bytes), recomputes the plan, and refuses (``stale_plan`` /
   ``files_changed``) on any difference from the pinned plan. (The SQL is not
   rendered again to compare hashes: Alembic's SQLite batch rendering orders
   constraints differently from one rendering to the next.)
4. It runs the plan with ``dashboard.migrator.runner`` (timeouts from the
   environment, one transaction or one per revision), recording progress,
   log lines and the executed SQL, under a :class:`RunWatchdog` (heartbeat on
   the database clock, deadline, a tech lead's cancel), then reads the heads
   again: ``committed`` and the outcome come from them (``unknown`` when they
   cannot be read; settled later by the next status read).
5. After the lock is released it records the outcome (retrying a dashboard
   database that blinks; if the run was reaped meanwhile, the truth replaces
   the reaper's guess with a ``dashboard.run.corrected`` event), updates the
   environment's cached status from the heads it read, and queues mail and a
   full status refresh on the io queue.

``dashboard.approvals.services.recovery`` reaps runs whose worker was lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models.functions import Now
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from dashboard.approvals import transitions
from dashboard.approvals.models import MigrationRequest, Run, RunLogLine, database_now
from dashboard.approvals.notifications import notify_approvers_on_commit
from dashboard.approvals.planning import alembic_config, environment_dialect, version_table_schema
from dashboard.approvals.services.decisions import approvals_shortfall
from dashboard.approvals.services.recording import (
    RunRecorder,
    after_run,
    read_heads_quietly,
    record_outcome,
)
from dashboard.approvals.services.watchdog import RunWatchdog, TargetHandle
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.migrator.alembic_context import ConcurrentRunRefused, exclusive_run
from dashboard.migrator.connect import (
    TransactionPoolingDetected,
    assert_direct_session,
    target_engine,
)
from dashboard.migrator.locks import (
    LockNotAcquired,
    LockWaitStopped,
    advisory_lock_key,
    find_advisory_lock_holder,
    pg_advisory_lock,
    sqlite_file_lock,
)
from dashboard.migrator.pinned import PinMismatch, PinnedScript, load_pinned_script
from dashboard.migrator.plan import PlanError, compute_plan
from dashboard.migrator.runner import (
    RunFailed,
    RunOptions,
    RunResult,
    committed_between,
    read_heads_on_connection,
    run_plan,
)
from dashboard.migrator.secrets import scrub_secret

__all__ = [
    "RetryLater",
    "heartbeat_interval",
    "lock_key",
    "run_application_name",
    "run_execute",
    "run_lock_owner",
    "run_start",
]

logger = logging.getLogger(__name__)
Outcome = Run.Outcome
RunRecord = transitions.RunRecord


class RetryLater(Exception):
    """The target lock was busy before any DDL ran: try again in ``countdown`` seconds."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.0f}s")
        self.countdown = countdown


class _Refused(Exception):
    """The run ends before any DDL, for ``reason``; the target is as it was."""

    def __init__(self, reason: str, message: str, *, heads: list[str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.heads = heads


def heartbeat_interval() -> timedelta:
    return settings.DASHBOARD_RUN_HEARTBEAT


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_application_name(run: Run) -> str:
    """The ``application_name`` of a run's target session (how a DBA recognises it)."""
    return f"migrations-dashboard run {run.pk} ({run.worker})"[:63]


def run_lock_owner(run: Run) -> str:
    """The label a run writes into a SQLite lock's holder file."""
    return f"run {run.pk} ({run.worker})"


def lock_key(environment: Environment) -> int:
    return advisory_lock_key(
        f"{environment.version_table_schema or 'public'}.{environment.version_table}"
    )


# --- start --------------------------------------------------------------------


def run_start(*, request_id: int) -> Run | None:
    """Claim ``request_id`` for this worker; None if not approved, already claimed or reopened.

    Before the claim the approvals are counted again: when they no longer
    meet the policy the request goes back to pending (audited, approvers
    mailed) and nothing runs.
    """
    request = MigrationRequest.objects.select_related("environment").filter(pk=request_id).first()
    if request is None or request.status != MigrationRequest.Status.APPROVED:
        return None
    if request.environment.is_fleet:  # a fleet's request runs as its rollout's targets
        return None
    # A rollout's target: its parent's approvals were counted when it was dispatched.
    shortfall = approvals_shortfall(request) if request.parent_id is None else None
    if shortfall is not None:
        try:
            transitions.request_reopened(
                request,
                valid_approvals=shortfall.valid,
                required=shortfall.required,
                discounted=shortfall.discounted,
            )
        except transitions.TransitionRefused:
            return None
        notify_approvers_on_commit(request_id=request.pk)
        return None
    run = transitions.run_claimed(request, worker=worker_name())
    if run is not None:
        timeout = request.environment.effective_run_timeout(len(request.steps))
        if timeout is not None:
            Run.objects.filter(pk=run.pk).update(deadline_at=database_now(timeout))
    return run


# --- execute ------------------------------------------------------------------


def run_execute(*, run_id: int, attempt: int = 0) -> Run:
    """Lock, check, run and record. Raises :class:`RetryLater` only while no DDL has run.

    Records every other outcome on the run and returns it. ``attempt`` > 0
    continues a run whose lock was busy; a duplicate retry message changes
    nothing.
    """
    if attempt > 0:
        moved = Run.objects.filter(
            pk=run_id, attempt=attempt - 1, outcome=Outcome.RUNNING, ddl_started_at__isnull=True
        ).update(attempt=attempt, retry_at=None, heartbeat_at=Now())
        if moved != 1:
            return Run.objects.get(pk=run_id)
    run = Run.objects.select_related("request__environment", "request__requested_by").get(pk=run_id)
    recorder = RunRecorder(run)
    execution = _Execution(run=run, recorder=recorder, attempt=attempt)
    with RunWatchdog(run.pk, interval=heartbeat_interval().total_seconds()) as watchdog:
        execution.watchdog = watchdog
        try:
            record = execution.perform()
        except RetryLater:
            recorder.flush(watchdog)
            raise
        recorded = record_outcome(run, record, recorder, watchdog)
    if recorded:
        after_run(run, record)
    run.refresh_from_db()
    return run


@dataclass
class _Execution:
    """One attempt at running ``run``: the steps of the module docstring, 2 to 4."""

    run: Run
    recorder: RunRecorder
    attempt: int
    watchdog: RunWatchdog | None = None
    pinned: PinnedScript | None = None
    ddl_started: bool = False
    url: str = ""

    @property
    def request(self) -> MigrationRequest:
        return self.run.request

    @property
    def environment(self) -> Environment:
        return self.run.request.environment

    def perform(self) -> RunRecord:
        try:
            return self._perform()
        except (_Refused, RetryLater):
            raise
        except Exception as exc:  # anything else must still end the run, never leave it "running"
            logger.exception("run %s crashed", self.run.pk)
            message = scrub_secret(f"{type(exc).__name__}: {exc}", self.url)
            if not self.ddl_started:
                return self._refusal(_Refused("error", message))
            # DDL may have run: only the version table can say what happened.
            return self._record_from_heads(None, reason="error", error=message)

    def _refusal(self, refused: _Refused) -> RunRecord:
        self.recorder.line(RunLogLine.Kind.ERROR, str(refused))
        return RunRecord(
            outcome=Outcome.CANCELLED if refused.reason == "cancelled" else Outcome.FAILED,
            final_heads=refused.heads,
            reason=refused.reason,
            error=str(refused),
        )

    def _perform(self) -> RunRecord:
        try:
            self.url = self.environment.database_url()
        except EnvironmentConfigError as exc:
            return self._refusal(_Refused("unreachable", f"environment is unreachable: {exc}"))
        self.recorder.url = self.url
        try:
            _check_settings(self.request, self.environment, self.url)
            _phase(self.run, "waiting for the target lock")
            with self._locked_target() as connection:
                self.recorder.line(RunLogLine.Kind.LOG, "target lock acquired")
                _phase(self.run, "checking the plan", lock_acquired_at=Now())
                self.pinned = self._check_pinned_plan(connection)
                return self._migrate(connection)
        except _Refused as refused:
            return self._refusal(refused)
        except LockWaitStopped:
            reason = self.watchdog.tripped if self.watchdog else "cancelled"
            return self._refusal(
                _Refused(reason, "stopped before the lock was acquired: " + reason)
            )
        except LockNotAcquired as exc:
            return self._refusal(self._retry_or_refuse(exc))
        except TransactionPoolingDetected as exc:
            return self._refusal(_Refused("transaction_pooling", str(exc)))
        except ConcurrentRunRefused as exc:
            if self.ddl_started:
                raise
            logger.error("run %s: %s", self.run.pk, exc)
            return self._refusal(self._retry_or_refuse(exc))
        except (SQLAlchemyError, OSError) as exc:
            if self.ddl_started:
                raise
            message = f"target unreachable: {scrub_secret(str(exc), self.url)}"
            return self._refusal(_Refused("unreachable", message))

    def _retry_or_refuse(self, exc: Exception) -> _Refused:
        """Raise :class:`RetryLater` while retries remain; then the refusal to record."""
        retries = settings.DASHBOARD_RUN_LOCK_RETRIES
        reason = "lock_unavailable" if isinstance(exc, LockNotAcquired) else "concurrent_run"
        if self.attempt < retries:
            countdown = settings.DASHBOARD_RUN_LOCK_RETRY_DELAY.total_seconds() * 2**self.attempt
            self.recorder.line(
                RunLogLine.Kind.LOG,
                f"{exc}; retry {self.attempt + 1}/{retries} in {countdown:.0f}s",
            )
            retry_at = database_now(timedelta(seconds=countdown))
            _phase(self.run, "waiting to retry the lock", retry_at=retry_at)
            raise RetryLater(countdown)
        return _Refused(reason, str(exc))

    @contextlib.contextmanager
    def _locked_target(self) -> Iterator[Connection]:
        """A direct connection to the target holding the per-target lock, no transaction open."""
        run, environment = self.run, self.environment
        wait = environment.lock_wait.total_seconds()
        stop = self.watchdog.should_stop if self.watchdog else None
        parsed = make_url(self.url)
        engine = target_engine(
            self.url,
            application_name=run_application_name(run),
            tcp_timeout=settings.DASHBOARD_TARGET_TCP_TIMEOUT,
        )
        try:
            if parsed.get_backend_name() == "sqlite":
                with (
                    sqlite_file_lock(
                        parsed.database or "",
                        wait=wait,
                        owner=run_lock_owner(run),
                        should_stop=stop,
                    ),
                    engine.connect() as connection,
                ):
                    self._attach(TargetHandle(url=self.url, dbapi_connection=_dbapi(connection)))
                    yield connection
                return
            with engine.connect() as connection:
                pid = None
                if parsed.get_backend_name() == "postgresql":
                    pid = assert_direct_session(connection, engine)
                key = lock_key(environment)
                with pg_advisory_lock(connection, key=key, wait=wait, should_stop=stop):
                    if pid is not None:
                        _assert_lock_is_ours(connection, key, pid)
                        Run.objects.filter(pk=run.pk).update(target_backend_pid=pid)
                    self._attach(
                        TargetHandle(
                            url=self.url,
                            pid=pid,
                            application_name=run_application_name(run),
                            socket_fd=_socket_fd(connection),
                        )
                    )
                    yield connection
        finally:
            if self.watchdog:
                self.watchdog.detach()
            engine.dispose()

    def _attach(self, handle: TargetHandle) -> None:
        if self.watchdog:
            self.watchdog.attach(handle)

    def _heads(self, connection: Connection) -> list[str]:
        return list(
            read_heads_on_connection(
                connection,
                version_table=self.environment.version_table,
                version_table_schema=version_table_schema(self.environment),
            )
        )

    def _check_pinned_plan(self, connection: Connection) -> PinnedScript:
        request = self.request
        heads = self._heads(connection)
        if sorted(heads) != sorted(request.from_heads):
            raise _Refused(
                "stale_plan",
                f"stale plan: {self.environment.slug} is at {', '.join(heads) or 'base'},"
                f" the plan was pinned at {', '.join(request.from_heads) or 'base'}",
                heads=heads,
            )
        try:
            pinned = load_pinned_script(
                alembic_config(),
                revision_hashes={step["revision"]: step["sha256"] for step in request.steps},
                env_sha256=request.env_sha256 or None,
            )
        except PinMismatch as exc:
            raise _Refused("files_changed", str(exc), heads=heads) from None
        if not request.env_sha256:
            self.recorder.line(RunLogLine.Kind.LOG, "env.py was not pinned on this older request")
        # A symbolic target (heads, label@head, +2) must still resolve to the approved plan.
        try:
            plan = compute_plan(
                pinned.script,
                current_heads=heads,
                target=request.target,
                direction=request.direction,  # type: ignore[arg-type]
            )
        except PlanError as exc:
            raise _Refused(
                "stale_plan", f"stale plan: the target no longer resolves: {exc}", heads=heads
            ) from None
        if list(plan.revisions) != request.revisions or sorted(plan.to_heads) != sorted(
            request.to_heads
        ):
            added = [rev for rev in plan.revisions if rev not in request.revisions]
            raise _Refused(
                "stale_plan",
                f"stale plan: {request.target!r} now resolves to a different plan"
                + (f" (new revisions: {', '.join(added)})" if added else "")
                + "; request it again so the new plan is reviewed",
                heads=heads,
            )
        return pinned

    def _migrate(self, connection: Connection) -> RunRecord:
        request, environment, run = self.request, self.environment, self.run
        assert self.pinned is not None
        options = RunOptions(
            direction=request.direction,
            target=request.target,
            version_table=environment.version_table,
            version_table_schema=version_table_schema(environment),
            transaction_per_migration=environment.transaction_per_migration,
            lock_timeout=environment.lock_timeout,
            statement_timeout=environment.statement_timeout,
            idle_in_transaction_timeout=environment.idle_in_transaction_timeout,
            tcp_timeout=settings.DASHBOARD_TARGET_TCP_TIMEOUT,
        )
        if self.watchdog and self.watchdog.tripped:
            raise _Refused(
                self.watchdog.tripped, f"stopped before any DDL: {self.watchdog.tripped}"
            )
        with exclusive_run():
            self.ddl_started = True
            _phase(run, "migrating", ddl_started_at=Now(), current_revision=request.revisions[0])
            self.recorder.begin()
            try:
                result = run_plan(
                    config=alembic_config(),
                    pinned=self.pinned,
                    connection=connection,
                    options=options,
                    planned_revisions=request.revisions,
                    expected_heads=request.to_heads,
                    on_progress=self.recorder.progress,
                    on_log=lambda line: self.recorder.line(RunLogLine.Kind.LOG, line),
                    on_sql=lambda sql: self.recorder.line(RunLogLine.Kind.SQL, sql),
                )
                failed: RunFailed | None = None
            except RunFailed as exc:
                result, failed = exc.result, exc
        self.recorder.flush(self.watchdog)
        heads = self._final_heads(connection)
        return self._record(result, failed, heads)

    def _final_heads(self, connection: Connection) -> list[str] | None:
        """The heads after the run: on the run's connection, else on a new one, else None."""
        with contextlib.suppress(SQLAlchemyError, OSError):
            if not connection.invalidated and not connection.closed:
                return self._heads(connection)
        return read_heads_quietly(self.environment, self.url)

    def _record_from_heads(self, result: RunResult | None, *, reason: str, error: str) -> RunRecord:
        heads = read_heads_quietly(self.environment, self.url)
        return self._record(result or RunResult(), None, heads, reason=reason, error=error)

    def _record(
        self,
        result: RunResult,
        failed: RunFailed | None,
        heads: list[str] | None,
        *,
        reason: str = "",
        error: str = "",
    ) -> RunRecord:
        request = self.request
        tripped = self.watchdog.tripped if self.watchdog else ""
        if failed is not None:
            reason = tripped or failed.reason
            error = scrub_secret(
                f"{reason.replace('_', ' ')} at revision {failed.revision}: {failed}", self.url
            )
        executed = {
            "executed_statements": result.statements,
            "executed_sql_sha256": result.sql_sha256,
        }
        if heads is None:
            self.recorder.line(
                RunLogLine.Kind.ERROR,
                "the target's version table could not be read after the run:"
                " the outcome is unknown until the next status read settles it",
            )
            return RunRecord(
                outcome=Outcome.UNKNOWN,
                final_heads=None,
                reason=reason or "heads_unreadable",
                # What caused it; the page says what "unknown" means and that it is settled.
                error=(error + "; " if error else "")
                + "the version table could not be read after the run",
                **executed,
            )
        assert self.pinned is not None  # DDL starts only after the pinned files were loaded
        committed = committed_between(
            self.pinned.script,
            direction=request.direction,
            from_heads=request.from_heads,
            final_heads=heads,
            planned=request.revisions,
        )
        reached = sorted(heads) == sorted(request.to_heads)
        if reached:
            if failed is not None or error:
                error = f"{error}; the version table shows the whole plan applied"
            return RunRecord(Outcome.SUCCEEDED, heads, committed, reason, error, **executed)
        if failed is None and not error:
            reason = "plan_mismatch"
            error = (
                f"the run ended at {', '.join(heads) or 'base'}, the approved plan ends at"
                f" {', '.join(request.to_heads) or 'base'}"
            )
        outcome = Outcome.CANCELLED if tripped == "cancelled" else Outcome.FAILED
        return RunRecord(outcome, heads, committed, reason, error, **executed)


def _dbapi(connection: Connection) -> Any:
    return connection.connection.dbapi_connection


def _socket_fd(connection: Connection) -> int | None:
    """The client socket of a psycopg connection (None for other drivers)."""
    pgconn = getattr(_dbapi(connection), "pgconn", None)
    try:
        return int(pgconn.socket) if pgconn is not None else None
    except Exception:
        return None


def _assert_lock_is_ours(connection: Connection, key: int, pid: int) -> None:
    holder = find_advisory_lock_holder(connection, key)
    connection.commit()
    if holder is None or holder.pid != pid:
        raise TransactionPoolingDetected(
            "the migration lock is not held by this session after it was taken: the URL goes"
            " through a transaction-pooling proxy; give this environment a direct URL"
        )


def _check_settings(request: MigrationRequest, environment: Environment, url: str) -> None:
    """Refuse when the execution settings in force differ from those pinned at request time."""
    pinned = request.pinned_settings or {}
    changes = []
    if pinned:
        current = environment.execution_settings()
        changes = [
            f"{name}: {pinned.get(name)!r} → {value!r}"
            for name, value in current.items()
            if pinned.get(name) != value
        ]
    dialect = environment_dialect(url)
    if request.dialect and dialect != request.dialect:
        changes.append(f"database dialect: {request.dialect} → {dialect}")
    if changes:
        raise _Refused(
            "settings_changed",
            "the environment's settings changed since this was requested ("
            + "; ".join(changes)
            + "); request it again so the new settings are reviewed",
        )


def _phase(run: Run, phase: str, **fields: Any) -> None:
    Run.objects.filter(pk=run.pk).update(phase=phase, **fields)
