"""The Celery application: ``celery -A dashboard worker`` / ``celery -A dashboard beat``.

Configured from Django settings under the ``CELERY_`` namespace; tasks are
discovered in every installed app's ``tasks`` module. Messages carry ids only.

Two queues (``route_task``): the tasks that run migrations go to
``settings.DASHBOARD_RUNS_QUEUE`` (``runs``), served by prefork or solo
workers; everything else (status reads, mail, the reaper, re-dispatch, audit
verification) to ``settings.DASHBOARD_IO_QUEUE`` (``io``), which may be
served by a thread pool. Start both::

    celery -A dashboard worker -Q runs --pool=prefork -n runs@%h
    celery -A dashboard worker -Q io --pool=threads --concurrency=8 -n io@%h
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Tasks that run Alembic against a target: never on a thread pool.
RUN_TASKS = frozenset({"approvals.execute_request", "approvals.continue_run"})


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    """Celery router: migrations on the runs queue, all other work on the io queue."""
    from django.conf import settings

    if name in RUN_TASKS:
        return {"queue": settings.DASHBOARD_RUNS_QUEUE}
    return {"queue": settings.DASHBOARD_IO_QUEUE}
