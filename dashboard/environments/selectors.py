"""Reads behind the environment pages, the overview and the CLI.

Contract: only reads the dashboard database (the cached status); never
resolves a secret or touches a target, so pages answer fast whatever the
targets do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import reverse

from dashboard.environments.models import Environment

STATE_LABELS = dict(Environment.StatusState.choices)


def _with_last_run(queryset: QuerySet[Environment]) -> QuerySet[Environment]:
    # By name, not import: the approvals app imports this one.
    latest = (
        apps.get_model("approvals", "Run")
        .objects.filter(request__environment=OuterRef("pk"))
        .order_by("-started_at")
    )
    return queryset.annotate(
        last_run_outcome=Subquery(latest.values("outcome")[:1]),
        last_run_started_at=Subquery(latest.values("started_at")[:1]),
        last_run_request_id=Subquery(latest.values("request_id")[:1]),
    )


def environments_for_pipeline() -> list[Environment]:
    """Every environment in pipeline order, with its last run."""
    return list(_with_last_run(Environment.objects.order_by("position", "name")))


def overview_context(*, user: Any) -> dict[str, Any]:
    """Context of the overview page (``dashboard:overview``): the pipeline side by side."""
    if not user.has_perm("environments.view_environment"):
        return {"environments": [], "environments_hidden": True}
    return {"environments": environments_for_pipeline()}


def environment_get(*, slug: str) -> Environment:
    """The environment with this slug (raises ``Environment.DoesNotExist``)."""
    return _with_last_run(Environment.objects.filter(slug=slug)).get()


def environment_requests(*, environment: Environment, limit: int = 20) -> list[dict[str, Any]]:
    """The environment's migration requests, newest first, with the link to each."""
    from dashboard.approvals.selectors import environment_request_history

    return [
        {"request": item, "url": reverse("approvals:detail", args=[item.pk])}
        for item in environment_request_history(environment=environment, limit=limit)
    ]


def environment_status_row(environment: Environment) -> dict[str, Any]:
    """The CLI/JSON form of one environment's cached status."""
    drift = environment.drift or None
    return {
        "slug": environment.slug,
        "name": environment.name,
        "state": environment.status_state,
        "current_heads": list(environment.current_heads or []),
        "pending": list(environment.pending or []),
        "error": environment.status_error or None,
        "drift": drift.get("operations") if drift else None,
        "refreshed_at": (
            environment.status_refreshed_at.isoformat() if environment.status_refreshed_at else None
        ),
    }


def environment_status_rows(*, environments: Iterable[Environment]) -> list[dict[str, Any]]:
    return [environment_status_row(env) for env in environments]
