"""Putting approved requests on the worker queue, after commit, and again if the broker was down.

The broker holds no decision: the request row does. ``run_dispatch`` never
raises for a broker failure; it records ``dispatch_error`` (shown on the
request page as "worker queue unavailable") and the beat task
``approved_requests_redispatch`` tries again. A duplicate message is harmless:
the claim in ``execution.run_start`` lets only one through.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dashboard.approvals.models import MigrationRequest

__all__ = ["approved_requests_redispatch", "run_dispatch", "run_dispatch_on_commit"]

logger = logging.getLogger(__name__)
QUEUE_UNAVAILABLE = "worker queue unavailable"


def run_dispatch_on_commit(*, request_id: int) -> None:
    """Enqueue the run of ``request_id`` once the current transaction commits."""
    transaction.on_commit(lambda: run_dispatch(request_id=request_id))


def run_dispatch(*, request_id: int) -> bool:
    """Send the task (id only). True if the broker took it; on failure record why and return False."""
    from dashboard.approvals.tasks import execute_request

    rows = MigrationRequest.objects.filter(pk=request_id)
    try:
        execute_request.apply_async(args=[request_id], retry=False)
    except Exception as exc:  # kombu/redis raise many types when the broker is down
        logger.warning("request %s not dispatched: %s", request_id, type(exc).__name__)
        rows.update(
            dispatch_attempts=F("dispatch_attempts") + 1,
            dispatch_error=f"{QUEUE_UNAVAILABLE} ({type(exc).__name__}); it will be sent again",
        )
        return False
    rows.update(
        dispatched_at=timezone.now(),
        dispatch_attempts=F("dispatch_attempts") + 1,
        dispatch_error="",
    )
    return True


def approved_requests_redispatch(
    *, now: datetime | None = None, resend_after: timedelta = timedelta(minutes=2)
) -> int:
    """Dispatch again approved requests that no worker claimed: never sent, or sent long ago."""
    now = now or timezone.now()
    waiting = MigrationRequest.objects.filter(
        status=MigrationRequest.Status.APPROVED, claimed_at__isnull=True
    ).filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - resend_after))
    sent = 0
    for request_id in waiting.values_list("pk", flat=True):
        sent += run_dispatch(request_id=request_id)
    return sent
