"""Migration requests with their pinned plan, the approvers' decisions, and runs.

Status fields are only ever assigned in ``dashboard.approvals.transitions``
(the state machine); everything else reads them. The plan is pinned at
request time (revisions with file hashes, offline SQL and its hash, risk
findings) and never changes afterwards: a run refuses to execute when the
target or the files no longer match it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import ExpressionWrapper, F, Q
from django.db.models.functions import Now


class AppendOnlyError(RuntimeError):
    """Raised on any attempt to change or delete a run's log (its executed SQL)."""


def database_now(offset: timedelta = timedelta(0)) -> ExpressionWrapper:
    """The dashboard database's clock, shifted by ``offset``, for filters and updates.

    Runs are timed on this clock only (never a worker's): see ``Run``.
    """
    return ExpressionWrapper(Now() + offset, output_field=models.DateTimeField())


class MigrationRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved, queued"
        RUNNING = "running", "Running"
        UNKNOWN = "unknown", "Outcome unknown"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        STALE = "stale", "Stale"

    class Direction(models.TextChoices):
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"

    # "unknown" is open: the run ended but its outcome is settled by the next
    # status read, and until then the environment takes no other run.
    OPEN_STATUSES = (Status.PENDING, Status.APPROVED, Status.RUNNING, Status.UNKNOWN)
    ACTIVE_STATUSES = (Status.APPROVED, Status.RUNNING, Status.UNKNOWN)
    ENDED_STATUSES = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.INTERRUPTED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.STALE,
    )

    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.PROTECT, related_name="migration_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="migration_requests"
    )
    direction = models.CharField(max_length=10, choices=Direction.choices)
    target = models.CharField(
        max_length=200, help_text="As entered: heads, label@head, a revision, -1…"
    )
    reason = models.TextField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)

    # The pinned plan.
    dialect = models.CharField(max_length=30)
    from_heads = models.JSONField(default=list)
    to_heads = models.JSONField(default=list)
    steps = models.JSONField(default=list, help_text="[{revision, message, path, sha256, sql}]")
    sql = models.TextField(blank=True)
    sql_sha256 = models.CharField(max_length=64)
    findings = models.JSONField(default=list, help_text="Risk per revision (badges, summary, lint)")
    destructive = models.BooleanField(default=False)
    drift = models.JSONField(null=True, blank=True, help_text="Drift known at request time")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    env_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the project's env.py when pinned"
    )
    pinned_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="The environment's execution settings at request time (URL source, timeouts…)",
    )
    # A fleet's rollout runs one child request per target (dashboard.rollouts):
    # approved through its parent's approvals, pinned to one of the parent's plans.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # Why the request is in its status, in words (stale, reopened, cancelled run…).
    status_note = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Dispatch bookkeeping (not a status): the broker may be down when we enqueue.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    dispatch_error = models.CharField(max_length=300, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "status"]),
            models.Index(fields=["parent", "status"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.direction} {self.environment} to {self.target}"

    @property
    def revisions(self) -> list[str]:
        return [step["revision"] for step in self.steps]

    @property
    def needs_sql_acknowledgement(self) -> bool:
        """Downgrades and destructive plans need the approver to tick "I read the SQL"."""
        return self.direction == self.Direction.DOWNGRADE or self.destructive

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def approval_required(self) -> bool:
        return self.required_approvals > 0


class Approval(models.Model):
    """One approver's decision. Self-approval and double decisions are refused by the database."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(
        MigrationRequest, on_delete=models.PROTECT, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Denormalised from the request so a CHECK constraint can refuse self-approval.
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    sql_acknowledged = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(approver=F("requester")), name="approval_not_by_requester"
            ),
            models.UniqueConstraint(
                fields=["request", "approver"],
                condition=Q(expired_at__isnull=True),
                name="one_live_decision_per_approver",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} on #{self.request_id}"

    @property
    def is_live_approval(self) -> bool:
        """An approval that still counts (not a rejection, not expired)."""
        return self.decision == self.Decision.APPROVE and self.expired_at is None


class Run(models.Model):
    """The execution of one approved request (at most one: nothing re-runs).

    Times are the dashboard database's clock (``Now()``), never a worker's:
    the reaper compares heartbeats written by workers on other machines.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        UNKNOWN = "unknown", "Outcome unknown"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        CANCELLED = "cancelled", "Cancelled"

    request = models.OneToOneField(MigrationRequest, on_delete=models.PROTECT, related_name="run")
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.RUNNING)
    phase = models.CharField(max_length=40, default="claimed")
    attempt = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    transaction_per_migration = models.BooleanField(default=False)

    started_at = models.DateTimeField(db_default=Now())
    lock_acquired_at = models.DateTimeField(null=True, blank=True)
    ddl_started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    # While a busy lock is retried later, the reaper waits for the retry.
    retry_at = models.DateTimeField(null=True, blank=True)
    # The whole run's deadline (the environment's run_timeout), set when it starts.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # The target session that holds the migration lock (PostgreSQL backend pid):
    # the reaper asks the target whether that session still holds it.
    target_backend_pid = models.IntegerField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    total_steps = models.PositiveIntegerField(default=0)
    current_revision = models.CharField(max_length=200, blank=True)
    applied = models.JSONField(default=list)
    committed = models.JSONField(default=list)
    final_heads = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True, help_text="Failure code")
    error = models.TextField(blank=True)
    # The statements sent to the target (RunLogLine kind "sql", append-only):
    # their count and SHA-256, also recorded in the run's audit event.
    executed_statements = models.PositiveIntegerField(default=0)
    executed_sql_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"run of #{self.request_id} ({self.outcome})"

    @property
    def is_running(self) -> bool:
        return self.outcome == self.Outcome.RUNNING

    @property
    def elapsed(self) -> timedelta | None:
        if self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def elapsed_seconds(self) -> float:
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return round(max((end - self.started_at).total_seconds(), 0.0), 1)

    @property
    def progress_percent(self) -> int:
        if not self.total_steps:
            return 100 if self.outcome == self.Outcome.SUCCEEDED else 0
        return int(100 * len(self.applied) / self.total_steps)


class AppendOnlyLogQuerySet(models.QuerySet["RunLogLine"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("run log lines are append-only: update() is refused")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("run log lines are append-only: delete() is refused")


class RunLogLine(models.Model):
    """One line of a run's log; kind "sql" lines are the statements sent to the target.

    Append-only like the audit log (the model refuses changes, and on
    PostgreSQL a trigger does, see migration 0002): the executed SQL is
    evidence, and the run's audit event holds its SHA-256.
    """

    class Kind(models.TextChoices):
        LOG = "log", "Log"
        SQL = "sql", "SQL"
        ERROR = "error", "Error"

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="log_lines")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LOG)
    text = models.TextField()
    created_at = models.DateTimeField(db_default=Now())

    objects = AppendOnlyLogQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:60]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("run log lines are append-only: no second save")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("run log lines are append-only: delete() is refused")


class RunProgress(models.Model):
    """One revision applied during a run (``started_at`` → ``applied_at``, database clock)."""

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="progress")
    index = models.PositiveIntegerField()
    revision = models.CharField(max_length=200)
    started_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="one_progress_row_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.index}. {self.revision}"
