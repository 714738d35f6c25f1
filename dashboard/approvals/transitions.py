"""The state machine of migration requests and runs: the ONLY code that assigns a status.

::

    pending --approve (last required)----------------> approved --claim--> running
       |----no approval required (0 approvers)------>    |                  |
       |--reject--> rejected                              |                  |--> succeeded
       |--cancel--> cancelled                             |                  |--> failed
       '--stale (the environment moved)--> stale          |                  |--> interrupted (reaped)
                                                          |                  |--> cancelled (a lead cancelled it)
    approved --approvals lapsed (an approver lost the     |                  '--> unknown (heads unreadable
               role, or the policy was raised)--> pending <                         after the run)
    unknown     --settled (heads read later)---------> succeeded | failed | interrupted
    interrupted --corrected (the worker reported after being reaped)--> succeeded | failed | cancelled

(approvals older than the environment's TTL expire; the request stays pending)

Every transition is a conditional ``UPDATE ... WHERE status = <from>`` that
must change exactly one row (otherwise :class:`TransitionRefused`), followed by
its audit event, all inside the caller's ``transaction.atomic()`` block (each
function opens one if the caller did not). Callers enqueue work with
``transaction.on_commit``, never here.

Audit events of the lifecycle carry the request's pinned (approved) SQL hash
in ``sql_sha256``, except the events that end a run (``dashboard.run.<outcome>``,
``.corrected``, ``.settled``): theirs is the hash of the statements actually
sent to the target (empty when none was), with the approved hash and revision
list in the payload, so the audit timeline compares approved and executed.
Times are the dashboard database's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.audit.services import audit_record
from dashboard.environments.services import environment_last_run_record

Status = MigrationRequest.Status
Outcome = Run.Outcome

RUN_END_OUTCOMES = (
    Outcome.SUCCEEDED,
    Outcome.FAILED,
    Outcome.INTERRUPTED,
    Outcome.CANCELLED,
    Outcome.UNKNOWN,
)
# A run recorded as lost (reaped) or unknown may still learn its real outcome.
CORRECTABLE_OUTCOMES = (Outcome.INTERRUPTED, Outcome.UNKNOWN)


class TransitionRefused(Exception):
    """The request was not in the state the transition starts from (someone else moved it)."""


@dataclass(frozen=True)
class RunRecord:
    """What a run did, as the worker (or the reaper) found it at the end."""

    outcome: str
    final_heads: Sequence[str] | None
    committed: Sequence[str] = ()
    reason: str = ""
    error: str = ""
    executed_statements: int = 0
    executed_sql_sha256: str = ""


def _move(request: MigrationRequest, *, source: Sequence[str], target: str, **fields: Any) -> None:
    changed = MigrationRequest.objects.filter(pk=request.pk, status__in=list(source)).update(
        status=target, **fields
    )
    if changed != 1:
        raise TransitionRefused(
            f"request #{request.pk} is no longer {' or '.join(source)}; nothing was changed"
        )
    request.refresh_from_db(fields=["status", *fields])


def _audit(
    action: str,
    request: MigrationRequest,
    *,
    actor: Any = None,
    http_request: HttpRequest | None = None,
    to_revisions: Sequence[str] | None = None,
    sql_sha256: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    extra: dict[str, Any] = {}
    if request.parent_id is not None:  # one target of a fleet's rollout
        environment = request.environment
        extra = {
            "fleet": environment.fleet_slug,
            "target": environment.target_name,
            "parent_request": request.parent_id,
        }
    audit_record(
        action=action,
        actor=actor,
        environment=request.environment,
        request=request,
        from_revisions=tuple(request.from_heads),
        to_revisions=tuple(request.to_heads if to_revisions is None else to_revisions),
        sql_sha256=request.sql_sha256 if sql_sha256 is None else sql_sha256,
        http_request=http_request,
        payload={
            "direction": request.direction,
            "target": request.target,
            **extra,
            **(payload or {}),
        },
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
        payload={
            "reason": request.reason,
            "revisions": request.revisions,
            "required_approvals": request.required_approvals,
            "env_sha256": request.env_sha256,
        },
    )


@transaction.atomic
def request_approval_not_required(
    request: MigrationRequest, *, actor: Any, http_request: HttpRequest | None
) -> None:
    """pending -> approved for an environment that needs no approver (e.g. dev).

    Recorded as its own event, never as an approval by the requester.
    """
    _move(request, source=[Status.PENDING], target=Status.APPROVED, approved_at=Now())
    _audit(
        "dashboard.request.approval_not_required",
        request,
        actor=actor,
        http_request=http_request,
        payload={"required": 0},
    )


@transaction.atomic
def request_approval_recorded(
    request: MigrationRequest,
    *,
    actor: Any,
    http_request: HttpRequest | None,
    approvals: int,
    final: bool,
    comment: str = "",
    sql_acknowledged: bool = False,
) -> None:
    """Audit one approver's approval; with ``final`` move pending -> approved."""
    if final:
        _move(request, source=[Status.PENDING], target=Status.APPROVED, approved_at=Now())
    _audit(
        "dashboard.request.approved",
        request,
        actor=actor,
        http_request=http_request,
        payload={
            "approvals": approvals,
            "required": request.required_approvals,
            "request_approved": final,
            "comment": comment,
            "sql_acknowledged": sql_acknowledged,
        },
    )


