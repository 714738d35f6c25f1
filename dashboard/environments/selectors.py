"""Reads behind the environment pages, the overview and the CLI.

Contract: only reads the dashboard database (the cached status); never
resolves a secret or touches a target, so pages answer fast whatever the
targets do. Nothing here knows about requests or runs: the approvals app sits
above this one and composes its own reads (the request history of an
environment page, the last run kept on the row by its state machine).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from django.utils import timezone

from dashboard.environments.dispatch import QUEUED_READ_EXPIRES
from dashboard.environments.models import Environment

STATE_LABELS = dict(Environment.StatusState.choices)

# What an overview card shows. The drift comparison itself (operations, the
# autogenerate draft: kilobytes per row) and the configuration stay in the
# database; the card reads the denormalised drift_state/drift_count instead.
CARD_FIELDS = (
    "slug",
    "name",
    "position",
    "status_state",
    "current_heads",
    "pending",
    "status_error",
    "status_refreshed_at",
    "status_detail",
    "drift_state",
    "drift_count",
    "last_run_outcome",
    "last_run_started_at",
    "last_run_request_id",
)


def environments_for_pipeline() -> list[Environment]:
    """Every environment in pipeline order, card fields only: one query whatever their number."""
    return list(Environment.objects.pipeline().only(*CARD_FIELDS).order_by("position", "name"))


def overview_context(*, user: Any) -> dict[str, Any]:
    """Context of the overview page (``dashboard:overview``): the pipeline side by side."""
    if not user.has_perm("environments.view_environment"):
        return {"environments": [], "environments_hidden": True}
    return {"environments": environments_for_pipeline()}


def environment_get(*, slug: str) -> Environment:
    """The environment with this slug (raises ``Environment.DoesNotExist``)."""
    return Environment.objects.get(slug=slug)


FirstRead = Literal["", "queued", "not_queued"]


def environment_first_read_state(environment: Environment) -> FirstRead:
    """Where a never-read environment's first read stands; ``""`` once it was read.

    ``"queued"``: a read was queued less than ``QUEUED_READ_EXPIRES`` ago (the
    page polls); ``"not_queued"``: nothing is queued, or the message was lost.
    """
    never_read = (
        environment.status_refreshed_at is None
        and environment.status_state == Environment.StatusState.UNKNOWN
    )
    if not never_read:
        return ""
    queued = environment.status_refresh_queued_at
    if queued is not None and timezone.now() - queued < QUEUED_READ_EXPIRES:
        return "queued"
    return "not_queued"


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
