"""Approver decisions: who may decide, approve, reject, and approval expiry.

The policy lives here and is enforced on the server: the approver needs
``dashboard.approve_migration`` and membership of the environment's approver
group (any holder of the permission when the environment names no group),
is never the requester (also a CHECK constraint) and decides once (also a
partial UNIQUE constraint). Concurrent approvals of one request are
serialised by ``SELECT ... FOR UPDATE`` on the request row, so exactly one
of them sees the last required approval and enqueues the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from dashboard.approvals import transitions
from dashboard.approvals.models import Approval, MigrationRequest
from dashboard.approvals.services.dispatch import run_dispatch_on_commit

__all__ = [
    "DecisionRefused",
    "approver_refusal",
    "migration_request_approve",
    "migration_request_reject",
    "migration_requests_expire_approvals",
]


class DecisionRefused(Exception):
    """The decision is allowed in principle but not now (state, missing tick or comment)."""


def approver_refusal(*, request: MigrationRequest, user: Any) -> str | None:
    """Why ``user`` may not decide on ``request`` (a sentence), or None if they may."""
    if not getattr(user, "is_authenticated", False):
        return "log in first"
    if not user.has_perm("dashboard.approve_migration"):
        return "you do not have the permission to approve migrations"
    if request.requested_by_id == user.pk:
        return "you cannot approve or reject your own request"
    group_id = request.environment.approver_group_id
    if group_id is not None and not user.groups.filter(pk=group_id).exists():
        return (
            f"only members of {request.environment.approver_group} decide for {request.environment}"
        )
    if request.approvals.filter(approver=user, expired_at__isnull=True).exists():
        return "you have already decided on this request"
    return None


def _check(request: MigrationRequest, actor: Any) -> MigrationRequest:
    refusal = approver_refusal(request=request, user=actor)
    if refusal:
        raise PermissionDenied(refusal)
    locked = (
        MigrationRequest.objects.select_for_update()
        .select_related("environment")
        .get(pk=request.pk)
    )
    if locked.status != MigrationRequest.Status.PENDING:
        raise DecisionRefused(f"request #{locked.pk} is {locked.get_status_display().lower()}")
    return locked


def _live_approvals(request: MigrationRequest) -> Any:
    return request.approvals.filter(decision=Approval.Decision.APPROVE, expired_at__isnull=True)


def _expire_old(request: MigrationRequest, now: datetime) -> int:
    cutoff = now - request.environment.approval_ttl
    old = _live_approvals(request).filter(created_at__lt=cutoff)
    return transitions.request_approvals_expired(request, approvals=old) if old.exists() else 0


def _record(request: MigrationRequest, actor: Any, **fields: Any) -> Approval:
    try:
        with transaction.atomic():
            return Approval.objects.create(
                request=request, approver=actor, requester_id=request.requested_by_id, **fields
            )
    except IntegrityError:
        # The constraints: self-approval or a second live decision.
        raise PermissionDenied("you cannot decide on this request (again)") from None


def migration_request_approve(
    *,
    request: MigrationRequest,
    actor: Any,
    sql_acknowledged: bool = False,
    comment: str = "",
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """Add ``actor``'s approval; the last required one approves the request and enqueues it.

    Raises ``PermissionDenied`` (policy) or ``DecisionRefused`` (state, missing
    "I read the SQL" tick on downgrades and destructive plans). Expired
    approvals are set aside first. Returns the request as it is now.
    """
    with transaction.atomic():
        locked = _check(request, actor)
        if locked.needs_sql_acknowledgement and not sql_acknowledged:
            raise DecisionRefused(
                "tick that you read the SQL: this plan is a downgrade or destructive"
            )
        _expire_old(locked, timezone.now())
        _record(
            locked,
            actor,
            decision=Approval.Decision.APPROVE,
            comment=comment.strip(),
            sql_acknowledged=sql_acknowledged,
        )
        count = _live_approvals(locked).count()
        final = count >= locked.required_approvals
        transitions.request_approval_recorded(
            locked, actor=actor, http_request=http_request, approvals=count, final=final
        )
        if final:
            run_dispatch_on_commit(request_id=locked.pk)
    return locked


def migration_request_reject(
    *,
    request: MigrationRequest,
    actor: Any,
    comment: str,
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """Reject with a (required) comment; ends the request. Same policy as approving."""
    if not comment.strip():
        raise DecisionRefused("a rejection needs a comment")
    with transaction.atomic():
        locked = _check(request, actor)
        _record(locked, actor, decision=Approval.Decision.REJECT, comment=comment.strip())
        transitions.request_rejected(
            locked, actor=actor, http_request=http_request, comment=comment.strip()
        )
        from dashboard.approvals.notifications import notify_requester_on_commit

        notify_requester_on_commit(request_id=locked.pk)
    return locked


def migration_requests_expire_approvals(*, now: datetime | None = None) -> int:
    """Expire approvals older than their environment's TTL on every pending request."""
    now = now or timezone.now()
    expired = 0
    pending = MigrationRequest.objects.filter(status=MigrationRequest.Status.PENDING)
    for request in pending.select_related("environment"):
        with transaction.atomic():
            locked = MigrationRequest.objects.select_for_update().select_related("environment")
            locked_request = locked.get(pk=request.pk)
            if locked_request.status == MigrationRequest.Status.PENDING:
                expired += _expire_old(locked_request, now)
    return expired
