"""Reads behind the API: the same data the pages show, as JSON-ready dicts.

Contract: only reads the dashboard database and the Alembic files (never a
target, never a secret). Shapes match ``dashboard.api.schemas``. Requests are
read with their approvals and run in a fixed number of queries, however many;
the graph is exactly ``revision_graph_as_dict`` of the history named by
``settings.ALEMBIC_CONFIG`` (loaded through ``dashboard.graph.selectors``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.urls import NoReverseMatch, reverse

from dashboard.approvals.models import Approval, MigrationRequest, Run
from dashboard.approvals.selectors import request_stale_reason
from dashboard.environments.models import Environment
from dashboard.graph.selectors import graph_current
from dashboard.migrator.graph_export import revision_graph_as_dict

STATE_LABELS = dict(Environment.StatusState.choices)
REQUEST_LIST_LIMIT = 100


def _absolute(name: str, *args: Any, fallback: str) -> str:
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        path = fallback
    return settings.DASHBOARD_BASE_URL.rstrip("/") + path


def _environment_dict(environment: Environment) -> dict[str, Any]:
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
    }


def api_environment_list() -> list[dict[str, Any]]:
    """Every environment in pipeline order with its last-read status."""
    return [_environment_dict(env) for env in Environment.objects.order_by("position", "name")]


def api_environment_get(*, slug: str) -> dict[str, Any]:
    """One environment (raises ``Environment.DoesNotExist``)."""
    return _environment_dict(Environment.objects.get(slug=slug))


def api_graph() -> dict[str, Any]:
    """The revision graph, as ``manage.py revision_graph --format json`` prints it."""
    return revision_graph_as_dict(graph_current())


def _requests() -> QuerySet[MigrationRequest]:
    """Requests with everything ``_request_dict`` reads, in a fixed number of queries."""
    return MigrationRequest.objects.select_related(
        "environment", "requested_by", "run"
    ).prefetch_related(
        Prefetch(
            "approvals",
            queryset=Approval.objects.select_related("approver").order_by("created_at", "id"),
        ),
        "run__progress",
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


def request_page_url(*, pk: int) -> str:
    """The absolute address of a request's page, the link to post in chat."""
    return _absolute("approvals:detail", pk, fallback=f"/requests/{pk}/")


def _request_dict(request: MigrationRequest) -> dict[str, Any]:
    decisions = list(request.approvals.all())
    run = getattr(request, "run", None)  # the reverse one-to-one raises when absent
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
    }


def api_request_get(*, pk: int) -> dict[str, Any]:
    """One request with its approvals and run progress (raises ``DoesNotExist``)."""
    return _request_dict(_requests().get(pk=pk))


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
