"""Runs whose worker is lost, outcomes nobody could read, and a tech lead's *Cancel*.

Liveness is judged on the dashboard database's clock only (workers write
``heartbeat_at = now()``; the reaper compares with ``now()``), never a
worker's or the reaper's own clock. ``runs_reap`` (beat, every 2 s):

- a run whose heartbeat is late by 1.5 beats is *suspected*; the reaper asks
  its target whether the run's session still holds the migration lock
  (PostgreSQL: ``pg_locks`` for the advisory key held by the backend pid the
  run recorded; SQLite: the file's ``flock`` and its holder file). Held by
  the run: it is alive, whatever its heartbeat says -- not reaped. Free or
  held by someone else: the worker is gone -- reaped. The target cannot
  say (unreachable): reaped only once the heartbeat is late by
  ``DASHBOARD_RUN_REAP_AFTER`` (6 beats);
- a reaped run's outcome comes from the target's version table: the whole
  plan applied (the worker died after its COMMIT) is *succeeded*, otherwise
  *interrupted* with what was committed, or *unknown* when the table cannot
  be read (settled later). Nothing is re-run;
- a run waiting to retry a busy lock is never reaped for its silence: when
  its retry is overdue (its message was lost) the retry is sent again (no
  DDL ran; the retry's conditional update lets one copy through);
- runs whose outcome is *unknown* are settled from the heads as soon as the
  target answers and the run's session no longer holds the lock
  (``runs_settle_unknown``, also on every status read of the environment).

A worker that reports after being reaped records the truth as a correction
(``recording.record_outcome``).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections
from django.db.models import BooleanField, Case, Q, Value, When
from django.http import HttpRequest

from dashboard.approvals import transitions
from dashboard.approvals.models import MigrationRequest, Run, database_now
from dashboard.approvals.services.dispatch import enqueue_on_commit, send_task
from dashboard.approvals.services.execution import (
    heartbeat_interval,
    lock_key,
    run_application_name,
    run_lock_owner,
)
from dashboard.approvals.services.recording import after_run, read_heads_quietly
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.environments.services import alembic_script
from dashboard.migrator.connect import LockEvidence, lock_evidence, signal_backend
from dashboard.migrator.runner import committed_between

__all__ = [
    "RunCancelRefused",
    "run_cancel",
    "run_cancel_backend",
    "runs_reap",
    "runs_settle_unknown",
]

logger = logging.getLogger(__name__)
Outcome = Run.Outcome
RunRecord = transitions.RunRecord


class RunCancelRefused(Exception):
    """The run cannot be cancelled now (it has ended, or was never started)."""


def _evidence(run: Run) -> tuple[LockEvidence, str]:
    environment = run.request.environment
    try:
        url = environment.database_url()
    except EnvironmentConfigError as exc:
        return "unknown", str(exc)
    return lock_evidence(
        url, key=lock_key(environment), pid=run.target_backend_pid, owner=run_lock_owner(run)
    )


def runs_reap() -> list[int]:
    """Reap lost runs, re-send overdue lock retries, settle unknown outcomes; ids of runs reaped."""
    close_old_connections()
    beat = heartbeat_interval()
    _resend_overdue_retries(beat)
    silent = (
        Run.objects.filter(outcome=Outcome.RUNNING, retry_at__isnull=True)
        .filter(heartbeat_at__lt=database_now(-beat * 1.5))
        .annotate(
            long_silent=Case(
                When(
                    heartbeat_at__lt=database_now(-settings.DASHBOARD_RUN_REAP_AFTER),
                    then=Value(True),
                ),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
        .select_related("request__environment")
    )
    reaped = []
    for run in silent:
        evidence, said = _evidence(run)
        if evidence == "held_by_run" or (evidence == "unknown" and not run.long_silent):
            logger.info("run %s: heartbeat late but not reaped (%s)", run.pk, said)
            continue
        if _reap(run, said):
            reaped.append(run.pk)
    runs_settle_unknown()
    return reaped


def _resend_overdue_retries(beat: timedelta) -> None:
    overdue = Run.objects.filter(
        outcome=Outcome.RUNNING, ddl_started_at__isnull=True, retry_at__lt=database_now(-beat * 2)
    )
    for run_id, attempt in overdue.values_list("pk", "attempt"):
        later = database_now(settings.DASHBOARD_RUN_REAP_AFTER)
        if Run.objects.filter(pk=run_id, attempt=attempt, retry_at__isnull=False).update(
            retry_at=later
        ):
            logger.warning("run %s: its lock retry is overdue; sent again", run_id)
            try:
                send_task("approvals.continue_run", run_id, attempt + 1)
            except Exception:
                logger.warning("run %s: retry not sent", run_id, exc_info=True)


def _record_from_heads(run: Run, heads: list[str] | None, *, lost: bool, why: str) -> RunRecord:
    request = run.request
    if heads is None:
        return RunRecord(
            outcome=Outcome.UNKNOWN,
            final_heads=None,
            reason="heartbeat_lost" if lost else (run.reason or "heads_unreadable"),
            error=f"{why}; the target's version table could not be read",
        )
    committed = committed_between(
        alembic_script(),
        direction=request.direction,
        from_heads=request.from_heads,
        final_heads=heads,
        planned=request.revisions,
    )
    where = ", ".join(heads) or "base"
    if sorted(heads) == sorted(request.to_heads):
        return RunRecord(
            outcome=Outcome.SUCCEEDED,
            final_heads=heads,
            committed=committed,
            reason="heartbeat_lost" if lost else run.reason,
            error=f"{why}; the version table shows the whole plan applied (at {where})",
        )
    return RunRecord(
        outcome=Outcome.INTERRUPTED if lost else Outcome.FAILED,
        final_heads=heads,
        committed=committed,
        reason="heartbeat_lost" if lost else run.reason,
        error=f"{why}; the target is at {where}"
        + (f" ({', '.join(committed)} committed)" if committed else ", nothing was committed")
        + "; nothing re-runs without a new request",
    )


def _reap(run: Run, said: str) -> bool:
    heads = read_heads_quietly(run.request.environment)
    why = f"the worker {run.worker} stopped sending heartbeats (killed or cut off; {said})"
    record = _record_from_heads(run, heads, lost=True, why=why)
    try:
        transitions.run_finished(run, record)
    except transitions.TransitionRefused:
        return False
    after_run(run, record)
    return True


def runs_settle_unknown(*, environment: Environment | None = None, limit: int = 20) -> int:
    """Settle runs whose outcome is unknown from the heads, once their session is gone."""
    unknown = Run.objects.filter(outcome=Outcome.UNKNOWN).select_related("request__environment")
    if environment is not None:
        unknown = unknown.filter(request__environment=environment)
    settled = 0
    for run in unknown[:limit]:
        evidence, said = _evidence(run)
        if evidence in ("held_by_run", "unknown"):
            continue
        heads = read_heads_quietly(run.request.environment)
        if heads is None:
            continue
        lost = run.reason == "heartbeat_lost"
        record = _record_from_heads(run, heads, lost=lost, why=f"settled from the heads ({said})")
        # Keep what the run said when it ended unknown, then what settled it.
        record = dataclasses.replace(
            record, error="; ".join(filter(None, [run.error, record.error]))
        )
        try:
            transitions.run_corrected(run, record, source="status read")
        except transitions.TransitionRefused:
            continue
        after_run(run, record)
        settled += 1
    return settled


# --- cancel ---------------------------------------------------------------------


def run_cancel_refusal(*, request: MigrationRequest, user: Any) -> str | None:
    """Why ``user`` may not cancel ``request``'s run, or None: tech leads of the environment."""
    if not user.has_perm("dashboard.approve_migration"):
        return "only a tech lead may cancel a running migration"
    group_id = request.environment.approver_group_id
    if group_id is not None and not user.groups.filter(pk=group_id).exists():
        return f"only members of {request.environment.approver_group} cancel runs on {request.environment}"
    return None


