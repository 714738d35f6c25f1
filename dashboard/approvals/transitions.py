"""The state machine of migration requests and runs: the ONLY code that assigns a status.

::

    pending --approve (last required)--> approved --claim--> running --> succeeded
       |                                                        |------> failed
       |--reject--> rejected                                    '------> interrupted
       '--cancel--> cancelled
    (approvals older than the environment's TTL expire; the request stays pending)

Every transition is a conditional ``UPDATE ... WHERE status = <from>`` that
must change exactly one row (otherwise :class:`TransitionRefused`), followed by
its audit event, all inside the caller's ``transaction.atomic()`` block (each
function opens one if the caller did not). Callers enqueue work with
``transaction.on_commit``, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.audit.services import audit_record

Status = MigrationRequest.Status
Outcome = Run.Outcome


class TransitionRefused(Exception):
    """The request was not in the state the transition starts from (someone else moved it)."""


def _move(request: MigrationRequest, *, source: Sequence[str], target: str, **fields: Any) -> None:
    changed = MigrationRequest.objects.filter(pk=request.pk, status__in=list(source)).update(
        status=target, **fields
    )
    if changed != 1:
        raise TransitionRefused(
            f"request #{request.pk} is no longer {' or '.join(source)}; nothing was changed"
        )
    request.status = target
    for name, value in fields.items():
        setattr(request, name, value)


def _audit(
    action: str,
    request: MigrationRequest,
    *,
    actor: Any = None,
    http_request: HttpRequest | None = None,
    to_revisions: Sequence[str] | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        environment=request.environment,
        request=request,
        from_revisions=tuple(request.from_heads),
        to_revisions=tuple(request.to_heads if to_revisions is None else to_revisions),
        sql_sha256=request.sql_sha256,
        http_request=http_request,
        payload={"direction": request.direction, "target": request.target, **(payload or {})},
    )


def request_created(
    request: MigrationRequest, *, actor: Any, http_request: HttpRequest | None
) -> None:
    """Record the creation of a pending request (the row was just inserted)."""
    _audit(
        "dashboard.request.created",
        request,
        actor=actor,
        http_request=http_request,
        payload={"reason": request.reason, "revisions": request.revisions},
    )


@transaction.atomic
def request_approval_recorded(
    request: MigrationRequest,
    *,
    actor: Any,
    http_request: HttpRequest | None,
    approvals: int,
    final: bool,
) -> None:
    """Audit one approver's approval; with ``final`` move pending -> approved."""
    if final:
        _move(request, source=[Status.PENDING], target=Status.APPROVED, approved_at=timezone.now())
    _audit(
        "dashboard.request.approved",
        request,
        actor=actor,
        http_request=http_request,
        payload={
            "approvals": approvals,
            "required": request.required_approvals,
            "request_approved": final,
        },
    )


@transaction.atomic
def request_rejected(
    request: MigrationRequest, *, actor: Any, http_request: HttpRequest | None, comment: str
) -> None:
    _move(request, source=[Status.PENDING], target=Status.REJECTED, ended_at=timezone.now())
    _audit(
        "dashboard.request.rejected",
        request,
        actor=actor,
        http_request=http_request,
        payload={"comment": comment},
    )


@transaction.atomic
def request_cancelled(
    request: MigrationRequest, *, actor: Any, http_request: HttpRequest | None
) -> None:
    _move(request, source=[Status.PENDING], target=Status.CANCELLED, ended_at=timezone.now())
    _audit("dashboard.request.cancelled", request, actor=actor, http_request=http_request)


@transaction.atomic
def request_approvals_expired(request: MigrationRequest, *, approvals: QuerySet[Any]) -> int:
    """Mark live approvals as expired (request stays pending); audit once per request."""
    approvers = list(approvals.values_list("approver__username", flat=True))
    count = approvals.update(expired_at=timezone.now())
    if count:
        _audit("dashboard.request.expired", request, payload={"expired_approvals": approvers})
    return count


@transaction.atomic
def run_claimed(request: MigrationRequest, *, worker: str, heartbeat_at: Any) -> Run | None:
    """approved -> running, for exactly one claimant. Returns the new run, or None if lost.

    The claim is ``UPDATE ... WHERE status='approved' AND claimed_at IS NULL``;
    a duplicate delivery or a concurrent worker changes no row and gets None.
    """
    now = timezone.now()
    won = MigrationRequest.objects.filter(
        pk=request.pk, status=Status.APPROVED, claimed_at__isnull=True
    ).update(status=Status.RUNNING, claimed_at=now)
    if won != 1:
        return None
    request.status, request.claimed_at = Status.RUNNING, now
    run = Run.objects.create(
        request=request,
        worker=worker,
        heartbeat_at=heartbeat_at,
        total_steps=len(request.steps),
        transaction_per_migration=request.environment.transaction_per_migration,
    )
    _audit("dashboard.run.started", request, payload={"run": run.pk, "worker": worker})
    return run


@transaction.atomic
def run_finished(
    run: Run,
    *,
    outcome: str,
    final_heads: Sequence[str] | None,
    reason: str = "",
    error: str = "",
) -> None:
    """running -> succeeded | failed | interrupted, for the run and its request together."""
    if outcome not in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.INTERRUPTED):
        raise ValueError(f"{outcome!r} is not an end state")
    now = timezone.now()
    changed = Run.objects.filter(pk=run.pk, outcome=Outcome.RUNNING).update(
        outcome=outcome,
        finished_at=now,
        final_heads=list(final_heads) if final_heads is not None else None,
        reason=reason,
        error=error,
        phase="done",
    )
    if changed != 1:
        raise TransitionRefused(f"run {run.pk} has already ended")
    request = run.request
    _move(request, source=[Status.RUNNING], target=outcome, ended_at=now)
    run.refresh_from_db()
    _audit(
        f"dashboard.run.{outcome}",
        request,
        to_revisions=tuple(final_heads or ()),
        payload={
            "run": run.pk,
            "reason": reason,
            "error": error[:500],
            "committed": run.committed,
            "final_heads": list(final_heads) if final_heads is not None else None,
            "duration_seconds": round((now - run.started_at).total_seconds(), 3),
        },
    )
