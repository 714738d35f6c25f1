"""Reads behind the API: the same data the pages show, as JSON-ready dicts.

Contract: only reads the dashboard database and the Alembic files (never a
target, never a secret). Shapes match ``dashboard.api.schemas``. Requests are
read with their approvals, run and (a fleet's) rollout in a fixed number of
queries, however many requests and targets; the graph is exactly
``revision_graph_as_dict`` of the history named by ``settings.ALEMBIC_CONFIG``
(loaded through ``dashboard.graph.selectors``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.urls import NoReverseMatch, reverse

from dashboard.approvals.models import Approval, MigrationRequest, Run
from dashboard.approvals.selectors import request_stale_reason
from dashboard.environments.fleet import FleetSummary, fleet_summaries
from dashboard.environments.models import Environment, target_slug
from dashboard.graph.selectors import graph_current
from dashboard.migrator.graph_export import revision_graph_as_dict
from dashboard.rollouts.models import Rollout, RolloutTarget

STATE_LABELS = dict(Environment.StatusState.choices)
REQUEST_LIST_LIMIT = 100


def _absolute(name: str, *args: Any, fallback: str) -> str:
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        path = fallback
    return settings.DASHBOARD_BASE_URL.rstrip("/") + path


def _environment_dict(
    environment: Environment, *, summary: FleetSummary | None = None
) -> dict[str, Any]:
    drift = environment.drift if isinstance(environment.drift, dict) else None
    return {
        "slug": environment.slug,
        "name": environment.name,
        "position": environment.position,
        "description": environment.description,
        "status": environment.status_state,
        "status_label": STATE_LABELS.get(environment.status_state, environment.status_state),
        "current_heads": list(environment.current_heads or []),
        "pending": list(environment.pending or []),
        "status_error": environment.status_error,
        "status_refreshed_at": environment.status_refreshed_at,
        "drift": drift.get("state") if drift else None,
        "dialect": environment.dialect,
        "required_approvals": environment.required_approvals,
        "url": _absolute(
            "environments:detail", environment.slug, fallback=f"/environments/{environment.slug}/"
        ),
        "fleet": _fleet_dict(summary) if environment.is_fleet and summary is not None else None,
        "target_of": (
            {
                "fleet": environment.fleet_slug,
                "name": environment.target_name,
                "position": environment.fleet_position,
                "retired": environment.retired_at is not None,
            }
            if environment.is_target
            else None
        ),
    }


def _fleet_dict(summary: FleetSummary) -> dict[str, Any]:
    return {
        "targets": summary.targets,
        "summary": {
            "states": dict(summary.states),
            "head_sets": summary.head_sets,
            "oldest_read": summary.oldest_read,
        },
    }


def api_environment_list() -> list[dict[str, Any]]:
    """The pipeline in order (fleets with their summary, not their targets): two queries."""
    environments = list(Environment.objects.pipeline().order_by("position", "name"))
    summaries = fleet_summaries(env.pk for env in environments if env.is_fleet)
    return [_environment_dict(env, summary=summaries.get(env.pk)) for env in environments]


def api_environment_get(*, slug: str) -> dict[str, Any]:
    """One environment, fleet or target of a fleet (raises ``Environment.DoesNotExist``)."""
    environment = Environment.objects.get(slug=slug)
    summary = fleet_summaries([environment.pk])[environment.pk] if environment.is_fleet else None
    return _environment_dict(environment, summary=summary)


def api_graph() -> dict[str, Any]:
    """The revision graph, as ``manage.py revision_graph --format json`` prints it."""
    return revision_graph_as_dict(graph_current())


def _requests() -> QuerySet[MigrationRequest]:
    """Requests with everything ``_request_dict`` reads, in a fixed number of queries.

    A fleet's rollout comes with its plans and targets: three more queries
    however many targets (and none for a request that has no rollout).
    """
    return MigrationRequest.objects.select_related(
        "environment", "requested_by", "run", "rollout"
    ).prefetch_related(
        Prefetch(
            "approvals",
            queryset=Approval.objects.select_related("approver").order_by("created_at", "id"),
        ),
        "run__progress",
        "rollout__plans",
        Prefetch("rollout__targets", queryset=RolloutTarget.objects.order_by("position", "id")),
    )


def _run_dict(run: Run) -> dict[str, Any]:
    return {
        "outcome": run.outcome,
        "phase": run.phase,
        "started_at": run.started_at,
        "heartbeat_at": run.heartbeat_at,
        "finished_at": run.finished_at,
        "total_steps": run.total_steps,
        "current_revision": run.current_revision,
        "progress_percent": run.progress_percent,
        "applied": [
            {"index": step.index, "revision": step.revision, "applied_at": step.applied_at}
            for step in sorted(run.progress.all(), key=lambda step: step.index)
        ],
        "committed": list(run.committed or []),
        "final_heads": run.final_heads,
        "reason": run.reason,
        "error": run.error,
    }


def _wave_state(rollout: Rollout, number: int) -> str:
    """pending (not reached), the rollout's own state while current, done, or cancelled."""
    state = rollout.state
    if state == Rollout.State.PENDING:
        return "pending"
    if state == Rollout.State.SUCCEEDED or number < rollout.current_wave:
        return "done"
    if number > rollout.current_wave:
        return "cancelled" if state == Rollout.State.CANCELLED else "pending"
    return state