@transaction.atomic
def request_rejected(
    request: MigrationRequest, *, actor: Any, http_request: HttpRequest | None, comment: str
) -> None:
    _move(request, source=[Status.PENDING], target=Status.REJECTED, ended_at=Now())
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
    _move(request, source=[Status.PENDING], target=Status.CANCELLED, ended_at=Now())
    _audit("dashboard.request.cancelled", request, actor=actor, http_request=http_request)


@transaction.atomic
def request_stale(request: MigrationRequest, *, current_heads: Sequence[str]) -> None:
    """pending -> stale: the environment left the heads the plan was pinned at."""
    note = stale_note(request.from_heads, current_heads)
    _move(request, source=[Status.PENDING], target=Status.STALE, ended_at=Now(), status_note=note)
    _audit(
        "dashboard.request.stale",
        request,
        payload={"current_heads": sorted(current_heads), "note": note},
    )


def stale_note(from_heads: Sequence[str], current_heads: Sequence[str]) -> str:
    return (
        f"the environment moved from {', '.join(sorted(from_heads)) or 'base'}"
        f" to {', '.join(sorted(current_heads)) or 'base'} after this was requested"
    )


@transaction.atomic
def request_approvals_expired(request: MigrationRequest, *, approvals: QuerySet[Any]) -> int:
    """Mark live approvals as expired (request stays pending); audit once per request."""
    approvers = list(approvals.values_list("approver__username", flat=True))
    count = approvals.update(expired_at=Now())
    if count:
        _audit("dashboard.request.expired", request, payload={"expired_approvals": approvers})
    return count


@transaction.atomic
def request_reopened(
    request: MigrationRequest, *, valid_approvals: int, required: int, discounted: Sequence[str]
) -> None:
    """approved -> pending: approvals that no longer count leave the policy unmet.

    Happens before a run is claimed, when an approver lost the permission, the
    approver group or their account, or when the environment's policy was raised.
    """
    note = (
        f"{valid_approvals} of {required} approvals still count"
        + (f" ({', '.join(discounted)} may no longer approve)" if discounted else "")
        + "; another approval is needed before it runs"
    )
    _move(
        request,
        source=[Status.APPROVED],
        target=Status.PENDING,
        approved_at=None,
        dispatched_at=None,
        required_approvals=required,
        status_note=note,
    )
    _audit(
        "dashboard.request.reopened",
        request,
        payload={
            "valid_approvals": valid_approvals,
            "required": required,
            "discounted": list(discounted),
            "note": note,
        },
    )


# --- fleets: a parent request's rollout and its per-target child requests ---------


