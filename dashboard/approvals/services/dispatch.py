"""Putting work on the queues: runs after commit (again if the broker was down), and mail.

The broker holds no decision: the request row does. ``run_dispatch`` never
raises for a broker failure and never makes the person who approved wait
more than ``settings.DASHBOARD_DISPATCH_WAIT`` (1.5 s): the message is
published from a thread, and when the broker does not answer in time the
request records ``dispatch_error`` (shown on the request page as "worker
queue unavailable") while the thread keeps trying; the beat task
``approved_requests_redispatch`` tries again later. A duplicate message is
harmless: the claim in ``execution.run_start`` lets only one through.

Tasks are sent by name (``send_task``), routed by ``dashboard.celery.route_task``:
this module imports no task module, so tasks can import services without a
circle.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from dashboard.approvals.models import MigrationRequest

__all__ = [
    "approved_requests_redispatch",
    "enqueue_on_commit",
    "run_dispatch",
    "run_dispatch_on_commit",
    "send_task",
]

logger = logging.getLogger(__name__)
QUEUE_UNAVAILABLE = "worker queue unavailable"
EXECUTE_TASK = "approvals.execute_request"
# A fleet's request is not run itself: its rollout is stepped (dashboard.rollouts).
ROLLOUT_START_TASK = "rollouts.start"
_TASKS_LOADING = threading.Lock()


def send_task(task_name: str, *args: Any, countdown: float | None = None) -> None:
    """Publish ``task_name`` (found by name in the app's registry) with ids only.

    By name, so services never import task modules; through the task object,
    so ``task_always_eager`` (unit tests of task bodies) is honoured.
    """
    if task_name not in current_app.tasks:
        # Autodiscovery is lazy outside a worker; two first sends from two threads
        # must not see a half-filled registry (NotRegistered): import under a lock.
        with _TASKS_LOADING:
            if task_name not in current_app.tasks:
                current_app.loader.import_default_modules()
    task = current_app.tasks[task_name]
    task.apply_async(args=list(args), countdown=countdown, retry=False)


def enqueue_on_commit(task_name: str, *args: Any, countdown: float | None = None) -> None:
    """Send ``task_name`` once the current transaction commits, from a thread; never raises."""

    def send() -> None:
        try:
            send_task(task_name, *args, countdown=countdown)
        except Exception as exc:  # a lost notification or refresh is caught up by beat
            logger.warning("%s%r not queued: %s", task_name, args, type(exc).__name__)

    def after_commit() -> None:
        if current_app.conf.task_always_eager:
            send()
        else:  # a broker that does not answer must not hold the caller
            threading.Thread(target=send, name=f"enqueue-{task_name}", daemon=True).start()

    transaction.on_commit(after_commit)


def run_dispatch_on_commit(*, request_id: int) -> None:
    """Enqueue the run of ``request_id`` once the current transaction commits."""
    transaction.on_commit(lambda: run_dispatch(request_id=request_id))


class _Publication:
    """One publish attempt shared by the waiting caller and the publishing thread."""

    def __init__(self, request_id: int, task_name: str = EXECUTE_TASK) -> None:
        self.request_id = request_id
        self.task_name = task_name
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.given_up = False
        self.ok = False
        self.error = ""

    def publish(self) -> None:
        try:
            send_task(self.task_name, self.request_id)
            self.ok = True
        except Exception as exc:  # kombu/redis raise many types when the broker is down
            logger.warning("request %s not dispatched: %s", self.request_id, type(exc).__name__)
            self.error = f"{QUEUE_UNAVAILABLE} ({type(exc).__name__}); it will be sent again"
        with self.lock:
            late = self.given_up
            self.done.set()
            if late:  # the caller has answered already: record what finally happened
                self._record()
        if late:
            connection.close()

    def _record(self) -> None:
        rows = MigrationRequest.objects.filter(pk=self.request_id)
        if self.ok:
            rows.update(dispatched_at=timezone.now(), dispatch_error="")
        else:
            rows.update(dispatch_error=self.error)


def run_dispatch(*, request_id: int) -> bool:
    """Send the task (id only). True if the broker took it in time; otherwise record why."""
    MigrationRequest.objects.filter(pk=request_id).update(
        dispatch_attempts=F("dispatch_attempts") + 1
    )
    fleet = MigrationRequest.objects.filter(pk=request_id, environment__is_fleet=True).exists()
    publication = _Publication(request_id, ROLLOUT_START_TASK if fleet else EXECUTE_TASK)
    thread = threading.Thread(target=publication.publish, name="dispatch", daemon=True)
    thread.start()
    publication.done.wait(timeout=settings.DASHBOARD_DISPATCH_WAIT.total_seconds())
    with publication.lock:
        if not publication.done.is_set():
            publication.given_up = True
            MigrationRequest.objects.filter(pk=request_id).update(
                dispatch_error=f"{QUEUE_UNAVAILABLE} (no answer yet); it will be sent again"
            )
            return False
    publication._record()
    return publication.ok


def approved_requests_redispatch(
    *, now: datetime | None = None, resend_after: timedelta | None = None
) -> int:
    """Dispatch again approved requests that no worker claimed: never sent, or sent long ago."""
    now = now or timezone.now()
    resend_after = resend_after or settings.DASHBOARD_REDISPATCH_AFTER
    waiting = MigrationRequest.objects.filter(
        status=MigrationRequest.Status.APPROVED, claimed_at__isnull=True
    ).filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - resend_after))
    sent = 0
    for request_id in waiting.values_list("pk", flat=True):
        sent += run_dispatch(request_id=request_id)
    return sent
