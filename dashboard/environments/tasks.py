"""Celery tasks of the environments app: thin, ids only, no secrets in messages.

``environments_refresh_all`` (beat, every minute) fans out one
``environment_refresh`` task per environment so a slow or dead target only
holds one worker slot for its few seconds of timeout, and skips an
environment whose previous read is still queued (``dispatch.py``): the queue
holds one read per environment at most, whatever the backlog.
"""

from __future__ import annotations

from celery import shared_task

from dashboard.environments.dispatch import (
    REFRESH_TASK,
    environment_refresh_enqueue,
    environment_refresh_release,
)
from dashboard.environments.models import Environment
from dashboard.environments.services import drift_max_age, environment_status_refresh


@shared_task(name=REFRESH_TASK, ignore_result=True)
def environment_refresh(environment_id: int) -> None:
    try:
        environment = Environment.objects.filter(pk=environment_id).first()
        if environment is not None:
            environment_status_refresh(environment=environment, drift_max_age=drift_max_age())
    finally:
        environment_refresh_release(environment_id=environment_id)


@shared_task(name="environments.refresh_all", ignore_result=True)
def environments_refresh_all() -> int:
    """Queue a read of every environment not already queued; returns how many were queued."""
    ids = list(
        Environment.objects.readable()
        .filter(retired_at__isnull=True)
        .order_by("position", "fleet_position", "pk")
        .values_list("pk", flat=True)
    )
    return sum(environment_refresh_enqueue(environment_id=pk) for pk in ids)
