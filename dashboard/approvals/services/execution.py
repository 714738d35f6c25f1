"""Executing an approved request: claim, lock, check, run, record, and reap lost runs.

Contract of a run (one per request, never re-run):

1. ``run_start`` claims the request (conditional UPDATE, exactly one winner;
   a duplicate delivery gets None) and creates the ``Run`` (audit
   ``dashboard.run.started``).
2. ``run_execute`` opens a direct (pool-less) connection to the target and
   takes the per-target lock (PostgreSQL session advisory lock polled until
   the environment's ``lock_wait``; SQLite ``flock``). When the lock is busy
   and no DDL ran, it asks to be retried later (:class:`RetryLater`) a few
   times, then fails naming the holder.
3. Under the lock it re-reads the heads and re-hashes the revision files and
   refuses (``stale plan`` / ``files changed since approval``) on any
   difference from the pinned plan.
4. It runs the plan with ``dashboard.migrator.runner`` (timeouts from the
   environment, one transaction or one per revision), recording progress,
   log lines and executed SQL, with a heartbeat thread, then the final heads
   and the outcome (audit ``dashboard.run.succeeded|failed``).

``runs_reap`` marks runs whose heartbeat stopped as interrupted and records
the heads it finds. Never retried after DDL started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db import connection as django_connection
from django.utils import timezone
from sqlalchemy import Connection, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from dashboard.approvals import transitions
from dashboard.approvals.models import MigrationRequest, Run, RunLogLine, RunProgress
from dashboard.approvals.notifications import notify_requester_on_commit
from dashboard.approvals.planning import (
    alembic_config,
    plan_changed_files,
    script_directory,
    version_table_schema,
)
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.migrator.locks import (
    LockNotAcquired,
    advisory_lock_key,
    pg_advisory_lock,
    sqlite_file_lock,
)
from dashboard.migrator.plan import PlanError, compute_plan
from dashboard.migrator.runner import (
    ProgressEvent,
    RunFailed,
    RunOptions,
    read_heads_on_connection,
    run_plan,
)
from dashboard.migrator.secrets import scrub_secret
from dashboard.migrator.status import NoVersionTable, TargetUnreachable, read_current_heads

__all__ = ["RetryLater", "heartbeat_interval", "run_execute", "run_start", "runs_reap"]

logger = logging.getLogger(__name__)
Outcome = Run.Outcome


class RetryLater(Exception):
    """The target lock was busy before any DDL ran: try again in ``countdown`` seconds."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.0f}s")
        self.countdown = countdown


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def heartbeat_interval() -> timedelta:
    return settings.DASHBOARD_RUN_HEARTBEAT


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_start(*, request_id: int) -> Run | None:
    """Claim ``request_id`` for this worker; None if it is not approved or already claimed."""
    request = MigrationRequest.objects.select_related("environment").filter(pk=request_id).first()
    if request is None:
        return None
    return transitions.run_claimed(request, worker=worker_name(), heartbeat_at=timezone.now())


def run_execute(*, run_id: int, attempt: int = 0) -> Run:
    """Lock, check and run. Raises :class:`RetryLater` only while no DDL has run.

    Records every other outcome on the run (failed with a reason, succeeded)
    and returns it. ``attempt`` > 0 continues a run whose lock was busy; a
    duplicate retry message changes nothing.
    """
    if attempt > 0:
        moved = Run.objects.filter(
            pk=run_id, attempt=attempt - 1, outcome=Outcome.RUNNING, ddl_started_at__isnull=True
        ).update(attempt=attempt, heartbeat_at=timezone.now())
        if moved != 1:
            return Run.objects.get(pk=run_id)
    run = Run.objects.select_related("request__environment", "request__requested_by").get(pk=run_id)
    recorder = _Recorder(run)
    with _heartbeat(run.pk):
        try:
            _execute(run, recorder, attempt)
        except RetryLater:
            recorder.flush()
            raise
        except _Refused as refused:
            recorder.line(RunLogLine.Kind.ERROR, str(refused))
            recorder.flush()
            _finish(run, Outcome.FAILED, reason=refused.reason, error=str(refused))
        except Exception as exc:  # anything else must still end the run, never leave it "running"
            logger.exception("run %s crashed", run.pk)
            recorder.line(RunLogLine.Kind.ERROR, f"{type(exc).__name__}: {exc}")
            recorder.flush()
            _finish(run, Outcome.FAILED, reason="error", error=f"{type(exc).__name__}: {exc}")
    run.refresh_from_db()
    return run