def run_cancel(
    *, request: MigrationRequest, actor: Any, http_request: HttpRequest | None = None
) -> str:
    """A tech lead cancels the running run of ``request``; returns what happens next, in words.

    Audited (``dashboard.run.cancel_requested``). The worker's watchdog
    cancels the run's target session within a beat (``pg_cancel_backend``,
    then ``pg_terminate_backend``) and records the outcome from the heads it
    reads; a backstop task on the io queue does the same if the worker does
    not. A run still waiting to retry a busy lock ends at once (no DDL ran).
    """
    refusal = run_cancel_refusal(request=request, user=actor)
    if refusal:
        raise PermissionDenied(refusal)
    run = Run.objects.filter(request=request).select_related("request__environment").first()
    if run is None or run.outcome != Outcome.RUNNING:
        raise RunCancelRefused("there is no running migration to cancel")
    if not transitions.run_cancel_requested(run, actor=actor, http_request=http_request):
        return "cancelling was already asked; the worker stops the run within a few seconds"
    waiting = Run.objects.filter(pk=run.pk, ddl_started_at__isnull=True, retry_at__isnull=False)
    if waiting.exists():
        record = RunRecord(
            outcome=Outcome.CANCELLED,
            final_heads=None,
            reason="cancelled",
            error="cancelled while waiting to retry the target lock; nothing ran",
        )
        try:
            transitions.run_finished(run, record)
        except transitions.TransitionRefused:
            pass
        else:
            after_run(run, record)
            return "cancelled: the run had not started migrating"
    enqueue_on_commit(
        "approvals.cancel_run_backend",
        run.pk,
        0,
        countdown=2 * heartbeat_interval().total_seconds(),
    )
    return "cancelling: the run's session on the target is stopped within a few seconds"


def run_cancel_backend(*, run_id: int, stage: int) -> str:
    """Backstop of a cancel: signal the run's target session if the worker has not stopped it.

    Stage 0 cancels (``pg_cancel_backend``), stage 1 terminates; only a session
    that still carries the run's ``application_name`` is signalled.
    """
    run = (
        Run.objects.filter(pk=run_id, outcome=Outcome.RUNNING, cancel_requested_at__isnull=False)
        .filter(~Q(target_backend_pid=None))
        .select_related("request__environment")
        .first()
    )
    if run is None:
        return "nothing to do"
    try:
        url = run.request.environment.database_url()
    except EnvironmentConfigError:
        return "target unreachable"
    done = signal_backend(
        url,
        pid=run.target_backend_pid,  # type: ignore[arg-type]
        application_name=run_application_name(run),
        terminate=stage > 0,
    )
    if stage == 0:
        send_task(
            "approvals.cancel_run_backend",
            run.pk,
            1,
            countdown=2 * heartbeat_interval().total_seconds(),
        )
    return "signalled" if done else "no such session"
