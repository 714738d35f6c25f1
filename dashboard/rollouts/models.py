"""A fleet request's rollout: its pinned plans, its targets in waves, and where each stands.

State lives here, in the dashboard database, never only in the broker: the
scheduler (``services/scheduler.py``) reads and moves it under a row lock,
any worker on any machine may do so, and a lost message only delays the
next step until beat's tick.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class Rollout(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        RUNNING = "running", "Running"
        SOAKING = "soaking", "Soaking"
        HALTED = "halted", "Halted"
        SUCCEEDED = "succeeded", "Succeeded"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.RUNNING, State.SOAKING)
    ENDED_STATES = (State.SUCCEEDED, State.CANCELLED)

    request = models.OneToOneField(
        "approvals.MigrationRequest", on_delete=models.PROTECT, related_name="rollout"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # The policy as pinned at request time (the fleet's TOML may change later).
    waves = models.JSONField(default=list, help_text="Cumulative end index of each wave")
    wave_spec = models.JSONField(default=list, help_text="The waves as declared")
    parallelism = models.PositiveSmallIntegerField(default=4)
    halt_after_failures = models.PositiveSmallIntegerField(default=1)
    soak = models.DurationField(null=True, blank=True)
    gate_sql = models.TextField(blank=True)

    current_wave = models.PositiveSmallIntegerField(default=1)
    soak_until = models.DateTimeField(null=True, blank=True)
    # The last wave whose soak ended / whose gates were read (resume lowers them).
    soaked_wave = models.PositiveSmallIntegerField(default=0)
    gated_wave = models.PositiveSmallIntegerField(default=0)
    halted_reason = models.TextField(blank=True)
    # A rollback rolls back the targets that migrated in this rollout.
    rolls_back = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
    )

    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"rollout of #{self.request_id} ({self.state})"

    @property
    def wave_count(self) -> int:
        return len(self.waves)

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class RolloutPlan(models.Model):
    """One pinned plan: the steps from one set of starting heads, as ``MigrationRequest`` pins them."""

    rollout = models.ForeignKey(Rollout, on_delete=models.PROTECT, related_name="plans")
    index = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=200)
    from_heads = models.JSONField(default=list)
    to_heads = models.JSONField(default=list)
    steps = models.JSONField(default=list)
    sql = models.TextField(blank=True)
    sql_sha256 = models.CharField(max_length=64)
    findings = models.JSONField(default=list)
    destructive = models.BooleanField(default=False)
    target_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="one_plan_per_index")
        ]

    def __str__(self) -> str:
        return f"plan {self.index} of rollout {self.rollout_id}"

    @property
    def revisions(self) -> list[str]:
        return [step["revision"] for step in self.steps]


class RolloutTarget(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        UNKNOWN = "unknown", "Outcome unknown"
        SKIPPED = "skipped", "Skipped"

    IN_FLIGHT = (State.QUEUED, State.RUNNING, State.UNKNOWN)
    FAILURES = (State.FAILED, State.INTERRUPTED)
    DONE = (State.SUCCEEDED, State.FAILED, State.INTERRUPTED, State.SKIPPED)

    rollout = models.ForeignKey(Rollout, on_delete=models.PROTECT, related_name="targets")
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.PROTECT, related_name="rollout_targets"
    )
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    wave = models.PositiveSmallIntegerField()
    plan = models.ForeignKey(
        RolloutPlan, null=True, blank=True, on_delete=models.PROTECT, related_name="targets"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # The child request of the current attempt (earlier attempts stay as history).
    request = models.ForeignKey(
        "approvals.MigrationRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    from_heads = models.JSONField(default=list)
    to_heads = models.JSONField(default=list)
    # What the target's heads were when its run ended (a rollback returns it to from_heads).
    final_heads = models.JSONField(null=True, blank=True)
    applied = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    gate_passed = models.BooleanField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["rollout", "environment"], name="target_once_per_rollout"
            )
        ]
        indexes = [models.Index(fields=["rollout", "wave", "state"])]

    def __str__(self) -> str:
        return f"{self.name} (wave {self.wave}, {self.state})"

    @property
    def is_failure(self) -> bool:
        return self.state in self.FAILURES or self.gate_passed is False