def _execute(run: Run, recorder: _Recorder, attempt: int) -> None:
    request = run.request
    environment = request.environment
    try:
        url = environment.database_url()
    except EnvironmentConfigError as exc:
        raise _Refused("unreachable", f"environment is unreachable: {exc}") from None
    _phase(run, "waiting for the target lock")
    try:
        with _target_connection(environment, url, run) as connection:
            recorder.line(RunLogLine.Kind.LOG, "target lock acquired")
            Run.objects.filter(pk=run.pk).update(
                lock_acquired_at=timezone.now(), phase="checking the plan"
            )
            _check_pinned_plan(connection, request)
            _run_locked(run, recorder, connection, request, url=url)
    except LockNotAcquired as exc:
        retries = settings.DASHBOARD_RUN_LOCK_RETRIES
        if attempt < retries:
            countdown = settings.DASHBOARD_RUN_LOCK_RETRY_DELAY.total_seconds() * 2**attempt
            recorder.line(
                RunLogLine.Kind.LOG, f"{exc}; retry {attempt + 1}/{retries} in {countdown:.0f}s"
            )
            until = timezone.now() + timedelta(seconds=countdown) + heartbeat_interval()
            Run.objects.filter(pk=run.pk).update(
                heartbeat_at=until, phase="waiting to retry the lock"
            )
            raise RetryLater(countdown) from None
        raise _Refused("lock_unavailable", str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        raise _Refused(
            "unreachable", f"target unreachable: {scrub_secret(str(exc), url)}"
        ) from None
    except (_Refused, RetryLater):
        raise
    except Exception as exc:
        # Driver and Alembic texts can quote a DSN: never store one unscrubbed.
        logger.exception("run %s crashed", run.pk)
        raise _Refused("error", scrub_secret(f"{type(exc).__name__}: {exc}", url)) from None


@contextlib.contextmanager
def _target_connection(environment: Environment, url: str, run: Run) -> Iterator[Connection]:
    """A direct connection to the target, holding the per-target lock, no transaction open."""
    wait = environment.lock_wait.total_seconds()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite_file_lock(
            parsed.database or "", wait=wait, owner=f"run {run.pk} ({run.worker})"
        ):
            engine = create_engine(parsed, poolclass=NullPool)
            try:
                with engine.connect() as connection:
                    yield connection
            finally:
                engine.dispose()
        return
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": 5,
            "application_name": f"migrations-dashboard run {run.pk} ({run.worker})"[:63],
        }
    engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            key = advisory_lock_key(
                f"{environment.version_table_schema or 'public'}.{environment.version_table}"
            )
            with pg_advisory_lock(connection, key=key, wait=wait):
                yield connection
    finally:
        engine.dispose()


def _heads(connection: Connection, environment: Environment) -> list[str]:
    return list(
        read_heads_on_connection(
            connection,
            version_table=environment.version_table,
            version_table_schema=version_table_schema(environment),
        )
    )


def _check_pinned_plan(connection: Connection, request: MigrationRequest) -> None:
    heads = _heads(connection, request.environment)
    if sorted(heads) != sorted(request.from_heads):
        raise _Refused(
            "stale_plan",
            f"stale plan: {request.environment.slug} is at {', '.join(heads) or 'base'},"
            f" the plan was pinned at {', '.join(request.from_heads) or 'base'}",
        )
    changed = plan_changed_files(request.steps)
    if changed:
        raise _Refused("files_changed", f"files changed since approval: {', '.join(changed)}")
    # A symbolic target (heads, label@head, +2) is resolved again by Alembic at
    # run time: a revision added after approval would run unreviewed.
    try:
        plan = compute_plan(
            script_directory(),
            current_heads=heads,
            target=request.target,
            direction=request.direction,  # type: ignore[arg-type]
        )
    except PlanError as exc:
        raise _Refused("stale_plan", f"stale plan: the target no longer resolves: {exc}") from None
    if list(plan.revisions) != request.revisions or sorted(plan.to_heads) != sorted(
        request.to_heads
    ):
        added = [rev for rev in plan.revisions if rev not in request.revisions]
        raise _Refused(
            "stale_plan",
            f"stale plan: {request.target!r} now resolves to a different plan"
            + (f" (new revisions: {', '.join(added)})" if added else "")
            + "; request it again so the new plan is reviewed",
        )


def _run_locked(
    run: Run, recorder: _Recorder, connection: Connection, request: MigrationRequest, *, url: str
) -> None:
    environment = request.environment
    options = RunOptions(
        direction=request.direction,
        target=request.target,
        version_table=environment.version_table,
        version_table_schema=version_table_schema(environment),
        transaction_per_migration=environment.transaction_per_migration,
        lock_timeout=environment.lock_timeout,
        statement_timeout=environment.statement_timeout,
    )
    revisions = request.revisions
    Run.objects.filter(pk=run.pk).update(
        ddl_started_at=timezone.now(), phase="migrating", current_revision=revisions[0]
    )
    try:
        result = run_plan(
            config=alembic_config(),
            connection=connection,
            options=options,
            planned_revisions=revisions,
            on_progress=recorder.progress,
            on_log=lambda line: recorder.line(RunLogLine.Kind.LOG, line),
            on_sql=lambda sql: recorder.line(RunLogLine.Kind.SQL, sql),
        )
    except RunFailed as failed:
        recorder.flush()
        Run.objects.filter(pk=run.pk).update(committed=failed.result.committed)
        heads = _heads(connection, environment)
        reason = failed.reason
        message = scrub_secret(
            f"{reason.replace('_', ' ')} at revision {failed.revision}: {failed}", url
        )
        _finish(run, Outcome.FAILED, reason=reason, error=message, heads=heads)
        return
    recorder.flush()
    Run.objects.filter(pk=run.pk).update(committed=result.committed, current_revision="")
    _finish(run, Outcome.SUCCEEDED, heads=_heads(connection, environment))


