"""A fleet's request: one pinned plan per distinct set of current heads among its targets.

``fleet_request_create`` groups the fleet's targets by the heads their
cached status last read (a fleet of 500 is not read live at request time;
each target's heads are read again, live, under its lock before it runs, and
a target that moved is refused as stale), pins a plan for each group with
``plan_pin_at`` (SQL, findings, hashes, as a single request pins it), and
creates the request, its rollout, the plans and the targets in waves in one
transaction. Targets already at the target are skipped; targets whose status
is unknown get their plan at their turn, from their heads then, if one of
the pinned plans starts there.

``rollback_request_create`` does the same for the targets a rollout
migrated, each back to the heads it had before: pinned from the heads the
run recorded, not from the cache.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from dashboard.approvals import transitions as request_transitions
from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.notifications import notify_approvers_on_commit
from dashboard.approvals.planning import PinnedPlan, PlanRefused, plan_pin_at
from dashboard.approvals.services.dispatch import run_dispatch_on_commit
from dashboard.approvals.services.requests import (
    EnvironmentUnavailable,
    RequestRefused,
    refuse_if_busy,
)
from dashboard.environments.fleet import heads_key, wave_ends, wave_of_positions
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.rollouts.models import Rollout, RolloutPlan, RolloutTarget

READ_STATES = (Environment.StatusState.UP_TO_DATE, Environment.StatusState.PENDING)
NOTHING_TO_DO = "nothing to do"


@dataclass
class _Group:
    from_heads: list[str]
    targets: list[Environment]
    to_heads: list[str] | None = None  # a rollback's per-group destination
    plan: PinnedPlan | None = None
    skip_reason: str = ""


def _pin(group: _Group, *, direction: str, target: str) -> None:
    """Pin the group's plan on its first target's URL (same schema, same dialect)."""
    representative = group.targets[0]
    try:
        url = representative.database_url()
    except EnvironmentConfigError as exc:
        raise EnvironmentUnavailable(f"{representative.slug}: {exc}") from None
    try:
        group.plan = plan_pin_at(
            environment=representative,
            url=url,
            heads=group.from_heads,
            direction=direction,
            target=target,
        )
    except PlanRefused as exc:
        if str(exc).startswith(NOTHING_TO_DO):
            group.skip_reason = f"already at {target!r}"
            return
        raise RequestRefused(str(exc)) from None


def _combined_sql(plans: list[tuple[int, PinnedPlan, int]]) -> str:
    parts = []
    for index, plan, count in plans:
        parts.append(
            f"-- plan {index + 1}: {count} target(s) at {', '.join(plan.from_heads) or 'base'}"
            f" -> {', '.join(plan.to_heads) or 'base'}\n{plan.sql}"
        )
    return "\n".join(parts)


def _union_steps(plans: list[PinnedPlan]) -> list[dict[str, str]]:
    seen: set[str] = set()
    steps = []
    for plan in plans:
        for step in plan.steps:
            if step["revision"] not in seen:
                seen.add(step["revision"])
                steps.append(step)
    return steps


def _create(
    *,
    fleet: Environment,
    actor: Any,
    direction: str,
    target: str,
    reason: str,
    groups: list[_Group],
    unread: list[Environment],
    http_request: HttpRequest | None,
    rolls_back: Rollout | None = None,
) -> MigrationRequest:
    pinned = [group for group in groups if group.plan is not None]
    if not pinned and not unread:
        raise RequestRefused(
            f"nothing to do: every target of {fleet.slug} is already at {target!r}"
        )
    if not pinned:
        raise EnvironmentUnavailable(
            f"no target of {fleet.slug} has a known status to plan from; refresh its status"
        )
    pinned.sort(key=lambda group: -len(group.targets))
    plans = [group.plan for group in pinned if group.plan is not None]
    main = plans[0]
    listed = [(i, group.plan, len(group.targets)) for i, group in enumerate(pinned) if group.plan]
    sql = _combined_sql(listed)
    order = {env.pk: env.fleet_position for group in groups for env in group.targets}
    order |= {env.pk: env.fleet_position for env in unread}
    all_targets = sorted(order, key=lambda pk: (order[pk], pk))
    with transaction.atomic():
        Environment.objects.select_for_update().filter(pk=fleet.pk).first()
        refuse_if_busy(fleet)
        request = MigrationRequest.objects.create(
            environment=fleet,
            requested_by=actor,
            direction=direction,
            target=target,
            reason=reason,
            dialect=main.dialect,
            from_heads=main.from_heads,
            to_heads=main.to_heads,
            steps=_union_steps(plans),
            sql=sql,
            sql_sha256=hashlib.sha256(sql.encode()).hexdigest(),
            findings=[finding for plan in plans for finding in plan.findings],
            destructive=any(plan.destructive for plan in plans),
            required_approvals=fleet.required_approvals,
            env_sha256=main.env_sha256,
            pinned_settings=fleet.execution_settings(),
        )
        rollout = Rollout.objects.create(
            request=request,
            waves=wave_ends(fleet.waves or ["100%"], len(all_targets)),
            wave_spec=fleet.waves or ["100%"],
            parallelism=max(fleet.parallelism, 1),
            halt_after_failures=max(fleet.halt_after_failures, 1),
            soak=fleet.soak,
            gate_sql=fleet.gate_sql,
            rolls_back=rolls_back,
        )
        plan_rows = {}
        for index, group in enumerate(pinned):
            plan = group.plan
            assert plan is not None
            plan_rows[id(group)] = RolloutPlan.objects.create(
                rollout=rollout,
                index=index,
                target=plan.target,
                from_heads=plan.from_heads,
                to_heads=plan.to_heads,
                steps=plan.steps,
                sql=plan.sql,
                sql_sha256=plan.sql_sha256,
                findings=plan.findings,
                destructive=plan.destructive,
                target_count=len(group.targets),
            )
        waves = wave_of_positions(rollout.wave_spec, len(all_targets))
        wave_by_pk = dict(zip(all_targets, waves, strict=True))
        rows = []
        for group in groups:
            plan_row = plan_rows.get(id(group))
            for env in group.targets:
                rows.append(
                    RolloutTarget(
                        rollout=rollout,
                        environment=env,
                        name=env.target_name,
                        position=env.fleet_position,
                        wave=wave_by_pk[env.pk],
                        plan=plan_row,
                        from_heads=group.from_heads,
                        to_heads=plan_row.to_heads if plan_row else group.from_heads,
                        total_steps=len(plan_row.steps) if plan_row else 0,
                        state=RolloutTarget.State.PENDING
                        if plan_row
                        else RolloutTarget.State.SKIPPED,
                        error="" if plan_row else group.skip_reason,
                    )
                )
        for env in unread:
            rows.append(
                RolloutTarget(
                    rollout=rollout,
                    environment=env,
                    name=env.target_name,
                    position=env.fleet_position,
                    wave=wave_by_pk[env.pk],
                    from_heads=list(env.current_heads or []),
                )
            )
        RolloutTarget.objects.bulk_create(rows, batch_size=1000)
        request_transitions.request_created(request, actor=actor, http_request=http_request)
        if fleet.required_approvals == 0:
            request_transitions.request_approval_not_required(
                request, actor=actor, http_request=http_request
            )
            run_dispatch_on_commit(request_id=request.pk)
        else:
            notify_approvers_on_commit(request_id=request.pk)
    return request


def fleet_request_create(
    *,
    environment: Environment,
    actor: Any,
    direction: str,
    target: str,
    reason: str,
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """Pin one plan per head set and create the fleet's pending request (see module docstring)."""
    if not reason.strip():
        raise RequestRefused("a reason is required")
    refuse_if_busy(environment)
    by_heads: dict[tuple[str, ...], list[Environment]] = defaultdict(list)
    unread: list[Environment] = []
    targets = list(Environment.objects.targets_of(environment))
    if not targets:
        raise RequestRefused(f"fleet {environment.slug} has no targets; add them to its TOML")
    for env in targets:
        if env.status_state in READ_STATES or env.status_state == "no_version_table":
            by_heads[heads_key(env.current_heads)].append(env)
        else:
            unread.append(env)
    groups = [_Group(from_heads=list(key), targets=envs) for key, envs in by_heads.items()]
    for group in groups:
        _pin(group, direction=direction, target=target.strip())
    return _create(
        fleet=environment,
        actor=actor,
        direction=direction,
        target=target.strip(),
        reason=reason.strip(),
        groups=groups,
        unread=unread,
        http_request=http_request,
    )


