"""Target environments: where a database lives, how to reach it, who may approve.

The database URL is a secret. The model stores only *where* it comes from (an
environment variable name or a file path) and resolves it at call time in
``database_url()``; it is never stored, rendered, logged or sent to Celery.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models

from dashboard.migrator.secrets import SecretError, mask_url, resolve_database_url


class EnvironmentConfigError(Exception):
    """The environment's database URL cannot be resolved (message has no secret)."""


class Environment(models.Model):
    class StatusState(models.TextChoices):
        UNKNOWN = "unknown", "Not read yet"
        UP_TO_DATE = "up_to_date", "Up to date"
        PENDING = "pending", "Pending upgrades"
        UNREACHABLE = "unreachable", "Unreachable"
        NO_VERSION_TABLE = "no_version_table", "No version table"
        UNKNOWN_REVISION = "unknown_revision", "Unknown revision"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(
        default=1, help_text="Place in the pipeline: dev (1) → staging (2) → production (3)."
    )
    description = models.TextField(blank=True)

    url_env = models.CharField(
        "URL environment variable",
        max_length=200,
        blank=True,
        help_text="Name of the process environment variable that holds the database URL.",
    )
    url_file = models.CharField(
        "URL file",
        max_length=500,
        blank=True,
        help_text="Path of a file holding the database URL (container secrets).",
    )
    version_table = models.CharField(max_length=100, default="alembic_version")
    version_table_schema = models.CharField(max_length=100, blank=True)

    lock_timeout = models.DurationField(default=timedelta(seconds=2))
    statement_timeout = models.DurationField(default=timedelta(minutes=5))
    lock_wait = models.DurationField(
        default=timedelta(seconds=30),
        help_text="How long a worker waits for the per-target migration lock.",
    )
    transaction_per_migration = models.BooleanField(
        default=False,
        help_text="Commit after each revision instead of running the whole plan in one transaction.",
    )
    run_timeout = models.DurationField(
        null=True,
        blank=True,
        help_text=(
            "Deadline of a whole run, after which the worker cancels it on the target. "
            "Empty: statement timeout × revisions + lock wait."
        ),
    )
    idle_in_transaction_timeout = models.DurationField(
        default=timedelta(minutes=1),
        help_text=(
            "PostgreSQL ends the run's session when it sits idle inside its transaction this "
            "long (a worker cut off mid-run), releasing its locks on the target."
        ),
    )

    required_approvals = models.PositiveSmallIntegerField(
        default=1, help_text="0 lets the requester run it directly (e.g. dev)."
    )
    approver_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approval_ttl = models.DurationField(default=timedelta(hours=24))

    status_state = models.CharField(
        max_length=32, choices=StatusState.choices, default=StatusState.UNKNOWN
    )
    current_heads = models.JSONField(default=list, blank=True)
    pending = models.JSONField(default=list, blank=True)
    status_error = models.TextField(blank=True)
    drift = models.JSONField(null=True, blank=True)
    status_refreshed_at = models.DateTimeField(null=True, blank=True)
    # Facts read with the status that pages show without loading the history
    # or resolving the secret: {"dialect", "head_messages", "unknown_revisions",
    # "masked_url"}. ``drift`` holds {"state", "operations", "python", ...}.
    status_detail = models.JSONField(default=dict, blank=True)
    # The periodic refresh queues one read per environment; while it waits in
    # the queue no second one is queued (the queue never grows with backlog).
    status_refresh_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Denormalised for the overview (one query whatever the number of
    # environments): the drift summary and the environment's latest run.
    drift_state = models.CharField(max_length=16, blank=True, editable=False)
    drift_count = models.PositiveIntegerField(default=0, editable=False)
    last_run_outcome = models.CharField(max_length=12, blank=True, editable=False)
    last_run_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_request_id = models.BigIntegerField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(url_env="") & models.Q(url_file="")),
                name="environment_has_url_source",
                violation_error_message="Set either the URL environment variable or the URL file.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if bool(self.url_env) == bool(self.url_file):
            raise ValidationError("Set exactly one of 'URL environment variable' and 'URL file'.")

    def database_url(self) -> str:
        """Resolve the secret URL now; never store, log or send the result.

        Raises ``EnvironmentConfigError`` (no secret in its message).
        """
        try:
            return resolve_database_url(url_env=self.url_env, url_file=self.url_file)
        except SecretError as exc:
            raise EnvironmentConfigError(str(exc)) from None

    def masked_url(self) -> str:
        """The URL without its password, or a note saying why there is none."""
        try:
            return mask_url(self.database_url())
        except EnvironmentConfigError as exc:
            return f"({exc})"

    def execution_settings(self) -> dict[str, object]:
        """The settings a run depends on, as pinned on a request (JSON; no secret).

        Where the URL comes from (the variable's name or the file's path, never
        its value), the transaction mode, the version table and every timeout:
        a run refuses when they differ from what was approved.
        """

        def ms(value: timedelta | None) -> int | None:
            return None if value is None else int(value.total_seconds() * 1000)

        return {
            "url_env": self.url_env,
            "url_file": self.url_file,
            "version_table": self.version_table,
            "version_table_schema": self.version_table_schema,
            "transaction_per_migration": self.transaction_per_migration,
            "lock_timeout_ms": ms(self.lock_timeout),
            "statement_timeout_ms": ms(self.statement_timeout),
            "lock_wait_ms": ms(self.lock_wait),
            "run_timeout_ms": ms(self.run_timeout),
            "idle_in_transaction_timeout_ms": ms(self.idle_in_transaction_timeout),
        }

    def effective_run_timeout(self, revisions: int) -> timedelta | None:
        """``run_timeout``, or the lock wait plus the statement timeout per revision.

        None (no deadline) when neither is set: a statement timeout of 0 means none.
        """
        if self.run_timeout:
            return self.run_timeout
        if not self.statement_timeout:
            return None
        return self.lock_wait + self.statement_timeout * max(revisions, 1)

    @property
    def multiple_heads(self) -> bool:
        return len(self.current_heads or []) > 1

    @property
    def dialect(self) -> str:
        return str((self.status_detail or {}).get("dialect", ""))
