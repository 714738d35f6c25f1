"""Read-only admin for requests and runs; the admin index shows counts of open requests."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from dashboard.approvals.models import Approval, MigrationRequest, Run


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MigrationRequest)
class MigrationRequestAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "environment",
        "direction",
        "target",
        "status",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "environment", "direction"]
    search_fields = ["target", "reason", "requested_by__username"]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["request", "approver", "decision", "created_at", "expired_at"]
    list_filter = ["decision"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["request", "outcome", "worker", "started_at", "finished_at", "reason"]
    list_filter = ["outcome"]


_original_index = admin.site.index


def _index_with_counts(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
    """The admin index, with open request counts in its subtitle."""
    from dashboard.approvals.selectors import request_counts

    counts = request_counts()
    context = dict(extra_context or {})
    context.setdefault(
        "subtitle",
        f"{counts['pending']} request(s) waiting for approval, {counts['approved']} queued,"
        f" {counts['running']} running",
    )
    return _original_index(request, context)


admin.site.index = _index_with_counts  # type: ignore[method-assign]
