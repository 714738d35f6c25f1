"""Reads of requests and runs that need care (joins, who may decide, counts).

For other apps: ``environment_request_history(environment=...)`` lists an
environment's requests (newest first) for its page; the "request a
migration" link is ``reverse("approvals:create") + "?environment=<slug>&target=<rev>"``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Func, IntegerField, Q, QuerySet

from dashboard.approvals.models import Approval, MigrationRequest, Run, RunLogLine
from dashboard.environments.models import Environment

Status = MigrationRequest.Status


class _JSONLength(Func):
    """Length of a JSON array column (PostgreSQL ``jsonb``, SQLite ``json``)."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="json_array_length", **extra)


# The pinned SQL and per-step SQL can be large: lists never need them.
_HEAVY_FIELDS = ("sql", "steps", "findings", "drift")


def _base() -> QuerySet[MigrationRequest]:
    return MigrationRequest.objects.select_related("environment", "requested_by", "run")


def _listing() -> QuerySet[MigrationRequest]:
    """Rows for lists: no pinned plan, but the number of its steps."""
    return _base().defer(*_HEAVY_FIELDS).annotate(step_count=_JSONLength("steps"))


def environment_request_history(
    *, environment: Environment, limit: int = 20
) -> list[MigrationRequest]:
    """The latest requests of ``environment`` with their run, newest first."""
    return list(_listing().filter(environment=environment)[:limit])


def requests_of_user(*, user: Any) -> QuerySet[MigrationRequest]:
    return _listing().filter(requested_by=user)


def requests_waiting_for(*, user: Any) -> list[MigrationRequest]:
    """Pending requests ``user`` may still decide on (policy of ``approver_refusal``)."""
    if not user.has_perm("dashboard.approve_migration"):
        return []
    # The same rules as ``approver_refusal``, in one query instead of two per request.
    pending = _listing().filter(status=Status.PENDING).exclude(requested_by=user)
    pending = pending.exclude(approvals__approver=user, approvals__expired_at__isnull=True)
    pending = pending.filter(
        Q(environment__approver_group__isnull=True)
        | Q(environment__approver_group__in=user.groups.all())
    )
    return list(pending.distinct())


def request_detail(*, pk: int) -> MigrationRequest:
    return _base().select_related("environment__approver_group").get(pk=pk)


def request_decisions(*, request: MigrationRequest) -> list[Approval]:
    return list(request.approvals.select_related("approver").order_by("created_at", "id"))


def request_possible_approvers(*, request: MigrationRequest) -> list[str]:
    """Usernames who could still approve (for "who may still approve")."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).exclude(pk=request.requested_by_id)
    if request.environment.approver_group_id:
        users = users.filter(groups=request.environment.approver_group_id)
    decided = request.approvals.filter(expired_at__isnull=True).values("approver_id")
    can_approve = (
        Q(is_superuser=True)
        | Q(
            groups__permissions__codename="approve_migration",
            groups__permissions__content_type__app_label="dashboard",
        )
        | Q(
            user_permissions__codename="approve_migration",
            user_permissions__content_type__app_label="dashboard",
        )
    )
    return list(
        users.exclude(pk__in=decided)
        .filter(can_approve)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )


def run_log_tail(*, run: Run, limit: int = 200) -> list[RunLogLine]:
    lines = list(run.log_lines.order_by("-id")[:limit])
    lines.reverse()
    return lines


def request_counts() -> dict[str, int]:
    """Counts for the admin index: waiting, queued, running."""
    counts = MigrationRequest.objects.aggregate(
        pending=Count("pk", filter=Q(status=Status.PENDING)),
        approved=Count("pk", filter=Q(status=Status.APPROVED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
    )
    return {key: value or 0 for key, value in counts.items()}
