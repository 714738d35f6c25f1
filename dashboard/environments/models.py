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

    @property
    def multiple_heads(self) -> bool:
        return len(self.current_heads or []) > 1

    @property
    def dialect(self) -> str:
        return str((self.status_detail or {}).get("dialect", ""))
