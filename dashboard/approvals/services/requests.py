"""Creating and cancelling migration requests."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from dashboard.approvals import transitions
from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.notifications import notify_approvers_on_commit
from dashboard.approvals.planning import PinnedPlan, PlanRefused, TargetUnavailable, plan_pin
from dashboard.approvals.services.dispatch import run_dispatch_on_commit
from dashboard.environments.models import Environment
from dashboard.environments.services import environment_status_from_heads

__all__ = [
    "EnvironmentUnavailable",
    "PlanRefused",
    "RequestConflict",
    "RequestRefused",
    "migration_request_cancel",
    "migration_request_create",
    "migration_request_preview",
    "refuse_if_busy",
]


class RequestRefused(Exception):
    """The request cannot be created or changed; the message is for people."""


class RequestConflict(RequestRefused):
    """Another request of the environment is approved or running (HTTP 409)."""


class EnvironmentUnavailable(RequestRefused):
    """The environment's database cannot be reached to pin the plan (HTTP 503)."""


def migration_request_preview(
    *, environment: Environment, direction: str, target: str
) -> PinnedPlan:
    """The plan a request would pin right now; raises ``PlanRefused``.

    Writes only the environment's cached status (the heads just read live).
    """
    return _pin_live(environment=environment, direction=direction, target=target)


def _pin_live(*, environment: Environment, direction: str, target: str) -> PinnedPlan:
    """``plan_pin``, then the cached status takes the heads it read live.

    Otherwise a cache older than the live read would make the new request look
    stale at once (staleness is judged from the cached status).
    """
    plan = plan_pin(environment=environment, direction=direction, target=target)
    if sorted(environment.current_heads or []) != sorted(plan.from_heads):
        environment_status_from_heads(environment=environment, heads=plan.from_heads)
    return plan


def migration_request_create(
    *,
    environment: Environment,
    actor: Any,
    direction: str,
    target: str,
    reason: str,
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """Pin the plan and create a pending request (audited), or refuse and create nothing.

    Refuses (``RequestRefused``) when the reason is empty, another request of
    the environment is approved or running, the target does not exist, the
    plan is empty or the environment is unreachable. With
    ``required_approvals == 0`` the request is approved at once (recorded as
    "no approval required", never as approved by the requester) and
    dispatched after commit.
    """
    if environment.is_fleet:
        from dashboard.rollouts.services.pinning import fleet_request_create

        return fleet_request_create(
            environment=environment,
            actor=actor,
            direction=direction,
            target=target,
            reason=reason,
            http_request=http_request,
        )
    if environment.is_target:
        raise RequestRefused(
            f"{environment.slug} is a target of a fleet: request the fleet"
            f" {environment.fleet_slug} (a rollout in waves) instead"
        )
    if not reason.strip():
        raise RequestRefused("a reason is required")
    refuse_if_busy(environment)
    try:
        plan = _pin_live(environment=environment, direction=direction, target=target.strip())
    except TargetUnavailable as exc:
        raise EnvironmentUnavailable(str(exc)) from None
    except PlanRefused as exc:
        raise RequestRefused(str(exc)) from None
    with transaction.atomic():
        Environment.objects.select_for_update().filter(pk=environment.pk).first()
        refuse_if_busy(environment)
        request = MigrationRequest.objects.create(
            environment=environment,
            requested_by=actor,
            direction=direction,
            target=plan.target,
            reason=reason.strip(),
            dialect=plan.dialect,
            from_heads=plan.from_heads,
            to_heads=plan.to_heads,
            steps=plan.steps,
            sql=plan.sql,
            sql_sha256=plan.sql_sha256,
            findings=plan.findings,
            destructive=plan.destructive,
            drift=environment.drift,
            required_approvals=environment.required_approvals,
            env_sha256=plan.env_sha256,
            pinned_settings=plan.settings,
        )
        transitions.request_created(request, actor=actor, http_request=http_request)
        if environment.required_approvals == 0:
            transitions.request_approval_not_required(
                request, actor=actor, http_request=http_request
            )
            run_dispatch_on_commit(request_id=request.pk)
        else:
            notify_approvers_on_commit(request_id=request.pk)
    return request


def refuse_if_busy(environment: Environment) -> None:
    """Refuse (``RequestConflict``) while another request of the environment is active."""
    busy = MigrationRequest.objects.filter(
        environment=environment, status__in=MigrationRequest.ACTIVE_STATUSES
    ).first()
    if busy is not None:
        raise RequestConflict(
            f"request #{busy.pk} for {environment.slug} is {busy.get_status_display().lower()};"
            " wait until it ends"
        )


def migration_request_cancel(
    *, request: MigrationRequest, actor: Any, http_request: HttpRequest | None = None
) -> None:
    """The requester withdraws a pending request (audited). Others get ``RequestRefused``."""
    if request.requested_by_id != getattr(actor, "pk", None):
        raise RequestRefused("only the requester can cancel a request")
    try:
        transitions.request_cancelled(request, actor=actor, http_request=http_request)
    except transitions.TransitionRefused as exc:
        raise RequestRefused(str(exc)) from None