@transaction.atomic
def rollout_started(request: MigrationRequest, *, payload: dict[str, Any]) -> None:
    """approved -> running for a fleet's request: its rollout began (audited)."""
    _move(request, source=[Status.APPROVED], target=Status.RUNNING, claimed_at=Now())
    _audit("dashboard.rollout.started", request, payload=payload)


@transaction.atomic
def rollout_ended(
    request: MigrationRequest,
    *,
    outcome: str,
    note: str,
    actor: Any = None,
    http_request: HttpRequest | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """running (or approved) -> succeeded | failed | cancelled: the rollout ended (audited)."""
    if outcome not in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        raise ValueError(f"{outcome!r} does not end a rollout")
    _move(
        request,
        source=[Status.RUNNING, Status.APPROVED],
        target=outcome,
        ended_at=Now(),
        status_note=note[:500],
    )
    _audit(
        f"dashboard.rollout.{outcome}",
        request,
        actor=actor,
        http_request=http_request,
        payload={"note": note, **(payload or {})},
    )


def child_request_create(parent: MigrationRequest, **fields: Any) -> MigrationRequest:
    """Insert one target's request of a running rollout, approved through its parent.

    Not audited on its own: the parent's approvals are the approval, and the
    child's ``run.started`` / ``run.<outcome>`` events name the target and the
    parent request.
    """
    if parent.status != Status.RUNNING:
        raise TransitionRefused(f"request #{parent.pk} is not running a rollout")
    return MigrationRequest.objects.create(
        parent=parent,
        requested_by_id=parent.requested_by_id,
        direction=parent.direction,
        reason=parent.reason,
        dialect=parent.dialect,
        required_approvals=parent.required_approvals,
        env_sha256=parent.env_sha256,
        pinned_settings=parent.pinned_settings,
        status=Status.APPROVED,
        approved_at=parent.approved_at,
        **fields,
    )


@transaction.atomic
def child_request_abandoned(request: MigrationRequest, *, note: str) -> bool:
    """approved -> cancelled: a target's request that no worker claimed before its rollout
    was cancelled. False when a worker claimed it first (it runs to its end)."""
    changed = MigrationRequest.objects.filter(
        pk=request.pk, status=Status.APPROVED, claimed_at__isnull=True
    ).update(status=Status.CANCELLED, ended_at=Now(), status_note=note[:500])
    return changed == 1


@transaction.atomic
def run_claimed(request: MigrationRequest, *, worker: str) -> Run | None:
    """approved -> running, for exactly one claimant. Returns the new run, or None if lost.

    The claim is ``UPDATE ... WHERE status='approved' AND claimed_at IS NULL``;
    a duplicate delivery or a concurrent worker changes no row and gets None.
    """
    won = MigrationRequest.objects.filter(
        pk=request.pk, status=Status.APPROVED, claimed_at__isnull=True
    ).update(status=Status.RUNNING, claimed_at=Now())
    if won != 1:
        return None
    request.refresh_from_db(fields=["status", "claimed_at"])
    run = Run.objects.create(
        request=request,
        worker=worker,
        total_steps=len(request.steps),
        transaction_per_migration=request.environment.transaction_per_migration,
    )
    run.refresh_from_db()
    environment_last_run_record(
        environment_id=request.environment_id,
        outcome=run.outcome,
        started_at=run.started_at,
        request_id=request.pk,
    )
    _audit(
        "dashboard.run.started",
        request,
        payload={"run": run.pk, "worker": worker, "approved_revisions": request.revisions},
    )
    return run


def _end_payload(run: Run, record: RunRecord) -> dict[str, Any]:
    request = run.request
    return {
        "run": run.pk,
        "reason": record.reason,
        "error": record.error[:500],
        "applied": list(run.applied),
        "committed": list(record.committed),
        "final_heads": list(record.final_heads) if record.final_heads is not None else None,
        "approved_revisions": request.revisions,
        "approved_sql_sha256": request.sql_sha256,
        "executed_statements": record.executed_statements,
        "duration_seconds": round(max((run.finished_at - run.started_at).total_seconds(), 0.0), 3),
    }


def _record_fields(record: RunRecord) -> dict[str, Any]:
    return {
        "outcome": record.outcome,
        "final_heads": list(record.final_heads) if record.final_heads is not None else None,
        "committed": list(record.committed),
        "reason": record.reason,
        "error": record.error,
        "executed_statements": record.executed_statements,
        "executed_sql_sha256": record.executed_sql_sha256,
    }


@transaction.atomic
def run_finished(run: Run, record: RunRecord) -> None:
    """running -> succeeded | failed | interrupted | cancelled | unknown, run and request together."""
    if record.outcome not in RUN_END_OUTCOMES:
        raise ValueError(f"{record.outcome!r} is not an end state")
    changed = Run.objects.filter(pk=run.pk, outcome=Outcome.RUNNING).update(
        finished_at=Now(), phase="done", current_revision="", **_record_fields(record)
    )
    if changed != 1:
        raise TransitionRefused(f"run {run.pk} has already ended")
    run.refresh_from_db()
    request = run.request
    _move(request, source=[Status.RUNNING], target=record.outcome, ended_at=run.finished_at)
    environment_last_run_record(
        environment_id=request.environment_id,
        outcome=record.outcome,
        started_at=run.started_at,
        request_id=request.pk,
    )
    _audit(
        f"dashboard.run.{record.outcome}",
        request,
        to_revisions=tuple(record.final_heads or ()),
        sql_sha256=record.executed_sql_sha256,
        payload=_end_payload(run, record),
    )


@transaction.atomic
def run_corrected(run: Run, record: RunRecord, *, source: str) -> str:
    """interrupted | unknown -> the outcome found later; returns the outcome it replaced.

    ``source`` says who found it: ``"worker"`` (the worker finished after the
    reaper gave up on it) or ``"status read"`` (the heads read after an
    unknown outcome). Audited as ``dashboard.run.corrected`` (a reaped run) or
    ``dashboard.run.settled`` (an unknown outcome), never silently.
    """
    if record.outcome not in (
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.INTERRUPTED,
        Outcome.CANCELLED,
    ):
        raise ValueError(f"{record.outcome!r} is not a settled outcome")
    previous = Run.objects.filter(pk=run.pk).values_list("outcome", flat=True).first()
    if previous not in CORRECTABLE_OUTCOMES:
        raise TransitionRefused(f"run {run.pk} is {previous}; there is nothing to correct")
    fields = _record_fields(record)
    if not record.executed_statements:  # keep what the worker recorded before it was lost
        fields.pop("executed_statements")
        fields.pop("executed_sql_sha256")
    changed = Run.objects.filter(pk=run.pk, outcome=previous).update(
        phase="done", current_revision="", **fields
    )
    if changed != 1:
        raise TransitionRefused(f"run {run.pk} changed while it was corrected")
    run.refresh_from_db()
    request = run.request
    _move(request, source=[previous], target=record.outcome)
    environment_last_run_record(
        environment_id=request.environment_id,
        outcome=record.outcome,
        started_at=run.started_at,
        request_id=request.pk,
    )
    action = "dashboard.run.settled" if previous == Outcome.UNKNOWN else "dashboard.run.corrected"
    payload = _end_payload(run, record)
    payload.update(previous_outcome=previous, outcome=record.outcome, source=source)
    _audit(
        action,
        request,
        to_revisions=tuple(record.final_heads or ()),
        sql_sha256=run.executed_sql_sha256,
        payload=payload,
    )
    return previous


@transaction.atomic
def run_cancel_requested(run: Run, *, actor: Any, http_request: HttpRequest | None) -> bool:
    """Record a tech lead's request to cancel a running run (audited). False if already asked."""
    changed = Run.objects.filter(
        pk=run.pk, outcome=Outcome.RUNNING, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=Now(), cancel_requested_by=actor)
    if changed != 1:
        return False
    run.refresh_from_db(fields=["cancel_requested_at", "cancel_requested_by"])
    _audit(
        "dashboard.run.cancel_requested",
        run.request,
        actor=actor,
        http_request=http_request,
        payload={"run": run.pk, "current_revision": run.current_revision, "phase": run.phase},
    )
    return True