def rollback_refusal(rollout: Rollout) -> str | None:
    """Why the rollout's migrated targets cannot be rolled back now, or None."""
    if rollout.request.direction != MigrationRequest.Direction.UPGRADE:
        return "only an upgrade's rollout can be rolled back this way"
    if rollout.state not in (Rollout.State.HALTED, *Rollout.ENDED_STATES):
        return "roll back a rollout once it has halted or ended"
    if not migrated_targets(rollout):
        return "no target of this rollout migrated: there is nothing to roll back"
    return None


def migrated_targets(rollout: Rollout) -> list[RolloutTarget]:
    """Targets whose heads moved in this rollout (from the heads each run recorded)."""
    rows = rollout.targets.select_related("environment").exclude(final_heads__isnull=True)
    return [row for row in rows if heads_key(row.final_heads) != heads_key(row.from_heads)]


def rollback_request_create(
    *,
    rollout: Rollout,
    actor: Any,
    reason: str,
    http_request: HttpRequest | None = None,
) -> MigrationRequest:
    """A downgrade request for exactly the targets that migrated, each to its heads before."""
    from dashboard.rollouts.services.actions import rollout_cancel

    refusal = rollback_refusal(rollout)
    if refusal:
        raise RequestRefused(refusal)
    if not reason.strip():
        raise RequestRefused("a reason is required")
    fleet = rollout.request.environment
    by_pair: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Environment]] = defaultdict(list)
    for row in migrated_targets(rollout):
        by_pair[(heads_key(row.final_heads), heads_key(row.from_heads))].append(row.environment)
    groups = []
    for (now_heads, before), envs in by_pair.items():
        if len(before) > 1:
            names = ", ".join(env.target_name for env in envs[:5])
            raise RequestRefused(
                f"{names} had several heads before ({', '.join(before)}): roll those back"
                " one branch at a time with a request per head"
            )
        group = _Group(from_heads=list(now_heads), targets=envs, to_heads=list(before))
        _pin(group, direction="downgrade", target=before[0] if before else "base")
        groups.append(group)
    if rollout.state == Rollout.State.HALTED:
        rollout_cancel(rollout=rollout, actor=actor, http_request=http_request)
    target = "the heads each target had before" if len(groups) > 1 else groups[0].plan.target  # type: ignore[union-attr]
    return _create(
        fleet=fleet,
        actor=actor,
        direction="downgrade",
        target=target[:200],
        reason=reason.strip(),
        groups=groups,
        unread=[],
        http_request=http_request,
        rolls_back=rollout,
    )
