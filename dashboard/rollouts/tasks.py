"""Celery tasks of rollouts: thin, ids only, on the io queue (the runs themselves are
``approvals.execute_request`` on the runs queue). See ``services/scheduler.py``."""

from __future__ import annotations

from celery import shared_task

from dashboard.rollouts.models import Rollout
from dashboard.rollouts.services.scheduler import rollout_advance, rollouts_tick


@shared_task(name="rollouts.advance", ignore_result=True)
def advance(rollout_id: int) -> str:
    """Step one rollout as far as it goes now (idempotent)."""
    return rollout_advance(rollout_id=rollout_id)


@shared_task(name="rollouts.start", ignore_result=True)
def start(request_id: int) -> str:
    """A fleet's request was approved (or dispatched again): step its rollout."""
    rollout_id = Rollout.objects.filter(request_id=request_id).values_list("pk", flat=True).first()
    return rollout_advance(rollout_id=rollout_id) if rollout_id is not None else ""


@shared_task(name="rollouts.tick", ignore_result=True)
def tick() -> int:
    """Beat, every few seconds: soaks that ended, lost messages, settled targets."""
    return rollouts_tick()
