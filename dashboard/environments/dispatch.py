"""Queue status reads without growing the queue: one queued read per environment at most.

``environment_refresh_enqueue(environment_id=...)`` claims the environment
with a conditional ``UPDATE ... SET status_refresh_queued_at = now() WHERE
status_refresh_queued_at IS NULL OR status_refresh_queued_at < now() - 5 min``
and sends ``environments.refresh`` only when that changed exactly one row.
The read clears the mark when it ends, also when it fails
(``environment_refresh_release``). The state is on the row, never only in
the broker: a message that was lost (broker restarted, worker killed) blocks
the next read for ``QUEUED_READ_EXPIRES`` at most.

Sends by task name (nothing imports back from ``tasks.py``), so the tasks
module can use this one. Times are the dashboard database's clock.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import Now

from dashboard.environments.models import Environment

logger = logging.getLogger(__name__)

REFRESH_TASK = "environments.refresh"
# Longer than a read ever takes (a few seconds of timeouts) and than a normal
# backlog; short enough that a lost message costs a few missed minutes only.
QUEUED_READ_EXPIRES = timedelta(minutes=5)


def environment_refresh_claim(*, environment_id: int) -> bool:
    """Mark the environment's read as queued unless one already is; True if this call marked it."""
    unclaimed = Q(status_refresh_queued_at__isnull=True) | Q(
        status_refresh_queued_at__lt=Now() - QUEUED_READ_EXPIRES
    )
    changed = (
        Environment.objects.filter(pk=environment_id)
        .filter(unclaimed)
        .update(status_refresh_queued_at=Now())
    )
    return changed == 1


def environment_refresh_release(*, environment_id: int) -> None:
    """The queued read ended (or was never sent): the next one may be queued."""
    Environment.objects.filter(pk=environment_id).update(status_refresh_queued_at=None)


def environment_refresh_enqueue(*, environment_id: int) -> bool:
    """Queue one status read of the environment unless one is queued already.

    True when a message was sent. A broker error releases the claim (so the
    next minute tries again) and is logged, never raised: callers are beat's
    fan-out, a page load and ``load_environments``, none of which should fail
    because the broker is away.
    """
    if not environment_refresh_claim(environment_id=environment_id):
        return False
    from dashboard.celery import app

    try:
        app.send_task(REFRESH_TASK, args=[environment_id])
    except Exception:
        logger.exception("could not queue a status read of environment %s", environment_id)
        environment_refresh_release(environment_id=environment_id)
        return False
    return True
