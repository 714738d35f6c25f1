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

TARGET_PLACEHOLDER = "{target}"
# A target's slug is "<fleet>--<target>" (unique, URL-safe, says which fleet).
TARGET_SLUG_SEPARATOR = "--"


def target_slug(fleet_slug: str, target_name: str) -> str:
    return f"{fleet_slug}{TARGET_SLUG_SEPARATOR}{target_name}"


class EnvironmentConfigError(Exception):
    """The environment's database URL cannot be resolved (message has no secret)."""


class EnvironmentQuerySet(models.QuerySet["Environment"]):
    def pipeline(self) -> EnvironmentQuerySet:
        """Environments people request for: single databases and fleets, not a fleet's targets."""
        return self.filter(fleet__isnull=True)

    def targets_of(self, fleet: Environment | int) -> EnvironmentQuerySet:
        """The fleet's current targets in rollout order (retired ones left out)."""
        return self.filter(fleet=fleet, retired_at__isnull=True).order_by("fleet_position", "pk")

    def readable(self) -> EnvironmentQuerySet:
        """Environments with a database of their own to read (everything but a fleet's row)."""
        return self.filter(is_fleet=False)


class Environment(models.Model):
    """One database (``is_fleet`` false), a fleet of them, or one target of a fleet.

    A fleet (``is_fleet``) has no database of its own: its URL source holds a
    template with ``{target}``, and each target is an ``Environment`` row of
    its own (``fleet`` set, ``target_name``) so that a target's status, lock,
    runs and audit events are exactly those of a single environment.
    """

    class StatusState(models.TextChoices):
        UNKNOWN = "unknown", "Not read yet"
        UP_TO_DATE = "up_to_date", "Up to date"
        PENDING = "pending", "Pending upgrades"
        UNREACHABLE = "unreachable", "Unreachable"
        NO_VERSION_TABLE = "no_version_table", "No version table"
        UNKNOWN_REVISION = "unknown_revision", "Unknown revision"

    slug = models.SlugField(unique=True, max_length=120)
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

    # --- fleets (docs/fleets.md) ------------------------------------------
    is_fleet = models.BooleanField(
        default=False, help_text="A fleet of tenant databases rolled out in waves."
    )
    fleet = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="targets",
        help_text="The fleet this target belongs to (targets come from the fleet's TOML).",
    )
    target_name = models.CharField(max_length=100, blank=True)
    # A target removed from the fleet's list but with history: kept, out of rollouts.
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    fleet_position = models.PositiveIntegerField(default=0, help_text="Rollout order in the fleet.")
    targets_file = models.CharField(max_length=500, blank=True)
    waves = models.JSONField(
        default=list, blank=True, help_text='Cumulative wave sizes, e.g. [1, "10%", "100%"].'
    )
    parallelism = models.PositiveSmallIntegerField(default=4)
    halt_after_failures = models.PositiveSmallIntegerField(default=1)
    soak = models.DurationField(null=True, blank=True, help_text="Wait between waves.")
    gate_sql = models.TextField(
        blank=True, help_text="A read-only query that must return true on every migrated target."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(url_env="") & models.Q(url_file="")),
                name="environment_has_url_source",
                violation_error_message="Set either the URL environment variable or the URL file.",
            ),
            models.UniqueConstraint(
                fields=["fleet", "target_name"],
                condition=models.Q(fleet__isnull=False),
                name="one_target_name_per_fleet",
            ),
        ]
        indexes = [models.Index(fields=["fleet", "fleet_position"])]

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
            url = resolve_database_url(url_env=self.url_env, url_file=self.url_file)
        except SecretError as exc:
            raise EnvironmentConfigError(str(exc)) from None
        if self.is_fleet:
            raise EnvironmentConfigError(
                f"{self.slug} is a fleet: its URL is a template, each target has its own database"
            )
        if self.fleet_id is not None:
            if TARGET_PLACEHOLDER not in url:
                raise EnvironmentConfigError(
                    f"the URL template of fleet {self.fleet_slug} does not contain"
                    f" {TARGET_PLACEHOLDER} ({self.source_label})"
                )
            url = url.replace(TARGET_PLACEHOLDER, self.target_name)
        return url

    @property
    def fleet_slug(self) -> str:
        return self.slug.split(TARGET_SLUG_SEPARATOR, 1)[0]

    @property
    def source_label(self) -> str:
        """Where the URL comes from, for messages (never its value)."""
        return f"variable {self.url_env}" if self.url_env else f"file {self.url_file}"

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
    def is_target(self) -> bool:
        return self.fleet_id is not None

    @property
    def multiple_heads(self) -> bool:
        return len(self.current_heads or []) > 1

    @property
    def dialect(self) -> str:
        return str((self.status_detail or {}).get("dialect", ""))