def _finish(
    run: Run, outcome: str, *, reason: str = "", error: str = "", heads: list[str] | None = None
) -> None:
    try:
        transitions.run_finished(
            run, outcome=outcome, final_heads=heads, reason=reason, error=error
        )
    except transitions.TransitionRefused:
        logger.warning("run %s ended as %s but was already closed (reaped?)", run.pk, outcome)
        return
    notify_requester_on_commit(request_id=run.request_id)
    _refresh_status(run.request.environment)


def _refresh_status(environment: Environment) -> None:
    """Read the target's status now, so pages agree with the run that just ended.

    Best effort: the beat refresh catches up within a minute if this fails.
    """
    from dashboard.environments.services import environment_status_refresh

    try:
        environment_status_refresh(environment=environment)
    except Exception:
        logger.warning("status of %s not refreshed after the run", environment.slug, exc_info=True)


def _phase(run: Run, phase: str) -> None:
    Run.objects.filter(pk=run.pk).update(phase=phase)


class _Recorder:
    """Buffers log lines and writes progress rows for one run (worker thread only)."""

    FLUSH_EVERY = 0.5

    def __init__(self, run: Run) -> None:
        self.run = run
        self.buffer: list[RunLogLine] = []
        self.applied: list[str] = list(run.applied)
        self.last_flush = time.monotonic()

    def line(self, kind: str, text: str) -> None:
        self.buffer.append(RunLogLine(run_id=self.run.pk, kind=kind, text=text))
        if time.monotonic() - self.last_flush > self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            with self._tolerant("log lines"):
                RunLogLine.objects.bulk_create(self.buffer)
                self.buffer = []
        self.last_flush = time.monotonic()

    def progress(self, event: ProgressEvent) -> None:
        self.applied.append(event.revision)
        with self._tolerant("progress"):
            RunProgress.objects.create(
                run_id=self.run.pk, index=event.index, revision=event.revision
            )
            Run.objects.filter(pk=self.run.pk).update(
                applied=self.applied, current_revision=event.next_revision or ""
            )
        self.flush()

    @contextlib.contextmanager
    def _tolerant(self, what: str) -> Iterator[None]:
        """Bookkeeping runs inside the target's migration transaction (Alembic
        callbacks): a failing write to the dashboard database must not roll
        back DDL that succeeded. Keep the buffer, reconnect, write later."""
        try:
            yield
        except DatabaseError:
            logger.warning("run %s: %s not recorded yet", self.run.pk, what, exc_info=True)
            django_connection.close()


@contextlib.contextmanager
def _heartbeat(run_id: int) -> Iterator[None]:
    """Touch ``Run.heartbeat_at`` every interval from a thread while the block runs."""
    stop = threading.Event()
    interval = heartbeat_interval().total_seconds()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    Run.objects.filter(pk=run_id, outcome=Outcome.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    # A blip of the dashboard database must not stop the beat
                    # (the reaper would mark a live run interrupted): reconnect
                    # at the next interval.
                    logger.warning("heartbeat of run %s missed a beat", run_id, exc_info=True)
                    django_connection.close()
        finally:
            django_connection.close()

    Run.objects.filter(pk=run_id, outcome=Outcome.RUNNING).update(heartbeat_at=timezone.now())
    thread = threading.Thread(target=beat, name=f"heartbeat-run-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def runs_reap(*, now: datetime | None = None) -> list[int]:
    """Mark running runs whose heartbeat stopped as interrupted; record the target's heads.

    A run is lost when its heartbeat is older than 1.5 heartbeat intervals.
    Nothing is re-run. Returns the ids of the runs it marked.
    """
    close_old_connections()
    now = now or timezone.now()
    cutoff = now - heartbeat_interval() * 1.5
    reaped = []
    lost = Run.objects.filter(outcome=Outcome.RUNNING, heartbeat_at__lt=cutoff)
    for run in lost.select_related("request__environment"):
        heads = _read_heads_quietly(run.request.environment)
        try:
            transitions.run_finished(
                run,
                outcome=Outcome.INTERRUPTED,
                final_heads=heads,
                reason="heartbeat_lost",
                error=(
                    f"the worker {run.worker} stopped sending heartbeats (killed or cut off);"
                    f" the target is at {', '.join(heads) if heads is not None else 'an unknown state'};"
                    " nothing re-runs without a new request"
                ),
            )
        except transitions.TransitionRefused:
            continue
        notify_requester_on_commit(request_id=run.request_id)
        _refresh_status(run.request.environment)
        reaped.append(run.pk)
    return reaped


def _read_heads_quietly(environment: Environment) -> list[str] | None:
    try:
        return sorted(
            read_current_heads(
                environment.database_url(),
                version_table=environment.version_table,
                version_table_schema=version_table_schema(environment),
            )
        )
    except NoVersionTable:
        return []
    except (TargetUnreachable, EnvironmentConfigError):
        return None