def _rollout_dict(rollout: Rollout, *, fleet_slug: str) -> dict[str, Any]:
    plans = list(rollout.plans.all())
    index_of = {plan.pk: plan.index for plan in plans}
    targets = list(rollout.targets.all())
    states = RolloutTarget.State.values
    by_wave: dict[int, Counter[str]] = defaultdict(Counter)
    for row in targets:
        by_wave[row.wave][row.state] += 1
    everyone = Counter(row.state for row in targets)
    ends = list(rollout.waves or [])
    return {
        "state": rollout.state,
        "state_label": rollout.get_state_display(),
        "current_wave": rollout.current_wave,
        "halted_reason": rollout.halted_reason,
        "parallelism": rollout.parallelism,
        "halt_after_failures": rollout.halt_after_failures,
        "soak_seconds": rollout.soak.total_seconds() if rollout.soak else None,
        "soak_until": rollout.soak_until if rollout.state == Rollout.State.SOAKING else None,
        "gate_sql": rollout.gate_sql,
        "started_at": rollout.started_at,
        "ended_at": rollout.ended_at,
        "counts": {state: everyone.get(state, 0) for state in states},
        "waves": [
            {
                "number": number,
                "size": end - (ends[number - 2] if number > 1 else 0),
                "state": _wave_state(rollout, number),
                "counts": {state: by_wave[number].get(state, 0) for state in states},
            }
            for number, end in enumerate(ends, start=1)
        ],
        "plans": [
            {
                "index": plan.index,
                "from_heads": list(plan.from_heads),
                "to_heads": list(plan.to_heads),
                "revisions": plan.revisions,
                "sql_sha256": plan.sql_sha256,
                "destructive": plan.destructive,
                "targets": plan.target_count,
            }
            for plan in plans
        ],
        "targets": [
            {
                "name": row.name,
                "environment": target_slug(fleet_slug, row.name),
                "wave": row.wave,
                "state": row.state,
                "plan": index_of.get(row.plan_id) if row.plan_id else None,
                "request": row.request_id,
                "attempts": row.attempts,
                "from_heads": list(row.from_heads or []),
                "to_heads": list(row.to_heads or []),
                "final_heads": row.final_heads,
                "applied": row.applied,
                "total_steps": row.total_steps,
                "gate_passed": row.gate_passed,
                "error": row.error,
                "started_at": row.started_at,
                "finished_at": row.finished_at,
            }
            for row in targets
        ],
    }


def request_page_url(*, pk: int) -> str:
    """The absolute address of a request's page, the link to post in chat."""
    return _absolute("approvals:detail", pk, fallback=f"/requests/{pk}/")


def _request_dict(request: MigrationRequest) -> dict[str, Any]:
    decisions = list(request.approvals.all())
    run = getattr(request, "run", None)  # the reverse one-to-one raises when absent
    rollout = getattr(request, "rollout", None)
    return {
        "id": request.pk,
        "url": request_page_url(pk=request.pk),
        "environment": request.environment.slug,
        "direction": request.direction,
        "target": request.target,
        "reason": request.reason,
        "status": request.status,
        "status_label": request.get_status_display(),
        "status_note": request.status_note,
        "stale": request_stale_reason(request=request),
        "requested_by": request.requested_by.get_username(),
        "created_at": request.created_at,
        "approved_at": request.approved_at,
        "ended_at": request.ended_at,
        "from_heads": list(request.from_heads),
        "to_heads": list(request.to_heads),
        "steps": [
            {"revision": step["revision"], "message": step.get("message", "")}
            for step in request.steps
        ],
        "sql_sha256": request.sql_sha256,
        "destructive": request.destructive,
        "required_approvals": request.required_approvals,
        "approvals_given": sum(
            1
            for decision in decisions
            if decision.decision == Approval.Decision.APPROVE and decision.expired_at is None
        ),
        "approvals": [
            {
                "approver": decision.approver.get_username(),
                "decision": decision.decision,
                "comment": decision.comment,
                "created_at": decision.created_at,
                "expired": decision.expired_at is not None,
            }
            for decision in decisions
        ],
        "run": _run_dict(run) if run is not None else None,
        "parent": request.parent_id,
        "rollout": _rollout_dict(rollout, fleet_slug=request.environment.slug)
        if rollout is not None
        else None,
    }


def api_request_get(*, pk: int) -> dict[str, Any]:
    """One request with its approvals and run progress (raises ``DoesNotExist``)."""
    return _request_dict(_requests().get(pk=pk))


def api_rollout_of(*, pk: int) -> Rollout | None:
    """The rollout of request ``pk``, or None: not a fleet's request.

    Raises ``MigrationRequest.DoesNotExist`` when there is no request ``pk``.
    """
    rollout = Rollout.objects.select_related("request__environment").filter(request_id=pk).first()
    if rollout is None and not MigrationRequest.objects.filter(pk=pk).exists():
        raise MigrationRequest.DoesNotExist(f"no request #{pk}")
    return rollout


def api_request_list(
    *, environment: str = "", status: str = "", limit: int = 20
) -> list[dict[str, Any]]:
    """Requests newest first, optionally of one environment and/or in one status."""
    rows = _requests()
    if environment:
        rows = rows.filter(environment__slug=environment)
    if status:
        rows = rows.filter(status=status)
    return [_request_dict(row) for row in rows.order_by("-created_at", "-id")[:limit]]
