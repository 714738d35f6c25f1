"""The daily chain verification runs in a real Celery worker (the beat entry's task)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from dashboard.audit.models import ChainVerification
from dashboard.audit.services import audit_record
from tests.dashboard.approvals_support import Worker, broker, drop_queue_keys, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_it_verifies_the_chain_in_a_worker_when_beat_sends_the_daily_task(tmp_path: Path) -> None:
    for number in range(3):
        audit_record(action="dashboard.environment.changed", payload={"n": number})
    entry = settings.CELERY_BEAT_SCHEDULE["audit-verify-chain-daily"]
    redis_url, queue = os.environ["TEST_REDIS_URL"], f"test-audit-{uuid.uuid4().hex[:10]}"
    worker = Worker(
        broker_url=redis_url, queue=queue, ini=REPO / "alembic.ini", log=tmp_path / "worker.log"
    )
    try:
        with broker(redis_url, queue):
            from dashboard.celery import app

            app.send_task(entry["task"], queue=queue)  # what beat does once a day
            verification = wait_for(ChainVerification.objects.first, timeout=60, interval=0.2)
    finally:
        worker.stop()
        drop_queue_keys(redis_url, queue)

    assert verification.ok and verification.events_checked == 3
    assert entry["schedule"].total_seconds() == 24 * 3600
