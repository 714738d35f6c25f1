"""Approver decisions: who may decide, approve, reject, and when approvals stop counting.

The policy lives here and is enforced on the server: the approver needs
``dashboard.approve_migration`` and membership of the environment's approver
group (any holder of the permission when the environment names no group),
is never the requester (also a CHECK constraint) and decides once (also a
partial UNIQUE constraint). Concurrent approvals of one request are
serialised by ``SELECT ... FOR UPDATE`` on the request row, so exactly one
of them sees the last required approval and enqueues the run.

An approval counts only while its approver still may approve: active, still
holding the permission and still in the environment's approver group, at
the moment the last approval lands and again when a worker is about to run
the request (:func:`approvals_shortfall`); the required number is the
environment's current policy when it was raised after the request was made.
A request whose environment has moved away from the heads its plan was
pinned at is stale and cannot be approved (:func:`request_staleness`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from dashboard.approvals import transitions
from dashboard.approvals.models import Approval, MigrationRequest
from dashboard.approvals.services.dispatch import run_dispatch_on_commit
from dashboard.environments.models import Environment

__all__ = [
    "ApprovalConflict",
    "DecisionRefused",
    "Shortfall",
    "approvals_shortfall",
    "approver_refusal",
    "migration_request_approve",
    "migration_request_reject",
    "migration_requests_expire_approvals",
    "request_staleness",
]

APPROVE_PERMISSION = "dashboard.approve_migration"
# States whose cached heads say where the environment stands.
_READ_STATES = (
    Environment.StatusState.UP_TO_DATE,
    Environment.StatusState.PENDING,
    Environment.StatusState.NO_VERSION_TABLE,
)


class DecisionRefused(Exception):
    """The decision is allowed in principle but not now (state, missing tick or comment)."""


class ApprovalConflict(DecisionRefused):
    """Another request of the environment is approved or running (HTTP 409)."""


@dataclass(frozen=True)
class Shortfall:
    """Approvals that still count are fewer than the policy requires."""

    valid: int
    required: int
    discounted: tuple[str, ...]


def request_staleness(request: MigrationRequest) -> str | None:
    """Why ``request`` is stale (its environment left the pinned heads), from the cached status.

    None when the environment's last read agrees with the pinned heads, or
    when the status is not known (unreachable, never read): the worker checks
    the live heads again under the lock anyway.
    """
    environment = request.environment
    if environment.status_state not in _READ_STATES:
        return None
    current = sorted(environment.current_heads or [])
    if current == sorted(request.from_heads):
        return None
    return transitions.stale_note(request.from_heads, current)


def approver_refusal(*, request: MigrationRequest, user: Any) -> str | None:
    """Why ``user`` may not decide on ``request`` (a sentence), or None if they may."""
    if not getattr(user, "is_authenticated", False):
        return "log in first"
    if not user.has_perm(APPROVE_PERMISSION):
        return "you do not have the permission to approve migrations"
    if request.requested_by_id == user.pk:
        return "you requested this; another tech lead must approve it"
    group_id = request.environment.approver_group_id
    if group_id is not None and not user.groups.filter(pk=group_id).exists():
        return (
            f"only members of {request.environment.approver_group} decide for {request.environment}"
        )
    if request.approvals.filter(approver=user, expired_at__isnull=True).exists():
        return "you have already decided on this request"
    return None


def _still_may_approve(approval: Approval, environment: Environment) -> bool:
    approver = approval.approver
    if not approver.is_active or not approver.has_perm(APPROVE_PERMISSION):
        return False
    if approval.approver_id == approval.requester_id:
        return False
    group_id = environment.approver_group_id
    return group_id is None or approver.groups.filter(pk=group_id).exists()


def _counting(request: MigrationRequest) -> tuple[int, list[str]]:
    """(approvals that still count, usernames of approvals that no longer do)."""
    live = request.approvals.filter(
        decision=Approval.Decision.APPROVE, expired_at__isnull=True
    ).select_related("approver")
    valid, discounted = 0, []
    for approval in live:
        if _still_may_approve(approval, request.environment):
            valid += 1
        else:
            discounted.append(approval.approver.get_username())
    return valid, discounted


def _required(request: MigrationRequest) -> int:
    """The policy that applies now: the request's, or the environment's if raised since."""
    return max(request.required_approvals, request.environment.required_approvals)


def approvals_shortfall(request: MigrationRequest) -> Shortfall | None:
    """None when the approvals that still count meet the policy that applies now."""
    required = _required(request)
    valid, discounted = _counting(request)
    if valid >= required:
        return None
    return Shortfall(valid=valid, required=required, discounted=tuple(discounted))


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


def _expire_old(request: MigrationRequest, now: datetime) -> int:
    cutoff = now - request.environment.approval_ttl
    old = request.approvals.filter(
        decision=Approval.Decision.APPROVE, expired_at__isnull=True, created_at__lt=cutoff
    )
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


def _refuse_if_environment_busy(request: MigrationRequest) -> None:
    # Serialise final approvals per environment (the create path takes the same
    # row lock): two requests approved at the same instant both see the other.
    Environment.objects.select_for_update().filter(pk=request.environment_id).first()
    busy = (
        MigrationRequest.objects.filter(
            environment_id=request.environment_id, status__in=MigrationRequest.ACTIVE_STATUSES
        )
        .exclude(pk=request.pk)
        .first()
    )
    if busy is not None:
        raise ApprovalConflict(
            f"request #{busy.pk} for {request.environment.slug} is"
            f" {busy.get_status_display().lower()}; approve this one after it has ended"
            " (its plan is checked again then)"
        )


def migration_request_approve(
    *,
    request: MigrationRequest,
    actor: Any,
    sql_acknowledged: bool = False,
    comment: str = "",
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """Add ``actor``'s approval; the last required one approves the request and enqueues it.

    Raises ``PermissionDenied`` (policy), ``ApprovalConflict`` (another request
    of the environment is approved or running; the approval that would be
    final is not recorded) or ``DecisionRefused`` (state, stale plan, missing
    "I read the SQL" tick on downgrades and destructive plans). Expired
    approvals are set aside first. Returns the request as it is now.
    """
    with transaction.atomic():
        locked = _check(request, actor)
        stale = request_staleness(locked)
        if stale:
            raise DecisionRefused(f"Stale: {stale}. Request it again with the current plan.")
        if locked.needs_sql_acknowledgement and not sql_acknowledged:
            raise DecisionRefused(
                "tick that you read the SQL: this plan is a downgrade or destructive"
            )
        _expire_old(locked, timezone.now())
        valid, _ = _counting(locked)
        final = valid + 1 >= _required(locked)
        if final:
            _refuse_if_environment_busy(locked)
        _record(
            locked,
            actor,
            decision=Approval.Decision.APPROVE,
            comment=comment.strip(),
            sql_acknowledged=sql_acknowledged,
        )
        if final and locked.required_approvals < _required(locked):
            MigrationRequest.objects.filter(pk=locked.pk).update(
                required_approvals=_required(locked)
            )
            locked.required_approvals = _required(locked)
        transitions.request_approval_recorded(
            locked,
            actor=actor,
            http_request=http_request,
            approvals=valid + 1,
            final=final,
            comment=comment.strip(),
            sql_acknowledged=sql_acknowledged,
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
    from dashboard.approvals.notifications import notify_requester_on_commit

    with transaction.atomic():
        locked = _check(request, actor)
        _record(locked, actor, decision=Approval.Decision.REJECT, comment=comment.strip())
        transitions.request_rejected(
            locked, actor=actor, http_request=http_request, comment=comment.strip()
        )
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


def migration_requests_expire_stale(*, environment: Environment) -> int:
    """Move pending requests of ``environment`` that its last read made stale to *stale* (audited)."""
    expired = 0
    pending = MigrationRequest.objects.filter(
        environment=environment, status=MigrationRequest.Status.PENDING
    )
    for request in pending.select_related("environment"):
        request.environment = environment
        if request_staleness(request) is None:
            continue
        try:
            transitions.request_stale(request, current_heads=environment.current_heads or [])
        except transitions.TransitionRefused:
            continue  # decided meanwhile
        expired += 1
    return expired
