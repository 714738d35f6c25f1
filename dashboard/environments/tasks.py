"""Celery tasks of the environments app: thin, ids only, no secrets in messages.

``environments_refresh_all`` (beat, every minute) fans out one
``environment_refresh`` task per environment so a slow or dead target only
holds one worker slot for its few seconds of timeout.
"""

from __future__ import annotations

from celery import shared_task

from dashboard.environments.models import Environment
from dashboard.environments.services import drift_max_age, environment_status_refresh


@shared_task(name="environments.refresh", ignore_result=True)
def environment_refresh(environment_id: int) -> None:
    environment = Environment.objects.filter(pk=environment_id).first()
    if environment is not None:
        environment_status_refresh(environment=environment, drift_max_age=drift_max_age())


@shared_task(name="environments.refresh_all", ignore_result=True)
def environments_refresh_all() -> int:
    ids = list(Environment.objects.values_list("pk", flat=True))
    for environment_id in ids:
        environment_refresh.delay(environment_id)
    return len(ids)
