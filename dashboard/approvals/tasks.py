"""Celery tasks of approvals: thin, ids only; the services do the work.

Routed by ``dashboard.celery.route_task``: ``execute_request`` and
``continue_run`` on the runs queue (prefork/solo workers), the rest on the io
queue. Early acknowledgement (Celery's default, see settings): a killed
worker's message is not redelivered; ``reap_lost_runs`` finds its run.
Services send these tasks by name (``services.dispatch``), so this module is
the only one that imports both.
"""

from __future__ import annotations

from celery import shared_task

from dashboard.approvals import notifications
from dashboard.approvals.services.decisions import migration_requests_expire_approvals
from dashboard.approvals.services.dispatch import approved_requests_redispatch
from dashboard.approvals.services.execution import RetryLater, run_execute, run_start
from dashboard.approvals.services.recovery import run_cancel_backend, runs_reap


def _execute(run_id: int, attempt: int) -> None:
    try:
        run_execute(run_id=run_id, attempt=attempt)
    except RetryLater as later:
        continue_run.apply_async(args=[run_id, attempt + 1], countdown=later.countdown)


@shared_task(name="approvals.execute_request", ignore_result=True)
def execute_request(request_id: int) -> None:
    """Claim the approved request and run it; a duplicate delivery does nothing."""
    run = run_start(request_id=request_id)
    if run is not None:
        _execute(run.pk, 0)


@shared_task(name="approvals.continue_run", ignore_result=True)
def continue_run(run_id: int, attempt: int) -> None:
    """Try the target lock again for a run that found it busy (no DDL ran yet)."""
    _execute(run_id, attempt)


@shared_task(name="approvals.reap_lost_runs", ignore_result=True)
def reap_lost_runs() -> list[int]:
    return runs_reap()


@shared_task(name="approvals.redispatch_approved", ignore_result=True)
def redispatch_approved() -> int:
    return approved_requests_redispatch()


@shared_task(name="approvals.expire_approvals", ignore_result=True)
def expire_approvals() -> int:
    return migration_requests_expire_approvals()


@shared_task(name="approvals.cancel_run_backend", ignore_result=True)
def cancel_run_backend(run_id: int, stage: int) -> str:
    return run_cancel_backend(run_id=run_id, stage=stage)


@shared_task(name="approvals.notify_approvers", ignore_result=True)
def notify_approvers(request_id: int) -> None:
    notifications.notify_approvers(request_id=request_id)


@shared_task(name="approvals.notify_requester", ignore_result=True)
def notify_requester(request_id: int) -> None:
    notifications.notify_requester(request_id=request_id)
