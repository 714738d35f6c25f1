"""The rollout scheduler: a state machine over database rows, stepped by Celery tasks.

Why not a canvas (``group``/``chord``)? A chord keeps its progress in the
result backend: a Redis restart or a killed worker loses the join, a halted
rollout would have to be rebuilt as a new canvas on resume, and nothing
bounds how many of a group's tasks run at once except the worker count. The
rollout's truth must live in the dashboard database, where approvals,
resume, cancel and the pages read it, and where any worker on any machine
can pick it up.

So a rollout is rows (``Rollout``, ``RolloutTarget``) and one idempotent step,
:func:`rollout_advance`, that any worker may run at any time:

1. under a row lock on the rollout (``SELECT ... FOR UPDATE``; SQLite
   serialises writers), it copies each in-flight target's state from its
   child request and run (one query);
2. it moves the rollout on: starts it once the request is approved, halts a
   wave that reached ``halt_after_failures``, dispatches the current wave's
   pending targets while fewer than ``parallelism`` are in flight (each
   target gets a child ``MigrationRequest``, approved through its parent and
   pinned to the plan of its heads, run by ``approvals.execute_request``
   exactly like a single environment's request: claimed once, its own lock,
   timeouts, heartbeat and reaper), soaks, runs ``gate_sql`` on the wave's
   targets, starts the next wave, ends the rollout.

It is stepped by events, not by polling: a target's run ending
(``after_run`` sends ``rollouts.advance`` for its parent), an approval, a
resume; and by beat's ``rollouts.tick`` every few seconds, which also ends
soaks and recovers from any lost message (the step is idempotent: a
duplicate dispatches nothing twice, because a target moves from pending to
queued by a conditional UPDATE and a child request is claimed by one worker).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from dashboard.approvals import transitions as request_transitions
from dashboard.approvals.models import MigrationRequest, Run
from dashboard.approvals.services.decisions import approvals_shortfall
from dashboard.approvals.services.dispatch import enqueue_on_commit, run_dispatch_on_commit
from dashboard.environments.fleet import heads_key
from dashboard.environments.models import Environment
from dashboard.rollouts import transitions
from dashboard.rollouts.gates import gates_evaluate
from dashboard.rollouts.models import Rollout, RolloutPlan, RolloutTarget

logger = logging.getLogger(__name__)

ADVANCE_TASK = "rollouts.advance"
Target = RolloutTarget.State
Status = MigrationRequest.Status

# A child request's status -> its target's state.
_STATE_OF = {
    Status.APPROVED: Target.QUEUED,
    Status.RUNNING: Target.RUNNING,
    Status.UNKNOWN: Target.UNKNOWN,
    Status.SUCCEEDED: Target.SUCCEEDED,
    Status.FAILED: Target.FAILED,
    Status.INTERRUPTED: Target.INTERRUPTED,
    Status.CANCELLED: Target.FAILED,
    Status.STALE: Target.FAILED,
    Status.PENDING: Target.QUEUED,
    Status.REJECTED: Target.FAILED,
}
_MAX_STEPS = 50


def rollout_kick_on_commit(*, rollout_id: int) -> None:
    """Step the rollout on a worker once the current transaction commits."""
    enqueue_on_commit(ADVANCE_TASK, rollout_id)


def rollout_kick_for_request(*, request_id: int) -> None:
    """Step the rollout of fleet request ``request_id`` (a target's run ended, it was approved)."""
    rollout_id = Rollout.objects.filter(request_id=request_id).values_list("pk", flat=True).first()
    if rollout_id is not None:
        rollout_kick_on_commit(rollout_id=rollout_id)


@dataclass
class _Step:
    again: bool = False
    gates: list[int] = field(default_factory=list)
    state: str = ""


def rollout_advance(*, rollout_id: int) -> str:
    """Move the rollout as far as it can go now; returns its state. Safe to call any time."""
    state = ""
    for _ in range(_MAX_STEPS):
        step = _advance_once(rollout_id)
        state = step.state
        if step.gates:
            _run_gates(rollout_id, step.gates)
            continue
        if not step.again:
            break
    return state


def rollouts_tick() -> int:
    """Beat: step every rollout that may move (soak ended, message lost, target settled)."""
    ids = (
        Rollout.objects.filter(
            Q(state__in=[Rollout.State.RUNNING, Rollout.State.SOAKING, Rollout.State.HALTED])
            | Q(state=Rollout.State.PENDING, request__status=Status.APPROVED)
            | Q(targets__state__in=RolloutTarget.IN_FLIGHT)
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    count = 0
    for rollout_id in list(ids):
        try:
            rollout_advance(rollout_id=rollout_id)
            count += 1
        except Exception:
            logger.exception("rollout %s could not be stepped", rollout_id)
    return count


def _advance_once(rollout_id: int) -> _Step:
    with transaction.atomic():
        # No join in the locking query: a step that waited for the lock gets the rollout row
        # as committed, but joined rows as they were when its query began (READ COMMITTED),
        # and would dispatch against a request still "approved". Read the request after.
        rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
        if rollout is None:
            return _Step(state="")
        rollout.request = MigrationRequest.objects.select_related("environment").get(
            pk=rollout.request_id
        )
        targets_sync(rollout)
        step = _decide(rollout)
        step.state = Rollout.objects.filter(pk=rollout_id).values_list("state", flat=True).get()
        return step


def targets_sync(rollout: Rollout) -> int:
    """Copy each in-flight target's state from its child request and run (one query)."""
    rows = list(
        RolloutTarget.objects.filter(rollout=rollout, state__in=RolloutTarget.IN_FLIGHT)
        .exclude(request__isnull=True)
        .select_related("request__run")
        # Not the child's pinned plan (its SQL and steps, tens of kB a row): unused here.
        .defer("request__steps", "request__sql", "request__findings", "request__pinned_settings")
    )
    changed = []
    for row in rows:
        child = row.request
        assert child is not None
        run: Run | None = getattr(child, "run", None) if _has_run(child) else None
        state = _STATE_OF.get(child.status, Target.QUEUED)
        values: dict[str, Any] = {"state": state}
        if run is not None:
            values |= {
                "started_at": run.started_at,
                "applied": len(run.applied),
                "finished_at": run.finished_at,
                "final_heads": run.final_heads,
            }
        if state in RolloutTarget.DONE:
            values["error"] = (run.error if run is not None and run.error else "") or (
                child.status_note or ""
            )
            if child.status == Status.CANCELLED and not values["error"]:
                values["error"] = "cancelled"
            values["finished_at"] = values.get("finished_at") or child.ended_at or timezone.now()
        if any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            changed.append(row)
    if changed:
        fields = ["state", "started_at", "applied", "finished_at", "final_heads", "error"]
        RolloutTarget.objects.bulk_update(changed, fields)
    return len(changed)


def _has_run(child: MigrationRequest) -> bool:
    try:
        child.run  # noqa: B018 -- reverse one-to-one, cached by select_related
    except Run.DoesNotExist:
        return False
    return True


def state_counts(rollout: Rollout) -> dict[str, int]:
    counts = Counter(rollout.targets.values_list("state", flat=True))
    return {state: counts.get(state, 0) for state in Target.values}


def _decide(rollout: Rollout) -> _Step:
    state = rollout.state
    if state == Rollout.State.PENDING:
        if rollout.request.status != Status.APPROVED:
            return _Step()
        transitions.rollout_started(
            rollout, targets=rollout.targets.count(), plans=rollout.plans.count()
        )
        transitions.wave_started(rollout, wave=1, targets=rollout.targets.filter(wave=1).count())
        return _Step(again=True)
    if state == Rollout.State.SOAKING:
        ended = Rollout.objects.filter(pk=rollout.pk, soak_until__lte=Now()).exists()
        if not ended:  # judged on the database clock, like every time of a run
            return _Step()
        transitions.soak_ended(rollout)
        return _Step(again=True)
    if state != Rollout.State.RUNNING:
        return _Step()
    wave = rollout.current_wave
    # No join here: a joined plan brings its SQL and steps on every row (~1 s for a wave of
    # 180 Magnetiq2 targets, under the row lock, on every step). _dispatch reads the plans
    # once, and the environment only of a target it dispatches without a plan.
    rows = list(rollout.targets.filter(wave=wave).order_by("position"))
    failures = [row for row in rows if row.is_failure]
    if len(failures) >= rollout.halt_after_failures:
        _halt(rollout, failures, wave)
        return _Step()
    pending = [row for row in rows if row.state == Target.PENDING]
    if pending:
        return _dispatch(rollout, pending)
    if any(row.state in RolloutTarget.IN_FLIGHT for row in rows):
        return _Step()
    # The wave has ended below the failure threshold.
    # Soak between waves (none after the last: nothing waits for it).
    if rollout.soak and rollout.soaked_wave < wave < rollout.wave_count:
        transitions.soak_started(rollout, seconds=rollout.soak.total_seconds())
        return _Step()
    if rollout.gate_sql and rollout.gated_wave < wave:
        to_gate = [
            row.pk for row in rows if row.state == Target.SUCCEEDED and row.gate_passed is None
        ]
        if to_gate:
            return _Step(gates=to_gate)
        Rollout.objects.filter(pk=rollout.pk).update(gated_wave=wave)
        return _Step(again=True)
    if wave >= rollout.wave_count:
        summary = state_counts(rollout)
        summary["gate_failed"] = rollout.targets.filter(gate_passed=False).count()
        transitions.rollout_succeeded(rollout, summary=summary)
        _notify_requester(rollout)
        return _Step()
    transitions.wave_started(
        rollout, wave=wave + 1, targets=rollout.targets.filter(wave=wave + 1).count()
    )
    return _Step(again=True)


def _halt(rollout: Rollout, failures: list[RolloutTarget], wave: int) -> None:
    names = ", ".join(row.name for row in failures[:10]) + (" …" if len(failures) > 10 else "")
    reason = (
        f"wave {wave} reached {len(failures)} failed target(s)"
        f" (halt_after_failures = {rollout.halt_after_failures}): {names}"
    )
    failed = [
        {"target": row.name, "state": row.state, "error": row.error[:300]} for row in failures
    ]
    transitions.rollout_halted(rollout, reason=reason, failed=failed)
    _notify_requester(rollout)


def _notify_requester(rollout: Rollout) -> None:
    from dashboard.approvals.notifications import notify_requester_on_commit

    notify_requester_on_commit(request_id=rollout.request_id)
    targets_read_on_commit(rollout)


def targets_read_on_commit(rollout: Rollout) -> None:
    """Queue a full status read (drift included) of every target that ran, after the commit.

    A target's run already stored the heads it read; the full read waits for
    the rollout to halt or end so it never queues in front of the rollout's steps.
    """
    from dashboard.environments.dispatch import environment_refresh_enqueue

    ids = list(
        rollout.targets.exclude(request__isnull=True).values_list("environment_id", flat=True)
    )

    def enqueue() -> None:
        for environment_id in ids:
            environment_refresh_enqueue(environment_id=environment_id)

    transaction.on_commit(enqueue)


def _plan_for(row: RolloutTarget, plans: dict[int, RolloutPlan]) -> tuple[RolloutPlan | None, str]:
    """The pinned plan for the target's heads now (targets unread at request time), or why none.

    ``plans`` are the rollout's plans by id, read once per step.
    """
    if row.plan_id is not None:
        return plans[row.plan_id], ""
    env = row.environment
    if env.status_state not in ("up_to_date", "pending", "no_version_table"):
        return None, (
            f"no plan: the target's heads were not known when this was requested and are"
            f" still not ({env.get_status_state_display().lower()}); fix the target, refresh"
            " its status and resume"
        )
    heads = heads_key(env.current_heads)
    for plan in plans.values():
        if heads_key(plan.from_heads) == heads:
            return plan, ""
        if heads_key(plan.to_heads) == heads:
            return None, "skipped: already at the target"
    return None, (
        f"no pinned plan starts at this target's heads ({', '.join(heads) or 'base'});"
        " request the fleet again so a plan for them is reviewed"
    )


def _dispatch(rollout: Rollout, pending: list[RolloutTarget]) -> _Step:
    request = rollout.request
    shortfall = approvals_shortfall(request)
    if shortfall is not None:
        # The running request takes no new approval: say what does move it on.
        names = ", ".join(shortfall.discounted)
        lapsed = f"; no longer counted: {names}" if names else ""
        reason = (
            f"approvals no longer meet the policy ({shortfall.valid} of {shortfall.required}"
            f" still count{lapsed}): restore the approvers' rights and resume, or cancel the"
            " rest and request the fleet again"
        )
        transitions.rollout_halted(rollout, reason=reason, failed=[])
        _notify_requester(rollout)
        return _Step()
    in_flight = rollout.targets.filter(state__in=RolloutTarget.IN_FLIGHT).count()
    free = rollout.parallelism - in_flight
    progressed = False
    plans = {plan.pk: plan for plan in rollout.plans.all()} if free > 0 else {}
    for row in pending:
        if free <= 0:
            break
        plan, why = _plan_for(row, plans)
        if plan is None:
            skipped = why.startswith("skipped")
            RolloutTarget.objects.filter(pk=row.pk, state=Target.PENDING).update(
                state=Target.SKIPPED if skipped else Target.FAILED,
                error=why,
                finished_at=timezone.now(),
            )
            progressed = True
            continue
        moved = RolloutTarget.objects.filter(pk=row.pk, state=Target.PENDING).update(
            state=Target.QUEUED
        )
        if moved != 1:
            continue
        child = request_transitions.child_request_create(
            request,
            environment_id=row.environment_id,
            target=plan.target,
            from_heads=plan.from_heads,
            to_heads=plan.to_heads,
            steps=plan.steps,
            sql=plan.sql,
            sql_sha256=plan.sql_sha256,
            findings=plan.findings,
            destructive=plan.destructive,
        )
        RolloutTarget.objects.filter(pk=row.pk).update(
            request=child,
            plan=plan,
            attempts=F("attempts") + 1,
            from_heads=plan.from_heads,
            to_heads=plan.to_heads,
            total_steps=len(plan.steps),
            applied=0,
            error="",
            gate_passed=None,
            started_at=None,
            finished_at=None,
            final_heads=None,
        )
        run_dispatch_on_commit(request_id=child.pk)
        free -= 1
    # A target failed or skipped without a run: decide again (threshold, next target).
    return _Step(again=progressed)


def _run_gates(rollout_id: int, target_ids: list[int]) -> None:
    """Run ``gate_sql`` on the wave's migrated targets, outside the rollout's row lock."""
    rollout = Rollout.objects.get(pk=rollout_id)
    rows = list(
        RolloutTarget.objects.filter(pk__in=target_ids, gate_passed__isnull=True).select_related(
            "environment"
        )
    )
    environments: list[Environment] = [row.environment for row in rows]
    results = gates_evaluate(rollout.gate_sql, environments, workers=rollout.parallelism)
    for row, (passed, message) in zip(rows, results, strict=True):
        values: dict[str, Any] = {"gate_passed": passed}
        if not passed:
            values["error"] = message
        RolloutTarget.objects.filter(pk=row.pk, gate_passed__isnull=True).update(**values)
