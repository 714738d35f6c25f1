"""Reads of requests and runs that need care (joins, who may decide, counts).

For other apps: ``environment_request_history(environment=...)`` lists an
environment's requests (newest first) for its page; the "request a
migration" link is ``reverse("approvals:create") + "?environment=<slug>&target=<rev>"``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from dashboard.approvals.models import Approval, MigrationRequest, Run, RunLogLine
from dashboard.approvals.services.decisions import approver_refusal
from dashboard.environments.models import Environment

Status = MigrationRequest.Status


def _base() -> QuerySet[MigrationRequest]:
    return MigrationRequest.objects.select_related("environment", "requested_by", "run")


def environment_request_history(
    *, environment: Environment, limit: int = 20
) -> list[MigrationRequest]:
    """The latest requests of ``environment`` with their run, newest first."""
    return list(_base().filter(environment=environment)[:limit])


def requests_of_user(*, user: Any) -> QuerySet[MigrationRequest]:
    return _base().filter(requested_by=user)


def requests_waiting_for(*, user: Any) -> list[MigrationRequest]:
    """Pending requests ``user`` may still decide on (policy of ``approver_refusal``)."""
    if not user.has_perm("dashboard.approve_migration"):
        return []
    pending = _base().filter(status=Status.PENDING).exclude(requested_by=user)
    pending = pending.exclude(approvals__approver=user, approvals__expired_at__isnull=True)
    return [r for r in pending.distinct() if approver_refusal(request=r, user=user) is None]


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
    decided = set(
        request.approvals.filter(expired_at__isnull=True).values_list("approver_id", flat=True)
    )
    return [
        u.username
        for u in users.order_by("username")
        if u.pk not in decided and u.has_perm("dashboard.approve_migration")
    ]


def live_approval_count(*, request: MigrationRequest) -> int:
    return request.approvals.filter(
        decision=Approval.Decision.APPROVE, expired_at__isnull=True
    ).count()


def run_of(*, request: MigrationRequest) -> Run | None:
    return Run.objects.filter(request=request).first()


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
