"""What the approvals app does when an environment's status was read (``status_refreshed``).

The environments app sits below this one and imports nothing of it; it
sends the signal and this module reacts: pending requests the new heads made
stale become *stale* (audited), and runs whose outcome was unknown are
settled from the heads. A failure here never breaks the status read.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from dashboard.environments.models import Environment
from dashboard.environments.signals import status_refreshed

logger = logging.getLogger(__name__)


@receiver(status_refreshed, sender=Environment, dispatch_uid="approvals-status-refreshed")
def on_status_refreshed(sender: Any, environment: Environment, **kwargs: Any) -> None:
    from dashboard.approvals.services.decisions import migration_requests_expire_stale
    from dashboard.approvals.services.recovery import runs_settle_unknown

    try:
        migration_requests_expire_stale(environment=environment)
        if environment.status_state in _READABLE:
            runs_settle_unknown(environment=environment)
    except Exception:
        logger.exception("requests of %s not updated after its status read", environment.slug)


_READABLE = (
    Environment.StatusState.UP_TO_DATE,
    Environment.StatusState.PENDING,
    Environment.StatusState.NO_VERSION_TABLE,
)
