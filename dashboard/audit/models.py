"""The audit trail's tables: the append-only event log and chain verifications.

``AuditEvent`` rows are written only by ``dashboard.audit.services.audit_record``
and never change afterwards. Append-only is enforced three times: here (the
model and its queryset refuse updates and deletes), in the admin (no add,
change or delete), and on PostgreSQL by a trigger installed by migration 0002.

Environments, migration requests and users are stored by id (and slug or
username as they were then), never as foreign keys: the log must outlive the
rows it talks about, and a cascade or ``SET NULL`` would be an update.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, NoReturn

from django.db import models

from dashboard.audit.chain import format_timestamp


class AppendOnlyError(RuntimeError):
    """Raised on any attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only: update() is refused")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("audit events are append-only: delete() is refused")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only: bulk_update() is refused")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are written one by one through audit_record()")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only: update_or_create() is refused")


class AuditEvent(models.Model):
    """One link of the hash chain. ``seq`` is the primary key and the chain order."""

    class ActorType(models.TextChoices):
        USER = "user", "user"
        ANONYMOUS = "anonymous", "anonymous (web request without a user)"
        SYSTEM = "system", "system (worker or command)"

    seq = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField()
    action = models.CharField(max_length=100)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_host = models.CharField(max_length=255, blank=True)
    actor_pid = models.IntegerField(null=True, blank=True)
    environment_id = models.BigIntegerField(null=True, blank=True)
    environment_slug = models.CharField(max_length=100, blank=True)
    request_id = models.BigIntegerField(null=True, blank=True)
    # Space-separated revision ids: portable (SQLite has no arrays) and lets
    # the revision filter match a prefix of an id typed by a person.
    from_revisions = models.TextField(blank=True)
    to_revisions = models.TextField(blank=True)
    sql_sha256 = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["environment_slug", "-seq"], name="audit_env_seq"),
            models.Index(fields=["action", "-seq"], name="audit_action_seq"),
            models.Index(
                fields=["environment_slug", "action", "-seq"], name="audit_env_action_seq"
            ),
            models.Index(fields=["actor_username", "-seq"], name="audit_actor_seq"),
            models.Index(fields=["request_id", "-seq"], name="audit_request_seq"),
            models.Index(fields=["created_at"], name="audit_created_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"audit event #{self.seq} is append-only: no second save")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"audit event #{self.seq} is append-only: delete() is refused")

    @property
    def created_at_utc(self) -> str:
        """``YYYY-MM-DD HH:MM:SS`` in UTC, whatever ``TIME_ZONE`` says."""
        return self.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def from_revision_list(self) -> list[str]:
        return self.from_revisions.split()

    @property
    def to_revision_list(self) -> list[str]:
        return self.to_revisions.split()

    def chain_fields(self) -> dict[str, Any]:
        """The canonical values the hash covers (see ``dashboard.audit.chain``)."""
        return {
            "seq": self.seq,
            "created_at": format_timestamp(self.created_at),
            "action": self.action,
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "actor_username": self.actor_username,
            "actor_host": self.actor_host,
            "actor_pid": self.actor_pid,
            "environment_id": self.environment_id,
            "environment_slug": self.environment_slug,
            "request_id": self.request_id,
            "from_revisions": self.from_revision_list,
            "to_revisions": self.to_revision_list,
            "sql_sha256": self.sql_sha256,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }


class ChainVerification(models.Model):
    """The result of one walk over the chain (not part of the chain itself).

    A ``full`` walk starts at event #1. An ``incremental`` one starts at the
    head of the previous successful verification (``from_seq``): it re-hashes
    that checkpoint event, checks that its hash is still the ``head_hash``
    recorded then, and walks only the events after it. ``head_seq`` /
    ``head_hash`` are the last event this walk found intact: the next
    incremental run's checkpoint.
    """

    class Mode(models.TextChoices):
        FULL = "full", "full walk from #1"
        INCREMENTAL = "incremental", "incremental from the last checkpoint"

    checked_at = models.DateTimeField()
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    from_seq = models.BigIntegerField(null=True, blank=True)
    ok = models.BooleanField()
    events_checked = models.BigIntegerField()
    head_seq = models.BigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True)
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    duration_ms = models.IntegerField(default=0)

    class Meta:
        ordering = ["-checked_at"]
        get_latest_by = "checked_at"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'BROKEN'} at {self.checked_at:%Y-%m-%d %H:%M}"
