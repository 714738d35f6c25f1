"""Admin list of audit events: read-only for everybody, superusers included."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from dashboard.audit.models import AuditEvent, ChainVerification


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "created_at",
        "action",
        "actor_username",
        "environment_slug",
        "request_id",
    )
    # No list_filter on action: its choices would need a DISTINCT over every event.
    list_filter = ("actor_type",)
    search_fields = ("=actor_username", "=environment_slug", "=action")
    show_full_result_count = False
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]


@admin.register(ChainVerification)
class ChainVerificationAdmin(ReadOnlyAdmin):
    list_display = (
        "checked_at",
        "ok",
        "mode",
        "from_seq",
        "events_checked",
        "head_seq",
        "first_bad_seq",
        "message",
    )
