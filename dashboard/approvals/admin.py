"""Read-only admin for requests and runs; the admin index is the control room (see ``_control_room``)."""

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


def _active_requests(user: Any) -> list[MigrationRequest]:
    """Requests queued, running or with an outcome being settled, newest first (for viewers)."""
    if not user.has_perm("approvals.view_migrationrequest"):
        return []
    rows = MigrationRequest.objects.select_related("environment", "requested_by", "run")
    rows = rows.only(
        "pk", "status", "direction", "target", "created_at", "environment__slug",
        "environment__name", "requested_by__username", "run__started_at",
        "run__current_revision",
    )  # fmt: skip
    # A fleet's request stands for its targets' requests (its rollout page lists them).
    rows = rows.filter(status__in=MigrationRequest.ACTIVE_STATUSES, parent__isnull=True)
    return list(rows.order_by("-pk")[:20])


def _control_room(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
    """The admin index as the control room: environments, what waits for me, what runs.

    The model lists stay below for staff. Every section is filtered by the
    user's permissions (the environment cards need ``view_environment``).
    """
    from dashboard.approvals.selectors import request_counts, requests_waiting_for
    from dashboard.environments.selectors import overview_context

    counts = request_counts()
    context = dict(extra_context or {})
    context.setdefault(
        "subtitle",
        f"{counts['pending']} request(s) waiting for approval, {counts['approved']} queued,"
        f" {counts['running']} running",
    )
    context.update(overview_context(user=request.user))
    context["may_approve"] = request.user.has_perm("dashboard.approve_migration")
    context["waiting"] = requests_waiting_for(user=request.user)
    context["may_view_requests"] = request.user.has_perm("approvals.view_migrationrequest")
    context["active"] = _active_requests(request.user)
    return _original_index(request, context)


admin.site.index = _control_room  # type: ignore[method-assign]
