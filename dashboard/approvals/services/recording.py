"""Recording a run: its log and progress rows, its outcome, and what follows the outcome.

Shared by the worker (``execution``) and the reaper (``recovery``). The
outcome is written by the state machine (``transitions``); this module
retries a dashboard database that blinks, turns a late worker's report
into a correction of what the reaper recorded, and after the outcome
updates the environment's cached status from the heads read and queues
mail and a full status refresh on the io queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

from django.db import DatabaseError
from django.db import connection as django_connection

from dashboard.approvals import transitions
from dashboard.approvals.models import Run, RunLogLine, RunProgress, database_now
from dashboard.approvals.notifications import notify_requester_on_commit
from dashboard.approvals.planning import version_table_schema
from dashboard.approvals.services.dispatch import enqueue_on_commit
from dashboard.approvals.services.watchdog import RunWatchdog
from dashboard.environments.dispatch import environment_refresh_claim
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.environments.services import environment_status_from_heads
from dashboard.migrator.runner import ProgressEvent
from dashboard.migrator.secrets import scrub_secret
from dashboard.migrator.status import NoVersionTable, TargetUnreachable, read_current_heads

__all__ = ["RunRecorder", "after_run", "read_heads_quietly", "record_outcome"]

logger = logging.getLogger(__name__)
Outcome = Run.Outcome
RunRecord = transitions.RunRecord


def read_heads_quietly(environment: Environment, url: str | None = None) -> list[str] | None:
    """The target's heads with short timeouts, ``[]`` without a version table, None if unreadable."""
    try:
        heads = read_current_heads(
            url or environment.database_url(),
            version_table=environment.version_table,
            version_table_schema=version_table_schema(environment),
        )
    except NoVersionTable:
        return []
    except (TargetUnreachable, EnvironmentConfigError):
        return None
    return sorted(heads)


OUTCOME_RECORD_ATTEMPTS = 8


def record_outcome(
    run: Run, record: RunRecord, recorder: RunRecorder, watchdog: RunWatchdog
) -> bool:
    """Write the outcome; True once written (as the end of the run or as a correction).

    The dashboard database may blink right now: retry for about half a minute
    (the watchdog keeps the heartbeat going). If it never comes back the run
    stays running, its heartbeat stops, and the reaper records what the
    target's version table says -- never a guessed "failed".
    """
    for attempt in range(OUTCOME_RECORD_ATTEMPTS):
        try:
            recorder.flush(watchdog)
            try:
                transitions.run_finished(run, record)
            except transitions.TransitionRefused:
                return _correct(run, record, recorder)
            return True
        except DatabaseError:
            logger.warning("run %s: outcome not recorded yet", run.pk, exc_info=True)
            django_connection.close()
            time.sleep(min(0.5 * 2**attempt, 5.0))
    logger.critical(
        "run %s ended as %s but the dashboard database cannot record it; the reaper will"
        " record the target's state",
        run.pk,
        record.outcome,
    )
    return False


def _correct(run: Run, record: RunRecord, recorder: RunRecorder) -> bool:
    """The run was closed meanwhile (reaped): replace the guess with what the worker saw.

    Not when another run has started on the environment since: the heads the
    worker read (on a new connection, after its own broke) may be that run's
    work, and the reaper read them when only this run could have moved them.
    """
    current = Run.objects.filter(pk=run.pk).values_list("outcome", flat=True).first()
    if current not in transitions.CORRECTABLE_OUTCOMES or record.outcome == Outcome.UNKNOWN:
        logger.warning("run %s ended as %s but is already %s", run.pk, record.outcome, current)
        return False
    later = (
        Run.objects.filter(
            request__environment_id=run.request.environment_id, started_at__gt=run.started_at
        )
        .exclude(pk=run.pk)
        .values_list("pk", flat=True)
        .first()
    )
    if later is not None:
        heads = ", ".join(record.final_heads or []) or "base"
        recorder.line(
            RunLogLine.Kind.ERROR,
            f"the worker reported {record.outcome} (at {heads}) after this run was recorded"
            f" {current}; not taken: run {later} has run on this environment since, so those"
            " heads may be its work",
        )
        recorder.flush()
        logger.warning(
            "run %s: late report (%s) not taken, run %s ran since", run.pk, record.outcome, later
        )
        return False
    transitions.run_corrected(run, record, source="worker")
    logger.warning("run %s was recorded %s; corrected to %s", run.pk, current, record.outcome)
    return True


def after_run(run: Run, record: RunRecord) -> None:
    """Outside the lock: pages agree with the run at once; mail and drift on the io queue."""
    environment = run.request.environment
    if record.final_heads is not None:
        try:
            environment_status_from_heads(environment=environment, heads=record.final_heads)
        except Exception:
            logger.warning("status of %s not updated after run %s", environment.slug, run.pk)
    # Outside any transaction, on_commit callbacks run at once.
    in_rollout = run.request.parent_id is not None
    if in_rollout:
        # One target of a rollout: step the rollout (mail goes out once, for the rollout).
        enqueue_on_commit("rollouts.start", run.request.parent_id)
    else:
        notify_requester_on_commit(request_id=run.request_id)
    # The full read (drift: a schema reflection) of a rollout's target waits for
    # the rollout to halt or end, so it never queues in front of the rollout's
    # own steps; an unknown outcome is read at once (the read settles it).
    if in_rollout and record.final_heads is not None:
        return
    if environment_refresh_claim(environment_id=environment.pk):  # one queued read at most
        enqueue_on_commit("environments.refresh", environment.pk)


class RunRecorder:
    """Buffers log lines and writes progress rows for one run (worker thread only).

    Log and error lines are scrubbed of the target's URL before they are
    stored; SQL lines are stored as sent (their SHA-256 is the executed-SQL hash).
    """

    FLUSH_EVERY = 0.5

    def __init__(self, run: Run) -> None:
        self.run = run
        self.url = ""
        self.buffer: list[RunLogLine] = []
        self.applied: list[str] = list(run.applied)
        self.last_flush = time.monotonic()

    def begin(self) -> None:
        self.last_flush = time.monotonic()

    def line(self, kind: str, text: str) -> None:
        if kind != RunLogLine.Kind.SQL and self.url:
            text = scrub_secret(text, self.url)
        self.buffer.append(RunLogLine(run_id=self.run.pk, kind=kind, text=text))
        if time.monotonic() - self.last_flush > self.FLUSH_EVERY:
            self.flush()

    def flush(self, watchdog: RunWatchdog | None = None) -> None:
        if watchdog is not None:
            while watchdog.lines:
                self.buffer.append(
                    RunLogLine(
                        run_id=self.run.pk, kind=RunLogLine.Kind.LOG, text=watchdog.lines.pop(0)
                    )
                )
        if self.buffer:
            with self._tolerant("log lines"):
                RunLogLine.objects.bulk_create(self.buffer)
                self.buffer = []
        self.last_flush = time.monotonic()

    def progress(self, event: ProgressEvent) -> None:
        self.applied.append(event.revision)
        started = database_now(-timedelta(seconds=event.seconds))
        with self._tolerant("progress"):
            RunProgress.objects.create(
                run_id=self.run.pk, index=event.index, revision=event.revision, started_at=started
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
