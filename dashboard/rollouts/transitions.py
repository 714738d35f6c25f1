"""The rollout's state machine: the ONLY code that assigns ``Rollout.state``.

::

    pending --approved (first advance)--> running --wave ended, soak set--> soaking
    running --last wave ended---------> succeeded          soaking --time up / proceed now--> running
    running --a wave reached halt_after_failures, or the approvals lapsed--> halted
    halted  --resume (a tech lead)----> running
    pending | running | soaking | halted --cancel (a tech lead)--> cancelled

A rollout that ran every wave is ``succeeded``; its request is ``failed``
when a target failed below the halt threshold (the note says how many).

Each move is a conditional ``UPDATE ... WHERE state IN (...)`` followed by its
audit event (``dashboard.rollout.<what>``, on the fleet's request), inside the
caller's transaction. The fleet request's own status follows through
``dashboard.approvals.transitions`` (``rollout_started`` / ``rollout_ended``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.http import HttpRequest

from dashboard.approvals import transitions as request_transitions
from dashboard.approvals.models import MigrationRequest
from dashboard.audit.services import audit_record
from dashboard.rollouts.models import Rollout

State = Rollout.State


class RolloutTransitionRefused(Exception):
    """The rollout was not in a state the move starts from (someone else moved it)."""


def _move(rollout: Rollout, *, source: Sequence[str], target: str, **fields: Any) -> None:
    changed = Rollout.objects.filter(pk=rollout.pk, state__in=list(source)).update(
        state=target, updated_at=Now(), **fields
    )
    if changed != 1:
        raise RolloutTransitionRefused(
            f"the rollout of request #{rollout.request_id} is no longer"
            f" {' or '.join(source)}; nothing was changed"
        )
    rollout.refresh_from_db()


def audit(
    action: str,
    rollout: Rollout,
    *,
    actor: Any = None,
    http_request: HttpRequest | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    request: MigrationRequest = rollout.request
    audit_record(
        action=f"dashboard.rollout.{action}",
        actor=actor,
        environment=request.environment,
        request=request,
        from_revisions=tuple(request.from_heads),
        to_revisions=tuple(request.to_heads),
        sql_sha256=request.sql_sha256,
        http_request=http_request,
        payload={"direction": request.direction, "wave": rollout.current_wave, **(payload or {})},
    )


@transaction.atomic
def rollout_started(rollout: Rollout, *, targets: int, plans: int) -> None:
    _move(rollout, source=[State.PENDING], target=State.RUNNING, started_at=Now())
    request_transitions.rollout_started(
        rollout.request,
        payload={"waves": rollout.waves, "targets": targets, "plans": plans},
    )


@transaction.atomic
def wave_started(rollout: Rollout, *, wave: int, targets: int) -> None:
    _move(rollout, source=[State.RUNNING], target=State.RUNNING, current_wave=wave)
    audit("wave_started", rollout, payload={"targets": targets})


@transaction.atomic
def soak_started(rollout: Rollout, *, seconds: float) -> None:
    from datetime import timedelta

    from dashboard.approvals.models import database_now

    _move(
        rollout,
        source=[State.RUNNING],
        target=State.SOAKING,
        soak_until=database_now(timedelta(seconds=seconds)),
    )


@transaction.atomic
def soak_ended(
    rollout: Rollout, *, actor: Any = None, http_request: HttpRequest | None = None
) -> None:
    """soaking -> running; with an ``actor`` it is a tech lead's "proceed now" (audited)."""
    _move(
        rollout,
        source=[State.SOAKING],
        target=State.RUNNING,
        soaked_wave=rollout.current_wave,
        soak_until=Now() if actor is not None else rollout.soak_until,
    )
    if actor is not None:
        audit("proceeded", rollout, actor=actor, http_request=http_request)


@transaction.atomic
def rollout_halted(rollout: Rollout, *, reason: str, failed: list[dict[str, Any]]) -> None:
    _move(rollout, source=[State.RUNNING, State.SOAKING], target=State.HALTED, halted_reason=reason)
    audit("halted", rollout, payload={"reason": reason, "failed_targets": failed[:100]})


@transaction.atomic
def rollout_resumed(
    rollout: Rollout,
    *,
    actor: Any,
    http_request: HttpRequest | None,
    wave: int,
    retried: list[str],
) -> None:
    _move(
        rollout,
        source=[State.HALTED],
        target=State.RUNNING,
        halted_reason="",
        current_wave=wave,
        soaked_wave=min(rollout.soaked_wave, wave - 1),
        gated_wave=min(rollout.gated_wave, wave - 1),
    )
    audit(
        "resumed",
        rollout,
        actor=actor,
        http_request=http_request,
        payload={"retried_targets": retried[:1000], "retried": len(retried)},
    )


@transaction.atomic
def rollout_succeeded(rollout: Rollout, *, summary: dict[str, int]) -> None:
    _move(rollout, source=[State.RUNNING], target=State.SUCCEEDED, ended_at=Now())
    note = ", ".join(f"{count} {state}" for state, count in summary.items() if count)
    # Every wave ran; a target that failed below the halt threshold still fails the request.
    failed = sum(summary.get(state, 0) for state in ("failed", "interrupted", "gate_failed"))
    outcome = MigrationRequest.Status.FAILED if failed else MigrationRequest.Status.SUCCEEDED
    if failed:
        note = f"every wave ran, {failed} target(s) did not migrate: {note}"
    request_transitions.rollout_ended(rollout.request, outcome=outcome, note=note, payload=summary)


@transaction.atomic
def rollout_cancelled(
    rollout: Rollout, *, actor: Any, http_request: HttpRequest | None, summary: dict[str, int]
) -> None:
    """Any open state -> cancelled; the targets not started are skipped (the caller's job)."""
    _move(
        rollout,
        source=[State.PENDING, State.RUNNING, State.SOAKING, State.HALTED],
        target=State.CANCELLED,
        ended_at=Now(),
    )
    note = "cancelled: " + ", ".join(f"{c} {s}" for s, c in summary.items() if c)
    request = rollout.request
    if request.status == MigrationRequest.Status.PENDING:
        request_transitions.request_cancelled(request, actor=actor, http_request=http_request)
        return
    request_transitions.rollout_ended(
        request,
        outcome=MigrationRequest.Status.CANCELLED,
        note=note,
        actor=actor,
        http_request=http_request,
        payload=summary,
    )
